"""The demo viewer page's size picker in a real headless Chromium on a real node: a drop with sizes
shows one button per size (and the chat's claim hint a size on sale), a size that sells out is
greyed out while the others still sell, Buy reserves the size picked, a sold-out size offers its
own waitlist, and a unit that comes back to that size is handed to the waiting viewer. Invariants
are checked per size and per drop after every step. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import httpx
import pytest
from redis.asyncio import Redis

from stock import StockEngine
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, PHONE, PageErrors, artifact, require_chromium
from tests.support.invariants import assert_variant_drop_invariants
from tests.support.servers import Node
from tests.support.util import scaled
from tests.support.viewer_client import Viewer

if TYPE_CHECKING:
    from playwright.async_api import Browser

NodeFactory = Callable[..., Node]
HOST_TOKEN = "size-picker-token"


def ms(seconds: float) -> float:
    return scaled(seconds) * 1000


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


async def test_size_picker_greys_sold_out_sizes_and_reserves_the_size_picked(
    redis: Redis, nodes: NodeFactory, browser: Browser
) -> None:
    from playwright.async_api import expect

    node = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN, "LIVEDROP_DEMO": "1"})
    engine = StockEngine(redis)
    errors = PageErrors()
    api = httpx.AsyncClient(base_url=node.http, headers={"Authorization": f"Bearer {HOST_TOKEN}"})
    await api.post("/api/shows", json={"show_id": "s1", "title": "Sizes"})
    shoe = {
        "drop_id": "shoe",
        "title": "Aurora sneaker",
        "prices": {"EUR": 8900},
        "image_url": "/static/demo/products/sneaker.svg",
        "variants": [
            {"id": "s41", "sku": "SNK-41", "quantity": 1, "options": {"size": "41"}},
            {"id": "s42", "sku": "SNK-42", "quantity": 2, "options": {"size": "42"}, "prices": {"EUR": 9400}},
        ],
    }
    assert (await api.post("/api/shows/s1/drops", json=shoe)).status_code == 201
    await api.post("/api/drops/shoe/launch", json={"duration_seconds": 300})

    async def check() -> None:
        await assert_variant_drop_invariants(engine, "shoe")

    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    other = None
    try:
        token = (await api.post("/api/shows/s1/tokens", json={"viewer_id": "v-page"})).json()["token"]
        page = await context.new_page()
        errors.watch(page, "viewer")
        await page.goto(f"{node.http}/demo/shows/s1#token={token}")
        await expect(page.get_by_role("heading", name="Aurora sneaker")).to_be_visible(timeout=ms(3))
        sizes = page.get_by_role("group", name="Size")
        await expect(sizes.get_by_role("button")).to_have_text(["41", "42"])
        await expect(page.get_by_role("button", name="Pick a size")).to_be_disabled()
        await expect(page.get_by_text("3 of 3 left")).to_be_visible()
        # The chat's hint shows how to claim this drop by comment, with a size on sale.
        hint = page.locator("#chat-hint")
        await expect(hint).to_have_text("Type “SOLD A 41” or “SOLD A 41 2” to claim (your size instead of 41).")

        # Another viewer takes the only size 41: it greys out on this page, size 42 does not.
        other_token = (await api.post("/api/shows/s1/tokens", json={"viewer_id": "v-other"})).json()["token"]
        other = await Viewer.connect(node.ws("s1", f"token={other_token}"))
        await other.next()
        await other.send({"type": "reserve", "ref": "o1", "drop": "shoe", "variant": "s41"})
        other_hold = await other.until("reserved")
        await check()
        size41 = sizes.get_by_role("button", name="41, sold out")
        await expect(size41).to_have_class("size sold-out", timeout=ms(3))
        await expect(sizes.get_by_role("button", name="42", exact=True)).not_to_have_class("size sold-out")
        await expect(hint).to_contain_text("“SOLD A 42 2”")  # 41 is sold out: the example follows
        await page.screenshot(path=artifact("viewer-sizes.png"), full_page=True)

        # A sold-out size offers its own waitlist.
        await size41.click()
        await expect(size41).to_have_attribute("aria-pressed", "true")
        await expect(page.get_by_text("Sold out · 41")).to_be_visible()
        await page.get_by_role("button", name="Join waitlist").click()
        await expect(page.get_by_text("You're #1 on the waitlist · 41")).to_be_visible(timeout=ms(3))
        assert await engine.waitlist("shoe", "s41") == [("v-page", 1)]
        await check()

        # Size 42: its own price and stock, and Buy reserves that size.
        await sizes.get_by_role("button", name="42", exact=True).click()
        await expect(page.get_by_text("2 of 2 left in 42")).to_be_visible()
        await expect(page.locator("#drop-price")).to_contain_text("94")
        await page.get_by_role("button", name="Buy now").click()
        await expect(page.get_by_text("Reserved for you · 42")).to_be_visible(timeout=ms(3))
        held = [h for h in await engine.holds("shoe", "s42") if h.customer == "v-page"]
        assert len(held) == 1 and held[0].hold_id.startswith("shoe~s42.")
        await check()
        await page.get_by_role("button", name="Pay now").click()
        await expect(page.get_by_text("Order confirmed")).to_be_visible(timeout=ms(3))
        assert (await engine.counters("shoe", "s42")).sold == 1
        await check()

        # The other viewer lets size 41 go: it is handed to this page's viewer, who waited for it.
        await other.send({"type": "release", "ref": "o2", "hold": other_hold["hold"]})
        await other.until("released")
        await expect(page.get_by_text("A unit came back: it's yours! · 41")).to_be_visible(timeout=ms(5))
        await expect(sizes.get_by_role("button", name="41")).to_have_attribute("aria-pressed", "true")
        assert [h.customer for h in await engine.holds("shoe", "s41") if h.state == "held"] == ["v-page"]
        await check()
        await page.screenshot(path=artifact("viewer-size-handout.png"), full_page=True)
        assert errors.errors == []
    finally:
        if other is not None:
            await other.close()
        await context.close()
        await api.aclose()
