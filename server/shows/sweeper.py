"""The expiry sweeper that every node runs (DESIGN §3).

Holds also expire lazily inside reserve, so the sweeper is what frees units when nobody is
buying, and what closes a drop whose end time passed. Overlapping sweeps on several nodes are
harmless: each expiry is one atomic script call on a hold that is still live.

Which drops to sweep: a full scan (SCAN + a snapshot per drop) every ``scan_interval`` finds
every drop that is live or still holds units, but is too costly to run every sweep. A drop
launched between two scans would then be swept only from the next scan, and its first holds
would expire seconds late — exactly in the first seconds of a drop, when units matter most. So
a launch *enlists* the drop (``enlist``, before it opens) in a small sorted set that every node
reads on each sweep: from its first second a drop is swept on every node.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.exceptions import RedisError

from server.keys import LAUNCHED_KEY
from server.loops import Backoff, repeat
from server.ops.metrics import Metrics
from server.shows.clock import redis_now_ms
from stock import StockEngine, UnknownDrop, keys
from stock.types import DropState, SweepResult

logger = logging.getLogger("livedrop.sweeper")

# An enlisted drop must stay listed until every node's full scan has seen it live; after that
# the scan finds it by itself. Ten minutes outlasts any sensible LIVEDROP_DROP_SCAN_INTERVAL.
LAUNCHED_KEEP_MS = 10 * 60 * 1000
# A node's own scan covers the drops enlisted well before it started (their launch had opened
# them by then), so it sweeps only those enlisted since, with this margin for the moment
# between a launch's enlist and its open.
LAUNCH_MARGIN_MS = 60 * 1000


async def enlist(redis: Any, drop_id: str) -> None:
    """Make every node sweep ``drop_id`` from its next sweep. Call it *before* the drop opens,
    so no hold can exist that no sweeper knows of."""
    await redis.zadd(LAUNCHED_KEY, {keys.check_name("drop id", drop_id): await redis_now_ms(redis)})


class Sweeper:
    """Sweeps every drop that is live or still has holds, at ``interval``: those the last full
    scan found (every ``scan_interval``) and those enlisted at launch since."""

    def __init__(self, engine: StockEngine, metrics: Metrics, interval: float, scan_interval: float) -> None:
        self.engine = engine
        self.metrics = metrics
        self.interval = interval
        self.scan_interval = scan_interval
        self.drops: set[str] = set()
        self.scanned: set[str] = set()
        self.healthy = True
        self._last_scan: float | None = None  # None: the first sweep scans, however new the machine
        self._scan_started_ms = 0  # Redis' clock at the start of the last full scan

    async def run(self) -> None:
        """Sweep every ``interval`` until cancelled; Redis outages are waited out with a backoff."""
        await repeat(
            self._step,
            name="sweep",
            interval=self.interval,
            backoff=Backoff(min(self.interval * 2, 5.0), 5.0),
            on_error=self._failed,
            log=logger,
        )

    async def _step(self) -> None:
        await self.sweep_once()
        self.healthy = True

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, RedisError):
            self.healthy = False
            self.metrics.redis_errors.labels("sweeper").inc()

    async def sweep_once(self) -> list[SweepResult]:
        now = time.monotonic()
        redis = self.engine.redis
        if self._last_scan is None or now - self._last_scan >= self.scan_interval:
            self._last_scan = now
            started_ms = await redis_now_ms(redis)
            self.scanned = await self._active_drops()
            self._scan_started_ms = started_ms
            await redis.zremrangebyscore(LAUNCHED_KEY, "-inf", started_ms - LAUNCHED_KEEP_MS)
        recent = await redis.zrangebyscore(LAUNCHED_KEY, self._scan_started_ms - LAUNCH_MARGIN_MS, "+inf")
        launched = {m.decode() if isinstance(m, bytes) else str(m) for m in recent}
        self.drops = self.scanned | launched
        self.metrics.drops_swept.set(len(self.drops))
        results = []
        for drop_id in sorted(self.drops):
            while True:
                try:
                    result = await self.engine.sweep(drop_id)
                except UnknownDrop:  # enlisted, then deleted by an operator: forget it
                    await redis.zrem(LAUNCHED_KEY, drop_id)
                    break
                self.metrics.sweeps.inc()
                self.metrics.holds_expired.inc(result.expired)
                results.append(result)
                if not result.more:
                    break
        return results

    async def _active_drops(self) -> set[str]:
        active = set()
        for drop_id in await self.engine.drop_ids():
            snapshot = await self.engine.snapshot(drop_id)
            if snapshot.state is DropState.LIVE or snapshot.counters.held > 0:
                active.add(drop_id)
        return active
