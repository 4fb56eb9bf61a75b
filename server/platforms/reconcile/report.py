"""The reconciliation report's types and its pure core: folding one drop's ledger into the facts the
report lists. No I/O, so it is tested without Redis (see the package docstring for what each fact means)."""

from __future__ import annotations

import msgspec

from stock.types import Counters, DropState, LedgerEntry


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


class CancellationRestock(msgspec.Struct, frozen=True):
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
    cancellations: list[CancellationRestock]
    restocked_units: int
    unoversold_units: int
    cancelled_before_order: list[CancelledFirst]
    confirm_conflicts: list[ConfirmConflict] = msgspec.field(default_factory=list)
    sales_when_not_live: list[SaleLine] = msgspec.field(default_factory=list)
    """Platform lines applied while the drop was closed (or not yet launched)."""
    variants: list[VariantReconciliation] | msgspec.UnsetType = msgspec.UNSET
    """A drop with variants: each variant's own report (the drop's lists are theirs together,
    its counters their sums). Absent for a drop without variants."""


class VariantReconciliation(DropReconciliation, frozen=True, kw_only=True):
    """One variant's report: its SKU (what platform lines named), its counters, its lines."""

    variant: str


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
    why: str = ""
    """Why the order could not be read from the platform yet ('' = not tried yet)."""


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


def merge_variants(
    drop_id: str, sku: str, state: DropState, counters: Counters, parts: list[VariantReconciliation]
) -> DropReconciliation:
    """A drop's report from its variants' (pure): every list is theirs together, in variant order."""
    sold: dict[str, int] = {}
    for part in parts:
        for platform, units in part.webhook_units_sold.items():
            sold[platform] = sold.get(platform, 0) + units
    return DropReconciliation(
        drop_id=drop_id,
        sku=sku,
        state=state,
        counters=counters,
        webhook_units_sold=sold,
        unmatched_holds=[h for part in parts for h in part.unmatched_holds],
        orders_without_hold=[s for part in parts for s in part.orders_without_hold],
        oversold_lines=[s for part in parts for s in part.oversold_lines],
        cancellations=[c for part in parts for c in part.cancellations],
        restocked_units=sum(part.restocked_units for part in parts),
        unoversold_units=sum(part.unoversold_units for part in parts),
        cancelled_before_order=[c for part in parts for c in part.cancelled_before_order],
        confirm_conflicts=[c for part in parts for c in part.confirm_conflicts],
        sales_when_not_live=[s for part in parts for s in part.sales_when_not_live],
        variants=parts,
    )


class LedgerFold:
    """What reconciliation needs from a drop's ledger, fed one entry at a time, in order."""

    def __init__(self) -> None:
        self.confirmed_at: dict[str, int] = {}
        self.sales: list[SaleLine] = []
        self.restocks: list[CancellationRestock] = []
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
                    CancellationRestock(
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
