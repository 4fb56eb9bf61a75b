"""Platform order lines on a drop with variants: each line's SKU finds its variant, a hold
reference pays only for a line of its own variant, cancels restock the variant they came from, and
the reconciliation report has a part per variant. Invariants (per variant and per drop) are checked
after every step."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
from redis.asyncio import Redis

from server import keys
from server.ops.local_redis import LocalRedis
from server.platforms.webhooks.events import Platform
from server.shows.catalog import DropInfo, Show
from server.shows.variants import VariantInfo
from stock import StockEngine
from stock.types import Counters, HoldState
from tests.support.invariants import assert_variant_drop_invariants
from tests.support.webhooks import (
    LiveApp,
    drain,
    reconciliation_report,
    running_app,
    shopify_headers,
    shopify_order,
    standard_headers,
    standard_order,
    stream,
    webhook_settings,
)


@pytest.fixture
async def app(redis_server: LocalRedis, redis: Redis) -> AsyncIterator[LiveApp]:
    async with running_app(redis_server.url, webhook_settings(reconcile_grace_seconds=300.0)) as live:
        catalog = live.state["catalog"]
        await catalog.put_show(Show(show_id="show1", title="Show"))
        await catalog.put_drop(
            DropInfo(
                drop_id="shoe",
                show_id="show1",
                sku="SNK",
                title="Sneaker",
                total=4,
                variants=[
                    VariantInfo(id="s41", sku="SNK-41", total=2, options={"size": "41"}),
                    VariantInfo(id="s42", sku="SNK-42", total=2, options={"size": "42"}),
                ],
            )
        )
        await live.state["engine"].open("shoe")
        yield live


async def standard(app: LiveApp, kind: str, order_id: str, lines: list[dict[str, object]]) -> None:
    body = standard_order(kind, order_id, lines)
    assert (await app.post(Platform.STANDARD, body, standard_headers(body))).status_code == 200
    await drain(app.state)


async def sizes(engine: StockEngine) -> dict[str, Counters]:
    return await assert_variant_drop_invariants(engine, "shoe")


async def test_order_lines_find_their_variant_by_sku(app: LiveApp) -> None:
    engine: StockEngine = app.state["engine"]
    held = await engine.reserve("shoe", "viewer-1", 1, "req-1", variant="s41")
    assert held.hold_id == "shoe~s41.1"
    await sizes(engine)

    # A Shopify order for size 41 carrying the hold's reference confirms that hold.
    body = shopify_order(1001, [(1, "SNK-41", 1)], hold=held.hold_ref)
    assert (await app.post(Platform.SHOPIFY, body, shopify_headers(body, "orders/paid"))).status_code == 200
    await drain(app.state)
    assert (await engine.hold(held.hold_id)).state is HoldState.CONFIRMED
    each = await sizes(engine)
    assert each["s41"] == Counters(2, 1, 0, 1) and each["s42"] == Counters(2, 2, 0, 0)

    # A line for size 42 without a hold takes from size 42 only.
    await standard(app, "paid", "o2", [{"line_id": "1", "sku": "SNK-42", "qty": 1}])
    each = await sizes(engine)
    assert each["s41"] == Counters(2, 1, 0, 1) and each["s42"] == Counters(2, 1, 0, 1)

    # Size 41's hold cannot pay for a size 42 line: the line takes from 42, the hold stays held.
    other = await engine.reserve("shoe", "viewer-2", 1, "req-2", variant="s41")
    await standard(app, "paid", "o3", [{"line_id": "1", "sku": "SNK-42", "qty": 1, "hold": other.hold_ref}])
    assert (await engine.hold(other.hold_id or "")).state is HoldState.HELD
    each = await sizes(engine)
    assert each["s41"] == Counters(2, 0, 1, 1) and each["s42"] == Counters(2, 0, 0, 2)

    # Size 42 is sold out: another line is oversold on 42 alone, and the alert names the size.
    await standard(app, "paid", "o4", [{"line_id": "1", "sku": "SNK-42", "qty": 2}])
    each = await sizes(engine)
    assert each["s42"] == Counters(2, 0, 0, 2, 2) and each["s41"].oversold == 0
    alerts = [f for f in await stream(app.state["redis"], keys.ALERTS) if f[b"kind"] == b"oversold"]
    assert alerts and alerts[-1][b"drop"] == b"shoe" and alerts[-1][b"variant"] == b"s42"
    assert alerts[-1][b"show"] == b"show1"

    # Cancelling it gives size 42's oversold units back; cancelling o2 restocks size 42.
    await standard(app, "cancelled", "o4", [])
    await standard(app, "cancelled", "o2", [{"line_id": "1", "sku": "SNK-42", "qty": 1}])
    each = await sizes(engine)
    assert each["s42"] == Counters(2, 1, 0, 1, 0) and each["s41"] == Counters(2, 0, 1, 1)

    # The drop's own SKU names the product, not stock: its lines are unknown SKUs.
    await standard(app, "paid", "o5", [{"line_id": "1", "sku": "SNK", "qty": 1}])
    await sizes(engine)

    report = await reconciliation_report(app.state, "show1")
    (drop,) = report.drops
    assert drop.counters == await engine.counters("shoe")
    parts = {p.variant: p for p in drop.variants or []}
    assert set(parts) == {"s41", "s42"} and parts["s41"].sku == "SNK-41"
    assert parts["s41"].webhook_units_sold == {"shopify": 1}
    assert {(s.order_id, s.reason) for s in parts["s42"].orders_without_hold} == {
        ("o2", "no_hold_ref"),
        ("o3", "hold_other_drop"),
        ("o4", "no_hold_ref"),
    }
    assert parts["s42"].restocked_units == 1 and parts["s42"].unoversold_units == 2
    assert len(drop.orders_without_hold) == 3 and drop.webhook_units_sold == {"shopify": 1, "standard": 2}
    assert report.totals.unknown_sku_lines == 1 and report.unknown_skus[0].sku == "SNK"


async def test_a_single_sku_report_has_no_variants(app: LiveApp, redis: Redis) -> None:
    catalog = app.state["catalog"]
    await catalog.put_drop(DropInfo(drop_id="mug", show_id="show1", sku="MUG", title="Mug", total=2))
    await app.state["engine"].open("mug")
    await standard(app, "paid", "m1", [{"line_id": "1", "sku": "MUG", "qty": 1}])
    report = await reconciliation_report(app.state, "show1")
    mug = next(d for d in msgspec.to_builtins(report)["drops"] if d["drop_id"] == "mug")
    assert "variants" not in mug and mug["webhook_units_sold"] == {"standard": 1}
