"""What a node knows of one show's chat, and how entries of the show's chat log fold into it. Pure.

The node reads a show's log once when it starts following the show (the newest entries, folded
in order: messages after the last clear, less the deleted ones), then folds each new entry as
the node's stream reader hands it over. A fold returns what must go out now (a moderation frame,
a held message for hosts, a viewer to disconnect); messages wait in ``pending`` for the next
tick, so that a show gets one ``chat`` frame per tick whatever the number of writers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

import msgspec

from server.chat import frames as f
from server.chat.limits import DEFAULT_KEYWORD
from server.chat.normalise import BlockList
from server.chat.store import Entry, message_of


class Settings(NamedTuple):
    slow_seconds: int = 0
    keyword: str = DEFAULT_KEYWORD
    words: tuple[str, ...] = ()
    word_action: str = "hold"  # what a blocked word does: 'hold' for review, or 'drop'

    def view(self) -> f.ChatSettingsView:
        return f.ChatSettingsView(slow_seconds=self.slow_seconds, keyword=self.keyword)


class Restriction(NamedTuple):
    until: int  # epoch ms; -1 for a ban
    disconnect: bool


class Folded(NamedTuple):
    """What one log entry asks of the node beyond the room's new state."""

    broadcast: msgspec.Struct | None = None  # a frame for everyone, now
    hosts: msgspec.Struct | None = None  # a frame for hosts and moderators only
    disconnect: str | None = None  # a viewer id whose connections to the show must close
    settings: bool = False  # settings or codes changed: the cached history frame is stale


@dataclass
class Room:
    show_id: str
    limit: int = 200
    history: deque[f.ChatMessage] = field(default_factory=deque)
    pending: list[f.ChatMessage] = field(default_factory=list)
    pinned: f.ChatMessage | None = None
    settings: Settings = field(default_factory=Settings)
    blocked: BlockList = field(default_factory=lambda: BlockList(()))
    codes: dict[str, str] = field(default_factory=dict)  # drop → code
    restricted: dict[str, Restriction] = field(default_factory=dict)
    after: str = "0-0"  # the last log entry folded
    flushed_at: float = 0.0  # when the last chat frame went to the hub (loop time)
    allowance: float = -1.0  # messages the next frames may carry (a bucket: ``viewer_messages``/s)
    history_frame: bytes | None = None  # encoded once per change, for joins and resumes

    def __post_init__(self) -> None:
        self.history = deque(self.history, maxlen=self.limit)

    # -- folds ------------------------------------------------------------------------------------

    def fold(self, entry: Entry) -> Folded:
        """Fold one log entry (see the module doc). Raises ``KeyError``/``ValueError`` on an entry
        it cannot use; the caller logs it and goes on."""
        self.after = entry.id
        fields = entry.fields
        kind = fields["k"]
        if kind == "m":
            message = message_of(entry)
            self.history.append(message)
            self.pending.append(message)
            self.history_frame = None
            return Folded()
        if kind == "d":
            ids = set(fields["ids"].split(","))
            self._drop(lambda m: m.id in ids)
            if self.pinned is not None and self.pinned.id in ids:
                self.pinned = None
            return Folded(broadcast=f.ChatDelete(ids=sorted(ids)))
        if kind == "c":
            upto = int(fields["upto"])
            self._drop(lambda m: m.n <= upto)
            return Folded(broadcast=f.ChatClear(upto=upto))
        if kind == "s":
            return self._fold_settings(fields)
        if kind == "r":
            viewer, until = fields["v"], int(fields["until"])
            if fields.get("scope", "show") != "show":
                return Folded()
            if until == 0:
                self.restricted.pop(viewer, None)
                return Folded()
            disconnect = fields.get("dc") == "1"
            self.restricted[viewer] = Restriction(until, disconnect)
            return Folded(disconnect=viewer if disconnect else None)
        if kind == "h":
            held = f.HeldMessage(
                id=fields["hid"],
                at=int(fields.get("at", "0")),
                name=fields.get("nm", ""),
                uid=fields.get("u", ""),
                text=fields.get("t", ""),
                word=fields.get("w", ""),
            )
            return Folded(hosts=f.ChatHeld(added=[held], gone=[]))
        if kind == "hx":
            return Folded(hosts=f.ChatHeld(added=[], gone=[fields["hid"]]))
        return Folded()

    def _fold_settings(self, fields: dict[str, str]) -> Folded:
        words = tuple(w for w in fields.get("words", "").split("\n") if w)
        before = self.settings
        self.settings = Settings(
            slow_seconds=int(fields.get("slow") or 0),
            keyword=fields.get("kw") or DEFAULT_KEYWORD,
            words=words,
            word_action=fields.get("wact") or "hold",
        )
        if words != before.words:
            self.blocked = BlockList(words)
        pin = fields.get("pin", "")
        pinned = msgspec.json.decode(pin, type=f.ChatMessage) if pin else None
        codes = dict(pair.split("=", 1) for pair in fields.get("codes", "").split(",") if "=" in pair)
        pin_changed = pinned != self.pinned
        self.pinned = pinned
        self.codes = codes
        self.history_frame = None
        if pin_changed:
            return Folded(broadcast=f.ChatPin(message=pinned), settings=True)
        return Folded(broadcast=f.ChatMode(settings=self.settings.view(), codes=dict(codes)), settings=True)

    def _drop(self, gone: object) -> None:
        test = gone if callable(gone) else (lambda m: False)
        self.history = deque((m for m in self.history if not test(m)), maxlen=self.limit)
        self.pending = [m for m in self.pending if not test(m)]
        self.history_frame = None

    def load(self, found: list[Entry], state: dict[str, str], restricted: dict[str, str]) -> None:
        """The room as Redis has it: the newest log entries (oldest first), the settings hash and
        the restrictions. Nothing is pending after a load: a joining viewer gets the history."""
        self.history.clear()
        for entry in found:
            try:
                self.fold(entry)
            except (KeyError, ValueError, msgspec.DecodeError):
                continue
        self.pending.clear()
        self._fold_settings({**state, "codes": ",".join(f"{d}={c}" for d, c in self.codes.items())})
        self.restricted = {}
        for viewer, value in restricted.items():
            until, _, flag = value.partition(":")
            self.restricted[viewer] = Restriction(int(until), flag == "1")
        if found:
            self.after = found[-1].id

    # -- what goes out -----------------------------------------------------------------------------

    def take_batch(self, most: int) -> f.Chat | None:
        """The messages of this tick as one frame, the newest ``most`` of them; None if none."""
        if not self.pending:
            return None
        batch, self.pending = self.pending[-most:], []
        return f.Chat(messages=batch)

    def history_view(self, you: f.ChatYou | None = None) -> f.ChatHistory:
        return f.ChatHistory(
            messages=list(self.history),
            pinned=self.pinned,
            settings=self.settings.view(),
            codes=dict(self.codes),
            you=you,
        )

    def restriction(self, viewer: str, now_ms: int) -> Restriction | None:
        """The restriction in force for ``viewer`` now, as this node knows it."""
        found = self.restricted.get(viewer)
        if found is None or (0 <= found.until <= now_ms):
            return None
        return found
