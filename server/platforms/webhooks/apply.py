"""Applying a normalised ``PlatformOrderEvent`` to stock (events.py has the contract).

Per line: the SKU finds its drop (``Catalog.drop_for_sku``) — or, for a drop with variants, the
variant that SKU names (``<drop>~<variant>``, the engine's name for a variant's stock: every "drop"
below may be one) — and the stock engine does the rest,
idempotently by (platform, order, line) for sales and (platform, order, line, event) for cancels and
refunds. What this module adds is what the engine cannot know:

* **Whole-order cancellations.** A cancel with no lines means every line of the order. When a sale is
  applied, the order's lines and their drops are written to ``ld:order:<platform>:<order>``; a
  whole-order cancel marks that hash ``cancelled`` and cancels each line it lists. Both sides do
  "write mine, read theirs" in one script on that hash (``lua/order_sale.lua``,
  ``lua/order_cancel.lua``), so whichever runs second sees the other: a cancel that comes before
  its order is found by the sale, which then leaves the engine's per-line tombstone (cancel
  first) before applying itself, and the engine ignores it. A whole-order cancel for an order
  never sold here waits in that hash for 90 days (``keys.ORDER_TTL_SECONDS``); it can leave no
  per-line tombstone by itself, because it does not know the lines.
* **What reconciliation must show**: unknown SKUs and thin notifications as issues, a named hold that
  could not pay for its sale (expired, released, unknown, a reference that failed verification) per
  show, oversold lines as alerts — and every line that changed nothing or changed stock somewhere
  unexpected: a quantity outside 1..10,000 (``bad_qty``: not applied) and a sale on a drop that is not
  live (``sale_drop_not_live``: applied, since the platform really sold the units).
* **Hold references.** The line's ``hold_ref`` is handed to the engine as it came: the engine verifies
  it (MAC, then the hold's nonce), and one that fails is no hold — the line takes from available.

Every step is safe to repeat, so a delivery applied again after a crash changes nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec

from server import keys
from server.ops.metrics import Metrics
from server.platforms.webhooks.alerts import AlertKind, Alerts, IssueKind
from server.platforms.webhooks.events import OrderLine, OrderStatus, PlatformOrderEvent
from server.platforms.webhooks.scripts import Arg, BatchedScript
from server.shows.catalog import Catalog
from server.shows.variants import split_unit
from stock import StockEngine
from stock import keys as stock_keys
from stock.engine import MAX_QTY
from stock.errors import InvalidArgument, UnknownDrop
from stock.types import DropState, OrderOutcome, PlatformCancel, PlatformSale

logger = logging.getLogger("livedrop.webhooks")

SKU_CACHE_SECONDS = 1.0
"""How long a SKU's drop, looked up for a batch of deliveries, is reused for the next ones."""
CANCEL_EVENT = "cancel"
"""The engine's event name for a cancellation (refunds use ``refund:<refund id>``)."""
_LINE = "l:"


class LineResult(msgspec.Struct, frozen=True):
    """What became of one line of an event (for metrics, logs and tests)."""

    line_id: str
    outcome: str
    """sold · oversold · duplicate · ignored · restocked · tombstoned · unknown_sku · invalid ·
    bad_qty · no_restock · needs_fetch · pending_order · other"""
    drop_id: str = ""
    qty: int = 0


def _cancel(platform: str, order_id: str, line_id: str, unit: str, event: str, qty: int = 0) -> PlatformCancel:
    """A cancel or refund of a line sold from ``unit`` (a drop, or ``<drop>~<variant>``)."""
    drop_id, variant = split_unit(unit)
    return PlatformCancel(platform, order_id, line_id, drop_id, event=event, qty=qty, variant=variant)


def line_key(platform: str, order_id: str, line_id: str) -> str:
    """The engine's idempotency key of an order line (as its ledger shows it)."""
    return f"{platform}|{order_id}|{line_id}"


class OrderApplier:
    """Applies events to the stock engine. Raises only when Redis fails (retry the event)."""

    def __init__(self, redis: Any, engine: StockEngine, catalog: Catalog, alerts: Alerts, metrics: Metrics) -> None:
        self.redis = redis
        self.engine = engine
        self.catalog = catalog
        self.alerts = alerts
        self.metrics = metrics
        self._shows: dict[str, str] = {}
        self._sku_cache: dict[str, tuple[str | None, float]] = {}
        self._order_sale = BatchedScript(redis, "order_sale")
        self._order_cancel = BatchedScript(redis, "order_cancel")

    async def apply(self, event: PlatformOrderEvent, skus: dict[str, str | None] | None = None) -> list[LineResult]:
        """Apply one event; returns what became of each line. ``skus`` (from ``resolve_skus``)
        saves one lookup per line when many events are applied together."""
        skus = {} if skus is None else skus
        platform = event.platform.value
        try:
            stock_keys.check_opaque("order id", event.order_id)
        except InvalidArgument:
            await self._invalid(event, "", "order id")
            return [LineResult("", "invalid")]
        if event.needs_fetch:
            results = [await self._needs_fetch(event)]
        elif event.status.is_sale:
            results = await self._sale(event, skus)
        elif event.status is OrderStatus.CANCELLED:
            results = await self._cancel(event, skus)
        elif event.status is OrderStatus.REFUNDED:
            results = await self._refund(event, skus)
        else:
            results = [LineResult("", "other")]
        for result in results:
            self.metrics.webhook_lines.labels(platform, result.outcome).inc()
        return results

    # -- sales ------------------------------------------------------------------------------

    async def _sale(self, event: PlatformOrderEvent, skus: dict[str, str | None]) -> list[LineResult]:
        platform = event.platform.value
        found: list[tuple[OrderLine, str]] = []
        results: list[LineResult] = []
        for line in event.lines:
            if not 1 <= line.qty <= MAX_QTY:
                results.append(await self._bad_qty(event, line.line_id, line.sku, line.qty))
                continue
            drop_id = await self._drop_for(line.sku, event, line.line_id, line.qty, skus)
            if drop_id is None:
                results.append(LineResult(line.line_id, "unknown_sku", qty=line.qty))
            else:
                found.append((line, drop_id))
        if not found:
            return results
        # Record the lines, and learn in the same step whether a whole-order cancel came first.
        args: list[Arg] = [keys.ORDER_TTL_SECONDS]
        for line, drop_id in found:
            args += (_LINE + line.line_id, drop_id)
        cancelled = await self._order_sale([keys.order(platform, event.order_id)], args)
        for line, drop_id in found:
            try:
                if cancelled is not None:
                    await self.engine.apply_cancel(
                        _cancel(platform, event.order_id, line.line_id, drop_id, cancelled.decode())
                    )
                results.append(await self._sell(event, line, drop_id))
            except (InvalidArgument, UnknownDrop) as exc:
                await self._invalid(event, line.line_id, exc.code, drop_id)
                results.append(LineResult(line.line_id, "invalid", drop_id, line.qty))
        return results

    async def _sell(self, event: PlatformOrderEvent, line: OrderLine, drop_id: str) -> LineResult:
        platform = event.platform.value
        drop, variant = split_unit(drop_id)
        result = await self.engine.apply_sale(
            PlatformSale(
                platform, event.order_id, line.line_id, drop, line.qty, hold_ref=line.hold_ref, variant=variant
            )
        )
        key = line_key(platform, event.order_id, line.line_id)
        if result.outcome is OrderOutcome.IGNORED:
            return LineResult(line.line_id, "ignored", drop_id, line.qty)
        if line.hold_ref and result.hold_id is None:
            await self._record_unusable_hold(drop_id, key, line.hold_ref, result.hold_issue or "hold_not_found")
        if result.drop_state and result.drop_state != DropState.LIVE:
            # Applied all the same (the platform sold the units), but nobody expects sales there.
            await self.alerts.issue(
                IssueKind.SALE_DROP_NOT_LIVE,
                key,
                {
                    "platform": platform,
                    "order": event.order_id,
                    "line": line.line_id,
                    "drop": drop,
                    **({"variant": variant} if variant else {}),
                    "state": result.drop_state,
                    "qty": line.qty,
                },
            )
        if result.oversold:
            # Raised on a duplicate as well: the first attempt may have died before alerting,
            # and the alert is raised once per line whatever happens.
            await self.alerts.alert(
                AlertKind.OVERSOLD,
                key,
                {
                    "show": await self._show_of(drop_id),
                    "drop": drop,
                    **({"variant": variant} if variant else {}),
                    "platform": platform,
                    "order": event.order_id,
                    "line": line.line_id,
                    "qty": result.oversold,
                },
            )
        if result.outcome is OrderOutcome.DUPLICATE:
            return LineResult(line.line_id, "duplicate", drop_id, line.qty)
        return LineResult(line.line_id, "oversold" if result.oversold else "sold", drop_id, line.qty)

    async def _record_unusable_hold(self, drop_id: str, key: str, hold_ref: str, reason: str) -> None:
        """Why a hold the order named did not pay for it, for the report's "orders without hold"
        (the engine's ledger says it too; this hash also names the hold, when the reference was
        genuine — a reference that failed verification is not repeated anywhere)."""
        ref = self.engine.hold_refs.verify(hold_ref)
        show = await self._show_of(drop_id)
        if show:
            await self.redis.hset(keys.sale_holds(show), key, f"{reason} {ref.hold_id if ref else ''}".rstrip())

    # -- cancellations and refunds ----------------------------------------------------------

    async def _cancel(self, event: PlatformOrderEvent, skus: dict[str, str | None]) -> list[LineResult]:
        platform = event.platform.value
        order_key = keys.order(platform, event.order_id)
        if not event.lines:
            # The whole order: mark it, and cancel every line a sale recorded (see module doc).
            recorded = await self._order_cancel([order_key], [keys.ORDER_TTL_SECONDS, CANCEL_EVENT])
            if not recorded:
                return [LineResult("", "pending_order")]
            fields = [value.decode() for value in recorded]
            targets = sorted((field[len(_LINE) :], drop) for field, drop in zip(fields[::2], fields[1::2], strict=True))
        else:
            targets = []
            for line in event.lines:
                drop_id = await self._recorded_drop(order_key, line.line_id)
                drop_id = drop_id or await self._drop_for(line.sku, event, line.line_id, line.qty, skus)
                if drop_id is not None:
                    targets.append((line.line_id, drop_id))
        # qty 0: the whole line. A partial cancellation comes as a refund, with its own id.
        results = [await self._restock(event, line_id, drop_id, CANCEL_EVENT, 0) for line_id, drop_id in targets]
        unknown = len(event.lines) - len(targets) if event.lines else 0
        return results + [LineResult("", "unknown_sku")] * unknown

    async def _refund(self, event: PlatformOrderEvent, skus: dict[str, str | None]) -> list[LineResult]:
        order_key = keys.order(event.platform.value, event.order_id)
        refund_event = f"refund:{event.refund_id or 'full'}"
        results = []
        for line in event.refund_lines:
            if not 1 <= line.qty <= MAX_QTY:
                results.append(await self._bad_qty(event, line.line_id, line.sku, line.qty))
                continue
            if not line.restock:
                results.append(LineResult(line.line_id, "no_restock", qty=line.qty))
                continue
            drop_id = await self._recorded_drop(order_key, line.line_id)
            drop_id = drop_id or await self._drop_for(line.sku, event, line.line_id, line.qty, skus)
            if drop_id is None:
                results.append(LineResult(line.line_id, "unknown_sku", qty=line.qty))
            else:
                results.append(await self._restock(event, line.line_id, drop_id, refund_event, line.qty))
        return results

    async def _restock(self, event: PlatformOrderEvent, line_id: str, drop_id: str, name: str, qty: int) -> LineResult:
        try:
            result = await self.engine.apply_cancel(
                _cancel(event.platform.value, event.order_id, line_id, drop_id, name, qty)
            )
        except (InvalidArgument, UnknownDrop) as exc:
            await self._invalid(event, line_id, exc.code, drop_id)
            return LineResult(line_id, "invalid", drop_id, qty)
        return LineResult(line_id, result.outcome.value, drop_id, result.restocked + result.unoversold)

    async def _recorded_drop(self, order_key: str, line_id: str) -> str | None:
        # The drop the sale went to wins over the SKU's current drop: a SKU may have moved to a
        # newer drop since, and the units must go back where they came from.
        raw = await self.redis.hget(order_key, _LINE + line_id)
        return None if raw is None else str(raw.decode())

    # -- lookups and issues -----------------------------------------------------------------

    async def aclose(self) -> None:
        """Wait for the script calls in flight."""
        await self._order_sale.aclose()
        await self._order_cancel.aclose()

    async def resolve_skus(self, events: list[PlatformOrderEvent]) -> dict[str, str | None]:
        """The drop of every SKU the events name (None: no drop sells it).

        A batch of deliveries names the few SKUs of a live show over and over, so each is looked
        up once and the answer kept for ``SKU_CACHE_SECONDS``: a SKU that a host moves to a new
        drop sells from the new one at most that long after, which no platform's delivery delay
        could tell apart from a webhook that was simply a second late.
        """
        now = time.monotonic()
        wanted = {line.sku for e in events for line in e.lines if line.sku}
        wanted |= {line.sku for e in events for line in e.refund_lines if line.sku}
        found = {sku: hit[0] for sku in wanted if (hit := self._sku_cache.get(sku)) and hit[1] > now}
        missing = sorted(wanted - found.keys())
        if missing:
            drops = await asyncio.gather(*(self.catalog.drop_for_sku(sku) for sku in missing))
            if len(self._sku_cache) > 10_000:
                self._sku_cache.clear()
            for sku, drop_id in zip(missing, drops, strict=True):
                self._sku_cache[sku] = (drop_id, now + SKU_CACHE_SECONDS)
                found[sku] = drop_id
        return found

    async def _drop_for(
        self, sku: str, event: PlatformOrderEvent, line_id: str, qty: int, skus: dict[str, str | None]
    ) -> str | None:
        if sku in skus:
            drop_id = skus[sku]
        else:
            drop_id = await self.catalog.drop_for_sku(sku) if sku else None
        if drop_id is None:
            platform = event.platform.value
            await self.alerts.issue(
                IssueKind.UNKNOWN_SKU,
                line_key(platform, event.order_id, line_id) + f"#{event.status.value}",
                {"platform": platform, "order": event.order_id, "line": line_id, "sku": sku, "qty": qty},
            )
        return drop_id

    async def _needs_fetch(self, event: PlatformOrderEvent) -> LineResult:
        platform = event.platform.value
        # Queued for the order pullers (server.platforms.channels.pull), which read the lines and
        # apply the order through this applier; kept until read, so a restart loses none.
        await self.redis.zadd(keys.FETCH_QUEUE, {f"{platform}|{event.order_id}": int(time.time() * 1000)}, nx=True)
        await self.alerts.issue(
            IssueKind.NEEDS_FETCH,
            f"{platform}|{event.order_id}|{event.status.value}|{event.refund_id or ''}",
            {
                "platform": platform,
                "order": event.order_id,
                "status": event.status.value,
                "source": event.source_event or "",
                "shop": event.shop or "",
            },
        )
        return LineResult("", "needs_fetch")

    async def _bad_qty(self, event: PlatformOrderEvent, line_id: str, sku: str, qty: int) -> LineResult:
        """A line whose quantity no sale or refund can have (≤ 0, or over the engine's 10,000): it
        changes no stock, and says so in the report rather than vanish."""
        platform = event.platform.value
        await self.alerts.issue(
            IssueKind.BAD_QTY,
            line_key(platform, event.order_id, line_id) + f"#{event.status.value}#{event.refund_id or ''}",
            {"platform": platform, "order": event.order_id, "line": line_id, "sku": sku, "qty": qty},
        )
        return LineResult(line_id, "bad_qty", qty=qty)

    async def _invalid(self, event: PlatformOrderEvent, line_id: str, reason: str, drop_id: str = "") -> None:
        platform = event.platform.value
        # The order id may be what is invalid; the delivery id identifies the event either way.
        await self.alerts.issue(
            IssueKind.INVALID,
            f"{event.delivery_id}|{line_id}|{event.status.value}",
            {"platform": platform, "delivery": event.delivery_id, "line": line_id, "reason": reason, "drop": drop_id},
        )
        logger.warning("webhook event refused by the stock engine: platform=%s reason=%s", platform, reason)

    async def _show_of(self, unit: str) -> str:
        drop_id = unit.partition("~")[0]  # a variant's show is its drop's
        show = self._shows.get(drop_id)
        if show is None:
            raw = await self.redis.hget(stock_keys.drop_keys(drop_id).meta, "show")
            show = "" if raw is None else raw.decode()
            if show:
                self._shows[drop_id] = show  # a drop never changes show
        return show
