"""The KPIs a host and a marketer want per drop and per show, computed from the stock engine's
tallies and ledger (the ledger is the record of every unit's path, so the figures are
reproducible after the fact), plus the audience size recorded when the drop was launched."""

from __future__ import annotations

from collections import Counter as Tally
from typing import TYPE_CHECKING

import msgspec

from server.keys import launch_key
from server.shows.node import viewers_now
from stock.types import Counters

if TYPE_CHECKING:
    from server.shows.actions import HostActions

LIVE_CHANNEL = "live"  # units sold through LiveDrop's own holds, confirmed by the checkout


class DropStats(msgspec.Struct):
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
    per_second: Tally[int] = Tally()
    channels: Tally[str] = Tally()
    orders = 0
    sold_out_at: int | None = None
    async for entry in host.engine.iter_ledger(drop_id):
        if entry.op in ("reserve", "handout"):
            per_second[entry.at_ms // 1000] += 1
        if entry.op == "confirm":
            channels[LIVE_CHANNEL] += entry.d_sold
            orders += 1
        elif entry.op == "order" and entry.d_sold:
            line = entry.fields.get("line", "")
            channels[line.split("|", 1)[0] or "platform"] += entry.d_sold
            orders += 1
        elif entry.op == "cancel" and entry.d_sold:
            line = entry.fields.get("line", "")
            channels[line.split("|", 1)[0] or "platform"] += entry.d_sold
        if sold_out_at is None and entry.after.available == 0 and entry.after.total > 0 and snap.opened_at_ms:
            sold_out_at = entry.at_ms
    if snap.closed_at_ms:
        end = snap.closed_at_ms
    elif per_second:
        end = (max(per_second) + 1) * 1000
    else:
        end = snap.opened_at_ms
    open_seconds = max(1.0, (end - snap.opened_at_ms) / 1000) if snap.opened_at_ms else 1.0
    sold_units = sum(channels.values())
    revenue = {currency: price * sold_units for currency, price in prices.items()}
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
        sell_through_seconds=(sold_out_at - snap.opened_at_ms) / 1000 if sold_out_at and snap.opened_at_ms else None,
        conversion=round(snap.holds_confirmed / viewers_at_launch, 4) if viewers_at_launch else None,
        units_by_channel=dict(channels),
        revenue=revenue,
        average_order_value={c: round(v / orders, 2) for c, v in revenue.items()} if orders else {},
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
