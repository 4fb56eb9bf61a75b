"""What the host channel tells a host, as pure code: its frames (``host_stats``, ``alert``), the
per-drop figures computed from two snapshots of the engine, and the texts of alerts. No I/O: the
ticker in ``server.host.channel`` feeds these with snapshots and stream entries."""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from server.shows.node import now_ms
from server.viewers import protocol as p
from stock.types import DropSnapshot

# Alert kinds the ticker makes itself (the stream's own kinds are server.platforms.webhooks.alerts.AlertKind).
ALERT_SLOW_VIEWERS: Final = "slow_viewers"
ALERT_DROP_OVERSOLD: Final = "drop_oversold"


# -- frames --------------------------------------------------------------------------------------
class Auth(msgspec.Struct, tag="auth", forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


HostClientFrame = Auth | p.Ping
host_decoder: Final[p.FrameDecoder[HostClientFrame]] = p.FrameDecoder(HostClientFrame)  # depth-limited


class VariantFigures(msgspec.Struct):
    """One variant's counters on a drop card (``DropFigures.variants``)."""

    variant: str
    sku: str
    total: int
    available: int
    held: int
    sold: int
    oversold: int


class DropFigures(msgspec.Struct):
    """A drop with variants: counters and rates over all of them, each one's in ``variants``
    (left out for a drop without variants)."""

    drop: str
    state: str
    total: int
    available: int
    held: int
    sold: int
    oversold: int
    holds_created: int
    holds_confirmed: int
    holds_expired: int
    reservations_per_second: float
    sold_per_second: float
    variants: list[VariantFigures] | msgspec.UnsetType = msgspec.UNSET


class Sales(msgspec.Struct):
    units: int
    revenue: dict[str, int]  # minor units per currency: sold x price


class HostStats(msgspec.Struct, tag="host_stats"):
    show: str
    server_time: int
    viewers: int
    reservations_per_second: float
    sold_per_second: float
    sales: Sales
    drops: list[DropFigures]


class Alert(msgspec.Struct, tag="alert"):
    id: str
    kind: str
    at: int
    message: str
    drop: str | None = None
    detail: dict[str, str] = msgspec.field(default_factory=dict)


encoder: Final = msgspec.json.Encoder()


# -- pure parts: figures and alert texts ---------------------------------------------------------
def drop_figures(now: DropSnapshot, before: DropSnapshot | None, elapsed: float) -> DropFigures:
    """One drop's line of ``host_stats``. Rates are tally deltas over the time between the two
    snapshots (0 on the first tick: no baseline yet). Tallies only grow, so a delta is never
    negative; a restock changes ``total``, not ``sold``."""
    c = now.counters
    if before is None or elapsed <= 0:
        reserves = sold = 0.0
    else:
        reserves = max(0, now.holds_created - before.holds_created) / elapsed
        sold = max(0, c.sold - before.counters.sold) / elapsed
    return DropFigures(
        drop=now.drop_id,
        state=now.state.value,
        total=c.total,
        available=c.available,
        held=c.held,
        sold=c.sold,
        oversold=c.oversold,
        holds_created=now.holds_created,
        holds_confirmed=now.holds_confirmed,
        holds_expired=now.holds_expired,
        reservations_per_second=round(reserves, 2),
        sold_per_second=round(max(0.0, sold), 2),
    )


def variant_figures(variant: str, sku: str, snap: DropSnapshot) -> VariantFigures:
    c = snap.counters
    return VariantFigures(
        variant=variant, sku=sku, total=c.total, available=c.available, held=c.held, sold=c.sold, oversold=c.oversold
    )


def host_stats(show_id: str, viewers: int, figures: list[DropFigures], prices: dict[str, dict[str, int]]) -> HostStats:
    """``prices`` per drop id, and per ``<drop>~<variant>`` for each variant (its own or its
    drop's): a variant's units are counted at its price."""
    revenue: dict[str, int] = {}
    for f in figures:
        sold = (
            [(f.drop, f.sold)]
            if f.variants is msgspec.UNSET
            else [(f"{f.drop}~{v.variant}", v.sold) for v in f.variants]
        )
        for unit, units in sold:
            for currency, price in prices.get(unit, {}).items():
                revenue[currency] = revenue.get(currency, 0) + price * units
    return HostStats(
        show=show_id,
        server_time=now_ms(),
        viewers=viewers,
        reservations_per_second=round(sum(f.reservations_per_second for f in figures), 2),
        sold_per_second=round(sum(f.sold_per_second for f in figures), 2),
        sales=Sales(units=sum(f.sold for f in figures), revenue=revenue),
        drops=figures,
    )


def stream_alert(entry_id: str, fields: dict[str, str], show_id: str) -> Alert | None:
    """An alert frame for one entry of the alerts stream, or None if it is another show's.
    Entries that name no show (a dead webhook delivery) concern every show."""
    shown = fields.get("show", "")
    if shown and shown != show_id:
        return None
    kind = fields.get("kind", "alert")
    drop = fields.get("drop") or None
    detail = {k: v for k, v in fields.items() if k not in ("kind", "show")}
    qty = fields.get("qty", "?")
    variant = f" ({fields['variant']})" if fields.get("variant") else ""  # a drop with variants: which one
    match kind:
        case "oversold":
            message = (
                f"Oversold: {fields.get('platform', 'a platform')} order {fields.get('order', '?')} "
                f"sold {qty} unit(s) of {drop or '?'}{variant} that were no longer available"
            )
        case "unmatched_hold":
            message = f"Hold {fields.get('hold', '?')} ({qty} unit(s)) was confirmed but no platform order matches it"
        case "dead_delivery":
            message = (
                f"A {fields.get('platform', '?')} webhook could not be applied after several attempts: "
                f"{fields.get('error', 'unknown error')}"
            )
        case "channel_failing":
            message = (
                f"Sales channel {fields.get('channel', '?')} is failing ({fields.get('error', '?')}): "
                f"{fields.get('message', '')} It shows stale stock until this is fixed."
            )
        case "channel_sku_unknown":
            message = (
                f"Sales channel {fields.get('channel', '?')} refused SKU {fields.get('sku', '?')} "
                f"({fields.get('message') or fields.get('error', '?')}): check its channel mapping"
            )
        case _:
            message = " ".join(f"{k}={v}" for k, v in detail.items()) or kind
    try:
        at = int(entry_id.split("-", 1)[0])
    except ValueError:
        at = now_ms()
    return Alert(id=entry_id, kind=kind, at=at, message=message, drop=drop, detail=detail)


def oversold_alert(snap: DropSnapshot, before: DropSnapshot) -> Alert:
    rose = snap.counters.oversold - before.counters.oversold
    return Alert(
        id=f"oversold-{snap.drop_id}-{snap.counters.oversold}",
        kind=ALERT_DROP_OVERSOLD,
        at=now_ms(),
        message=f"{rose} more unit(s) of {snap.drop_id} sold by platforms with none available "
        f"(oversold now {snap.counters.oversold})",
        drop=snap.drop_id,
        detail={"oversold": str(snap.counters.oversold), "rose": str(rose)},
    )
