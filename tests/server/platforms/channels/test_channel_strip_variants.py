"""The channel strip of a drop with variants on a real node with real stand-ins: the host channel
sends each size's chips and a summary per channel, a size's chip follows its own pushes, and a
host that connects gets the strip at once (not at the ticker's next round)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from standins.shopify import ShopifyStandIn
from standins.woocommerce import WooCommerceStandIn
from stock import StockEngine
from tests.server.platforms.channels.test_channel_nodes import HOST_TOKEN, api, node_env
from tests.support.servers import Node
from tests.support.standins import Running, serving
from tests.support.util import scaled
from tests.support.viewer_client import Frame, Viewer

NodeFactory = Callable[..., Node]
SHOE: dict[str, Any] = {
    "drop_id": "shoe",
    "title": "Aurora sneaker",
    "sku": "SNK",
    "prices": {"EUR": 8900},
    "variants": [
        {"id": "s41", "sku": "SNK-41", "quantity": 10, "options": {"size": "41"}},
        {"id": "s42", "sku": "SNK-42", "quantity": 6, "options": {"size": "42"}},
    ],
}


@pytest.fixture(scope="module")
def stands() -> Iterator[dict[str, Running]]:
    with serving(ShopifyStandIn()) as shop, serving(WooCommerceStandIn()) as woo:
        yield {"shopify": shop, "woocommerce": woo}


def seed_sizes(stands: dict[str, Running]) -> None:
    """The sneaker as each platform holds a product in sizes: Shopify inventory items, one per
    variant; WooCommerce variations of variable product 20."""
    for running in stands.values():
        running.control("POST", "reset")
    stands["shopify"].control(
        "POST",
        "seed",
        {"items": [{"inventory_item_id": n, "location_id": 9, "sku": f"SNK-{n}", "available": 0} for n in (41, 42)]},
    )
    stands["woocommerce"].control(
        "POST",
        "seed",
        {"products": [{"id": 200 + n, "sku": f"SNK-{n}", "stock_quantity": 0, "parent_id": 20} for n in (41, 42)]},
    )


async def shoe_on_sale(node: Node) -> None:
    """Show s1 with the sneaker live, each size mapped on Shopify and WooCommerce (``seed_sizes``)."""
    await api(node, "POST", "/api/shows", {"show_id": "s1", "title": "Sizes"})
    await api(node, "POST", "/api/shows/s1/drops", SHOE)
    await api(node, "POST", "/api/drops/shoe/launch", {"duration_seconds": 600})
    for n in (41, 42):
        mapping = {
            "shopify": {"inventory_item_id": str(n), "location_id": "9"},
            "woocommerce": {"product_id": "20", "variation_id": str(200 + n)},
        }
        await api(node, "PUT", f"/api/channels/mappings/SNK-{n}", mapping)


async def connect_host(node: Node) -> Viewer:
    host = await Viewer.connect(f"ws://127.0.0.1:{node.port}/ws/host/shows/s1")
    await host.send({"type": "auth", "token": HOST_TOKEN})
    return host


def chips(frame: Frame, variant: str | None = None) -> dict[str, Frame]:
    """The shoe's chips by channel: the summary, or one variant's."""
    entry = next(d for d in frame["drops"] if d["drop"] == "shoe")
    if variant is None:
        return {c["channel"]: c for c in entry["channels"]}
    return {c["channel"]: c for v in entry["variants"] if v["variant"] == variant for c in v["channels"]}


async def strip_until(host: Viewer, predicate: Callable[[Frame], bool], timeout: float = 15.0) -> Frame:
    async with asyncio.timeout(scaled(timeout)):
        while True:
            frame = await host.until("channel_sync", timeout=scaled(timeout))
            if any(d["drop"] == "shoe" for d in frame["drops"]) and predicate(frame):
                return frame


async def test_each_size_has_its_chips_and_the_drop_a_summary_sent_on_connect(
    nodes: NodeFactory, stands: dict[str, Running], redis: Redis
) -> None:
    seed_sizes(stands)
    node = nodes(env=node_env(stands))
    await shoe_on_sale(node)

    host = await connect_host(node)
    try:
        # Both sizes pushed: 10 and 6 less each channel's buffer (Shopify 2, WooCommerce 3).
        first = await strip_until(
            host, lambda f: all(c["sync"] == "in_sync" and c["at"] for c in chips(f).values()) and len(chips(f)) == 2
        )
        assert {k: c["value"] for k, c in chips(first, "s41").items()} == {"shopify": 8, "woocommerce": 7}
        assert {k: c["value"] for k, c in chips(first, "s42").items()} == {"shopify": 4, "woocommerce": 3}
        assert chips(first, "s42")["woocommerce"]["ids"] == {"product_id": "20", "variation_id": "242"}
        summary = chips(first)
        assert {k: c["value"] for k, c in summary.items()} == {"shopify": 12, "woocommerce": 10}
        assert all(c["ids"] == {} for c in summary.values())
        assert summary["shopify"]["at"] == min(chips(first, v)["shopify"]["at"] for v in ("s41", "s42"))
        entry = next(d for d in first["drops"] if d["drop"] == "shoe")
        assert entry["sku"] == "SNK" and [v["sku"] for v in entry["variants"]] == ["SNK-41", "SNK-42"]

        # Size 42 sells on the live show: its own chip moves after its push, size 41's does not.
        before = chips(first, "s42")["shopify"]["at"]
        await StockEngine(redis).reserve("shoe", "c1", 3, "r1", variant="s42")
        moved = await strip_until(
            host,
            lambda f: chips(f, "s42")["shopify"]["value"] == 1 and chips(f, "s42")["woocommerce"]["value"] == 0,
        )
        assert chips(moved, "s42")["shopify"]["at"] > before and chips(moved, "s42")["shopify"]["sync"] == "in_sync"
        assert chips(moved, "s41")["shopify"]["value"] == 8
        assert chips(moved)["shopify"]["value"] == 9
        items = stands["shopify"].control("GET", "stock")["items"]
        assert {i["sku"]: i["available"] for i in items} == {"SNK-41": 8, "SNK-42": 1}

        # A second host (a reconnecting panel) gets the strip as it joins: right after the join's
        # host_stats, before the ticker's next round (whose host_stats would come first). A round
        # can fall within the join's few milliseconds, so three joins get the chance; without the
        # strip on join, every one of them waits for a round.
        counts = []
        for _ in range(3):
            late = await connect_host(node)
            try:
                stats = 0
                async with asyncio.timeout(scaled(10)):
                    while (frame := await late.next(timeout=scaled(10)))["type"] != "channel_sync":
                        stats += frame["type"] == "host_stats"
                counts.append(stats)
                assert chips(frame, "s42")["shopify"]["value"] == 1
                assert chips(frame)["woocommerce"]["value"] == 7  # sizes 41 and 42: 7 + 0
            finally:
                await late.close()
            if stats <= 1:
                break
        assert min(counts) <= 1, f"the strip waited for a tick: {counts} host_stats before it"
    finally:
        await host.close()
