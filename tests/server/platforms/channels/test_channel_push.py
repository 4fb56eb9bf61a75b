"""The push loop on real Redis against the four stand-ins: coalescing, durable resume, failures
that become alerts, and a SKU a platform does not know."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from server import keys
from server.ops.local_redis import LocalRedis
from server.platforms.channels.mapping import ShopifyMapping, SkuMapping
from server.platforms.channels.status import Sync, channels_status
from server.platforms.channels.store import ChannelStore, Lease, SkuState
from server.platforms.reconcile.read import build_report
from server.platforms.webhooks.events import OrderStatus, Platform, PlatformOrderEvent
from server.shows.catalog import DropInfo, Show
from server.shows.variants import VariantInfo
from standins.cli import livedrop_channel_env
from standins.meta import MetaStandIn
from standins.shopify import ShopifyStandIn
from standins.tiktok import TikTokStandIn
from standins.woocommerce import WooCommerceStandIn
from stock.types import ReserveRequest
from tests.server.platforms.channels.harness import Stack, expected, held, seed, until
from tests.support.standins import Running, serving


@pytest.fixture(scope="module")
def stands() -> Iterator[dict[str, Running]]:
    with (
        serving(ShopifyStandIn()) as shop,
        serving(TikTokStandIn()) as tiktok,
        serving(MetaStandIn(batch_polls=1, calls_per_hour=100_000)) as meta,
        serving(WooCommerceStandIn()) as woo,
    ):
        yield {"shopify": shop, "tiktok": tiktok, "meta": meta, "woocommerce": woo}


@pytest.fixture
async def stack(redis: Redis, stands: dict[str, Running]) -> AsyncIterator[Stack]:
    seed(stands, 500)
    built = Stack(redis, stands)
    try:
        yield built
    finally:
        await built.aclose()


async def alerts(redis: Redis, kind: str) -> list[dict[bytes, bytes]]:
    entries: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(keys.ALERTS)  # type: ignore[assignment]
    return [f for _, f in entries if f[b"kind"] == kind.encode()]


async def burst(stack: Stack, reservations: int, per_call: int = 50) -> int:
    """``reservations`` single-unit reservations in concurrent batches; returns how many held."""
    held_units = 0

    async def one(start: int) -> int:
        requests = [ReserveRequest(f"r{n}", f"c{n}", 1) for n in range(start, start + per_call)]
        results = await stack.engine.reserve_many("d1", requests)
        return sum(1 for r in results if r.ok)

    for answer in await asyncio.gather(*(one(n) for n in range(0, reservations, per_call))):
        held_units += answer
    return held_units


async def test_a_burst_of_reservations_becomes_a_handful_of_calls(stack: Stack, stands: dict[str, Running]) -> None:
    await stack.drop(500)
    stack.channels.start()
    await until(lambda: held(stands) == expected(500))
    before = {name: len(r.calls()) for name, r in stands.items()}
    assert await burst(stack, 1000) == 500  # sold out: every channel must reach 0
    await until(lambda: held(stands) == expected(0))
    after = {name: len(r.calls()) for name, r in stands.items()}
    calls = {name: after[name] - before[name] for name in after}
    # 1,000 reservations in a few flush intervals: a few calls each, never one per reservation.
    assert all(n <= 30 for n in calls.values()), calls
    status = await channels_status(stack.redis, stack.channels.settings)
    for channel in status.channels:
        [glow] = channel.skus
        assert glow.sync is Sync.IN_SYNC and glow.available == 0 and glow.lag_ms is not None
    scrape = stack.metrics.exposition().decode()
    for name in ("shopify", "tiktok", "meta", "woocommerce"):
        assert f'livedrop_channel_lag_seconds_count{{channel="{name}"}}' in scrape
        assert f'livedrop_channel_calls_total{{channel="{name}",outcome="ok"}}' in scrape


async def test_changes_made_while_no_node_pushes_go_out_after_a_restart(
    redis: Redis, stack: Stack, stands: dict[str, Running]
) -> None:
    await stack.drop(500)
    stack.channels.start()
    await until(lambda: held(stands) == expected(500))
    await stack.channels.aclose()
    await burst(stack, 150)  # nobody pushes now
    assert held(stands) == expected(500)
    again = Stack(redis, stands)
    try:
        again.channels.start()
        await until(lambda: held(stands) == expected(350), show=lambda: held(stands))
        assert await redis.hlen(keys.channel_dirty("shopify")) == 0
    finally:
        await again.aclose()


async def test_wrong_credentials_raise_channel_failing_and_other_channels_keep_syncing(
    redis: Redis, stands: dict[str, Running]
) -> None:
    seed(stands, 500)
    stack = Stack(redis, stands, shopify="wrong-token", tiktok="forged-secret")
    try:
        await stack.drop(40)
        stack.channels.start()
        await until(lambda: held(stands)["meta"] == 36 and held(stands)["woocommerce"] == 37)
        assert held(stands)["shopify"] == 500 and held(stands)["tiktok"] == 500  # refused, untouched

        async def alerted() -> set[str]:
            return {f[b"channel"].decode() for f in await alerts(redis, "channel_failing")}

        async with asyncio.timeout(10):
            while await alerted() != {"shopify", "tiktok"}:
                await asyncio.sleep(0.05)
        status = {c.channel.value: c for c in (await channels_status(redis, stack.channels.settings)).channels}
        assert status["shopify"].sync is Sync.FAILING and status["shopify"].skus[0].error == "auth"
        assert status["meta"].sync is Sync.IN_SYNC
        # The failing channels back off: a handful of refused calls, not a hot loop.
        await asyncio.sleep(1.0)
        assert len(stands["shopify"].calls("/admin")) < 10
        assert len(await alerts(redis, "channel_failing")) == 2  # raised once each
    finally:
        await stack.aclose()


async def test_a_sku_unknown_to_a_platform_is_an_alert_and_is_not_retried_in_a_loop(
    redis: Redis, stack: Stack, stands: dict[str, Running]
) -> None:
    stands["woocommerce"].control("POST", "reset")  # WooCommerce no longer has product 10
    await stack.drop(30)
    stack.channels.start()
    await until(lambda: held(stands)["shopify"] == 28)

    async def unknown() -> list[dict[bytes, bytes]]:
        return await alerts(redis, "channel_sku_unknown")

    async with asyncio.timeout(10):
        while not await unknown():
            await asyncio.sleep(0.05)
    [alert] = await unknown()
    assert alert[b"channel"] == b"woocommerce" and alert[b"sku"] == b"GLOW"
    calls = len(stands["woocommerce"].calls("/wp-json"))
    await asyncio.sleep(0.5)
    assert len(stands["woocommerce"].calls("/wp-json")) == calls  # not pushed again until it changes


async def test_livedrop_channels_status_prints_what_each_channel_holds(
    stack: Stack, stands: dict[str, Running], redis_server: LocalRedis
) -> None:
    await stack.drop(500)
    stack.channels.start()
    await until(lambda: held(stands) == expected(500))
    running = list(stands.values())
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        **livedrop_channel_env([r.standin for r in running], [r.url for r in running]),
    }
    table = subprocess.run(
        [sys.executable, "-m", "server.cli", "channels", "status"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "shopify" in table and "GLOW" in table and "in_sync" in table
    assert "shpat_standin" not in table and "cs_standin" not in table  # no secret
    raw = subprocess.run(
        [sys.executable, "-m", "server.cli", "channels", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    status = json.loads(raw)
    values = {c["channel"]: c["skus"][0]["value"] for c in status["channels"]}
    assert values == expected(500)


async def test_a_variant_sku_is_pushed_from_its_own_stock(stack: Stack, stands: dict[str, Running]) -> None:
    stands["shopify"].control(
        "POST", "seed", {"items": [{"inventory_item_id": 7, "location_id": 9, "sku": "SNK-42", "available": 0}]}
    )
    await stack.catalog.put_show(Show(show_id="s1", title="Show"))
    sizes = [VariantInfo(id="s41", sku="SNK-41", total=10), VariantInfo(id="s42", sku="SNK-42", total=6)]
    await stack.catalog.put_drop(
        DropInfo(drop_id="d2", show_id="s1", sku="SNK", title="Sneaker", total=0, variants=sizes)
    )
    await stack.engine.open("d2", duration_seconds=600)
    await stack.channels.mappings.put(
        "SNK-42", SkuMapping(shopify=ShopifyMapping(inventory_item_id="7", location_id="9"))
    )
    stack.channels.start()

    def size_42() -> int:
        items = stands["shopify"].control("GET", "stock")["items"]
        return int(next(i["available"] for i in items if i["sku"] == "SNK-42"))

    await until(lambda: size_42() == 6 - 2, show=size_42)
    await stack.engine.reserve("d2", "c1", 3, "r1", variant="s42")
    await until(lambda: size_42() == 1, show=size_42)  # 6 - 3 held - buffer 2


async def test_thin_orders_are_pulled_into_the_pipeline_and_unfetchable_ones_stay_in_the_report(
    redis: Redis, stack: Stack, stands: dict[str, Running]
) -> None:
    await stack.drop(40)
    sold = stands["tiktok"].control("POST", "sell", {"lines": [{"sku_id": "s1", "quantity": 3}]})
    meta_sold = stands["meta"].control("POST", "sell", {"lines": [{"retailer_id": "GLOW", "quantity": 2}]})
    for platform, order_id in (
        (Platform.TIKTOK, sold["order_id"]),
        (Platform.TIKTOK, "404404"),
        (Platform.META, meta_sold["order_id"]),
    ):
        thin = PlatformOrderEvent(
            platform=platform,
            order_id=order_id,
            status=OrderStatus.PAID,
            lines=[],
            occurred_at=None,
            delivery_id=f"d-{order_id}",
            shop=None,
            needs_fetch=True,
        )
        await stack.webhooks.applier.apply(thin)
    before = await build_report(redis, stack.engine, stack.catalog, "s1", grace_seconds=900)
    assert before.totals.needs_fetch == 3
    stack.channels.start()

    async def report() -> Any:
        return await build_report(redis, stack.engine, stack.catalog, "s1", grace_seconds=900)

    async with asyncio.timeout(15):
        while (await report()).totals.needs_fetch != 1:
            await asyncio.sleep(0.1)
    after = await report()
    [left] = after.needs_fetch
    assert left.order_id == "404404" and left.why.startswith("not_found")
    [drop] = after.drops
    assert drop.webhook_units_sold == {"tiktok": 3, "meta": 2}
    assert drop.counters.sold == 5 and drop.counters.oversold == 0
    # Meta's order was acknowledged (CREATED -> IN_PROGRESS) once applied.
    assert stands["meta"].calls(f"/v21.0/{meta_sold['order_id']}/acknowledge_order")


async def test_a_tiktok_order_whose_webhook_was_lost_is_found_by_the_window_pull(
    redis: Redis, stack: Stack, stands: dict[str, Running]
) -> None:
    await stack.drop(40)
    stands["tiktok"].control("POST", "sell", {"lines": [{"sku_id": "s1", "quantity": 2}]})  # no webhook reached us
    stack.channels.start()
    async with asyncio.timeout(15):
        while (await stack.engine.counters("d1")).sold != 2:
            await asyncio.sleep(0.1)
    assert stands["tiktok"].calls("/order/202309/orders/search")


async def test_the_channel_scripts_run_on_a_redis_cluster(cluster_redis: Any) -> None:
    store = ChannelStore(cluster_redis)
    assert await store.mark("d1", "", "1-0", "GLOW", 7, 1000, ["shopify", "meta"], [0, 0])
    assert not await store.mark("d1", "", "2-0", "GLOW", 6, 1001, ["shopify", "meta"], [0, 0])  # cursor moved
    dirty = await store.dirty("shopify")
    assert dirty == {"GLOW": "1 1000"}
    cleared, _ = await store.ack("shopify", "GLOW", dirty["GLOW"], SkuState(value=7))
    assert cleared and await store.dirty("shopify") == {}
    first, second = Lease(cluster_redis, "shopify", 1.0, "a"), Lease(cluster_redis, "shopify", 1.0, "b")
    assert await first.hold() and not await second.hold()
    await first.release()
    assert await second.hold()
