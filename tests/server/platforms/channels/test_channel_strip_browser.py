"""The panel's channel strip in a real Chromium on a real node: each live drop card shows every
sales channel (in sync with its value and age, or failing with why), updated live over the host
channel as stock moves; a misconfigured channel is a panel alert, not a crash loop. A drop with
sizes shows one summary chip per channel, and each size's strip under "Channels per size"."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis

from standins.meta import MetaStandIn
from standins.shopify import ShopifyStandIn
from standins.tiktok import TikTokStandIn
from standins.woocommerce import WooCommerceStandIn
from stock import StockEngine
from stock.types import ReserveRequest
from tests.server.platforms.channels.harness import seed
from tests.server.platforms.channels.test_channel_nodes import HOST_TOKEN, live_drop, node_env
from tests.server.platforms.channels.test_channel_strip_variants import seed_sizes, shoe_on_sale
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, LAPTOP, PageErrors, artifact, require_chromium
from tests.support.servers import Node
from tests.support.standins import Running, serving
from tests.support.util import scaled

if TYPE_CHECKING:
    from playwright.async_api import Browser

NodeFactory = Callable[..., Node]


def ms(seconds: float) -> float:
    return scaled(seconds) * 1000


@pytest.fixture(scope="module")
def stands() -> Iterator[dict[str, Running]]:
    with (
        serving(ShopifyStandIn()) as shop,
        serving(TikTokStandIn()) as tiktok,
        serving(MetaStandIn(batch_polls=1, calls_per_hour=100_000)) as meta,
        serving(WooCommerceStandIn()) as woo,
    ):
        yield {"shopify": shop, "tiktok": tiktok, "meta": meta, "woocommerce": woo}


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    require_chromium()
    from playwright.async_api import async_playwright

    playwright = await async_playwright().start()
    try:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()
    finally:
        await playwright.stop()


async def test_the_drop_card_shows_each_channel_live_and_a_failing_one_as_an_alert(
    nodes: NodeFactory, stands: dict[str, Running], browser: Browser, redis: Redis
) -> None:
    from playwright.async_api import expect

    seed(stands, 0)
    node = nodes(env={**node_env(stands), "LIVEDROP_META_ACCESS_TOKEN": "wrong-token"})
    await live_drop(node, 50)
    errors = PageErrors()
    context = await browser.new_context(viewport=LAPTOP)
    try:
        panel = await context.new_page()
        errors.watch(panel, "panel")
        await panel.goto(f"{node.http}/panel#token={HOST_TOKEN}&show=s1")
        card = panel.get_by_role("article", name="Drop Glow")
        strip = card.get_by_role("list", name="Sales channels")
        shopify = strip.locator('li[data-channel="shopify"]')
        await expect(shopify).to_have_attribute("data-sync", "in_sync", timeout=ms(10))
        await expect(shopify).to_contain_text("Shopify")
        await expect(shopify).to_contain_text("in sync · 48 ·")  # 50 less Shopify's buffer of 2
        await expect(shopify).to_have_attribute("title", "inventory_item_id 1, location_id 9")  # its mapping
        meta = strip.locator('li[data-channel="meta"]')
        await expect(meta).to_have_attribute("data-sync", "failing", timeout=ms(10))
        await expect(meta).to_contain_text("failing · auth")
        await expect(panel.get_by_text("Sales channel meta is failing")).to_be_visible(timeout=ms(10))

        # Stock moves: the chips follow, live over the host channel.
        engine = StockEngine(redis)
        await engine.reserve_many("d1", [ReserveRequest(f"r{i}", f"c{i}", 1) for i in range(10)])
        await expect(shopify).to_contain_text("in sync · 38 ·", timeout=ms(10))
        await expect(strip.locator('li[data-channel="woocommerce"]')).to_contain_text("in sync · 37 ·")
        await panel.screenshot(path=artifact("panel-channel-strip.png"), full_page=True)
        assert node.proc is not None and node.proc.poll() is None  # a misconfiguration is no crash loop
        assert errors.errors == []
    finally:
        await context.close()


async def test_a_drop_with_sizes_shows_a_summary_chip_per_channel_and_each_size_on_demand(
    nodes: NodeFactory, stands: dict[str, Running], browser: Browser, redis: Redis
) -> None:
    from playwright.async_api import expect

    two = {"shopify": stands["shopify"], "woocommerce": stands["woocommerce"]}
    seed_sizes(two)
    node = nodes(env=node_env(two))
    await shoe_on_sale(node)
    errors = PageErrors()
    context = await browser.new_context(viewport=LAPTOP)
    try:
        panel = await context.new_page()
        errors.watch(panel, "panel")
        await panel.goto(f"{node.http}/panel#token={HOST_TOKEN}&show=s1")
        card = panel.get_by_role("article", name="Drop Aurora sneaker")
        # The summary chip: the sizes together (8 + 4 on Shopify), each size's state on hover.
        shopify = card.get_by_role("list", name="Sales channels", exact=True).locator('li[data-channel="shopify"]')
        await expect(shopify).to_have_attribute("data-sync", "in_sync", timeout=ms(10))
        await expect(shopify).to_contain_text("in sync · 12 ·", timeout=ms(10))
        await expect(shopify).to_contain_text("2 sizes")
        await expect(shopify).to_have_attribute("title", re.compile(r"SNK-41: in sync · 8 .*\nSNK-42: in sync · 4 "))
        woo = card.get_by_role("list", name="Sales channels", exact=True).locator('li[data-channel="woocommerce"]')
        await expect(woo).to_contain_text("in sync · 10 ·", timeout=ms(10))

        # Each size's own strip, one click away.
        sizes = card.locator("details.channel-sizes")
        await sizes.locator("summary").click()
        size_42 = card.get_by_role("list", name="Sales channels of 42")
        await expect(size_42.locator('li[data-channel="shopify"]')).to_contain_text("in sync · 4 ·")
        await expect(size_42.locator('li[data-channel="shopify"]')).to_have_attribute(
            "title", "inventory_item_id 42, location_id 9"
        )
        await expect(size_42.locator('li[data-channel="woocommerce"]')).to_have_attribute(
            "title", "product_id 20, variation_id 242"
        )

        # Size 42 sells: its strip and the summary follow, size 41's strip does not move.
        await StockEngine(redis).reserve("shoe", "c1", 3, "r1", variant="s42")
        await expect(size_42.locator('li[data-channel="shopify"]')).to_contain_text("in sync · 1 ·", timeout=ms(10))
        await expect(shopify).to_contain_text("in sync · 9 ·", timeout=ms(10))
        size_41 = card.get_by_role("list", name="Sales channels of 41")
        await expect(size_41.locator('li[data-channel="shopify"]')).to_contain_text("in sync · 8 ·")
        await panel.screenshot(path=artifact("panel-channel-strip-sizes.png"), full_page=True)
        assert errors.errors == []
    finally:
        await context.close()
