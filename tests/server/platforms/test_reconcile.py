"""Reconciliation: the per-show report (every kind of discrepancy, the grace period), the periodic
reconciler (alerts once, one node per interval, only active shows) and ``livedrop reconcile``."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator

import msgspec
import pytest
from redis.asyncio import Redis

from server import keys
from server.ops.local_redis import LocalRedis
from server.platforms.reconcile.report import ReconciliationReport
from server.platforms.reconcile.service import Reconciler
from server.platforms.webhooks.events import Platform
from server.shows.catalog import UnknownShow
from stock import HoldTaken
from stock.types import Counters
from tests.support.invariants import assert_drop_invariants
from tests.support.webhooks import (
    LiveApp,
    define_drop,
    drain,
    reconciliation_report,
    running_app,
    shopify_headers,
    shopify_order,
    standard_headers,
    standard_order,
    stream,
    tiktok_headers,
    tiktok_note,
    webhook_settings,
)

GRACE = 300.0


@pytest.fixture
async def app(redis_server: LocalRedis, redis: Redis) -> AsyncIterator[LiveApp]:
    async with running_app(redis_server.url, webhook_settings(reconcile_grace_seconds=GRACE)) as live:
        yield live


async def standard(app: LiveApp, kind: str, order_id: str, lines: list[dict[str, object]]) -> None:
    body = standard_order(kind, order_id, lines)
    assert (await app.post(Platform.STANDARD, body, standard_headers(body))).status_code == 200


async def a_show_with_every_discrepancy(app: LiveApp) -> dict[str, str]:
    """d1 (GLOW, 10 units) and d2 (TINT, 1 unit) in show1; returns the hold ids it made."""
    engine = app.state["engine"]
    await define_drop(app.state, "d1", "GLOW", 10)
    await define_drop(app.state, "d2", "TINT", 1)
    holds, refs = {}, {}
    for name, qty in (("h1", 1), ("h2", 2), ("h3", 1)):
        result = await engine.reserve("d1", f"viewer-{name}", qty, f"req-{name}")
        assert result.hold_id is not None
        holds[name], refs[name] = result.hold_id, result.hold_ref
    # h1: the checkout confirmed it, and no platform order ever came; a second checkout then
    # tried to confirm it for another order (refused: a conflict the report shows).
    await engine.confirm(holds["h1"], order_ref="checkout-1")
    with pytest.raises(HoldTaken):
        await engine.confirm_ref(refs["h1"], order_ref="checkout-2")
    # h2: confirmed by the checkout with the Shopify order id, whose webhook then matched it.
    await engine.confirm(holds["h2"], order_ref="2002")
    body = shopify_order(2002, [(21, "GLOW", 2)])
    await app.post(Platform.SHOPIFY, body, shopify_headers(body, "orders/paid"))
    # An order without any hold, one naming a bare (guessable) hold id, one a forged reference.
    await standard(app, "paid", "o4", [{"line_id": "1", "sku": "GLOW", "qty": 1}])
    await standard(app, "paid", "o9", [{"line_id": "1", "sku": "GLOW", "qty": 1, "hold": "d1.999"}])
    forged = refs["h3"][:-1] + ("A" if refs["h3"][-1] != "A" else "B")
    await standard(app, "paid", "o10", [{"line_id": "1", "sku": "GLOW", "qty": 1, "hold": forged}])
    # d2: oversold by 2, cancelled (restock 1, unoversold 2), then oversold by 1 again.
    await standard(app, "paid", "o5", [{"line_id": "1", "sku": "TINT", "qty": 3}])
    await drain(app.state)
    await standard(app, "cancelled", "o5", [])
    await drain(app.state)
    await standard(app, "paid", "o6", [{"line_id": "1", "sku": "TINT", "qty": 2}])
    # A cancel that came before its order; an unknown SKU; a TikTok order to fetch.
    await standard(app, "cancelled", "o7", [{"line_id": "1", "sku": "GLOW", "qty": 1}])
    await drain(app.state)
    await standard(app, "paid", "o7", [{"line_id": "1", "sku": "GLOW", "qty": 1}])
    await standard(app, "paid", "o8", [{"line_id": "1", "sku": "MYSTERY", "qty": 4}])
    note = tiktok_note("576486316948490001", "AWAITING_SHIPMENT")
    await app.post(Platform.TIKTOK, note, tiktok_headers(note))
    await drain(app.state)
    # h3 expires (the drop's clock moves past its 600 s), then an order names it.
    await engine.fast_forward("d1", 601)
    await standard(app, "paid", "o3", [{"line_id": "1", "sku": "GLOW", "qty": 1, "hold": refs["h3"]}])
    # A Shopify line with quantity 0 (not applied), then a sale after d2 has ended.
    body = shopify_order(2003, [(31, "GLOW", 0)])
    await app.post(Platform.SHOPIFY, body, shopify_headers(body, "orders/paid"))
    await drain(app.state)
    await engine.close("d2")
    await engine.adjust("d2", 1, "restock-after-end")
    await standard(app, "paid", "o11", [{"line_id": "1", "sku": "TINT", "qty": 1}])
    await drain(app.state)
    return holds


async def test_the_report_shows_every_kind_of_discrepancy(app: LiveApp) -> None:
    holds = await a_show_with_every_discrepancy(app)
    report = await reconciliation_report(app.state, "show1")
    assert report.show_id == "show1" and report.grace_seconds == GRACE
    d1, d2 = report.drops
    assert (d1.drop_id, d1.sku, d2.drop_id, d2.sku) == ("d1", "GLOW", "d2", "TINT")

    # 601 s have passed on d1's clock since h1 was confirmed: past the 300 s grace.
    assert [(h.hold_id, h.qty, h.order_ref) for h in d1.unmatched_holds] == [(holds["h1"], 1, "checkout-1")]
    assert 600 <= d1.unmatched_holds[0].waiting_seconds < 700
    without = {(s.platform, s.order_id): s.reason for s in d1.orders_without_hold}
    assert without == {
        ("standard", "o4"): "no_hold_ref",
        ("standard", "o9"): "hold_ref_invalid",
        ("standard", "o10"): "hold_ref_invalid",
        ("standard", "o3"): "hold_expired",
    }
    assert [(c.hold_id, c.order_ref, c.confirmed_with, c.reason) for c in d1.confirm_conflicts] == [
        (holds["h1"], "checkout-2", "checkout-1", "hold_taken")
    ]
    assert [(b.platform, b.order_id, b.line_id, b.qty) for b in report.bad_qty_lines] == [("shopify", "2003", "31", 0)]
    assert [(s.order_id, s.sold) for s in d2.sales_when_not_live] == [("o11", 1)]
    assert d1.sales_when_not_live == []
    assert d1.webhook_units_sold == {"shopify": 2, "standard": 4}
    assert [(c.order_id, c.order_ignored) for c in d1.cancelled_before_order] == [("o7", True)]
    assert d1.oversold_lines == [] and d1.cancellations == []

    assert d2.counters == Counters(2, 0, 0, 2, 1)
    assert [(s.order_id, s.sold, s.oversold) for s in d2.oversold_lines] == [("o5", 1, 2), ("o6", 1, 1)]
    assert [(c.order_id, c.event, c.restocked, c.unoversold) for c in d2.cancellations] == [("o5", "cancel", 1, 2)]
    assert (d2.restocked_units, d2.unoversold_units) == (1, 2)

    assert [(u.sku, u.platform, u.lines, u.units, u.last_order_id) for u in report.unknown_skus] == [
        ("MYSTERY", "standard", 1, 4, "o8")
    ]
    assert [(f.platform, f.order_id, f.status) for f in report.needs_fetch] == [
        ("tiktok", "576486316948490001", "paid")
    ]
    assert report.totals.unmatched_holds == 1 and report.totals.unmatched_hold_units == 1
    assert report.totals.orders_without_hold == 4 + 3  # d2's three orders named no hold either
    assert (report.totals.confirm_conflicts, report.totals.bad_qty_lines, report.totals.sales_when_not_live) == (
        1,
        1,
        1,
    )
    assert report.totals.oversold_units == 1 and report.totals.restocked_units == 1
    assert report.totals.unknown_sku_lines == 1 and report.totals.needs_fetch == 1
    assert report.totals.dead_deliveries == 0
    for drop_id in ("d1", "d2"):
        await assert_drop_invariants(app.state["engine"], drop_id)


async def test_a_confirmed_hold_is_unmatched_only_after_the_grace_period(app: LiveApp) -> None:
    engine = app.state["engine"]
    await define_drop(app.state, "d1", "GLOW", 10)
    hold = await engine.reserve("d1", "viewer-1", 1, "req-1")
    assert hold.hold_id is not None
    await engine.confirm(hold.hold_id, order_ref="5001")
    assert (await reconciliation_report(app.state, "show1")).drops[0].unmatched_holds == []
    await engine.fast_forward("d1", GRACE + 1)
    assert [h.hold_id for h in (await reconciliation_report(app.state, "show1")).drops[0].unmatched_holds] == [
        hold.hold_id
    ]
    # The platform's order arrives late: the hold is matched and leaves the report.
    await standard(app, "paid", "5001", [{"line_id": "1", "sku": "GLOW", "qty": 1}])
    await drain(app.state)
    assert (await reconciliation_report(app.state, "show1")).drops[0].unmatched_holds == []
    assert await assert_drop_invariants(engine, "d1") == Counters(10, 9, 0, 1, 0)


async def test_an_unknown_show_has_no_report(app: LiveApp) -> None:
    with pytest.raises(UnknownShow):
        await reconciliation_report(app.state, "nope")


async def test_the_periodic_reconciler_alerts_once_on_one_node_for_active_shows(app: LiveApp, redis: Redis) -> None:
    await a_show_with_every_discrepancy(app)
    await define_drop(app.state, "old", "OLD", 5, show_id="show-ended")
    await app.state["engine"].close("old")
    state = app.state
    settings = webhook_settings(reconcile_grace_seconds=GRACE, reconcile_interval=60, reconcile_window_seconds=0)

    def node(name: str) -> Reconciler:
        named = msgspec.structs.replace(settings, consumer_name=name)
        return Reconciler(
            state["redis"], state["engine"], state["catalog"], state["webhooks"].alerts, state["metrics"], named
        )

    first, second = node("node-a"), node("node-b")
    reports = await first.reconcile_once()
    # show-ended's only drop closed longer ago than the window: it is left alone.
    assert [r.show_id for r in reports] == ["show1"]
    assert await second.reconcile_once() == []  # node-a holds show1 for this interval
    raw = await redis.get(keys.report("show1"))
    assert raw is not None
    stored = msgspec.json.decode(raw, type=ReconciliationReport)
    assert stored.totals == reports[0].totals
    unmatched = [f for f in await stream(redis, keys.ALERTS) if f[b"kind"] == b"unmatched_hold"]
    assert len(unmatched) == 1 and unmatched[0][b"drop"] == b"d1" and unmatched[0][b"qty"] == b"1"
    # Run again (forced past the lock): the same hold raises no second alert.
    await first.reconcile_once(force=True)
    await second.reconcile_once(force=True)
    again = [f for f in await stream(redis, keys.ALERTS) if f[b"kind"] == b"unmatched_hold"]
    assert len(again) == 1


async def test_the_reconciler_task_runs_in_the_lifespan(redis_server: LocalRedis, redis: Redis) -> None:
    settings = webhook_settings(reconcile_interval=0.05, reconcile_grace_seconds=0)
    async with running_app(redis_server.url, settings) as app:
        await define_drop(app.state, "d1", "GLOW", 10)
        hold = await app.state["engine"].reserve("d1", "viewer-1", 1, "req-1")
        assert hold.hold_id is not None
        await app.state["engine"].confirm(hold.hold_id)
        async with asyncio.timeout(10):
            while not await redis.xlen(keys.ALERTS):
                await asyncio.sleep(0.01)
        [alert] = await stream(redis, keys.ALERTS)
        assert alert[b"kind"] == b"unmatched_hold" and alert[b"hold"] == hold.hold_id.encode()


async def run_cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.cli",
        "reconcile",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_livedrop_reconcile_prints_the_report_as_json(app: LiveApp, redis_server: LocalRedis) -> None:
    await a_show_with_every_discrepancy(app)
    code, out, _ = await run_cli("show1", "--redis-url", redis_server.url, "--grace", "0")
    assert code == 0
    report = json.loads(out)
    assert report["show_id"] == "show1"
    assert report["totals"]["unmatched_holds"] == 1 and report["totals"]["oversold_units"] == 1
    assert [d["drop_id"] for d in report["drops"]] == ["d1", "d2"]
    code, _, err = await run_cli("no-such-show", "--redis-url", redis_server.url)
    assert code == 1 and "no show no-such-show" in err
