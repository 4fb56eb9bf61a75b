"""The push loop: LiveDrop's stock to every channel, latest value only, one node per channel.

**Marking** (``Marker``). Every stock change is an entry of its drop's ledger. Each flush interval
the marker reads, for every mapped SKU's drop, the ledger entries after ``ld:{channels}:cursor``
and marks the SKU dirty on each of its channels in one script that compares the cursor first
(``store.mark``): whichever node gets there first marks a change, once. The available count comes
from the last entry's counters, so a flush reads nothing from the drops.

**Flushing** (``ChannelPusher``). The node holding a channel's lease reads the channel's dirty SKUs
every flush interval and pushes ``max(0, available - buffer - unapplied)`` for each, batched up to
the platform's cap. Between two flushes it still marks every ``WATCH_INTERVAL``, and a SKU that has
just sold out goes out at once: in a flash sale the stock is gone in tens of milliseconds, and every
platform order taken before the channel shows 0 is a unit sold twice.
A burst of changes between two flushes is one value per SKU: the burst costs one call. A push is
awaited before the next flush, so at most one call per (channel, SKU) is in flight. A SKU whose
dirty generation moved during the call stays dirty and goes out again with the newer value.

**Unapplied units** (Shopify). A compare-and-swap refused as stale shows how many units the
platform sold since the last push; until LiveDrop applies those orders (their ledger entries
count them back), they are held back from the value pushed, so the next set cannot hand them out
again.

**Failures.** A call that fails as a whole backs off (the platform's ``Retry-After`` or throttle
time, else jittered exponential) and leaves every SKU dirty: nothing is lost, and the next push
sends the latest value. After ``failing_after`` failures in a row (at once for wrong credentials)
``channel_failing`` is raised, once an hour per reason. A SKU the platform refuses for good is
recorded with its error and ``channel_sku_unknown`` is raised; it is pushed again on its next
change. A channel never blocks another: each has its own loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from server import keys
from server.ops.metrics import Metrics
from server.platforms.channels.base import Channel, ChannelName, ItemResult, Outcome, PushItem
from server.platforms.channels.http import AuthFailed, Backoff, ChannelError, Throttled
from server.platforms.channels.mapping import Mappings, SkuMapping
from server.platforms.channels.store import ChannelStore, Lease, SkuState, parse_dirty
from server.platforms.webhooks.alerts import AlertKind, Alerts
from server.shows.catalog import Catalog
from server.shows.variants import split_unit
from stock import keys as stock_keys
from stock.errors import InvalidArgument
from stock.ledger import decode_entry

logger = logging.getLogger("livedrop.channels")

MAPPING_CACHE_SECONDS = 1.0
LEDGER_PAGE = 1000
STALE_ROUNDS = 3
WATCH_INTERVAL = 0.025
"""How often the leader looks at the ledgers: a SKU that sells out is pushed within this (plus the
call), not at the next flush interval."""


class MappingCache:
    """The mappings, read at most once a second (a new mapping is pushed within a second)."""

    def __init__(self, mappings: Mappings) -> None:
        self.mappings = mappings
        self._value: dict[str, SkuMapping] = {}
        self._at = -1e9

    async def get(self) -> dict[str, SkuMapping]:
        if time.monotonic() - self._at >= MAPPING_CACHE_SECONDS:
            self._value = await self.mappings.all()
            self._at = time.monotonic()
        return self._value

    def invalidate(self) -> None:
        self._at = -1e9


def _line_platform(fields: dict[str, str]) -> str:
    return fields.get("line", "").partition("|")[0]


class Marker:
    """Turns ledger entries of mapped drops into dirty marks (see the module doc)."""

    def __init__(
        self, redis: Any, store: ChannelStore, catalog: Catalog, cache: MappingCache, channels: Sequence[ChannelName]
    ) -> None:
        self.redis = redis
        self.store = store
        self.catalog = catalog
        self.cache = cache
        self.channels = list(channels)
        self._last = -math.inf  # due at once, however new the machine

    async def step_if_due(self, interval: float) -> None:
        """Mark at most once per ``interval`` on this node, however many channel loops ask."""
        if time.monotonic() - self._last >= interval:
            self._last = time.monotonic()
            await self.step()

    async def step(self) -> int:
        marked = 0
        for sku, mapping in (await self.cache.get()).items():
            channels = [c for c in mapping.channels() if c in self.channels]
            if not channels:
                continue
            unit = await self.catalog.drop_for_sku(sku)
            if unit is None:
                continue
            try:
                ledger = stock_keys.drop_keys(*split_unit(unit)).ledger
            except InvalidArgument:
                continue  # not a unit name this version knows: no ledger to follow
            marked += await self._mark_drop(unit, ledger, sku, channels)
        return marked

    async def _mark_drop(self, drop_id: str, ledger: str, sku: str, channels: list[ChannelName]) -> int:
        """Mark ``sku`` after the ledger of its unit (a drop, or a variant: its own ledger and
        counters) moved past the cursor."""
        raw_cursor = await self.redis.hget(keys.CHANNEL_CURSOR, drop_id)
        cursor = "" if raw_cursor is None else raw_cursor.decode()
        applied = dict.fromkeys(channels, 0)
        if not cursor:
            # First sight of this drop: its current stock, not its history, is what matters.
            entries = await self.redis.xrevrange(ledger, count=1)
        else:
            entries = await self.redis.xrange(ledger, min=f"({cursor}", count=LEDGER_PAGE)
        if not entries:
            return 0
        for entry_id, fields in entries if cursor else ():
            entry = decode_entry(entry_id, fields)
            platform = _line_platform(entry.fields)
            for channel in channels:
                if platform != channel.value:
                    continue
                if entry.op == "order":
                    applied[channel] += int(entry.fields.get("qty", "0") or 0)
                elif entry.op == "cancel":
                    applied[channel] -= entry.d_available - entry.d_oversold
        last = decode_entry(*entries[-1] if cursor else entries[0])
        return int(
            await self.store.mark(
                drop_id,
                cursor,
                last.entry_id,
                sku,
                last.after.available,
                last.at_ms,
                [c.value for c in channels],
                [applied[c] for c in channels],
            )
        )


class ChannelPusher:
    """One channel's flush loop on this node (it pushes only while it holds the lease)."""

    def __init__(
        self,
        channel: Channel,
        *,
        store: ChannelStore,
        lease: Lease,
        marker: Marker,
        cache: MappingCache,
        alerts: Alerts,
        metrics: Metrics,
        buffer: int,
        flush_interval: float,
        failing_after: int = 3,
    ) -> None:
        self.channel = channel
        self.name = channel.name.value
        self.store = store
        self.lease = lease
        self.marker = marker
        self.cache = cache
        self.alerts = alerts
        self.metrics = metrics
        self.buffer = buffer
        self.flush_interval = flush_interval
        self.failing_after = failing_after
        self.leader = False
        # The loop turns every watch interval (a sell-out goes out at once); the lease is renewed
        # every third of its time; a full flush runs every flush interval.
        self.watch_interval = min(WATCH_INTERVAL, flush_interval)
        self.lease_renew = lease.ms / 3000
        self._renewed = -1e9
        self._flushed = -1e9
        self.failures = 0
        self.backoff = Backoff(base=max(0.05, flush_interval), cap=60.0)
        self.last_error = ""
        self._in_doubt: dict[str, int] = {}

    async def turn(self) -> None:
        """One watch interval's work: renew the lease (every third of its time), mark, and flush
        when the flush interval is up, or at once for a SKU that just sold out."""
        now = time.monotonic()
        if now - self._renewed >= self.lease_renew:
            self.leader = await self.lease.hold()
            self._renewed = now
        if not self.leader:
            return
        await self.marker.step_if_due(self.watch_interval / 2)
        due = now - self._flushed >= self.flush_interval
        await self.flush(sold_out_only=not due)
        if due:
            self._flushed = now

    async def flush(self, *, sold_out_only: bool = False) -> int:
        """Push every dirty SKU's latest value; returns how many items were sent. ``sold_out_only``:
        between two flush intervals, only SKUs that went to 0 (the rest waits for the interval, so
        a burst still costs one call an interval; a sell-out does not wait for it)."""
        dirty = await self.store.dirty(self.name)
        if not dirty:
            return 0
        mappings = await self.cache.get()
        skus = sorted(dirty)
        stock = await self.store.stock(skus)
        states = await self.store.states(self.name)
        unapplied = await self.store.unapplied(self.name, skus)
        items: list[PushItem] = []
        for sku in skus:
            mapping = mappings.get(sku)
            ids = mapping.ids(self.channel.name) if mapping else None
            state = states.get(sku) or SkuState()
            if ids is None:
                await self.store.ack(self.name, sku, dirty[sku], state)  # no longer sold there
                continue
            available = stock.get(sku)
            if available is None:
                continue  # the marker has not seen its drop yet
            target = max(0, available - self.buffer - max(0, unapplied.get(sku, 0)))
            if sold_out_only and not (target == 0 and state.value != 0):
                continue
            if state.value == target and not state.error:
                await self.store.ack(self.name, sku, dirty[sku], state)
                continue
            items.append(PushItem(sku=sku, ids=ids, value=target, previous=state.value, attempt=dirty[sku]))
        if not items:
            return 0
        delay = self.channel.budget.delay(urgent=any(i.value == 0 for i in items))
        if delay > self.flush_interval:
            return 0  # the platform's budget says not yet; everything stays dirty
        if delay > 0:
            await asyncio.sleep(delay)
        sent = 0
        for start in range(0, len(items), self.channel.max_batch):
            batch = items[start : start + self.channel.max_batch]
            sent += len(batch)
            if not await self._push(batch, dirty, states, stock, unapplied):
                break
        return sent

    async def _push(
        self,
        batch: list[PushItem],
        dirty: dict[str, str],
        states: dict[str, SkuState],
        stock: dict[str, int | None],
        unapplied: dict[str, int],
    ) -> bool:
        """Push one batch (again, with fresh compare values, after a stale refusal). False when
        the call failed as a whole (the rest of this flush waits for the backoff)."""
        for _ in range(STALE_ROUNDS):
            if not batch:
                return True
            self.channel.budget.called()
            try:
                results = await self.channel.push(batch)
            except ChannelError as exc:
                await self._call_failed(batch, exc, states)
                return False
            self.metrics.channel_calls.labels(self.name, "ok").inc()
            self.failures = 0
            self.backoff.reset()
            again: list[PushItem] = []
            now_ms = await self.store.now_ms()
            for item, result in zip(batch, results, strict=True):
                retry = await self._result(item, result, now_ms, dirty, states, stock, unapplied)
                if retry is not None:
                    again.append(retry)
            batch = again
        return True

    async def _result(
        self,
        item: PushItem,
        result: ItemResult,
        now_ms: int,
        dirty: dict[str, str],
        states: dict[str, SkuState],
        stock: dict[str, int | None],
        unapplied: dict[str, int],
    ) -> PushItem | None:
        sku = item.sku
        state = states.get(sku) or SkuState()
        self.metrics.channel_items.labels(self.name, result.outcome.value).inc()
        if result.outcome is Outcome.OK:
            self._in_doubt.pop(sku, None)
            _, first_ms = parse_dirty(dirty[sku])
            lag = max(0, now_ms - first_ms)
            new = SkuState(value=result.value, at_ms=now_ms, lag_ms=lag, calls=state.calls + 1)
            await self.store.ack(self.name, sku, dirty[sku], new)
            states[sku] = new
            self.metrics.channel_lag.labels(self.name).observe(lag / 1000)
            return None
        if result.outcome is Outcome.STALE and result.observed is not None:
            # The platform's own orders moved it since our last push (or this is the first push).
            sold = 0
            if item.previous is not None and self._in_doubt.get(sku) != result.observed:
                sold = item.previous - result.observed
            self._in_doubt.pop(sku, None)
            new = msgspec.structs.replace(state, value=result.observed)
            await self.store.ack(self.name, sku, "", new, unapplied=sold)
            states[sku] = new
            unapplied[sku] = unapplied.get(sku, 0) + sold
            available = stock.get(sku) or 0
            target = max(0, available - self.buffer - max(0, unapplied[sku]))
            return msgspec.structs.replace(item, value=target, previous=result.observed)
        if result.outcome is Outcome.RETRY:
            return item
        # Refused for good (or stale on a SKU the platform no longer has).
        code = result.code or "refused"
        new = msgspec.structs.replace(
            state, error=code, error_message=result.message[:300], error_at_ms=now_ms, calls=state.calls + 1
        )
        await self.store.ack(self.name, sku, dirty[sku], new)
        states[sku] = new
        self.metrics.channel_errors.labels(self.name, code).inc()
        await self.alerts.alert(
            AlertKind.CHANNEL_SKU_UNKNOWN,
            f"{self.name}:{sku}:{code}",
            {"channel": self.name, "sku": sku, "error": code, "message": result.message[:200]},
        )
        return None

    async def _call_failed(self, batch: list[PushItem], exc: ChannelError, states: dict[str, SkuState]) -> None:
        self.failures += 1
        self.last_error = exc.code
        outcome = "throttled" if isinstance(exc, Throttled) else "error"
        self.metrics.channel_calls.labels(self.name, outcome).inc()
        if isinstance(exc, Throttled):
            self.metrics.channel_throttles.labels(self.name).inc()
        else:
            self.metrics.channel_errors.labels(self.name, exc.code).inc()
        wait = max(exc.wait, self.backoff.next()) if exc.retry else max(exc.wait, 60.0)
        self.channel.budget.wait_for(wait)
        if exc.code in ("timeout", "network"):
            for item in batch:  # it may have been applied: a later stale read of this value is ours
                self._in_doubt[item.sku] = item.value
        now_ms = int(time.time() * 1000)
        for item in batch:
            state = states.get(item.sku) or SkuState()
            new = msgspec.structs.replace(state, error=exc.code, error_message=exc.message[:300], error_at_ms=now_ms)
            await self.store.ack(self.name, item.sku, "", new)  # stays dirty
            states[item.sku] = new
        logger.warning("channel %s: push failed (%s), next try in %.1fs", self.name, exc.code, wait)
        if not isinstance(exc, Throttled) and (isinstance(exc, AuthFailed) or self.failures >= self.failing_after):
            hour = now_ms // 3_600_000
            await self.alerts.alert(
                AlertKind.CHANNEL_FAILING,
                f"{self.name}:{exc.code}:{hour}",
                {"channel": self.name, "error": exc.code, "message": exc.message[:200], "failures": self.failures},
            )
