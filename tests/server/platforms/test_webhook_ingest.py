"""Recorded deliveries applied to stock by the consumer group: order semantics (whole-order cancels,
refunds, holds, unknown SKUs, oversold alerts), any delivery order giving the in-order result,
and durability — Redis killed between acknowledgement and application, consumers that die with
entries pending, entries that can never apply."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from server import keys
from server.ops.local_redis import LocalCluster, LocalRedis
from server.platforms.webhooks.consumer import MAX_ATTEMPTS
from server.platforms.webhooks.events import Platform, PlatformOrderEvent
from server.platforms.webhooks.ingest import decode_delivery
from server.platforms.webhooks.normalize import normalize
from stock.types import Counters, HoldState
from tests.support.invariants import assert_drop_invariants
from tests.support.util import RedisServerFactory, scaled
from tests.support.webhooks import (
    LiveApp,
    define_drop,
    drain,
    read_as,
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

_orders = itertools.count(1)


@pytest.fixture
async def app(redis_server: LocalRedis, redis: Redis) -> AsyncIterator[LiveApp]:
    async with running_app(redis_server.url, webhook_settings()) as live:
        yield live


async def post_standard(app: LiveApp, body: bytes, msg_id: str | None = None) -> str:
    response = await app.post(Platform.STANDARD, body, standard_headers(body, msg_id=msg_id))
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


def line(line_id: str, sku: str, qty: int, **extra: object) -> dict[str, object]:
    return {"line_id": line_id, "sku": sku, "qty": qty, **extra}


async def ledger_ops(app: LiveApp, drop_id: str) -> list[str]:
    return [e.op async for e in app.state["engine"].iter_ledger(drop_id)]


# -- what each kind of event does ---------------------------------------------------------------


async def test_a_whole_order_cancel_restocks_every_line_the_order_sold(app: LiveApp) -> None:
    await define_drop(app.state, "d1", "GLOW", 10)
    await define_drop(app.state, "d2", "TINT", 5)
    await post_standard(app, standard_order("paid", "o1", [line("1", "GLOW", 2), line("2", "TINT", 1)]))
    await drain(app.state)
    assert (await app.state["engine"].counters("d2")).sold == 1
    # TikTok Shop / WooCommerce deletions / Standard with no lines: "the whole order".
    await post_standard(app, standard_order("cancelled", "o1", []))
    await drain(app.state)
    assert await assert_drop_invariants(app.state["engine"], "d1") == Counters(10, 10, 0, 0, 0)
    assert await assert_drop_invariants(app.state["engine"], "d2") == Counters(5, 5, 0, 0, 0)


async def test_a_whole_order_cancel_that_comes_first_makes_the_order_ignored(app: LiveApp) -> None:
    await define_drop(app.state, "d1", "GLOW", 10)
    await post_standard(app, standard_order("cancelled", "o1", []))
    await drain(app.state)
    await post_standard(app, standard_order("paid", "o1", [line("1", "GLOW", 2)]))
    await drain(app.state)
    assert await assert_drop_invariants(app.state["engine"], "d1") == Counters(10, 10, 0, 0, 0)
    assert await ledger_ops(app, "d1") == ["define", "open", "cancel_first", "order_ignored"]


async def test_a_tiktok_whole_order_cancel_of_an_order_never_sold_here_changes_nothing(
    app: LiveApp, redis: Redis
) -> None:
    await define_drop(app.state, "d1", "GLOW", 10)
    body = tiktok_note("576486316948490001", "CANCEL")
    assert (await app.post(Platform.TIKTOK, body, tiktok_headers(body))).json() == {"status": "accepted"}
    await drain(app.state)
    assert await redis.hget(keys.order("tiktok", "576486316948490001"), "cancelled") == b"cancel"
    assert await assert_drop_invariants(app.state["engine"], "d1") == Counters(10, 10, 0, 0, 0)


async def test_refunds_restock_each_refund_once_and_never_beyond_the_line(app: LiveApp) -> None:
    await define_drop(app.state, "d1", "GLOW", 10)
    paid = shopify_order(77, [(1, "GLOW", 3)])
    await app.post(Platform.SHOPIFY, paid, shopify_headers(paid, "orders/paid"))

    def refund(refund_id: int, qty: int, restock_type: str = "return") -> bytes:
        items = [{"line_item_id": 1, "quantity": qty, "restock_type": restock_type, "line_item": {"id": 1, "sku": ""}}]
        return json.dumps({"id": refund_id, "order_id": 77, "refund_line_items": items}).encode()

    first = refund(500, 1)
    await app.post(Platform.SHOPIFY, first, shopify_headers(first, "refunds/create"))
    # The same refund again from another subscription (new webhook id): still one restock.
    await app.post(Platform.SHOPIFY, first, shopify_headers(first, "refunds/create"))
    kept = refund(501, 1, "no_restock")
    await app.post(Platform.SHOPIFY, kept, shopify_headers(kept, "refunds/create"))
    await drain(app.state)
    assert await assert_drop_invariants(app.state["engine"], "d1") == Counters(10, 8, 0, 2, 0)
    # Shopify reports a cancellation as orders/cancelled *and* a refund of the same units.
    cancelled = shopify_order(77, [(1, "GLOW", 3)])
    await app.post(Platform.SHOPIFY, cancelled, shopify_headers(cancelled, "orders/cancelled"))
    late = refund(502, 3)
    await app.post(Platform.SHOPIFY, late, shopify_headers(late, "refunds/create"))
    await drain(app.state)
    assert await assert_drop_invariants(app.state["engine"], "d1") == Counters(10, 10, 0, 0, 0)


async def test_a_sale_confirms_the_hold_it_names(app: LiveApp) -> None:
    await define_drop(app.state, "d1", "GLOW", 10)
    engine = app.state["engine"]
    hold = await engine.reserve("d1", "viewer-1", 2, "req-1")
    assert hold.hold_id is not None
    await post_standard(app, standard_order("paid", "o1", [line("1", "GLOW", 2, hold=hold.hold_ref)]))
    await drain(app.state)
    confirmed = await engine.hold(hold.hold_id)
    assert confirmed.state is HoldState.CONFIRMED and confirmed.matched_line == "standard|o1|1"
    assert await assert_drop_invariants(engine, "d1") == Counters(10, 8, 0, 2, 0)


async def test_a_sale_on_an_expired_hold_takes_from_available_and_says_why(app: LiveApp, redis: Redis) -> None:
    await define_drop(app.state, "d1", "GLOW", 10)
    engine = app.state["engine"]
    hold = await engine.reserve("d1", "viewer-1", 2, "req-1")
    assert hold.hold_id is not None
    await engine.fast_forward("d1", 601)  # past the hold's 600 s
    await post_standard(app, standard_order("paid", "o1", [line("1", "GLOW", 2, hold=hold.hold_ref)]))
    await drain(app.state)
    assert (await engine.hold(hold.hold_id)).state is HoldState.EXPIRED
    assert await assert_drop_invariants(engine, "d1") == Counters(10, 8, 0, 2, 0)
    assert await redis.hget(keys.sale_holds("show1"), "standard|o1|1") == f"hold_expired {hold.hold_id}".encode()


async def test_unknown_skus_are_counted_recorded_once_and_ignored(app: LiveApp, redis: Redis) -> None:
    await define_drop(app.state, "d1", "GLOW", 10)
    body = standard_order("created", "o1", [line("1", "MYSTERY", 4), line("2", "GLOW", 1)])
    await post_standard(app, body)
    await post_standard(app, standard_order("paid", "o1", [line("1", "MYSTERY", 4), line("2", "GLOW", 1)]))
    await drain(app.state)
    records = await stream(redis, keys.ISSUES)
    assert [(f[b"kind"], f[b"sku"]) for f in records] == [(b"unknown_sku", b"MYSTERY")] * 2  # one per status
    scrape = (await app.client.get("/metrics")).text
    assert 'livedrop_webhook_lines_total{outcome="unknown_sku",platform="standard"} 2.0' in scrape
    assert 'livedrop_webhook_lines_total{outcome="sold",platform="standard"} 1.0' in scrape
    assert 'livedrop_webhook_lines_total{outcome="duplicate",platform="standard"} 1.0' in scrape
    assert await assert_drop_invariants(app.state["engine"], "d1") == Counters(10, 9, 0, 1, 0)


async def test_an_oversold_line_raises_one_alert_however_often_it_is_applied(app: LiveApp, redis: Redis) -> None:
    await define_drop(app.state, "d1", "GLOW", 2)
    body = standard_order("paid", "o1", [line("1", "GLOW", 5)])
    await post_standard(app, body)
    await post_standard(app, standard_order("created", "o1", [line("1", "GLOW", 5)]))
    await drain(app.state)
    [alert] = await stream(redis, keys.ALERTS)
    assert alert == {
        b"kind": b"oversold",
        b"show": b"show1",
        b"drop": b"d1",
        b"platform": b"standard",
        b"order": b"o1",
        b"line": b"1",
        b"qty": b"3",
    }
    assert await assert_drop_invariants(app.state["engine"], "d1") == Counters(2, 0, 0, 2, 3)
    assert 'livedrop_alerts_total{kind="oversold"} 1.0' in (await app.client.get("/metrics")).text


async def test_an_id_the_engine_refuses_is_recorded_not_retried(app: LiveApp, redis: Redis) -> None:
    await define_drop(app.state, "d1", "GLOW", 10)
    await post_standard(app, standard_order("paid", "order with spaces", [line("1", "GLOW", 1)]))
    assert await drain(app.state) == 1  # acknowledged: retrying could never succeed
    [issue] = await stream(redis, keys.ISSUES)
    assert issue[b"kind"] == b"invalid" and issue[b"platform"] == b"standard"
    assert await assert_drop_invariants(app.state["engine"], "d1") == Counters(10, 10, 0, 0, 0)


# -- any delivery order ends where in-order delivery ends ---------------------------------------------

KINDS = ("created", "paid", "cancelled")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    total=st.integers(0, 4),
    qty=st.integers(1, 3),
    deliveries=st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 1)), min_size=1, max_size=7),
    whole_order_cancel=st.booleans(),
    drain_each=st.booleans(),
)
async def test_any_order_of_deliveries_ends_as_in_order_delivery(
    app: LiveApp, total: int, qty: int, deliveries: list[tuple[str, int]], whole_order_cancel: bool, drain_each: bool
) -> None:
    """Deliveries of one order — created, paid, cancelled — in any order, each possibly delivered
    twice (the same delivery id: a retry) or re-sent (a new id: another subscription).

    "The same result as in-order delivery" (created, paid, cancelled) means: when a cancel is
    among the deliveries, the stock ends restored, whichever came first — a cancel before its order
    leaves a tombstone and the order is then ignored, a cancel after restocks it — with nothing
    sold or oversold; without a cancel, the line is sold once (what stock cannot cover is oversold).
    The engine records at most one sale and one cancel for the line, whatever the duplicates.
    """
    n = next(_orders)
    drop_id, sku, order_id = f"h{n}", f"SKU-{n}", f"order-{n}"
    await define_drop(app.state, drop_id, sku, total)
    for kind, copy in deliveries:
        lines = [] if kind == "cancelled" and whole_order_cancel else [line("1", sku, qty)]
        body = standard_order(kind, order_id, lines)
        await post_standard(app, body, msg_id=f"{order_id}-{kind}-{copy}")
        if drain_each:
            await drain(app.state)
    await drain(app.state)
    counters = await assert_drop_invariants(app.state["engine"], drop_id)
    if any(kind == "cancelled" for kind, _ in deliveries):
        assert counters == Counters(total, total, 0, 0, 0)
    else:
        sold = min(qty, total)
        assert counters == Counters(total, total - sold, 0, sold, qty - sold)
    ops = await ledger_ops(app, drop_id)
    assert ops.count("order") <= 1 and ops.count("cancel") <= 1


# -- durability ------------------------------------------------------------------------------------------


async def wait_for_counters(app: LiveApp, drop_id: str, expected: Counters) -> None:
    async with asyncio.timeout(scaled(10)):
        while await app.state["engine"].counters(drop_id) != expected:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # and nothing more is applied after that
    assert await app.state["engine"].counters(drop_id) == expected


async def test_the_consumer_runs_in_the_lifespan_and_applies_what_was_recorded_before_it(
    redis_server: LocalRedis, redis: Redis
) -> None:
    async with running_app(redis_server.url, webhook_settings()) as ingest_only:
        await define_drop(ingest_only.state, "d1", "GLOW", 10)
        await post_standard(ingest_only, standard_order("paid", "o1", [line("1", "GLOW", 3)]))
    # No consumer group existed when that was recorded; a node that applies starts from the top.
    async with running_app(redis_server.url, webhook_settings(apply=True)) as node:
        await wait_for_counters(node, "d1", Counters(10, 7, 0, 3, 0))
        await post_standard(node, standard_order("paid", "o2", [line("1", "GLOW", 1)]))
        await wait_for_counters(node, "d1", Counters(10, 6, 0, 4, 0))
        await assert_drop_invariants(node.state["engine"], "d1")


async def test_redis_killed_between_acknowledgement_and_application_loses_nothing(
    fresh_redis_server: RedisServerFactory,
) -> None:
    server = fresh_redis_server(appendfsync="always")
    first = standard_order("paid", "o1", [line("1", "GLOW", 2)])
    second = standard_order("paid", "o2", [line("1", "GLOW", 1)])
    async with running_app(server.url, webhook_settings()) as node:  # ingest only: nothing applies
        await define_drop(node.state, "d1", "GLOW", 10)
        assert await post_standard(node, first, msg_id="m1") == "accepted"
        # A consumer read the second one and died before applying it: it is pending, not lost.
        assert await post_standard(node, second, msg_id="m2") == "accepted"
        consumer = node.state["webhooks"].consumer
        await consumer.ensure_group()
        assert len(await read_as(node.state["redis"], "test-node", 1)) == 1
        assert len(await read_as(node.state["redis"], "test-node", 1)) == 1
        server.kill()
        server.restart()
    async with running_app(server.url, webhook_settings(apply=True, claim_idle_seconds=60)) as node:
        # Same consumer name: it reads its own pending entries first, then new ones.
        await wait_for_counters(node, "d1", Counters(10, 7, 0, 3, 0))
        assert await post_standard(node, first, msg_id="m1") == "duplicate"  # the key survived too
        await node.state["webhooks"].consumer.recover()
        assert await node.state["redis"].xpending(keys.STREAM, keys.GROUP) == {
            "pending": 0,
            "min": None,
            "max": None,
            "consumers": [],
        }
        assert await assert_drop_invariants(node.state["engine"], "d1") == Counters(10, 7, 0, 3, 0)


async def test_entries_of_a_dead_consumer_are_taken_over_after_the_idle_time(app: LiveApp, redis: Redis) -> None:
    await define_drop(app.state, "d1", "GLOW", 2)
    await post_standard(app, standard_order("paid", "o1", [line("1", "GLOW", 3)]))
    await post_standard(app, standard_order("paid", "o2", [line("1", "GLOW", 1)]))
    consumer = app.state["webhooks"].consumer
    await consumer.ensure_group()
    # "dead-node" reads both; it applies the first one and dies before acknowledging either.
    entries = await read_as(redis, "dead-node", 10)
    assert len(entries) == 2
    delivery = decode_delivery(*entries[0])
    [event] = normalize(delivery.platform, delivery.body, delivery.headers)
    assert isinstance(event, PlatformOrderEvent)
    await app.state["webhooks"].applier.apply(event)
    # Not idle for long enough yet (60 s): nothing is taken over.
    consumer.claim_idle_ms = 60_000
    assert await consumer.recover() == 0
    assert await consumer.step() == 0  # and the entries are not handed out again as new ones
    consumer.claim_idle_ms = 50
    # Wait until Redis itself reports both entries idle for longer than that (its clock, its
    # measure), rather than sleeping a guessed duration.
    async with asyncio.timeout(scaled(5)):
        while True:
            pending = await redis.xpending_range(keys.STREAM, keys.GROUP, min="-", max="+", count=10)
            if len(pending) == 2 and all(int(e["time_since_delivered"]) > consumer.claim_idle_ms for e in pending):
                break
            await asyncio.sleep(0.01)
    assert await consumer.recover() == 2
    assert (await redis.xpending(keys.STREAM, keys.GROUP))["pending"] == 0
    # Each applied exactly once (the first one twice, harmlessly); one alert per oversold line.
    assert await assert_drop_invariants(app.state["engine"], "d1") == Counters(2, 0, 0, 2, 2)
    assert await redis.xlen(keys.ALERTS) == 2  # o1 oversold 1, o2 oversold 1
    scrape = (await app.client.get("/metrics")).text
    assert "livedrop_webhook_claimed_total 2.0" in scrape


async def test_an_entry_that_can_never_apply_goes_to_the_dead_letter_stream(app: LiveApp, redis: Redis) -> None:
    consumer = app.state["webhooks"].consumer
    await consumer.ensure_group()
    await redis.xadd(keys.STREAM, {"p": "carrier-pigeon", "b": b"{}", "h": b"{}", "k": "x"})
    assert await consumer.step() == 0
    [dead] = await stream(redis, keys.DEAD)
    assert dead[b"error"] == b"ValueError" and dead[b"p"] == b"carrier-pigeon"
    [alert] = await stream(redis, keys.ALERTS)
    assert alert[b"kind"] == b"dead_delivery"
    assert (await redis.xpending(keys.STREAM, keys.GROUP))["pending"] == 0


async def test_an_entry_whose_application_keeps_failing_is_retried_then_set_aside(
    app: LiveApp, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await define_drop(app.state, "d1", "GLOW", 10)
    service = app.state["webhooks"]
    attempts = 0

    async def broken(event: PlatformOrderEvent, skus: object = None) -> list[object]:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("a bug")

    monkeypatch.setattr(service.applier, "apply", broken)
    await post_standard(app, standard_order("paid", "o1", [line("1", "GLOW", 1)]))
    consumer = service.consumer
    consumer.claim_idle_ms = 1
    await consumer.ensure_group()
    assert await consumer.step() == 0
    while await redis.xlen(keys.DEAD) == 0:
        await asyncio.sleep(0.002)
        await consumer.claim()
    assert attempts == MAX_ATTEMPTS
    [dead] = await stream(redis, keys.DEAD)
    assert dead[b"error"] == b"apply_failed"
    assert (await redis.xpending(keys.STREAM, keys.GROUP))["pending"] == 0
    assert await assert_drop_invariants(app.state["engine"], "d1") == Counters(10, 10, 0, 0, 0)


async def test_housekeeping_trims_applied_entries_but_never_unapplied_ones(
    redis_server: LocalRedis, redis: Redis
) -> None:
    async with running_app(redis_server.url, webhook_settings(retention_seconds=0)) as app:
        await define_drop(app.state, "d1", "GLOW", 10)
        consumer = app.state["webhooks"].consumer
        await consumer.ensure_group()
        await post_standard(app, standard_order("paid", "a", [line("1", "GLOW", 1)]))
        await consumer.step()
        await post_standard(app, standard_order("paid", "b", [line("1", "GLOW", 1)]))
        assert len(await read_as(redis, "dead-node", 1)) == 1  # b: pending
        await post_standard(app, standard_order("paid", "c", [line("1", "GLOW", 1)]))
        await consumer.step()
        consumer.claim_idle_ms = 3_600_000  # keep b with its dead consumer during housekeeping
        await consumer.housekeeping()
        left = [json.loads(f[b"b"])["data"]["order_id"] for f in await stream(redis, keys.STREAM)]
        assert left == ["b", "c"]
        assert (await redis.xpending(keys.STREAM, keys.GROUP))["pending"] == 1
        # Now b is taken over and applied, and d arrives but nobody has read it yet: not applied
        # either, so it stays, while b and c (applied, past a retention of 0) go — even when
        # c and d were recorded within the same millisecond.
        await post_standard(app, standard_order("paid", "d", [line("1", "GLOW", 1)]))
        consumer.claim_idle_ms = 1
        await asyncio.sleep(0.01)
        await consumer.housekeeping()
        assert (await redis.xpending(keys.STREAM, keys.GROUP))["pending"] == 0
        left = [json.loads(f[b"b"])["data"]["order_id"] for f in await stream(redis, keys.STREAM)]
        assert left == ["d"]
        assert await assert_drop_invariants(app.state["engine"], "d1") == Counters(10, 7, 0, 3, 0)


async def test_ingest_apply_and_report_on_a_redis_cluster(
    redis_cluster: LocalCluster, cluster_redis: RedisCluster
) -> None:
    # Every script touches one slot: the stream with its seen keys ({webhooks}), alerts with
    # theirs ({alerts}), an order's hash alone, the engine's drop keys ({drop:...}).
    async with running_app(redis_cluster.url, webhook_settings(), cluster=True) as app:
        await define_drop(app.state, "d1", "GLOW", 4)
        bodies = [standard_order("paid", f"o{i}", [line("1", "GLOW", 1)]) for i in range(3)]
        for i, body in enumerate(bodies):
            assert await post_standard(app, body, msg_id=f"m{i}") == "accepted"
        await post_standard(app, standard_order("cancelled", "o0", []))
        responses = await asyncio.gather(*(post_standard(app, bodies[1], msg_id="m1") for _ in range(10)))
        assert responses == ["duplicate"] * 10
        storm = standard_order("paid", "o9", [line("1", "GLOW", 1)])
        responses = await asyncio.gather(*(post_standard(app, storm, msg_id="m9") for _ in range(10)))
        assert sorted(responses) == ["accepted"] + ["duplicate"] * 9
        await drain(app.state)
        assert await assert_drop_invariants(app.state["engine"], "d1") == Counters(4, 1, 0, 3, 0)
        report = await reconciliation_report(app.state, "show1")
        assert report.drops[0].restocked_units == 1
        assert report.drops[0].webhook_units_sold == {"standard": 4}


async def test_deliveries_applied_together_share_round_trips_to_the_engine(app: LiveApp) -> None:
    await define_drop(app.state, "d1", "GLOW", 100)
    await asyncio.gather(
        *(post_standard(app, standard_order("paid", f"o{i}", [line("1", "GLOW", 1)])) for i in range(32))
    )
    client = app.state["webhooks"].engine_client
    before = client.round_trips
    assert await drain(app.state) == 32
    # 32 sales, one script call each, in far fewer round trips; each still applied once.
    assert 0 < client.round_trips - before < 32
    assert await assert_drop_invariants(app.state["engine"], "d1") == Counters(100, 68, 0, 32, 0)
