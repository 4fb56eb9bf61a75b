"""Checkout settings in Redis, and each node's short-lived copy of them for the reserve path.

A reservation answered over WebSocket needs its show's settings to build the link, and there may
be thousands a second: each node keeps the settings of a show for ``ttl`` seconds (2 s), and
concurrent misses for one show share one Redis read. A host's change therefore reaches every
node's links within ``ttl``. When Redis cannot be read, the last settings known are used, or no
link at all: a reservation is never refused, nor delayed past one read, for want of a link.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import msgspec
from redis.exceptions import RedisError

from server.checkout.config import CheckoutSettings
from server.checkout.links import checkout_url
from server.keys import checkout_key

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[CheckoutSettings] = msgspec.json.Decoder(CheckoutSettings)


class CheckoutStore:
    def __init__(self, redis: Any, ttl: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = redis
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, CheckoutSettings | None]] = {}
        self._reads: dict[str, asyncio.Future[CheckoutSettings | None]] = {}

    async def get(self, show_id: str) -> CheckoutSettings | None:
        raw = await self.redis.get(checkout_key(show_id))
        return None if raw is None else _decoder.decode(raw)

    async def put(self, show_id: str, settings: CheckoutSettings) -> None:
        await self.redis.set(checkout_key(show_id), _encoder.encode(settings))
        self._cache.pop(show_id, None)

    async def delete(self, show_id: str) -> bool:
        self._cache.pop(show_id, None)
        return bool(await self.redis.delete(checkout_key(show_id)))

    async def cached(self, show_id: str) -> CheckoutSettings | None:
        """The show's settings as this node knows them, at most ``ttl`` seconds old."""
        now = self.clock()
        hit = self._cache.get(show_id)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        pending = self._reads.get(show_id)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._reads[show_id] = pending
            try:
                settings = await self.get(show_id)
            except (RedisError, OSError, msgspec.DecodeError):
                settings = hit[1] if hit is not None else None
            finally:
                del self._reads[show_id]
            self._cache[show_id] = (now, settings)
            pending.set_result(settings)
            return settings
        return await asyncio.shield(pending)

    async def link(self, show_id: str, drop_id: str, variant: str, qty: int, hold_id: str, hold_ref: str) -> str:
        """The checkout link of one hold ("" when the show has no checkout, or not for this unit)."""
        settings = await self.cached(show_id)
        if settings is None:
            return ""
        return checkout_url(settings, drop_id, variant, qty, hold_id, hold_ref)
