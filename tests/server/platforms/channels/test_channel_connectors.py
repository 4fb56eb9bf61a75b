"""Each connector against its stand-in platform over real HTTP: values set, compare-and-swap,
partial failures, and refusals of wrong credentials and forged signatures."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from server.platforms.channels.base import Outcome, PushItem
from server.platforms.channels.http import AuthFailed, ChannelError, client
from server.platforms.channels.meta import MetaChannel, spacing_for, usage_percent
from server.platforms.channels.shopify import ShopifyChannel
from server.platforms.channels.tiktok import TikTokChannel
from server.platforms.channels.woocommerce import WooCommerceChannel
from standins.meta import MetaStandIn
from standins.shopify import ShopifyStandIn
from standins.tiktok import TikTokStandIn
from standins.woocommerce import WooCommerceStandIn
from tests.support.standins import Running, serving


@pytest.fixture(scope="module")
def stands() -> Iterator[dict[str, Running]]:
    with (
        serving(ShopifyStandIn()) as shop,
        serving(TikTokStandIn()) as tiktok,
        serving(MetaStandIn(batch_polls=1)) as meta,
        serving(WooCommerceStandIn()) as woo,
    ):
        yield {"shopify": shop, "tiktok": tiktok, "meta": meta, "woocommerce": woo}


@pytest.fixture
async def http(stands: dict[str, Running]) -> AsyncIterator[httpx.AsyncClient]:
    for running in stands.values():
        running.control("POST", "reset")
    async with client(5.0) as shared:
        yield shared


def shopify_item(value: int, previous: int | None, item: str = "1", attempt: str = "a") -> PushItem:
    return PushItem(
        sku="GLOW", ids={"inventory_item_id": item, "location_id": "9"}, value=value, previous=previous, attempt=attempt
    )


async def test_shopify_sets_with_compare_and_swap_and_reports_stale(
    stands: dict[str, Running], http: httpx.AsyncClient
) -> None:
    shop = stands["shopify"]
    shop.control(
        "POST", "seed", {"items": [{"inventory_item_id": 1, "location_id": 9, "sku": "GLOW", "available": 10}]}
    )
    channel = ShopifyChannel(http, base_url=shop.url, access_token="shpat_standin")
    # Never pushed: the connector reads what Shopify holds first.
    [first] = await channel.push([shopify_item(7, None)])
    assert first.outcome is Outcome.STALE and first.observed == 10
    [ok] = await channel.push([shopify_item(7, 10)])
    assert ok.outcome is Outcome.OK and await channel.read(shopify_item(0, None)) == 7
    shop.control("POST", "sell", {"lines": [{"sku": "GLOW", "quantity": 2}]})  # Shopify's own sale: 5 left
    [stale] = await channel.push([shopify_item(6, 7, attempt="b")])
    assert stale.outcome is Outcome.STALE and stale.observed == 5
    assert await channel.read(shopify_item(0, None)) == 5  # nothing applied
    calls = shop.calls("/admin/api/2026-04/graphql.json")
    assert all("@idempotent" in c["body"] for c in calls if "inventorySetQuantities" in c["body"])


async def test_shopify_refuses_a_wrong_token_and_an_unknown_item(
    stands: dict[str, Running], http: httpx.AsyncClient
) -> None:
    shop = stands["shopify"]
    shop.control(
        "POST", "seed", {"items": [{"inventory_item_id": 1, "location_id": 9, "sku": "GLOW", "available": 10}]}
    )
    with pytest.raises(AuthFailed):
        await ShopifyChannel(http, base_url=shop.url, access_token="wrong").push([shopify_item(3, 10)])
    channel = ShopifyChannel(http, base_url=shop.url, access_token="shpat_standin")
    [unknown] = await channel.push([shopify_item(3, 10, item="404")])
    assert unknown.outcome is Outcome.REFUSED and unknown.code == "unknown_sku"


async def test_shopify_throttle_status_moves_the_budget(stands: dict[str, Running], http: httpx.AsyncClient) -> None:
    with serving(ShopifyStandIn(bucket_size=30, restore_rate=1)) as shop:
        shop.control(
            "POST", "seed", {"items": [{"inventory_item_id": 1, "location_id": 9, "sku": "GLOW", "available": 10}]}
        )
        channel = ShopifyChannel(http, base_url=shop.url, access_token="shpat_standin")
        await channel.push([shopify_item(9, 10)])
        assert channel.budget.delay() > 0  # 17 points left, a set costs 13: wait for the bucket
        with pytest.raises(ChannelError) as caught:
            await channel.push([shopify_item(8, 9, attempt="x")])
            await channel.push([shopify_item(7, 8, attempt="y")])
        assert caught.value.code == "throttled" and caught.value.wait > 0


def tiktok_channel(http: httpx.AsyncClient, url: str, **overrides: object) -> TikTokChannel:
    settings: dict[str, object] = {
        "base_url": url,
        "app_key": "standin_app_key",
        "app_secret": "standin_app_secret",
        "access_token": "TTP_standin_token",
        "shop_cipher": "ROW_standin",
    }
    settings.update(overrides)
    return TikTokChannel(http, **settings)  # type: ignore[arg-type]


async def test_tiktok_updates_inventory_signed_and_reports_partial_failures(
    stands: dict[str, Running], http: httpx.AsyncClient
) -> None:
    tiktok = stands["tiktok"]
    tiktok.control(
        "POST",
        "seed",
        {
            "skus": [
                {"product_id": "p1", "sku_id": "s1", "seller_sku": "GLOW", "stock": {"w1": 9}},
                {"product_id": "p1", "sku_id": "s2", "seller_sku": "TINT", "stock": {"w1": 4}, "status": "FROZEN"},
            ]
        },
    )
    channel = tiktok_channel(http, tiktok.url)
    glow = PushItem(sku="GLOW", ids={"product_id": "p1", "sku_id": "s1"}, value=3)
    tint = PushItem(sku="TINT", ids={"product_id": "p1", "sku_id": "s2", "warehouse_id": "w1"}, value=1)
    results = await channel.push([glow, tint])
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.REFUSED]
    assert await channel.read(glow) == 3
    assert len(tiktok.calls("/product/202309/products/p1/inventory/update")) == 1  # one call per product


async def test_tiktok_refuses_a_forged_sign_and_a_stale_timestamp(
    stands: dict[str, Running], http: httpx.AsyncClient
) -> None:
    tiktok = stands["tiktok"]
    tiktok.control(
        "POST", "seed", {"skus": [{"product_id": "p1", "sku_id": "s1", "seller_sku": "G", "stock": {"w": 1}}]}
    )
    item = PushItem(sku="G", ids={"product_id": "p1", "sku_id": "s1"}, value=0)
    with pytest.raises(AuthFailed):
        await tiktok_channel(http, tiktok.url, app_secret="forged").push([item])
    with pytest.raises(AuthFailed):
        await tiktok_channel(http, tiktok.url, clock=lambda: time.time() - 600).push([item])
    assert all(c["status"] == 401 for c in tiktok.calls("/product"))


async def test_tiktok_order_detail_and_search(stands: dict[str, Running], http: httpx.AsyncClient) -> None:
    tiktok = stands["tiktok"]
    tiktok.control(
        "POST", "seed", {"skus": [{"product_id": "p1", "sku_id": "s1", "seller_sku": "G", "stock": {"w": 9}}]}
    )
    sold = tiktok.control("POST", "sell", {"lines": [{"sku_id": "s1", "quantity": 2}]})
    channel = tiktok_channel(http, tiktok.url)
    [order] = await channel.order_details([sold["order_id"], "999"])
    assert order["id"] == sold["order_id"] and len(order["line_items"]) == 2
    found, token = await channel.search_orders(0, int(time.time()) + 10)
    assert [o["id"] for o in found] == [sold["order_id"]] and token == ""
    with pytest.raises(ValueError):
        await channel.order_details([str(n) for n in range(51)])


async def test_meta_items_batch_waits_for_the_batch_and_reads_usage(
    stands: dict[str, Running], http: httpx.AsyncClient
) -> None:
    meta = stands["meta"]
    meta.control("POST", "seed", {"items": [{"retailer_id": "GLOW", "quantity": 10}]})
    channel = MetaChannel(http, base_url=meta.url, access_token="EAAstandin", catalog_id="880000000000001")
    ok, missing = await channel.push(
        [
            PushItem(sku="GLOW", ids={"retailer_id": "GLOW"}, value=4),
            PushItem(sku="X", ids={"retailer_id": "X"}, value=1),
        ]
    )
    assert ok.outcome is Outcome.OK and missing.outcome is Outcome.REFUSED
    assert meta.control("GET", "stock")["items"] == [{"retailer_id": "GLOW", "quantity": 4}]
    assert len(meta.calls("/v21.0/880000000000001/check_batch_request_status")) >= 2  # polled until finished
    with pytest.raises(AuthFailed):
        await MetaChannel(http, base_url=meta.url, access_token="wrong", catalog_id="880000000000001").push([ok_item()])


def ok_item() -> PushItem:
    return PushItem(sku="GLOW", ids={"retailer_id": "GLOW"}, value=1)


def test_meta_usage_header_sets_the_spacing() -> None:
    assert usage_percent('{"1":[{"call_count":80,"estimated_time_to_regain_access":0}]}') == (80.0, 0.0)
    assert usage_percent("not json") == (0.0, 0.0)
    assert spacing_for(10) == 0.0 and spacing_for(95) == 36.0


async def test_meta_orders_and_acknowledge(stands: dict[str, Running], http: httpx.AsyncClient) -> None:
    meta = stands["meta"]
    meta.control("POST", "seed", {"items": [{"retailer_id": "GLOW", "quantity": 10}]})
    sold = meta.control("POST", "sell", {"lines": [{"retailer_id": "GLOW", "quantity": 3}]})
    channel = MetaChannel(
        http, base_url=meta.url, access_token="EAAstandin", catalog_id="880000000000001", cms_id="990000000000001"
    )
    [order] = await channel.orders(["CREATED"], 0)
    assert order["id"] == sold["order_id"] and order["items"]["data"][0]["quantity"] == 3
    await channel.acknowledge(order["id"])
    await channel.acknowledge(order["id"])  # the same key again: a no-op, not an error
    assert await channel.orders(["CREATED"], 0) == []


async def test_woocommerce_batches_products_and_variations(stands: dict[str, Running], http: httpx.AsyncClient) -> None:
    woo = stands["woocommerce"]
    woo.control("POST", "seed", {"products": [{"id": 10, "sku": "GLOW", "stock_quantity": 8}]})
    woo.control("POST", "seed", {"products": [{"id": 20, "sku": "", "stock_quantity": 0}]})
    woo.control("POST", "seed", {"products": [{"id": 21, "parent_id": 20, "sku": "TINT", "stock_quantity": 5}]})
    channel = WooCommerceChannel(http, base_url=woo.url, consumer_key="ck_standin", consumer_secret="cs_standin")
    glow = PushItem(sku="GLOW", ids={"product_id": "10"}, value=3)
    tint = PushItem(sku="TINT", ids={"product_id": "20", "variation_id": "21"}, value=2)
    gone = PushItem(sku="GONE", ids={"product_id": "99"}, value=1)
    results = await channel.push([glow, tint, gone])
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.OK, Outcome.REFUSED]
    assert await channel.read(glow) == 3 and await channel.read(tint) == 2
    with pytest.raises(AuthFailed):
        await WooCommerceChannel(http, base_url=woo.url, consumer_key="ck_standin", consumer_secret="bad").push([glow])


async def test_a_platform_that_hangs_or_fails_is_a_retryable_error(
    stands: dict[str, Running], http: httpx.AsyncClient
) -> None:
    woo = stands["woocommerce"]
    woo.control("POST", "seed", {"products": [{"id": 10, "sku": "GLOW", "stock_quantity": 8}]})
    item = PushItem(sku="GLOW", ids={"product_id": "10"}, value=3)
    woo.control("POST", "faults", {"mode": "fail", "status": 503, "count": 1})
    channel = WooCommerceChannel(http, base_url=woo.url, consumer_key="ck_standin", consumer_secret="cs_standin")
    with pytest.raises(ChannelError) as failed:
        await channel.push([item])
    assert failed.value.retry and failed.value.code == "server_error"
    woo.control("POST", "faults", {"mode": "hang", "seconds": 5, "count": 1})
    async with client(0.3) as impatient:
        hung = WooCommerceChannel(impatient, base_url=woo.url, consumer_key="ck_standin", consumer_secret="cs_standin")
        with pytest.raises(ChannelError) as timed_out:
            await hung.push([item])
    assert timed_out.value.code == "timeout" and timed_out.value.retry
