"""The chat's Redis side: one typed call per Lua script on a show's chat keys, and the reads a
node needs when it starts following a show. No policy lives here: ``node``, ``moderation`` and
``claims`` decide what to call."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any, NamedTuple

import msgspec

from server.chat import keys as ck
from server.chat.frames import ChatMessage, HeldMessage
from server.replies import decoded

_INCLUDE = re.compile(r'^--- @include "([a-z_/]+\.lua)"$', re.MULTILINE)
SCRIPTS = ("post", "held", "delete", "clear", "restrict", "configure", "codes", "erase", "expire")


def _read(name: str) -> str:
    return resources.files("server.chat").joinpath("lua", name).read_text(encoding="utf-8")


@cache
def source(name: str) -> str:
    """A script's text with its ``--- @include`` lines replaced by the files they name."""
    if name not in SCRIPTS:
        raise KeyError(name)
    return _INCLUDE.sub(lambda m: _read(m.group(1)), _read(f"{name}.lua"))


class Actor(NamedTuple):
    """Who does a moderation action, as the audit records it."""

    name: str
    role: str
    uid: str


class PostResult(NamedTuple):
    code: str  # posted | held | duplicate | banned | timeout | slow | rate
    id: str
    n: int
    at: int
    extra: int  # until (timeout) or ms to wait (slow, rate)
    first: str = ""  # for a duplicate: what the first one was ('posted' or 'held')


class Entry(NamedTuple):
    """One entry of a show's chat log: its id and its fields as text."""

    id: str
    fields: dict[str, str]


def entries(raw: list[Any]) -> list[Entry]:
    return [Entry(decoded(i), {decoded(k): decoded(v) for k, v in f.items()}) for i, f in raw]


def message_of(entry: Entry) -> ChatMessage:
    f = entry.fields
    return ChatMessage(
        id=entry.id,
        n=int(f.get("n", "0")),
        at=int(f.get("at", "0")),
        name=f.get("nm", ""),
        role=f.get("r", "viewer"),
        uid=f.get("u", ""),
        text=f.get("t", ""),
        kind=f.get("c", "text"),
    )


def held_of(held_id: str, raw: bytes | str) -> HeldMessage:
    record = msgspec.json.decode(raw)
    return HeldMessage(
        id=held_id,
        at=int(record.get("at", 0)),
        name=str(record.get("name", "")),
        uid=str(record.get("uid", "")),
        text=str(record.get("text", "")),
        word=str(record.get("word", "")),
    )


class ChatStore:
    """The chat scripts, registered once on one client (EVALSHA, reloaded on NOSCRIPT)."""

    def __init__(self, redis: Any, rate: float = 1.0, burst: float = 5.0) -> None:
        self.redis = redis
        self.rate = rate
        self.burst = burst
        self._scripts = {name: redis.register_script(source(name)) for name in SCRIPTS}

    async def _call(self, name: str, show_id: str, *args: str | int | float, extra_keys: tuple[str, ...] = ()) -> Any:
        return await self._scripts[name](keys=[*ck.chat_keys(show_id), *extra_keys], args=list(args))

    # -- writes -----------------------------------------------------------------------------------

    async def post(
        self,
        show_id: str,
        *,
        viewer: str,
        dedupe: str,
        uid: str,
        name: str,
        role: str,
        text: str,
        kind: str = "text",
        exempt: bool = False,
        hold: tuple[str, str] | None = None,
    ) -> PostResult:
        """Post (or, with ``hold`` = (held id, word), hold for review) one message."""
        raw = await self._call(
            "post",
            show_id,
            viewer,
            "1" if exempt else "0",
            "hold" if hold else "post",
            self.rate,
            self.burst,
            ck.LOG_MAXLEN,
            ck.SEEN_TTL_MS,
            hold[0] if hold else "",
            uid,
            name,
            role,
            text,
            kind,
            hold[1] if hold else "",
            extra_keys=(ck.seen_key(show_id, dedupe),),
        )
        return PostResult(decoded(raw[0]), decoded(raw[1]), int(raw[2]), int(raw[3]), _int(raw[4]), _text(raw[4]))

    async def resolve_held(self, show_id: str, held_id: str, approve: bool, actor: Actor) -> tuple[str, str]:
        """(code, posted message id): code 'approved', 'rejected' or 'gone'."""
        raw = await self._call("held", show_id, held_id, "approve" if approve else "reject", ck.LOG_MAXLEN, *actor)
        return decoded(raw[0]), decoded(raw[1])

    async def delete(self, show_id: str, ids: list[str], actor: Actor, reason: str = "") -> int:
        return int(await self._call("delete", show_id, ck.LOG_MAXLEN, *actor, reason, *ids))

    async def clear(self, show_id: str, actor: Actor, reason: str = "") -> int:
        return int(await self._call("clear", show_id, ck.LOG_MAXLEN, *actor, reason))

    async def restrict(
        self,
        show_id: str,
        viewer: str,
        action: str,
        actor: Actor,
        *,
        seconds: int = 0,
        disconnect: bool = False,
        target: tuple[str, str] = ("", ""),
        reason: str = "",
        scope: str = "show",
    ) -> int:
        return int(
            await self._call(
                "restrict",
                show_id,
                viewer,
                action,
                seconds,
                "1" if disconnect else "0",
                ck.LOG_MAXLEN,
                *actor,
                *target,
                reason,
                scope,
            )
        )

    async def configure(
        self, show_id: str, actor: Actor, action: str, detail: str, fields: dict[str, str], pin_id: str = ""
    ) -> bool:
        pairs = [x for item in fields.items() for x in item]
        return bool(await self._call("configure", show_id, ck.LOG_MAXLEN, *actor, action, detail, pin_id, *pairs))

    async def codes(self, show_id: str, drop_ids: list[str]) -> dict[str, str]:
        raw = await self._call("codes", show_id, ck.LOG_MAXLEN, *drop_ids)
        flat = [decoded(x) for x in raw]
        return dict(zip(flat[::2], flat[1::2], strict=True))

    async def erase(self, show_id: str, viewer: str, uid: str) -> int:
        return int(await self._call("erase", show_id, viewer, uid, ck.LOG_MAXLEN))

    async def expire(self, show_id: str, ended: bool, retention_ms: int) -> int:
        return int(await self._call("expire", show_id, "end" if ended else "start", retention_ms))

    # -- reads ------------------------------------------------------------------------------------

    async def tail(self, show_id: str, count: int) -> list[Entry]:
        """The newest ``count`` log entries, oldest first."""
        raw = await self.redis.xrevrange(ck.chat_keys(show_id).log, count=count)
        return entries(list(reversed(raw)))

    async def message(self, show_id: str, message_id: str) -> Entry | None:
        raw = await self.redis.xrange(ck.chat_keys(show_id).log, min=message_id, max=message_id)
        found = entries(raw)
        return found[0] if found and found[0].fields.get("k") == "m" else None

    async def viewer_of(self, show_id: str, uid: str) -> str | None:
        raw = await self.redis.hget(ck.chat_keys(show_id).who, uid)
        return None if raw is None else decoded(raw)

    async def state(self, show_id: str) -> dict[str, str]:
        raw = await self.redis.hgetall(ck.chat_keys(show_id).state)
        return {decoded(k): decoded(v) for k, v in raw.items()}

    async def restricted(self, show_id: str) -> dict[str, str]:
        raw = await self.redis.hgetall(ck.chat_keys(show_id).restrict)
        return {decoded(k): decoded(v) for k, v in raw.items()}

    async def held(self, show_id: str) -> list[HeldMessage]:
        raw = await self.redis.hgetall(ck.chat_keys(show_id).held)
        found = [held_of(decoded(k), v) for k, v in raw.items()]
        return sorted(found, key=lambda m: m.at)

    async def audit(self, show_id: str, after: str, count: int) -> list[Entry]:
        start = after if after == "-" else f"({after}"
        raw = await self.redis.xrange(ck.chat_keys(show_id).audit, min=start, max="+", count=count)
        return entries(raw)

    async def deployment_banned(self, viewer: str) -> bool:
        return bool(await self.redis.hexists(ck.DEPLOYMENT_BANS, viewer))

    async def ban_deployment(self, viewer: str, banned: bool) -> None:
        if banned:
            await self.redis.hset(ck.DEPLOYMENT_BANS, viewer, "-1")
        else:
            await self.redis.hdel(ck.DEPLOYMENT_BANS, viewer)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _text(value: Any) -> str:
    return "" if isinstance(value, int) else decoded(value)
