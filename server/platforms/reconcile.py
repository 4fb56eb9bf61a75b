"""Reconciliation of a show's stock with what the commerce platforms say (DESIGN §6).

The report of a show lists, per drop:

* **holds confirmed without a platform order**: the checkout confirmed the hold (state ``confirmed``)
  but no platform order line has matched it (``Hold.matched_line == ""``) within the grace period.
  Either the platform's webhook was lost, or the checkout confirmed something nobody bought;
* **platform orders without a hold**: sales that took units from ``available`` rather than from a
  hold, each with why — ``no_hold_ref`` (the order named none), ``hold_ref_invalid`` (the reference
  failed verification: forged, altered, or for a hold that no longer exists), ``hold_expired``,
  ``hold_released``, ``hold_taken`` (matched to another line, or paid by another order),
  ``hold_other_drop``, ``hold_not_found``;
* **conflicting confirms** (``hold_taken``): a checkout confirmed a hold already confirmed with
  another order — two payments for one hold, answered 409;
* **sales on a drop that was not live** (closed, or not launched yet): applied, but worth a look;
* **oversold** units (the counter) and the lines that were oversold;
* **cancellations restocked**: each cancel or refund that gave units back, and how many;
* lines **cancelled before their order** arrived (a whole-line cancel makes the order be ignored;
  a partial refund is applied when the order comes);

and, for the whole deployment (they belong to no drop): **unknown SKUs**, **notifications that need
a fetch** from the platform's API (TikTok Shop, Meta), lines with a quantity no sale can have
(``bad_qty``: ≤ 0 or over 10,000, not applied), and events the engine refused.

Per-drop facts come from the drop's ledger, which the stock engine writes exactly once per change,
so a delivery applied twice never shows twice; the reasons a named hold was not used come from
``ld:{show:<id>}:sale_holds``, written when the sale was applied. The ledger is read in full: the
cost is one pass over it per report, which is why the periodic reconciler runs once per interval
on one node only (a lock per show) and only for shows that are on, or ended less than a day ago.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from typing import Any

import msgspec
from redis.exceptions import RedisError

from server import keys as wh_keys
from server.loops import raise_if_cancelled
from server.ops.metrics import Metrics
from server.platforms.webhooks.alerts import AlertKind, Alerts, IssueKind, read_stream
from server.platforms.webhooks.config import WebhookSettings
from server.replies import decoded
from server.shows.catalog import Catalog
from stock import StockEngine
from stock import keys as stock_keys
from stock.errors import InvalidArgument
from stock.types import Counters, DropState, HoldState, LedgerEntry

logger = logging.getLogger("livedrop.reconcile")


class UnknownShow(LookupError):
    """No show with that id."""


class UnmatchedHold(msgspec.Struct, frozen=True):
    hold_id: str
    qty: int
    order_ref: str
    confirmed_at_ms: int
    waiting_seconds: float


class SaleLine(msgspec.Struct, frozen=True):
    """A platform order line as applied. ``reason`` says why no hold paid for it ('' if one did)."""

    platform: str
    order_id: str
    line_id: str
    qty: int
    sold: int
    oversold: int
    hold_id: str
    reason: str
    at_ms: int


class Restock(msgspec.Struct, frozen=True):
    """A cancellation (``event == "cancel"``) or refund (``refund:<id>``) that gave units back:
    ``restocked`` to available, ``unoversold`` off the oversold counter."""

    platform: str
    order_id: str
    line_id: str
    event: str
    restocked: int
    unoversold: int
    at_ms: int


class CancelledFirst(msgspec.Struct, frozen=True):
    """A line cancelled before its order arrived; ``order_ignored`` once the order came and was ignored.
    ``qty`` 0 is a whole-line cancel; more is a partial refund, which the order applies when it comes."""

    platform: str
    order_id: str
    line_id: str
    event: str
    order_ignored: bool
    at_ms: int
    qty: int = 0


class ConfirmConflict(msgspec.Struct, frozen=True):
    """A checkout confirmed ``hold_id`` with ``order_ref`` after it had been confirmed with
    ``confirmed_with``: refused (409 ``hold-taken``); one of the two orders needs a refund."""

    hold_id: str
    order_ref: str
    confirmed_with: str
    at_ms: int
    reason: str = "hold_taken"


class BadQtyLine(msgspec.Struct, frozen=True):
    """A webhook line whose quantity no sale or refund can have (≤ 0 or over 10,000): not applied."""

    platform: str
    order_id: str
    line_id: str
    sku: str
    qty: int
    at_ms: int


class DropReconciliation(msgspec.Struct, frozen=True):
    drop_id: str
    sku: str
    state: DropState
    counters: Counters
    webhook_units_sold: dict[str, int]
    """Units sold per platform through webhooks (oversold units excluded)."""
    unmatched_holds: list[UnmatchedHold]
    orders_without_hold: list[SaleLine]
    oversold_lines: list[SaleLine]
    cancellations: list[Restock]
    restocked_units: int
    unoversold_units: int
    cancelled_before_order: list[CancelledFirst]
    confirm_conflicts: list[ConfirmConflict] = msgspec.field(default_factory=list)
    sales_when_not_live: list[SaleLine] = msgspec.field(default_factory=list)
    """Platform lines applied while the drop was closed (or not yet launched)."""


class UnknownSku(msgspec.Struct, frozen=True):
    sku: str
    platform: str
    lines: int
    units: int
    last_order_id: str
    last_seen_ms: int


class NeedsFetch(msgspec.Struct, frozen=True):
    """A notification without lines: read the order from the platform to apply it."""

    platform: str
    order_id: str
    status: str
    source_event: str
    shop: str
    at_ms: int


class InvalidEvent(msgspec.Struct, frozen=True):
    platform: str
    delivery: str
    line_id: str
    reason: str
    at_ms: int


class ReportTotals(msgspec.Struct, frozen=True):
    unmatched_holds: int
    unmatched_hold_units: int
    orders_without_hold: int
    oversold_units: int
    restocked_units: int
    unknown_sku_lines: int
    needs_fetch: int
    invalid_events: int
    dead_deliveries: int
    confirm_conflicts: int = 0
    bad_qty_lines: int = 0
    sales_when_not_live: int = 0


class ReconciliationReport(msgspec.Struct, frozen=True):
    """What the panel shows and ``livedrop reconcile SHOW`` prints. ``unknown_skus``,
    ``needs_fetch`` and ``invalid_events`` are deployment-wide (the most recent ones)."""

    show_id: str
    generated_at_ms: int
    grace_seconds: float
    totals: ReportTotals
    drops: list[DropReconciliation]
    unknown_skus: list[UnknownSku]
    needs_fetch: list[NeedsFetch]
    invalid_events: list[InvalidEvent]
    bad_qty_lines: list[BadQtyLine] = msgspec.field(default_factory=list)


# -- the pure part: folding a drop's ledger -------------------------------------------------


def _split_line(line_key: str) -> tuple[str, str, str]:
    platform, _, rest = line_key.partition("|")
    order_id, _, line_id = rest.partition("|")
    return platform, order_id, line_id


class LedgerFold:
    """What reconciliation needs from a drop's ledger, fed one entry at a time, in order."""

    def __init__(self) -> None:
        self.confirmed_at: dict[str, int] = {}
        self.sales: list[SaleLine] = []
        self.restocks: list[Restock] = []
        self.cancelled_first: dict[str, CancelledFirst] = {}
        self.conflicts: dict[tuple[str, str], ConfirmConflict] = {}
        self.why: dict[str, str] = {}
        self.not_live: set[str] = set()

    def feed(self, entry: LedgerEntry) -> None:
        f = entry.fields
        match entry.op:
            case "confirm":
                self.confirmed_at[f.get("hold", "")] = entry.at_ms
            case "confirm_conflict":
                key = (f.get("hold", ""), f.get("order", ""))
                if key not in self.conflicts:  # a retried conflicting confirm is one conflict
                    self.conflicts[key] = ConfirmConflict(key[0], key[1], f.get("by", ""), entry.at_ms)
            case "order":
                line = f.get("line", "")
                platform, order_id, line_id = _split_line(line)
                qty = int(f.get("qty", "0"))
                if f.get("why"):
                    self.why[line] = f["why"]
                if f.get("state"):
                    self.not_live.add(line)
                self.sales.append(
                    SaleLine(
                        platform=platform,
                        order_id=order_id,
                        line_id=line_id,
                        qty=qty,
                        sold=qty - entry.d_oversold,
                        oversold=entry.d_oversold,
                        hold_id=f.get("hold", ""),
                        reason="",
                        at_ms=entry.at_ms,
                    )
                )
            case "cancel":
                platform, order_id, line_id = _split_line(f.get("line", ""))
                self.restocks.append(
                    Restock(
                        platform=platform,
                        order_id=order_id,
                        line_id=line_id,
                        event=f.get("event", ""),
                        restocked=entry.d_available,
                        unoversold=-entry.d_oversold,
                        at_ms=entry.at_ms,
                    )
                )
            case "cancel_first":
                line = f.get("line", "")
                platform, order_id, line_id = _split_line(line)
                self.cancelled_first[line] = CancelledFirst(
                    platform, order_id, line_id, f.get("event", ""), False, entry.at_ms, int(f.get("qty") or 0)
                )
            case "order_ignored":
                line = f.get("line", "")
                if line in self.cancelled_first:
                    self.cancelled_first[line] = msgspec.structs.replace(self.cancelled_first[line], order_ignored=True)


# -- reading Redis ------------------------------------------------------------------------------


async def _redis_now_ms(redis: Any) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def _drop_report(
    redis: Any, engine: StockEngine, catalog: Catalog, show_id: str, drop_id: str, now_ms: int, grace_ms: int
) -> DropReconciliation:
    fold = LedgerFold()
    async for entry in engine.iter_ledger(drop_id):
        fold.feed(entry)
    snapshot = await engine.snapshot(drop_id)
    info = await catalog.get_drop(drop_id)
    # The drop's own clock (Redis' TIME plus any rehearsal fast-forward) dates its ledger.
    offset = int(await redis.hget(stock_keys.drop_keys(drop_id).meta, "clock_ms") or 0)
    drop_now = now_ms + offset
    unmatched = []
    for hold in await engine.holds(drop_id):
        if hold.state is not HoldState.CONFIRMED or hold.matched_line:
            continue
        confirmed_at = fold.confirmed_at.get(hold.hold_id, 0)
        if drop_now - confirmed_at >= grace_ms:
            unmatched.append(
                UnmatchedHold(hold.hold_id, hold.qty, hold.order_ref, confirmed_at, (drop_now - confirmed_at) / 1000)
            )
    reasons = {}
    if fold.sales:
        raw = await redis.hgetall(wh_keys.sale_holds(show_id))
        reasons = {decoded(k): decoded(v).split(" ", 1)[0] for k, v in raw.items()}

    def reason(s: SaleLine) -> str:
        if s.hold_id:
            return ""
        line = f"{s.platform}|{s.order_id}|{s.line_id}"
        # The engine's ledger says why since hold references; the hash covers older entries.
        return fold.why.get(line) or reasons.get(line, "no_hold_ref")

    sales = [msgspec.structs.replace(s, reason=reason(s)) for s in fold.sales]
    sold: dict[str, int] = {}
    for s in sales:
        sold[s.platform] = sold.get(s.platform, 0) + s.sold
    return DropReconciliation(
        drop_id=drop_id,
        sku=info.sku if info else "",
        state=snapshot.state,
        counters=snapshot.counters,
        webhook_units_sold=sold,
        unmatched_holds=unmatched,
        orders_without_hold=[s for s in sales if not s.hold_id],
        oversold_lines=[s for s in sales if s.oversold],
        cancellations=fold.restocks,
        restocked_units=sum(r.restocked for r in fold.restocks),
        unoversold_units=sum(r.unoversold for r in fold.restocks),
        cancelled_before_order=list(fold.cancelled_first.values()),
        confirm_conflicts=list(fold.conflicts.values()),
        sales_when_not_live=[s for s in sales if f"{s.platform}|{s.order_id}|{s.line_id}" in fold.not_live],
    )


async def build_report(
    redis: Any, engine: StockEngine, catalog: Catalog, show_id: str, *, grace_seconds: float
) -> ReconciliationReport:
    """The reconciliation report of ``show_id``; raises ``UnknownShow``."""
    if await catalog.get_show(show_id) is None:
        raise UnknownShow(show_id)
    now_ms = await _redis_now_ms(redis)
    grace_ms = round(grace_seconds * 1000)
    drops = [
        await _drop_report(redis, engine, catalog, show_id, drop_id, now_ms, grace_ms)
        for drop_id in await catalog.drop_ids(show_id)
    ]
    unknown: dict[tuple[str, str], UnknownSku] = {}
    fetches: list[NeedsFetch] = []
    invalid: list[InvalidEvent] = []
    bad_qty: list[BadQtyLine] = []
    for entry_id, f in await read_stream(redis, wh_keys.ISSUES, wh_keys.ISSUES_MAXLEN):
        at_ms = int(entry_id.split("-")[0])
        match f.get("kind"):
            case IssueKind.UNKNOWN_SKU:
                key = (f.get("sku", ""), f.get("platform", ""))
                seen = unknown.get(key) or UnknownSku(key[0], key[1], 0, 0, "", 0)
                unknown[key] = UnknownSku(
                    key[0], key[1], seen.lines + 1, seen.units + int(f.get("qty", "0")), f.get("order", ""), at_ms
                )
            case IssueKind.NEEDS_FETCH:
                fetches.append(
                    NeedsFetch(
                        f.get("platform", ""),
                        f.get("order", ""),
                        f.get("status", ""),
                        f.get("source", ""),
                        f.get("shop", ""),
                        at_ms,
                    )
                )
            case IssueKind.BAD_QTY:
                bad_qty.append(
                    BadQtyLine(
                        f.get("platform", ""),
                        f.get("order", ""),
                        f.get("line", ""),
                        f.get("sku", ""),
                        int(f.get("qty", "0")),
                        at_ms,
                    )
                )
            case IssueKind.INVALID:
                invalid.append(
                    InvalidEvent(
                        f.get("platform", ""), f.get("delivery", ""), f.get("line", ""), f.get("reason", ""), at_ms
                    )
                )
    dead = int(await redis.xlen(wh_keys.DEAD))
    totals = ReportTotals(
        unmatched_holds=sum(len(d.unmatched_holds) for d in drops),
        unmatched_hold_units=sum(h.qty for d in drops for h in d.unmatched_holds),
        orders_without_hold=sum(len(d.orders_without_hold) for d in drops),
        oversold_units=sum(d.counters.oversold for d in drops),
        restocked_units=sum(d.restocked_units for d in drops),
        unknown_sku_lines=sum(u.lines for u in unknown.values()),
        needs_fetch=len(fetches),
        invalid_events=len(invalid),
        dead_deliveries=dead,
        confirm_conflicts=sum(len(d.confirm_conflicts) for d in drops),
        bad_qty_lines=len(bad_qty),
        sales_when_not_live=sum(len(d.sales_when_not_live) for d in drops),
    )
    return ReconciliationReport(
        show_id=show_id,
        generated_at_ms=now_ms,
        grace_seconds=grace_seconds,
        totals=totals,
        drops=drops,
        unknown_skus=sorted(unknown.values(), key=lambda u: -u.last_seen_ms),
        needs_fetch=fetches,
        invalid_events=invalid,
        bad_qty_lines=bad_qty,
    )


# -- the periodic reconciler ------------------------------------------------------------------


class Reconciler:
    """Every ``reconcile_interval``, on one node per show (a lock), builds the report of each
    show that is on or recently ended, stores it for the panel (``ld:{show:<id>}:reconciliation``)
    and raises an alert for each hold newly found confirmed without a platform order."""

    def __init__(
        self,
        redis: Any,
        engine: StockEngine,
        catalog: Catalog,
        alerts: Alerts,
        metrics: Metrics,
        settings: WebhookSettings,
    ) -> None:
        self.redis = redis
        self.engine = engine
        self.catalog = catalog
        self.alerts = alerts
        self.metrics = metrics
        self.settings = settings
        self.node = settings.node_name()
        self.healthy = True
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.settings.reconcile_interval > 0 and self._task is None:
            self._task = asyncio.create_task(self.run(), name="reconciler")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        interval = self.settings.reconcile_interval
        backoff = interval
        while True:
            raise_if_cancelled()
            try:
                await self.reconcile_once()
                self.healthy = True
                backoff = interval
            except asyncio.CancelledError:
                raise
            except RedisError:
                self.healthy = False
                self.metrics.redis_errors.labels("reconcile").inc()
                logger.warning("reconciliation failed, Redis unreachable", exc_info=True)
                backoff = min(backoff * 2, 10 * interval)
            except Exception:
                logger.exception("reconciliation failed")
                backoff = min(backoff * 2, 10 * interval)
            await asyncio.sleep(backoff)

    async def reconcile_once(self, *, force: bool = False) -> list[ReconciliationReport]:
        """Reconcile every active show this node wins the lock for (all active shows with
        ``force``); returns the reports built."""
        reports = []
        now_ms = await _redis_now_ms(self.redis)
        lock_ms = max(1, round(self.settings.reconcile_interval * 900))
        for show in await self.catalog.shows():
            if not await self._active(show.show_id, now_ms):
                continue
            if not force and not await self.redis.set(
                wh_keys.reconcile_lock(show.show_id), self.node, nx=True, px=lock_ms
            ):
                continue
            report = await build_report(
                self.redis,
                self.engine,
                self.catalog,
                show.show_id,
                grace_seconds=self.settings.reconcile_grace_seconds,
            )
            await self._publish(report)
            reports.append(report)
        return reports

    async def _active(self, show_id: str, now_ms: int) -> bool:
        window_ms = self.settings.reconcile_window_seconds * 1000
        for drop_id in await self.catalog.drop_ids(show_id):
            snapshot = await self.engine.snapshot(drop_id)
            if snapshot.state is not DropState.CLOSED or now_ms - snapshot.closed_at_ms < window_ms:
                return True
        return False

    async def _publish(self, report: ReconciliationReport) -> None:
        ttl = max(60, round(self.settings.reconcile_interval * 3))
        await self.redis.set(wh_keys.report(report.show_id), msgspec.json.encode(report), ex=ttl)
        for drop in report.drops:
            for hold in drop.unmatched_holds:
                await self.alerts.alert(
                    AlertKind.UNMATCHED_HOLD,
                    hold.hold_id,
                    {"show": report.show_id, "drop": drop.drop_id, "hold": hold.hold_id, "qty": hold.qty},
                )


# -- the CLI ------------------------------------------------------------------------------------


async def print_report(redis_url: str, show_id: str, grace_seconds: float) -> int:
    """``livedrop reconcile SHOW``: print the report as JSON; 1 if the show is unknown."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        engine = StockEngine(redis)
        try:
            report = await build_report(redis, engine, Catalog(redis, engine), show_id, grace_seconds=grace_seconds)
        except UnknownShow:
            print(f"livedrop: no show {show_id}", file=sys.stderr)
            return 1
        except InvalidArgument as exc:
            print(f"livedrop: {exc}", file=sys.stderr)
            return 1
    finally:
        await redis.aclose()
    print(msgspec.json.format(msgspec.json.encode(report), indent=2).decode())
    return 0
