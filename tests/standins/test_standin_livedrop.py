"""A sale on each stand-in platform reaches a real LiveDrop node's webhook receiver, signed as the
platform signs it, and is accepted and applied: units sold in LiveDrop for Shopify and
WooCommerce (whose webhooks carry the lines), and a needs-fetch issue for TikTok Shop and Meta
(thin notifications, until LiveDrop pulls their orders). A cancel on the platform restocks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from server import keys
from standins.base import StandIn
from standins.cli import livedrop_env
from standins.meta import MetaStandIn
from standins.shopify import ShopifyStandIn
from standins.tiktok import TikTokStandIn
from standins.woocommerce import WooCommerceStandIn
from tests.support.servers import Node
from tests.support.standins import Running, serving
from tests.support.util import scaled

HOST_TOKEN = "standin-host-token"
NodeFactory = Callable[..., Node]


@pytest.fixture(scope="module")
def platforms() -> Iterator[dict[str, Running]]:
    """All four stand-ins, served for the module (each test resets what it uses)."""
    standins: list[StandIn] = [ShopifyStandIn(), TikTokStandIn(), MetaStandIn(), WooCommerceStandIn()]
    with serving(standins[0]) as a, serving(standins[1]) as b, serving(standins[2]) as c, serving(standins[3]) as d:
        yield {r.standin.name: r for r in (a, b, c, d)}


@pytest.fixture
async def node(nodes: NodeFactory, platforms: dict[str, Running]) -> AsyncIterator[tuple[Node, httpx.AsyncClient]]:
    """A LiveDrop node configured with the stand-ins' webhook secrets, a show and a live drop
    selling ``GLOW`` (10 units), and every stand-in pointed at the node."""
    env = {"LIVEDROP_HOST_TOKENS": HOST_TOKEN, **livedrop_env([r.standin for r in platforms.values()])}
    started = nodes(env=env)
    for running in platforms.values():
        running.control("POST", "reset")
        running.control("PUT", "webhook", {"url": f"{started.http}/webhooks/{running.standin.name}"})
    headers = {"Authorization": f"Bearer {HOST_TOKEN}"}
    async with httpx.AsyncClient(base_url=started.http, headers=headers, timeout=scaled(10)) as api:
        assert (await api.post("/api/shows", json={"show_id": "s1", "title": "Show"})).status_code == 201
        drop = {"drop_id": "d1", "sku": "GLOW", "title": "Glow serum", "total": 10, "prices": {"EUR": 1900}}
        assert (await api.post("/api/shows/s1/drops", json=drop)).status_code == 201
        assert (await api.post("/api/drops/d1/launch", json={"duration_seconds": 600})).status_code == 200
        yield started, api


async def until_counters(api: httpx.AsyncClient, **expected: int) -> dict[str, Any]:
    """The drop's counters once they show ``expected`` (the node applies webhooks in the background)."""
    counters: dict[str, Any] = {}
    async with asyncio.timeout(scaled(15)):
        while True:
            counters = (await api.get("/api/drops/d1")).json()["stock"]["counters"]
            if all(counters[k] == v for k, v in expected.items()):
                return counters
            await asyncio.sleep(0.05)


async def until_issue(redis: Redis, platform: str, order_id: str) -> dict[bytes, bytes]:
    async with asyncio.timeout(scaled(15)):
        while True:
            entries: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(keys.ISSUES, "-", "+")  # type: ignore[assignment]
            for _, fields in entries:
                if fields.get(b"platform") == platform.encode() and fields.get(b"order") == order_id.encode():
                    return fields
            await asyncio.sleep(0.05)


async def test_a_shopify_sale_and_its_cancel_reach_livedrop(
    node: tuple[Node, httpx.AsyncClient], platforms: dict[str, Running]
) -> None:
    _, api = node
    shopify = platforms["shopify"]
    shopify.control(
        "POST", "seed", {"items": [{"inventory_item_id": 1, "location_id": 1, "sku": "GLOW", "available": 50}]}
    )
    sold = shopify.control("POST", "sell", {"lines": [{"sku": "GLOW", "quantity": 3}]})
    assert sold["delivery"]["status"] == 200, sold["delivery"]
    assert sold["stock"][0]["available"] == 47
    await until_counters(api, sold=3, available=7)
    cancelled = shopify.control("POST", "cancel", {"order_id": sold["order_id"]})
    assert cancelled["delivery"]["status"] == 200
    await until_counters(api, sold=0, available=10)


async def test_a_woocommerce_sale_of_a_variation_reaches_livedrop(
    node: tuple[Node, httpx.AsyncClient], platforms: dict[str, Running]
) -> None:
    _, api = node
    woo = platforms["woocommerce"]
    woo.control("POST", "seed", {"products": [{"id": 40, "sku": "", "stock_quantity": 0}]})
    woo.control("POST", "seed", {"products": [{"id": 41, "parent_id": 40, "sku": "GLOW", "stock_quantity": 5}]})
    sold = woo.control("POST", "sell", {"lines": [{"sku": "GLOW", "quantity": 2}]})
    assert sold["delivery"]["status"] == 200, sold["delivery"]
    await until_counters(api, sold=2, available=8)
    assert woo.control("POST", "cancel", {"order_id": sold["order_id"]})["delivery"]["status"] == 200
    await until_counters(api, sold=0, available=10)


async def test_a_tiktok_sale_is_accepted_and_recorded_as_needing_a_fetch(
    node: tuple[Node, httpx.AsyncClient], platforms: dict[str, Running], redis: Redis
) -> None:
    _, api = node
    tiktok = platforms["tiktok"]
    tiktok.control(
        "POST", "seed", {"skus": [{"product_id": "p1", "sku_id": "s1", "seller_sku": "GLOW", "stock": {"w1": 9}}]}
    )
    sold = tiktok.control("POST", "sell", {"lines": [{"seller_sku": "GLOW", "quantity": 2}]})
    assert sold["delivery"]["status"] == 200, sold["delivery"]
    issue = await until_issue(redis, "tiktok", sold["order_id"])
    assert issue[b"kind"] == b"needs_fetch" and issue[b"status"] == b"paid"
    counters = (await api.get("/api/drops/d1")).json()["stock"]["counters"]
    assert counters["sold"] == 0  # nothing applied until LiveDrop reads the order's lines


async def test_a_meta_sale_is_accepted_and_recorded_as_needing_a_fetch(
    node: tuple[Node, httpx.AsyncClient], platforms: dict[str, Running], redis: Redis
) -> None:
    _, api = node
    meta = platforms["meta"]
    meta.control("POST", "seed", {"items": [{"retailer_id": "GLOW", "quantity": 4}]})
    sold = meta.control("POST", "sell", {"lines": [{"retailer_id": "GLOW", "quantity": 1}]})
    assert sold["delivery"]["status"] == 200, sold["delivery"]
    issue = await until_issue(redis, "meta", sold["order_id"])
    assert issue[b"kind"] == b"needs_fetch" and issue[b"status"] == b"paid"
    assert (await api.get("/api/drops/d1")).json()["stock"]["counters"]["sold"] == 0


async def test_a_stand_in_with_the_wrong_secret_is_refused_by_livedrop(
    node: tuple[Node, httpx.AsyncClient], platforms: dict[str, Running]
) -> None:
    _, api = node
    shopify = platforms["shopify"]
    shopify.control(
        "POST", "seed", {"items": [{"inventory_item_id": 1, "location_id": 1, "sku": "GLOW", "available": 5}]}
    )
    original = shopify.standin.emitter.target.secret
    shopify.control("PUT", "webhook", {"secret": "not-the-shared-secret"})
    try:
        sold = shopify.control("POST", "sell", {"lines": [{"sku": "GLOW", "quantity": 1}]})
    finally:
        shopify.control("PUT", "webhook", {"secret": original})
    assert sold["delivery"]["status"] == 401
    assert (await api.get("/api/drops/d1")).json()["stock"]["counters"]["sold"] == 0


async def test_a_multi_channel_sale_beyond_livedrop_stock_is_counted_oversold(
    node: tuple[Node, httpx.AsyncClient], platforms: dict[str, Running], redis: Redis
) -> None:
    """Each platform sells from its own stock (nobody has pushed LiveDrop's numbers to them yet),
    so together they sell more than the 10 units LiveDrop has: what cannot be covered is oversold."""
    _, api = node
    shopify, woo, tiktok = platforms["shopify"], platforms["woocommerce"], platforms["tiktok"]
    shopify.control(
        "POST", "seed", {"items": [{"inventory_item_id": 1, "location_id": 1, "sku": "GLOW", "available": 8}]}
    )
    woo.control("POST", "seed", {"products": [{"id": 10, "sku": "GLOW", "stock_quantity": 8}]})
    tiktok.control(
        "POST", "seed", {"skus": [{"product_id": "p1", "sku_id": "s1", "seller_sku": "GLOW", "stock": {"w1": 8}}]}
    )
    assert shopify.control("POST", "sell", {"lines": [{"sku": "GLOW", "quantity": 8}]})["delivery"]["status"] == 200
    assert woo.control("POST", "sell", {"lines": [{"sku": "GLOW", "quantity": 4}]})["delivery"]["status"] == 200
    on_tiktok = tiktok.control("POST", "sell", {"lines": [{"seller_sku": "GLOW", "quantity": 1}]})
    await until_counters(api, sold=10, available=0, oversold=2)
    await until_issue(redis, "tiktok", on_tiktok["order_id"])
