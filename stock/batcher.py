"""Group commit for reservations: every request that arrives while a drop's previous script
call is in flight joins the next call.

One EVALSHA per request tops out near 20-25k/s from one Python process, its own CPU the limit
(DESIGN §8), far below what Redis can run. Batching is what closes the gap, and it costs no
latency when idle: a lone request goes out at once, as a batch of one. One call per drop is in
flight at a time, and batches are taken in arrival order, so FIFO holds across batches too.
"""

from __future__ import annotations

import asyncio
from collections import deque

from stock.engine import MAX_BATCH, StockEngine
from stock.types import ReserveRequest, ReserveResult

_Pending = tuple[ReserveRequest, "asyncio.Future[ReserveResult]"]
_Unit = tuple[str, str]  # (drop, variant): one script call serves one of them


class ReserveBatcher:
    """Coalesces concurrent ``reserve`` calls per drop into ``reserve_many`` calls."""

    def __init__(self, engine: StockEngine, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._queues: dict[_Unit, deque[_Pending]] = {}
        self._drains: dict[_Unit, asyncio.Task[None]] = {}
        self.calls = 0
        self.requests = 0

    async def reserve(self, drop_id: str, customer: str, qty: int, request_id: str, variant: str = "") -> ReserveResult:
        """Same contract as ``StockEngine.reserve``. If the caller is cancelled, the request
        may still be applied: retry with the same request id to learn its answer. Each variant
        of a drop is batched on its own (its own stock: FIFO holds per variant)."""
        future: asyncio.Future[ReserveResult] = asyncio.get_running_loop().create_future()
        unit = (drop_id, variant)
        self._queues.setdefault(unit, deque()).append((ReserveRequest(request_id, customer, qty), future))
        if unit not in self._drains:
            name = f"reserve-batch:{drop_id}" + (f"~{variant}" if variant else "")
            self._drains[unit] = asyncio.create_task(self._drain(unit), name=name)
        return await future

    async def _drain(self, unit: _Unit) -> None:
        drop_id, variant = unit
        queue = self._queues[unit]
        try:
            while queue:
                batch = [queue.popleft() for _ in range(min(self.max_batch, len(queue)))]
                try:
                    results = await self.engine.reserve_many(drop_id, [request for request, _ in batch], variant)
                except asyncio.CancelledError:
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:  # every waiter of this batch learns it, the next batch still runs
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.calls += 1
                self.requests += len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            del self._drains[unit]
            if not queue:
                del self._queues[unit]

    async def aclose(self) -> None:
        """Cancel in-flight batches (their callers get CancelledError) at shutdown."""
        tasks = list(self._drains.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for queue in self._queues.values():
            for _, future in queue:
                future.cancel()
        self._queues.clear()
