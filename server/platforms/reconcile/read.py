"""Building a reconciliation report from Redis: each drop's ledger and holds, the reasons recorded
when sales were applied, and the deployment-wide issues stream, folded by ``report``."""

from __future__ import annotations

from typing import Any

import msgspec

from server import keys as wh_keys
from server.platforms.reconcile.report import (
    BadQtyLine,
    DropReconciliation,
    InvalidEvent,
    LedgerFold,
    NeedsFetch,
    ReconciliationReport,
    ReportTotals,
    SaleLine,
    UnknownSku,
    UnmatchedHold,
    VariantReconciliation,
    merge_variants,
)
from server.platforms.webhooks.alerts import IssueKind, read_stream
from server.replies import decoded
from server.shows.catalog import Catalog, UnknownShow
from server.shows.clock import redis_now_ms
from stock import StockEngine
from stock import keys as stock_keys
from stock.types import HoldState

# -- reading Redis ------------------------------------------------------------------------------


async def _drop_report(
    redis: Any, engine: StockEngine, catalog: Catalog, show_id: str, drop_id: str, now_ms: int, grace_ms: int
) -> DropReconciliation:
    info = await catalog.get_drop(drop_id)
    if info is None or not info.variants:
        return await _unit_report(redis, engine, show_id, drop_id, "", info.sku if info else "", now_ms, grace_ms)
    # A drop with variants: each variant has its own ledger, holds and counters.
    parts = []
    for v in info.variants:
        part = await _unit_report(redis, engine, show_id, drop_id, v.id, v.sku, now_ms, grace_ms)
        parts.append(VariantReconciliation(variant=v.id, **msgspec.structs.asdict(part)))
    snapshot = await engine.snapshot(drop_id)
    return merge_variants(drop_id, info.sku, snapshot.state, snapshot.counters, parts)


async def _unit_report(
    redis: Any,
    engine: StockEngine,
    show_id: str,
    drop_id: str,
    variant: str,
    sku: str,
    now_ms: int,
    grace_ms: int,
) -> DropReconciliation:
    """The report of a drop without variants, or of one variant of a drop (its own ledger)."""
    fold = LedgerFold()
    async for entry in engine.iter_ledger(drop_id, variant=variant):
        fold.feed(entry)
    snapshot = await engine.snapshot(drop_id, variant)
    # The drop's own clock (Redis' TIME plus any rehearsal fast-forward) dates its ledger.
    offset = int(await redis.hget(stock_keys.drop_keys(drop_id, variant).meta, "clock_ms") or 0)
    drop_now = now_ms + offset
    unmatched = []
    for hold in await engine.holds(drop_id, variant):
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
        sku=sku,
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
    now_ms = await redis_now_ms(redis)
    grace_ms = round(grace_seconds * 1000)
    drops = [
        await _drop_report(redis, engine, catalog, show_id, drop_id, now_ms, grace_ms)
        for drop_id in await catalog.drop_ids(show_id)
    ]
    unknown: dict[tuple[str, str], UnknownSku] = {}
    fetches: list[NeedsFetch] = []
    invalid: list[InvalidEvent] = []
    bad_qty: list[BadQtyLine] = []
    fetched = {decoded(k): decoded(v) for k, v in (await redis.hgetall(wh_keys.FETCHED)).items()}
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
                why = fetched.get(f"{f.get('platform', '')}|{f.get('order', '')}", "")
                if why == "ok":
                    continue  # read from the platform and applied: its sales are in the drops' ledgers
                fetches.append(
                    NeedsFetch(
                        f.get("platform", ""),
                        f.get("order", ""),
                        f.get("status", ""),
                        f.get("source", ""),
                        f.get("shop", ""),
                        at_ms,
                        why,
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
