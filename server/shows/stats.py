"""The KPIs a host and a marketer want per drop and per show, computed from the stock engine's
tallies and ledger (the ledger is the record of every unit's path, so the figures are
reproducible after the fact), plus the audience size recorded when the drop was launched."""

from __future__ import annotations

from collections import Counter as Tally
from typing import TYPE_CHECKING

import msgspec

from server.keys import launch_key
from server.shows.node import viewers_now
from server.shows.variants import prices_of
from stock.types import Counters, DropSnapshot

if TYPE_CHECKING:
    from server.shows.actions import HostActions

LIVE_CHANNEL = "live"  # units sold through LiveDrop's own holds, confirmed by the checkout


class VariantStats(msgspec.Struct):
    """One variant's share of its drop's figures: its stock, tallies, units per channel and revenue
    (at its own price, else the drop's)."""

    variant: str
    sku: str
    counters: Counters
    holds_created: int
    holds_confirmed: int
    holds_expired: int
    holds_released: int
    sell_through_seconds: float | None
    units_by_channel: dict[str, int]
    revenue: dict[str, int]


class DropStats(msgspec.Struct):
    """A drop with variants: its figures are over all of them, and ``variants`` has each one's."""

    drop_id: str
    state: str
    counters: Counters
    viewers_at_launch: int
    opened_at_ms: int
    closed_at_ms: int
    holds_created: int
    holds_confirmed: int
    holds_expired: int
    holds_released: int
    reservations_per_second: float
    peak_reservations_per_second: int
    sell_through_seconds: float | None
    conversion: float | None
    units_by_channel: dict[str, int]
    revenue: dict[str, int]
    average_order_value: dict[str, float]
    variants: list[VariantStats] = msgspec.field(default_factory=list)


class _Tallies:
    """What one ledger (a drop's, or one variant's) says about sales and reservations."""

    def __init__(self) -> None:
        self.per_second: Tally[int] = Tally()
        self.channels: Tally[str] = Tally()
        self.orders = 0
        self.sold_out_at: int | None = None

    async def read(self, host: HostActions, drop_id: str, variant: str, opened_at_ms: int) -> _Tallies:
        async for entry in host.engine.iter_ledger(drop_id, variant=variant):
            if entry.op in ("reserve", "handout"):
                self.per_second[entry.at_ms // 1000] += 1
            if entry.op == "confirm":
                self.channels[LIVE_CHANNEL] += entry.d_sold
                self.orders += 1
            elif entry.op == "order" and entry.d_sold:
                line = entry.fields.get("line", "")
                self.channels[line.split("|", 1)[0] or "platform"] += entry.d_sold
                self.orders += 1
            elif entry.op == "cancel" and entry.d_sold:
                line = entry.fields.get("line", "")
                self.channels[line.split("|", 1)[0] or "platform"] += entry.d_sold
            if self.sold_out_at is None and entry.after.available == 0 and entry.after.total > 0 and opened_at_ms:
                self.sold_out_at = entry.at_ms
        return self


def _sell_through(sold_out_at: int | None, opened_at_ms: int) -> float | None:
    return (sold_out_at - opened_at_ms) / 1000 if sold_out_at and opened_at_ms else None


class ShowStats(msgspec.Struct):
    show_id: str
    viewers: int
    drops: list[DropStats]
    units_by_channel: dict[str, int]
    revenue: dict[str, int]


async def drop_stats(host: HostActions, drop_id: str) -> DropStats:
    snap = await host.engine.snapshot(drop_id)
    info = await host.catalog.get_drop(drop_id)
    prices = info.prices if info else {}
    launched = await host.engine.redis.hget(launch_key(drop_id), "viewers")
    viewers_at_launch = int(launched or 0)
    variants = info.variants if info else []
    per_second: Tally[int] = Tally()
    channels: Tally[str] = Tally()
    orders = 0
    revenue: Tally[str] = Tally()
    each: list[VariantStats] = []
    if not variants:
        whole = await _Tallies().read(host, drop_id, "", snap.opened_at_ms)
        per_second, channels, orders, sold_out_at = whole.per_second, whole.channels, whole.orders, whole.sold_out_at
        revenue.update({currency: price * sum(channels.values()) for currency, price in prices.items()})
    else:
        # Sold out when the last of its variants sold out (each may come back, as a drop may).
        sold_out_times: list[int | None] = []
        for v in variants:
            part = await _Tallies().read(host, drop_id, v.id, snap.opened_at_ms)
            vsnap = await host.engine.snapshot(drop_id, v.id)
            units = sum(part.channels.values())
            vrevenue = {currency: price * units for currency, price in prices_of(prices, v).items()}
            per_second.update(part.per_second)
            channels.update(part.channels)
            revenue.update(vrevenue)
            orders += part.orders
            sold_out_times.append(part.sold_out_at)
            each.append(_variant_stats(v.id, v.sku, vsnap, part, vrevenue, snap.opened_at_ms))
        known = [t for t in sold_out_times if t is not None]
        sold_out_at = max(known) if known and len(known) == len(sold_out_times) else None
    if snap.closed_at_ms:
        end = snap.closed_at_ms
    elif per_second:
        end = (max(per_second) + 1) * 1000
    else:
        end = snap.opened_at_ms
    open_seconds = max(1.0, (end - snap.opened_at_ms) / 1000) if snap.opened_at_ms else 1.0
    return DropStats(
        drop_id=drop_id,
        state=snap.state.value,
        counters=snap.counters,
        viewers_at_launch=viewers_at_launch,
        opened_at_ms=snap.opened_at_ms,
        closed_at_ms=snap.closed_at_ms,
        holds_created=snap.holds_created,
        holds_confirmed=snap.holds_confirmed,
        holds_expired=snap.holds_expired,
        holds_released=snap.holds_released,
        reservations_per_second=round(sum(per_second.values()) / open_seconds, 2),
        peak_reservations_per_second=max(per_second.values(), default=0),
        sell_through_seconds=_sell_through(sold_out_at, snap.opened_at_ms),
        conversion=round(snap.holds_confirmed / viewers_at_launch, 4) if viewers_at_launch else None,
        units_by_channel=dict(channels),
        revenue=dict(revenue),
        average_order_value={c: round(v / orders, 2) for c, v in revenue.items()} if orders else {},
        variants=each,
    )


def _variant_stats(
    variant: str, sku: str, snap: DropSnapshot, part: _Tallies, revenue: dict[str, int], opened_at_ms: int
) -> VariantStats:
    return VariantStats(
        variant=variant,
        sku=sku,
        counters=snap.counters,
        holds_created=snap.holds_created,
        holds_confirmed=snap.holds_confirmed,
        holds_expired=snap.holds_expired,
        holds_released=snap.holds_released,
        sell_through_seconds=_sell_through(part.sold_out_at, opened_at_ms),
        units_by_channel=dict(part.channels),
        revenue=revenue,
    )


async def show_stats(host: HostActions, show_id: str) -> ShowStats:
    drops = [await drop_stats(host, drop_id) for drop_id in await host.catalog.drop_ids(show_id)]
    channels: Tally[str] = Tally()
    revenue: Tally[str] = Tally()
    for d in drops:
        channels.update(d.units_by_channel)
        revenue.update(d.revenue)
    return ShowStats(
        show_id=show_id,
        viewers=await viewers_now(host.live, show_id),
        drops=drops,
        units_by_channel=dict(channels),
        revenue=dict(revenue),
    )
