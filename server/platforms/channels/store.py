"""The push loop's Redis state and scripts (``lua/``), all under the hash tag ``{channels}``.

* ``mark``: a drop's ledger moved past the cursor → each mapped channel's SKU is dirty (with a
  generation, and the time of the first change not yet pushed). Compare-and-set on the cursor, so
  N nodes reading the same ledger mark each change once.
* ``ack``: what a channel now holds; clears the dirty mark only if no change came in meanwhile
  (the generation the flush read is still there), so a change during a push is never lost.
* ``Lease``: one node pushes a channel at a time; a lease that is not renewed expires, and another
  node takes the channel over.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import msgspec

from broadcast.scripts import lua_source
from server import keys


class SkuState(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a status page shows per (channel, SKU)."""

    value: int | None = None
    """The value the channel last acknowledged."""
    at_ms: int = 0
    lag_ms: int | None = None
    """From the first change this push carried to the channel's acknowledgement."""
    error: str = ""
    error_message: str = ""
    error_at_ms: int = 0
    calls: int = 0


_state_decoder = msgspec.json.Decoder(SkuState)
_encoder = msgspec.json.Encoder()


def decode_state(raw: bytes | None) -> SkuState:
    if raw is None:
        return SkuState()
    try:
        return _state_decoder.decode(raw)
    except msgspec.DecodeError:
        return SkuState()


def encode_state(state: SkuState) -> bytes:
    return _encoder.encode(state)


def parse_dirty(raw: bytes | str) -> tuple[int, int]:
    """(generation, first change ms) of a dirty value."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    gen, _, first = text.partition(" ")
    return int(gen), int(first or 0)


def _script(redis: Any, name: str) -> Any:
    return redis.register_script(lua_source("server.platforms.channels", name))


class ChannelStore:
    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._mark = _script(redis, "mark")
        self._touch = _script(redis, "touch")
        self._ack = _script(redis, "ack")

    async def mark(
        self,
        drop_id: str,
        expected: str,
        cursor: str,
        sku: str,
        available: int,
        change_ms: int,
        channels: Sequence[str],
        applied: Sequence[int],
    ) -> bool:
        keys_ = [
            keys.CHANNEL_CURSOR,
            keys.CHANNEL_STOCK,
            *(keys.channel_dirty(c) for c in channels),
            *(keys.channel_unapplied(c) for c in channels),
        ]
        args = [drop_id, expected, cursor, sku, available, change_ms, len(channels), *applied]
        return bool(await self._mark(keys=keys_, args=args))

    async def touch(self, channel: str, sku: str, now_ms: int) -> None:
        await self._touch(keys=[keys.channel_dirty(channel)], args=[sku, now_ms])

    async def forget(self, skus: Sequence[str], units: Sequence[str], channels: Sequence[str]) -> None:
        """Drop what the push loop knows of ``skus`` (acknowledged values, dirty marks, unapplied
        units, the last stock seen) and the ledger cursors of their ``units``: for a platform that
        was reset and holds nothing it was told. The marker then takes each unit's current stock
        as at first sight and pushes it again."""
        if not skus and not units:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            if units:
                pipe.hdel(keys.CHANNEL_CURSOR, *units)
            if skus:
                pipe.hdel(keys.CHANNEL_STOCK, *skus)
                for channel in channels:
                    pipe.hdel(keys.channel_dirty(channel), *skus)
                    pipe.hdel(keys.channel_state(channel), *skus)
                    pipe.hdel(keys.channel_unapplied(channel), *skus)
            await pipe.execute()

    async def ack(self, channel: str, sku: str, seen: str, state: SkuState, unapplied: int = 0) -> tuple[bool, int]:
        cleared, now_ms = await self._ack(
            keys=[keys.channel_dirty(channel), keys.channel_state(channel), keys.channel_unapplied(channel)],
            args=[sku, seen, encode_state(state), unapplied],
        )
        return bool(cleared), int(now_ms)

    async def now_ms(self) -> int:
        seconds, micros = await self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def dirty(self, channel: str) -> dict[str, str]:
        raw = await self.redis.hgetall(keys.channel_dirty(channel))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def stock(self, skus: Sequence[str]) -> dict[str, int | None]:
        if not skus:
            return {}
        raw = await self.redis.hmget(keys.CHANNEL_STOCK, *skus)
        return {sku: None if v is None else int(v.split(b" ")[0]) for sku, v in zip(skus, raw, strict=True)}

    async def states(self, channel: str) -> dict[str, SkuState]:
        raw = await self.redis.hgetall(keys.channel_state(channel))
        return {k.decode(): decode_state(v) for k, v in raw.items()}

    async def unapplied(self, channel: str, skus: Sequence[str]) -> dict[str, int]:
        if not skus:
            return {}
        raw = await self.redis.hmget(keys.channel_unapplied(channel), *skus)
        return {sku: int(v or 0) for sku, v in zip(skus, raw, strict=True)}


class Lease:
    """A channel's lease for this node. ``hold()`` takes or renews it; only the holder pushes."""

    def __init__(self, redis: Any, channel: str, seconds: float, owner: str = "") -> None:
        self.key = keys.channel_lease(channel)
        # The node's id first, so an operator (and a test) can tell which process pushes.
        self.token = f"{owner}|{secrets.token_hex(8)}"
        self.ms = max(100, round(seconds * 1000))
        self._take = _script(redis, "lease")
        self._release = _script(redis, "release")

    async def hold(self) -> bool:
        return bool(await self._take(keys=[self.key], args=[self.token, self.ms]))

    async def release(self) -> None:
        await self._release(keys=[self.key], args=[self.token])
