"""The viewer page's "Checkout" link in a real headless Chromium: a phone-sized viewer buys, sees
its hold timer and a Checkout link into the stand-in Shopify store, pays there in a new tab, and
the viewer page turns to "Order confirmed" when the store's webhook has confirmed the hold."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from redis.asyncio import Redis

from standins.cli import livedrop_env
from standins.shopify import ShopifyStandIn
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, PHONE, PageErrors, artifact, require_chromium
from tests.support.servers import Node
from tests.support.standins import Running, serving
from tests.support.util import scaled

if TYPE_CHECKING:
    from playwright.async_api import Browser

NodeFactory = Callable[..., Node]
HOST_TOKEN = "checkout-browser-token"


def ms(seconds: float) -> float:
    return scaled(seconds) * 1000


@pytest.fixture(scope="module")
def shop() -> Iterator[Running]:
    with serving(ShopifyStandIn()) as running:
        yield running


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


async def test_a_viewer_checks_out_in_the_store_while_the_hold_timer_runs(
    redis: Redis, nodes: NodeFactory, shop: Running, browser: Browser
) -> None:
    from playwright.async_api import expect

    env = {"LIVEDROP_HOST_TOKENS": HOST_TOKEN, "LIVEDROP_CHECKOUT_ALLOW_HTTP": "1", **livedrop_env([shop.standin])}
    node = nodes(env=env)
    shop.control("POST", "reset")
    shop.control("PUT", "webhook", {"url": f"{node.http}/webhooks/shopify"})
    item = {"inventory_item_id": 1, "location_id": 1, "sku": "SNK-42", "available": 20, "variant_id": "4401"}
    shop.control("POST", "seed", {"items": [item]})
    errors = PageErrors()
    async with httpx.AsyncClient(base_url=node.http, headers={"Authorization": f"Bearer {HOST_TOKEN}"}) as api:
        await api.post("/api/shows", json={"show_id": "s1", "title": "Checkout show"})
        drop = {"drop_id": "d1", "sku": "SNK-42", "title": "Test sneaker", "total": 5, "hold_seconds": 120}
        assert (await api.post("/api/shows/s1/drops", json=drop)).status_code == 201
        settings = {"platform": "shopify", "store_url": shop.url, "products": {"d1": "4401"}}
        assert (await api.put("/api/shows/s1/checkout", json=settings)).status_code == 200
        assert (await api.post("/api/drops/d1/launch", json={})).status_code == 200
        token = (await api.post("/api/shows/s1/tokens", json={"viewer_id": "v-phone"})).json()["token"]

        context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
        try:
            viewer = await context.new_page()
            errors.watch(viewer, "viewer")
            await viewer.goto(f"{node.http}/demo/shows/s1#token={token}")
            await expect(viewer.get_by_role("heading", name="Test sneaker")).to_be_visible(timeout=ms(5))
            await viewer.get_by_role("button", name="Buy now").click()
            hold_timer = viewer.get_by_role("timer", name="Hold time left")
            await expect(hold_timer).to_have_text(re.compile(r"^(2:00|1:[0-5]\d)$"))
            checkout = viewer.get_by_role("link", name="Checkout")
            await expect(checkout).to_have_attribute("href", re.compile(rf"^{re.escape(shop.url)}/cart/4401:1\?"))
            await viewer.screenshot(path=str(artifact("viewer-checkout-link.png")), full_page=True)

            async with context.expect_page() as opened:
                await checkout.click()
            store = await opened.value
            await expect(store.get_by_role("button", name="Pay now")).to_be_visible(timeout=ms(5))
            # Still counting on the viewer page while the store's tab is in front: the text moves on.
            shown = await hold_timer.text_content() or ""
            await expect(hold_timer).not_to_have_text(shown, timeout=ms(5))
            await expect(hold_timer).to_have_text(re.compile(r"^(2:00|1:[0-5]\d)$"))
            await store.get_by_role("button", name="Pay now").click()
            await expect(store.get_by_role("heading", name="Thank you for your order")).to_be_visible(timeout=ms(5))

            await expect(viewer.get_by_text("Order confirmed")).to_be_visible(timeout=ms(10))
            await viewer.screenshot(path=str(artifact("viewer-checkout-confirmed.png")), full_page=True)
            counters = (await api.get("/api/drops/d1")).json()["stock"]["counters"]
            assert counters == {"total": 5, "available": 4, "held": 0, "sold": 1, "oversold": 0}
            assert errors.errors == []
        finally:
            await context.close()
