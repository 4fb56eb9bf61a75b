"""The demo's sales channels (``DemoChannels``) on a real node with the four stand-ins it serves:
every drop is put on every platform the way that platform models it, a drop with sizes size by
size; a stand-in buyer's order of one size moves that size's stock (webhooks for Shopify and
WooCommerce, pulled orders for TikTok Shop and Meta); and a second run against the same Redis
starts from what its own fresh platforms hold, with nothing left of the first run's mappings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from broadcast.hub import Hub
from server import keys
from server.demo.channels import DemoChannels
from server.demo.seed import seed_show
from server.ops.local_redis import LocalRedis
from server.platforms.channels.mapping import Mappings, TikTokMapping, WooCommerceMapping
from server.platforms.channels.status import channels_status
from server.settings import Settings
from server.shows.actions import HostActions
from server.shows.catalog import Catalog, DropInfo
from server.shows.node import ShowNode
from standins.cli import livedrop_channel_env, livedrop_env
from stock import StockEngine
from tests.support.servers import Node
from tests.support.util import scaled

BUFFERS = {"shopify": 2, "tiktok": 3, "meta": 4, "woocommerce": 3}


def node_env(channels: DemoChannels) -> dict[str, str]:
    return {
        "LIVEDROP_HOST_TOKENS": "demo-channels-host",
        "LIVEDROP_CHANNEL_FLUSH_INTERVAL": "0.1",
        "LIVEDROP_CHANNEL_LEASE_SECONDS": "1",
        "LIVEDROP_CHANNEL_PULL_INTERVAL": "1",
        **livedrop_env(channels.standins),
        **livedrop_channel_env(channels.standins, [channels.urls[s.name] for s in channels.standins]),
    }


def held(channels: DemoChannels) -> dict[str, dict[str, int]]:
    """What each stand-in holds, per SKU."""
    tiktok = channels.tiktok.stock()["skus"]
    return {
        "shopify": {i["sku"]: i["available"] for i in channels.shopify.stock()["items"]},
        "tiktok": {s["seller_sku"]: sum(s["stock"].values()) for s in tiktok},
        "meta": {i["retailer_id"]: i["quantity"] for i in channels.meta.stock()["items"]},
        "woocommerce": {p["sku"]: p["stock_quantity"] for p in channels.woo.stock()["products"]},
    }


async def until(predicate: Callable[[], Awaitable[bool]], what: Callable[[], Any], timeout: float = 30.0) -> None:
    try:
        async with asyncio.timeout(scaled(timeout)):
            while not await predicate():
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out; now {what()}") from None


async def pushed(channels: DemoChannels, engine: StockEngine, drops: list[DropInfo]) -> None:
    """Every stand-in holds every SKU's available units less its buffer."""
    expected: dict[str, int] = {}
    for drop in drops:
        for variant, sku in [(v.id, v.sku) for v in drop.variants] or [("", drop.sku)]:
            expected[sku] = (await engine.snapshot(drop.drop_id, variant)).counters.available

    async def done() -> bool:
        now = held(channels)
        return all(
            now[name].get(sku) == max(0, available - buffer)
            for name, buffer in BUFFERS.items()
            for sku, available in expected.items()
        )

    await until(done, lambda: (expected, held(channels)))


async def test_every_size_is_on_the_four_standins_its_orders_move_its_stock_and_a_rerun_forgets(
    redis: Redis, redis_server: LocalRedis, tmp_path: Path
) -> None:
    engine = StockEngine(redis)
    catalog = Catalog(redis, engine)
    host = HostActions(engine, catalog, ShowNode(redis=redis, engine=engine, catalog=catalog, hub=Hub(), node_id="t"))
    drops = await seed_show(host, "demo-ch", "Demo")
    sneaker = drops[0]
    sizes = {v.sku: v.id for v in sneaker.variants}
    assert len(sizes) >= 2

    # As `livedrop demo` does: the stand-ins serve and hold their products before the node starts.
    first = DemoChannels("127.0.0.1")
    node = Node(redis_server.url, tmp_path, node_env(first))
    await first.start(node.http)
    try:
        listings = await first.stock(redis, drops)
        node.start()
        assert sorted(x.sku for x in listings) == sorted([*sizes, *(d.sku for d in drops if not d.variants)]), (
            "every size and every product without sizes is on sale"
        )
        assert {x.sku: x.variant for x in listings if x.drop_id == sneaker.drop_id} == sizes

        # Each platform's own model of a product in sizes.
        tiktok = {s["seller_sku"]: s["product_id"] for s in first.tiktok.stock()["skus"]}
        assert len({tiktok[sku] for sku in sizes}) == 1  # TikTok Shop: SKUs under one product
        meta = {i["retailer_id"]: i.get("item_group_id") for i in first.meta.stock()["items"]}
        assert {meta[sku] for sku in sizes} == {sneaker.sku}  # Meta: items of one item group
        assert meta[drops[1].sku] is None
        woo = {p["sku"]: p for p in first.woo.stock()["products"]}
        assert {woo[sku]["type"] for sku in sizes} == {"variation"}  # WooCommerce: variations
        assert len({woo[sku]["parent_id"] for sku in sizes}) == 1 and woo[drops[1].sku]["type"] == "simple"
        shop = {i["sku"]: i["inventory_item_id"] for i in first.shopify.stock()["items"]}
        assert len({shop[sku] for sku in sizes}) == len(sizes)  # Shopify: an inventory item per variant
        mapped = await Mappings(redis).all()
        some = next(iter(sizes))
        assert mapped[some].woocommerce == WooCommerceMapping(
            product_id=str(woo[some]["parent_id"]), variation_id=str(woo[some]["id"])
        )
        sku_ids = {s["seller_sku"]: s["sku_id"] for s in first.tiktok.stock()["skus"]}
        assert mapped[some].tiktok == TikTokMapping(product_id=tiktok[some], sku_id=sku_ids[some])

        await pushed(first, engine, drops)

        # A buyer on each platform orders one unit of one size: that size's stock moves, no other's.
        size_sku = next(sku for sku, v in sizes.items() if v == "s42")
        before = {v: (await engine.snapshot(sneaker.drop_id, v)).counters for v in sizes.values()}
        await first.shopify.sell({"lines": [{"sku": size_sku, "quantity": 1}]})
        await first.woo.sell({"lines": [{"sku": size_sku, "quantity": 1}]})
        await first.tiktok.sell({"lines": [{"seller_sku": size_sku, "quantity": 1}]})
        await first.meta.sell({"lines": [{"retailer_id": size_sku, "quantity": 1}]})

        async def sold_four() -> bool:
            return (await engine.snapshot(sneaker.drop_id, "s42")).counters.sold == before["s42"].sold + 4

        await until(sold_four, lambda: held(first))
        for variant, counters in before.items():
            now = (await engine.snapshot(sneaker.drop_id, variant)).counters
            if variant != "s42":
                assert now == counters, variant
        await pushed(first, engine, drops)  # and every platform is told the size's new stock
    finally:
        node.stop()
        await first.stop()

    # A second run: new stand-ins that hold nothing yet, the same Redis, and one product fewer.
    # Every SKU must reach the new platforms (even those of drafts, whose ledgers do not move),
    # and the product no longer sold must leave no mapping or status behind.
    kept = drops[:-1]
    second = DemoChannels("127.0.0.1")
    node = Node(redis_server.url, tmp_path, node_env(second))
    await second.start(node.http)
    try:
        listings = await second.stock(redis, kept)
        node.start()
        await pushed(second, engine, kept)
        skus = {x.sku for x in listings}
        assert set((await Mappings(redis).all()).keys()) == skus
        assert drops[-1].sku not in skus
        assert {raw.decode() for raw in await redis.hkeys(keys.DEMO_CHANNEL_SKUS)} == skus  # type: ignore[union-attr]
        settings = second.settings(Settings()).channels

        async def all_in_sync() -> bool:
            # A platform can hold a value a moment before LiveDrop records its acknowledgement.
            status = await channels_status(redis, settings)
            assert all({s.sku for s in c.skus} == skus for c in status.channels), status
            return all(s.sync.value == "in_sync" for c in status.channels for s in c.skus)

        await until(all_in_sync, lambda: held(second))
    finally:
        node.stop()
        await second.stop()
