"""The node's sold-out short-circuit: reserves on a drop that is sold out are answered ``sold_out``
by the node, without a Redis round trip, for as long as the node can tell that Redis would say the
same (issue 17; the guarantee and its window are in docs/stock.md).

A sale's last seconds are a storm of Buy taps on a drop with nothing left; each one is a script
call that changes nothing. The node already follows every drop's ledger stream (``server.shows.tails``),
so it knows when units come back. The short-circuit for a drop is *armed* from one atomic read of
Redis (the ledger's last id, the counters, the earliest hold deadline, the request ids granted so
far) taken when the node's own view is at that very ledger id, and it is dropped:

* by any ledger entry that could put units on sale (everything but a confirmation or a platform
  order that takes none): a release, an expiry, a cancel, a restock, a state change — on any node,
  since every node writes the same stream;
* when Redis' clock (the node's estimate, less ``MARGIN_MS``) reaches the earliest live hold's
  deadline or the drop's end: lazy expiry inside ``reserve`` would free those units before any
  ledger entry says so;
* when the node's reader of that stream is not provably current: no read in flight for it, the
  last read returned a full page (more entries may be waiting), or any read failed.

A retry of a request id that Redis granted still goes to Redis, which answers it with its hold
(idempotency). Each variant of a drop (a size) is stocked on its own, with its own ledger, which the
node follows too: it is armed and disarmed on its own, by its own entries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from server.shows.clock import Clock
from server.shows.known import KnownDrop
from server.shows.tails import StreamTails
from stock import keys
from stock.types import Counters, DropState, LedgerEntry, RejectReason, ReserveResult

logger = logging.getLogger("livedrop.soldout")

# The node's estimate of Redis' clock is off by up to half a round trip plus the drift since the last
# sync (every second): stopping a second before a deadline covers both many times over, and holds
# last minutes, so it costs little.
MARGIN_MS = 1000
# A drop the node sees sold out is armed by one read; a failed or stale read is not retried for
# this long, so a storm never turns into a storm of arming reads.
ARM_INTERVAL = 0.1
# Ledger entries after which the drop is still sold out: they take units, never give them back.
_KEEPS = frozenset(("confirm", "order"))

Unit = tuple[str, str]  # (drop, variant): what one short-circuit covers ('' = the drop itself)


@dataclass(frozen=True)
class Armed:
    """The proof behind the short-circuit of one drop: Redis' state at ledger entry ``ledger_id``."""

    ledger_id: str
    valid_until_ms: int  # Redis' clock (real, not fast-forwarded): before any live hold can expire
    granted: frozenset[str]  # request ids Redis granted: a retry must get its hold from Redis
    counters: Counters
    # The node's view the proof was checked against. A view replaced since (the show followed anew
    # after its last viewer left, a recovery after a Redis error) may have skipped entries that this
    # short-circuit never saw: then the proof is void.
    view: KnownDrop = field(compare=False, repr=False)


def keeps_sold_out(entry: LedgerEntry) -> bool:
    """Whether a drop sold out before ``entry`` is still provably sold out after it."""
    return entry.op in _KEEPS and entry.after.available == 0 and entry.d_available <= 0 and entry.d_held <= 0


class SoldOut:
    """Per node: which drops are armed, the arming reads, and the answers (see the module doc).

    ``answer`` and ``on_entry`` never await: the check and the ledger fold happen in one turn of
    the loop, so an entry that disarms a drop is applied before any later request is answered.
    """

    def __init__(self, redis: Any, clock: Clock, tails: StreamTails) -> None:
        self.redis = redis
        self.clock = clock
        self.tails = tails
        self.enabled = True
        self.answered = 0  # reserves answered here, not by Redis
        self.arms = 0  # arming reads made
        self._armed: dict[Unit, Armed] = {}
        self._arming: dict[Unit, asyncio.Task[None]] = {}
        self._tried: dict[Unit, float] = {}

    def armed(self, drop_id: str, variant: str = "") -> Armed | None:
        return self._armed.get((drop_id, variant))

    def answer(self, d: KnownDrop, request_id: str, variant: str = "") -> ReserveResult | None:
        """``sold_out`` if the drop (or its ``variant``) is provably sold out now, else None (ask Redis)."""
        if not self.enabled or bool(variant) != bool(d.variants):
            return None  # a drop with variants sells only them; Redis says what is wrong otherwise
        unit = (d.info.drop_id, variant)
        counters, position = _view(d, variant)
        if counters is None:
            return None
        armed = self._armed.get(unit)
        if armed is None:
            if counters.available == 0 and d.state == DropState.LIVE.value:
                self._arm_soon(d, variant)
            return None
        if armed.view is not d:
            self._armed.pop(unit, None)
            return None
        if request_id in armed.granted:
            return None
        now = self.clock.now_ms()
        if now >= armed.valid_until_ms or not self.tails.current(keys.drop_keys(*unit).ledger):
            self._armed.pop(unit, None)
            return None
        self.answered += 1
        if logger.isEnabledFor(logging.DEBUG):
            # What a test (or an operator) needs to check the answer against the ledger's order.
            logger.debug("sold_out drop=%s ledger=%s now_ms=%d", keys.unit_id(*unit), position, now)
        return ReserveResult(request_id, RejectReason.SOLD_OUT, None, 0, 0, False, counters)

    def on_entry(self, d: KnownDrop, entry: LedgerEntry, variant: str = "") -> None:
        """A ledger entry of the drop (or of its ``variant``) is being applied to the node's view (any
        node wrote it). An entry that takes the last units arms the drop at once, so the storm that
        follows a sell-out finds it armed instead of arming it with its first taps."""
        unit = (d.info.drop_id, variant)
        if unit in self._armed:
            if not keeps_sold_out(entry):
                del self._armed[unit]
        elif (
            entry.d_available < 0 and entry.after.available == 0 and self.enabled and bool(variant) == bool(d.variants)
        ):
            self._arm_soon(d, variant)

    def disarm(self, drop_id: str) -> None:
        """Forget every proof about the drop and its variants."""
        for unit in [u for u in self._armed if u[0] == drop_id]:
            del self._armed[unit]

    def reset(self) -> None:
        """The stream reader failed: nothing the node saw can be trusted to be current."""
        self._armed.clear()

    async def aclose(self) -> None:
        tasks = list(self._arming.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._armed.clear()

    # -- arming ---------------------------------------------------------------------------------------

    def _arm_soon(self, d: KnownDrop, variant: str) -> None:
        unit = (d.info.drop_id, variant)
        if unit in self._arming:
            return
        now = time.monotonic()
        if now - self._tried.get(unit, -ARM_INTERVAL) < ARM_INTERVAL:
            return
        self._tried[unit] = now
        task = asyncio.get_running_loop().create_task(self._arm(d, variant), name=f"soldout-arm:{keys.unit_id(*unit)}")
        self._arming[unit] = task
        task.add_done_callback(lambda _: self._arming.pop(unit, None))

    async def _arm(self, d: KnownDrop, variant: str) -> None:
        unit = (d.info.drop_id, variant)
        k = keys.drop_keys(*unit)
        self.arms += 1
        try:
            # One MULTI: the four reads describe one instant of the drop (scripts never interleave).
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.xrevrange(k.ledger, count=1)
                pipe.hmget(k.meta, "state", "available", "ends_at", "clock_ms", "variants")
                pipe.zrange(k.expiry, 0, 0, withscores=True)
                pipe.hkeys(k.requests)
                last, meta, first, granted = await pipe.execute()
        except (RedisError, OSError) as exc:
            logger.debug("arming the sold-out short-circuit of %s failed: %s", keys.unit_id(*unit), exc)
            return
        armed = self._proof(d, variant, last, meta, first, granted)
        if armed is not None:
            self._armed[unit] = armed

    def _proof(self, d: KnownDrop, variant: str, last: Any, meta: Any, first: Any, granted: Any) -> Armed | None:
        """The armed state, if the read shows the drop sold out at the very position of the node's
        view (the reader neither behind nor ahead of it) with a read of its stream in flight."""
        if not last:
            return None
        ledger_id = _text(last[0][0])
        state, available, ends_at, clock_ms, variants = (_text(v) if v is not None else "" for v in meta)
        counters, position = _view(d, variant)
        if counters is None or ledger_id != position:
            return None
        if not self.tails.current(keys.drop_keys(d.info.drop_id, variant).ledger):
            return None
        if state != DropState.LIVE.value or _int(available) != 0 or _int(variants) != 0 or not self.clock.synced:
            return None
        shift = _int(clock_ms)  # a rehearsal's fast-forward: deadlines are on the drop's clock
        deadlines = [int(float(first[0][1])) - shift] if first else []
        if _int(ends_at):
            deadlines.append(_int(ends_at) - shift)
        valid_until = min(deadlines, default=2**62) - MARGIN_MS
        if valid_until <= self.clock.now_ms():
            return None
        return Armed(ledger_id, valid_until, frozenset(_text(r) for r in granted), counters, d)


def _view(d: KnownDrop, variant: str) -> tuple[Counters | None, str]:
    """The node's counters of the drop or of one of its variants, and its position in that ledger."""
    if not variant:
        return d.counters, d.ledger_after
    return d.variants.get(variant), d.variant_after.get(variant, "")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: str) -> int:
    return int(value) if value else 0
