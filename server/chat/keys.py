"""The chat's Redis keys, with their retention. Every key of one show's chat carries the show's
hash tag, so each chat script runs on one Redis Cluster slot (DESIGN §2).

Retention: while a show has not ended its chat keys live; when it ends they get one expiry
instant, ``LIVEDROP_CHAT_RETENTION_DAYS`` later (``expire.lua``), and keys written after that get
the same instant. The log is capped (``LOG_MAXLEN``); de-duplication keys live ``SEEN_TTL_MS``.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from server.keys import PREFIX, show_tag

LOG_MAXLEN: Final = 2000
"""Entries kept in a show's chat log: the history (200 messages) with room for the moderation
events between them; what nodes read live is always near its end."""
SEEN_TTL_MS: Final = 24 * 3600 * 1000
"""A message's de-duplication key: a client retries within seconds; a day covers any show."""
DEPLOYMENT_BANS: Final = f"{PREFIX}:chat:bans"
"""Hash viewer id → '-1' for viewers banned from the chat of every show of the deployment."""


class ChatKeys(NamedTuple):
    """The nine keys of one show's chat, in the order every chat script takes them."""

    log: str  # stream: messages and moderation events, the cross-node bus and the history
    state: str  # hash: n (message counter), slow, kw, words, wact, pin, code_n, expire_at
    restrict: str  # hash viewer → '<until ms | -1>:<disconnect 0|1>'
    last: str  # hash viewer → time of its last message (slow mode)
    bucket: str  # hash viewer → '<tokens>:<ms>' (the per-viewer rate)
    held: str  # hash held id → JSON of a message held by a blocked word
    audit: str  # stream: every moderation action (who, what, on whom, when)
    codes: str  # hash drop → claim code, and '@<code>' → drop
    who: str  # hash uid → viewer id (moderation names authors by their pseudonym)


def chat_keys(show_id: str) -> ChatKeys:
    base = show_tag(show_id) + "chat:"
    return ChatKeys(*(base + name for name in ChatKeys._fields))


def seen_key(show_id: str, key: str) -> str:
    """De-duplication of one message: ``key`` names the viewer and the client's ``ref``."""
    return show_tag(show_id) + "chat:seen:" + key
