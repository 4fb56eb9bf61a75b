"""One clock for a deployment: Redis' ``TIME`` (DESIGN §2).

Deadlines (hold expiry, a drop's ``ends_at``) are written by Lua scripts on Redis' clock, and
nodes run on machines whose clocks drift apart by seconds. Anything a node compares with those
deadlines or with another node's report — the ``server_time`` a viewer's countdown is computed
from, the freshness of a node's viewer count — must be on Redis' clock too. ``Clock`` keeps the
offset between this machine's clock and Redis', measured from round trips, so reading it costs
no round trip.
"""

from __future__ import annotations

import time
from typing import Any


async def redis_now_ms(redis: Any) -> int:
    """Redis' clock now (one TIME round trip)."""
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


class Clock:
    """This node's estimate of Redis' clock: local wall clock + an offset measured by
    ``sync``. Until the first sync it is the local clock (offset 0)."""

    def __init__(self) -> None:
        self.offset_ms = 0
        self.synced = False
        self._best_rtt_ms = float("inf")

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.offset_ms

    async def sync(self, redis: Any) -> int:
        """Measure the offset once (Cristian's algorithm: Redis' time is taken to be read half
        way through the round trip). A slow round trip says less than a fast one, so the offset
        of the fastest recent sample wins; the record decays so drift is followed. Returns
        Redis' time by that sample."""
        before = time.time() * 1000
        remote = await redis_now_ms(redis)
        after = time.time() * 1000
        rtt = after - before
        self._best_rtt_ms = self._best_rtt_ms * 1.5 + 1  # forget an old best sample slowly
        if rtt <= self._best_rtt_ms or not self.synced:
            self._best_rtt_ms = rtt
            self.offset_ms = round(remote - (before + after) / 2)
            self.synced = True
        return remote
