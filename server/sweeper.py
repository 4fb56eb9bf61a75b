"""The expiry sweeper that every node runs (DESIGN §3).

Holds also expire lazily inside reserve, so the sweeper is what frees units when nobody is
buying, and what closes a drop whose end time passed. Overlapping sweeps on several nodes are
harmless: each expiry is one atomic script call on a hold that is still live.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.exceptions import RedisError

from server.metrics import Metrics
from server.webhooks.consumer import raise_if_cancelled
from stock import StockEngine
from stock.types import DropState, SweepResult

logger = logging.getLogger("livedrop.sweeper")


class Sweeper:
    """Sweeps every drop that is live or still has holds, at ``interval``; lists drops again
    every ``scan_interval``. ``on_sweep`` results are handed to whoever cares (the hub)."""

    def __init__(self, engine: StockEngine, metrics: Metrics, interval: float, scan_interval: float) -> None:
        self.engine = engine
        self.metrics = metrics
        self.interval = interval
        self.scan_interval = scan_interval
        self.drops: set[str] = set()
        self.healthy = True
        self._last_scan = 0.0

    async def run(self) -> None:
        backoff = self.interval
        while True:
            try:
                await self.sweep_once()
                self.healthy = True
                backoff = self.interval
            except asyncio.CancelledError:
                raise
            except RedisError:
                raise_if_cancelled()
                self.healthy = False
                self.metrics.redis_errors.labels("sweeper").inc()
                logger.warning("sweep failed, Redis unreachable; retrying in %.1fs", backoff, exc_info=True)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                raise_if_cancelled()
                logger.exception("sweep failed")
                backoff = min(backoff * 2, 5.0)
            await asyncio.sleep(backoff)

    async def sweep_once(self) -> list[SweepResult]:
        now = time.monotonic()
        if now - self._last_scan >= self.scan_interval:
            self._last_scan = now
            self.drops = await self._active_drops()
            self.metrics.drops_swept.set(len(self.drops))
        results = []
        for drop_id in sorted(self.drops):
            while True:
                result = await self.engine.sweep(drop_id)
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

    def watch(self, drop_id: str) -> None:
        """Sweep this drop from now on (called when a drop is launched on this node)."""
        self.drops.add(drop_id)
