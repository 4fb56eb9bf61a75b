"""The chat frames of the viewer protocol (docs/protocol.md, "Chat"). Pure msgspec types.

Client frames join the viewer protocol's own union in one decoder (``viewer_decoder``), so the
endpoint still decodes every frame once and dispatches with ``match``. Server frames are encoded
once per node: a ``chat`` frame carries every message of a show posted during one tick.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from server.chat.limits import MAX_TEXT_CHARS, MAX_TIMEOUT_SECONDS
from server.viewers import protocol as p

MessageId = Annotated[str, msgspec.Meta(min_length=3, max_length=41, pattern=r"^[0-9]{1,20}-[0-9]{1,20}$")]
HeldId = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[a-f0-9]+$")]
Uid = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[a-f0-9]+$")]

# -- roles and refusal codes ----------------------------------------------------------------------
ROLE_VIEWER: Final = "viewer"
ROLE_MODERATOR: Final = "moderator"
ROLE_HOST: Final = "host"
ROLE_SYSTEM: Final = "system"

REFUSED_BANNED: Final = "banned"
REFUSED_TIMEOUT: Final = "timeout"
REFUSED_SLOW: Final = "slow_mode"
REFUSED_RATE: Final = "rate_limited"
REFUSED_BLOCKED: Final = "blocked"
REFUSED_CLOSED: Final = "chat_closed"
REFUSED_UNAUTHENTICATED: Final = "unauthenticated"
REFUSED_EMPTY: Final = "empty"
REFUSED_FORBIDDEN: Final = "forbidden"
REFUSED_UNAVAILABLE: Final = "unavailable"
REFUSED_NOT_FOUND: Final = "not_found"
CLAIM_UNKNOWN_DROP: Final = "claim_unknown_drop"
CLAIM_NOT_LIVE: Final = "claim_not_live"
CLAIM_VARIANT_REQUIRED: Final = "claim_variant_required"  # the drop has sizes; the claim names none
CLAIM_UNKNOWN_VARIANT: Final = "claim_unknown_variant"  # a size the drop does not have

Text = Annotated[
    str, msgspec.Meta(min_length=1, max_length=MAX_TEXT_CHARS * 4)
]  # trimmed to MAX_TEXT_CHARS after normalising


# -- viewer -> server ---------------------------------------------------------------------------
class ChatSend(msgspec.Struct, tag="chat_send", forbid_unknown_fields=True):
    """Post a message. ``ref`` makes a retry idempotent: the same ``ref`` from the same viewer
    is the same message (and the same claim), however often it arrives."""

    ref: p.Ref
    text: Text


ModAction = Literal["delete", "clear", "timeout", "ban", "unban", "pin", "unpin", "slow", "approve", "reject"]


class ChatModerate(msgspec.Struct, tag="chat_mod", forbid_unknown_fields=True):
    """A moderator's action (a token minted with role ``moderator``). ``message`` names a message
    (delete, pin) or its author (timeout, ban, unban); ``uid`` names an author; ``held`` a held
    message (approve, reject)."""

    action: ModAction
    ref: p.Ref | None = None
    message: MessageId | None = None
    uid: Uid | None = None
    held: HeldId | None = None
    seconds: Annotated[int, msgspec.Meta(ge=0, le=MAX_TIMEOUT_SECONDS)] | None = None
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


ChatClientFrame = ChatSend | ChatModerate

viewer_decoder: Final[p.FrameDecoder[p.ClientFrame | ChatClientFrame]] = p.FrameDecoder(p.ClientFrame | ChatClientFrame)
"""The viewer endpoint's one decoder: the protocol's frames and the chat's."""


# -- server -> viewer ---------------------------------------------------------------------------
class ChatMessage(msgspec.Struct, frozen=True):
    """One message as every viewer sees it. ``id`` is its entry in the show's chat log, ``n`` its
    number in the show (strictly increasing: ``chat_clear`` names the last one it removes). ``uid``
    is a pseudonym of the author (never the viewer id), the same in every message of one author.
    ``kind`` is ``text`` or ``claim`` (a system line saying someone claimed a drop)."""

    id: str
    n: int
    at: int
    name: str
    role: str
    uid: str
    text: str
    kind: str = "text"


class ChatSettingsView(msgspec.Struct, frozen=True):
    """What a viewer's client needs to know of a show's chat settings."""

    slow_seconds: int = 0
    keyword: str = "SOLD"


class Chat(msgspec.Struct, tag="chat"):
    """The messages of one tick, oldest first (at most ``LIVEDROP_CHAT_BATCH_MAX``; a tick with
    more keeps the newest). Conflatable: a slow viewer's parked ``chat`` frame is replaced by the
    next one, so it loses old chat first, never stock or drop frames."""

    messages: list[ChatMessage]


class ChatHistory(msgspec.Struct, tag="chat_history"):
    """Sent after ``welcome`` (and after a resume): the last messages of the show, the pinned one,
    the settings, the drops' claim codes, and who this connection is in the chat."""

    messages: list[ChatMessage]
    pinned: ChatMessage | None
    settings: ChatSettingsView
    codes: dict[str, str]
    you: ChatYou | None = None


class ChatYou(msgspec.Struct, frozen=True):
    name: str
    role: str
    uid: str


class ChatDelete(msgspec.Struct, tag="chat_delete"):
    ids: list[str]


class ChatClear(msgspec.Struct, tag="chat_clear"):
    """Remove every message whose ``n`` is at most ``upto``."""

    upto: int


class ChatPin(msgspec.Struct, tag="chat_pin"):
    message: ChatMessage | None


class ChatMode(msgspec.Struct, tag="chat_mode"):
    settings: ChatSettingsView
    codes: dict[str, str]


class ChatAck(msgspec.Struct, tag="chat_ack"):
    """Private: the message was taken. ``status``: ``posted``, ``held`` (waits for a moderator)
    or ``duplicate`` (this ``ref`` was posted before: ``id`` is the first one's)."""

    ref: str
    id: str
    status: str


class ChatRejected(msgspec.Struct, tag="chat_rejected"):
    """Private: the message (or moderation action) was refused. ``retry_after`` in ms for
    ``slow_mode`` and ``rate_limited``; ``until`` (epoch ms) for ``timeout``."""

    ref: str | None
    code: str
    message: str
    retry_after: int | None = None
    until: int | None = None


class HeldMessage(msgspec.Struct, frozen=True):
    """A message a blocked word held back: only hosts and moderators see it."""

    id: str
    at: int
    name: str
    uid: str
    text: str
    word: str


class ChatHeld(msgspec.Struct, tag="chat_held"):
    """To hosts and moderators only: messages held for review (``added``) or resolved (``gone``)."""

    added: list[HeldMessage]
    gone: list[str]


ChatServerFrame = Chat | ChatHistory | ChatDelete | ChatClear | ChatPin | ChatMode | ChatAck | ChatRejected | ChatHeld
encoder: Final = msgspec.json.Encoder()
decoder: Final = msgspec.json.Decoder(ChatServerFrame)  # for tests and tools
