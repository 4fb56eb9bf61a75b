"""Moderation actions, shared by the host API and moderators' ``chat_mod`` frames: each is one
chat script call that changes the show's chat, tells every node through the show's chat log and
records who did what to whom in the show's audit stream (``audit.lua`` via ``lib/chat.lua``).

An author is named by a message of theirs, by their ``uid`` (the pseudonym in every message) or,
through the host API only, by their viewer id. ``ModerationError`` carries a code that the API
maps to a problem and the WebSocket to a ``chat_rejected`` frame.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from server.chat import frames as f
from server.chat.identity import Identity, uid_of
from server.chat.limits import (
    MAX_BLOCKED_WORD_CHARS,
    MAX_BLOCKED_WORDS,
    MAX_KEYWORD_CHARS,
    MAX_SLOW_SECONDS,
    MAX_TIMEOUT_SECONDS,
    MIN_SLOW_SECONDS,
    MIN_TIMEOUT_SECONDS,
)
from server.chat.normalise import display_text
from server.chat.store import Actor, ChatStore, message_of


class ModerationError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Target(NamedTuple):
    viewer: str
    uid: str
    name: str


def actor_of(identity: Identity) -> Actor:
    return Actor(identity.name, identity.role, identity.uid)


class Moderation:
    def __init__(self, store: ChatStore, secret: bytes) -> None:
        self.store = store
        self.secret = secret

    async def target(
        self, show_id: str, *, message: str | None = None, uid: str | None = None, viewer: str | None = None
    ) -> Target:
        """The author an action is about (exactly one of the three names it)."""
        if sum(x is not None for x in (message, uid, viewer)) != 1:
            raise ModerationError("invalid", "name exactly one of message, uid, viewer")
        if message is not None:
            entry = await self.store.message(show_id, message)
            if entry is None:
                raise ModerationError(f.REFUSED_NOT_FOUND, f"no message {message}")
            found = message_of(entry)
            return Target(entry.fields.get("v", ""), found.uid, found.name)
        if uid is not None:
            who = await self.store.viewer_of(show_id, uid)
            if who is None:
                raise ModerationError(f.REFUSED_NOT_FOUND, f"no author {uid} in this show")
            return Target(who, uid, "")
        assert viewer is not None
        return Target(viewer, uid_of(self.secret, viewer), "")

    async def delete(self, show_id: str, ids: list[str], by: Identity, reason: str = "") -> int:
        removed = await self.store.delete(show_id, ids, actor_of(by), reason)
        if not removed:
            raise ModerationError(f.REFUSED_NOT_FOUND, "no such message")
        return removed

    async def clear(self, show_id: str, by: Identity, reason: str = "") -> int:
        return await self.store.clear(show_id, actor_of(by), reason)

    async def timeout(self, show_id: str, who: Target, seconds: int, by: Identity, reason: str = "") -> int:
        if not MIN_TIMEOUT_SECONDS <= seconds <= MAX_TIMEOUT_SECONDS:
            raise ModerationError("invalid", f"a timeout lasts {MIN_TIMEOUT_SECONDS} s to {MAX_TIMEOUT_SECONDS} s")
        return await self.store.restrict(
            show_id, who.viewer, "timeout", actor_of(by), seconds=seconds, target=(who.uid, who.name), reason=reason
        )

    async def ban(
        self,
        show_id: str,
        who: Target,
        by: Identity,
        *,
        scope: str = "show",
        disconnect: bool = False,
        reason: str = "",
    ) -> int:
        if scope == "deployment":
            await self.store.ban_deployment(who.viewer, True)
        return await self.store.restrict(
            show_id,
            who.viewer,
            "ban",
            actor_of(by),
            disconnect=disconnect,
            target=(who.uid, who.name),
            reason=reason,
            scope=scope,
        )

    async def unban(self, show_id: str, who: Target, by: Identity, *, scope: str = "show") -> None:
        if scope == "deployment":
            await self.store.ban_deployment(who.viewer, False)
        await self.store.restrict(show_id, who.viewer, "unban", actor_of(by), target=(who.uid, who.name), scope=scope)

    async def slow(self, show_id: str, seconds: int, by: Identity) -> None:
        """Slow mode on (1-120 s between two messages of one viewer) or off (0)."""
        if seconds and not MIN_SLOW_SECONDS <= seconds <= MAX_SLOW_SECONDS:
            raise ModerationError("invalid", f"slow mode is {MIN_SLOW_SECONDS}-{MAX_SLOW_SECONDS} s, or 0 for off")
        detail = f"{seconds}s" if seconds else "off"
        await self.store.configure(show_id, actor_of(by), "slow", detail, {"slow": str(seconds) if seconds else ""})

    async def configure(
        self,
        show_id: str,
        by: Identity,
        *,
        keyword: str | None = None,
        words: list[str] | None = None,
        word_action: str | None = None,
    ) -> None:
        fields: dict[str, str] = {}
        notes = []
        if keyword is not None:
            shown = display_text(keyword).upper()
            if not shown.isalpha() or len(shown) > MAX_KEYWORD_CHARS:
                raise ModerationError("invalid", f"a keyword is 1-{MAX_KEYWORD_CHARS} letters")
            fields["kw"] = shown
            notes.append(f"keyword {shown}")
        if words is not None:
            cleaned = list(dict.fromkeys(w for w in (display_text(x) for x in words) if w))
            if len(cleaned) > MAX_BLOCKED_WORDS or any(len(w) > MAX_BLOCKED_WORD_CHARS for w in cleaned):
                raise ModerationError(
                    "invalid", f"at most {MAX_BLOCKED_WORDS} entries of {MAX_BLOCKED_WORD_CHARS} chars"
                )
            fields["words"] = "\n".join(cleaned)
            notes.append(f"{len(cleaned)} blocked words")
        if word_action is not None:
            if word_action not in ("hold", "drop"):
                raise ModerationError("invalid", "blocked words hold or drop a message")
            fields["wact"] = word_action
            notes.append(f"blocked words {word_action}")
        if fields:
            await self.store.configure(show_id, actor_of(by), "settings", ", ".join(notes), fields)

    async def pin(self, show_id: str, message_id: str | None, by: Identity) -> None:
        """Pin a message (None: unpin)."""
        if message_id is None:
            await self.store.configure(show_id, actor_of(by), "unpin", "", {"pin": ""})
            return
        entry = await self.store.message(show_id, message_id)
        if entry is None:
            raise ModerationError(f.REFUSED_NOT_FOUND, f"no message {message_id}")
        pinned = message_of(entry)
        body = msgspec.json.encode(pinned).decode()
        if not await self.store.configure(show_id, actor_of(by), "pin", message_id, {"pin": body}, pin_id=message_id):
            raise ModerationError(f.REFUSED_NOT_FOUND, f"no message {message_id}")

    async def resolve_held(self, show_id: str, held_id: str, approve: bool, by: Identity) -> str:
        code, posted = await self.store.resolve_held(show_id, held_id, approve, actor_of(by))
        if code == "gone":
            raise ModerationError(f.REFUSED_NOT_FOUND, f"no held message {held_id}")
        return posted
