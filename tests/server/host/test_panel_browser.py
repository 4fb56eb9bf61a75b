"""The control panel and the demo viewer page in a real headless Chromium, on a real node.

A host signs in on /panel, creates a show, adds a drop and launches it; a viewer page in a second
browser context (phone-sized) sees the drop within a second, buys, and shows its hold timer; the
panel's counters then match the stock engine's, read through the host API. Screenshots of every
page go to ``test-artifacts/`` for a person to look at.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from redis.asyncio import Redis

from server import keys
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, LAPTOP, PHONE, TABLET, PageErrors, artifact, require_chromium
from tests.support.servers import Node
from tests.support.util import scaled

if TYPE_CHECKING:
    from playwright.async_api import Browser

NodeFactory = Callable[..., Node]
HOST_TOKEN = "panel-host-token"
COUNTERS = {"available": "Available", "held": "Held", "sold": "Sold", "oversold": "Oversold"}


def ms(seconds: float) -> float:
    """Playwright timeouts are in milliseconds; every test timeout scales with the one knob."""
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


async def engine_counters(api: httpx.AsyncClient, drop_id: str) -> dict[str, int]:
    counters: dict[str, int] = (await api.get(f"/api/drops/{drop_id}")).json()["stock"]["counters"]
    return counters


async def test_host_launches_a_drop_a_viewer_buys_and_the_panel_follows(
    redis: Redis, nodes: NodeFactory, browser: Browser
) -> None:
    from playwright.async_api import expect

    node = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN, "LIVEDROP_DEMO": "1"})
    errors = PageErrors()
    api = httpx.AsyncClient(base_url=node.http, headers={"Authorization": f"Bearer {HOST_TOKEN}"})
    panel_context = await browser.new_context(viewport=LAPTOP)
    viewer_context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        panel = await panel_context.new_page()
        errors.watch(panel, "panel")
        await panel.goto(f"{node.http}/panel")

        # Sign in: a wrong token first, then the right one.
        await panel.get_by_label("Host token").fill("not-a-token")
        await panel.get_by_role("button", name="Sign in").click()
        await expect(panel.get_by_role("alert")).to_contain_text("not accepted")
        await panel.get_by_label("Host token").fill(HOST_TOKEN)
        await panel.get_by_role("button", name="Sign in").click()

        # Create a show and land on it, with the host channel connected.
        await panel.get_by_label("Show id").fill("s1")
        await panel.get_by_label("Show title").fill("Browser show")
        await panel.get_by_role("button", name="Create show").click()
        await expect(panel.get_by_role("heading", name="Browser show")).to_be_visible()
        await expect(panel.get_by_role("status", name="Connection")).to_have_text("Live", timeout=ms(5))

        # Add a drop with the form.
        form = panel.get_by_role("region", name="Add a drop")
        for label, value in {
            "SKU": "SNK-42",
            "Title": "Test sneaker",
            "Image URL": "/static/demo/products/sneaker.svg",
            "Price": "19.50",
            "Currency": "EUR",
            "Stock": "5",
            "Per-customer limit": "2",
            "Hold seconds": "120",
            "Duration (seconds)": "300",
        }.items():
            await form.get_by_label(label, exact=True).fill(value)
        await form.get_by_role("button", name="Add drop").click()
        queue = panel.get_by_role("list", name="Run of show")
        await expect(queue.get_by_role("listitem")).to_have_count(1)
        show = (await api.get("/api/shows/s1")).json()
        drop = show["drops"][0]["info"]
        assert drop | {"drop_id": None} == drop | {
            "drop_id": None,
            "sku": "SNK-42",
            "title": "Test sneaker",
            "total": 5,
            "prices": {"EUR": 1950},
            "per_customer_limit": 2,
            "hold_seconds": 120.0,
            "duration_seconds": 300.0,
        }
        drop_id = drop["drop_id"]

        # A viewer page, phone-sized, in its own browser context, waiting for the drop.
        minted = await api.post("/api/shows/s1/tokens", json={"viewer_id": "v-browser"})
        viewer = await viewer_context.new_page()
        errors.watch(viewer, "viewer")
        await viewer.goto(f"{node.http}/demo/shows/s1#token={minted.json()['token']}")
        await expect(viewer.get_by_text("Waiting for the next drop")).to_be_visible()
        assert "#token" not in viewer.url  # the token leaves the address bar
        await panel.screenshot(path=artifact("panel-before-launch.png"), full_page=True)

        # Launch: the viewer sees the drop within a second.
        await panel.get_by_role("button", name="Launch next").click()
        await expect(viewer.get_by_role("heading", name="Test sneaker")).to_be_visible(timeout=ms(1))
        await expect(viewer.get_by_text("5 of 5 left")).to_be_visible()
        await expect(viewer.get_by_role("timer", name="Drop ends in")).to_have_text(re.compile(r"Ends in [45]:\d\d"))
        await viewer.screenshot(path=artifact("viewer-live.png"), full_page=True)

        # Buy: a hold, and its timer counting down from the drop's two minutes.
        await viewer.get_by_role("button", name="Buy now").click()
        hold_timer = viewer.get_by_role("timer", name="Hold time left")
        await expect(hold_timer).to_have_text(re.compile(r"^(2:00|1:[0-5]\d)$"))
        await expect(viewer.get_by_text("Reserved for you")).to_be_visible()
        await viewer.screenshot(path=artifact("viewer-held.png"), full_page=True)

        # The panel's card shows the engine's counters.
        card = panel.get_by_role("article", name="Drop Test sneaker")
        counters = await engine_counters(api, drop_id)
        assert counters == {"total": 5, "available": 4, "held": 1, "sold": 0, "oversold": 0}
        for key, label in COUNTERS.items():
            await expect(card.get_by_label(label, exact=True)).to_have_text(str(counters[key]))
        await expect(card.get_by_role("timer", name="Time left")).to_have_text(re.compile(r"^[45]:\d\d$"))
        await expect(panel.get_by_label("Viewers now", exact=True)).to_have_text("1")  # the host is not counted

        # Pay (demo checkout): confirmed on the viewer, sold on the panel, as in the engine.
        await viewer.get_by_role("button", name="Pay now").click()
        await expect(viewer.get_by_text("Order confirmed")).to_be_visible()
        await viewer.screenshot(path=artifact("viewer-confirmed.png"), full_page=True)
        await expect(card.get_by_label("Sold", exact=True)).to_have_text("1")
        counters = await engine_counters(api, drop_id)
        assert counters == {"total": 5, "available": 4, "held": 0, "sold": 1, "oversold": 0}
        for key, label in COUNTERS.items():
            await expect(card.get_by_label(label, exact=True)).to_have_text(str(counters[key]))
        await expect(panel.get_by_label("Units sold", exact=True)).to_have_text("1")
        await expect(panel.get_by_label("Sales value", exact=True)).to_contain_text("19.50")

        # Restock from the panel.
        await card.get_by_label("Restock units").fill("3")
        await card.get_by_role("button", name="Restock").click()
        await expect(card.get_by_label("Available", exact=True)).to_have_text("7")
        assert (await engine_counters(api, drop_id))["total"] == 8
        await expect(viewer.get_by_text("7 of 8 left")).to_be_visible()

        # An alert written to the alerts stream reaches the panel's feed within a tick.
        await redis.xadd(
            keys.ALERTS,
            {"kind": "oversold", "show": "s1", "drop": drop_id, "platform": "shopify", "order": "1001", "qty": "2"},
        )
        alerts = panel.get_by_role("log", name="Alerts")
        await expect(alerts.get_by_role("listitem")).to_have_count(1, timeout=ms(3))
        await expect(alerts).to_contain_text("shopify order 1001")
        await asyncio.sleep(scaled(1.5))  # a few points on the chart before the pictures
        await panel.screenshot(path=artifact("panel-laptop.png"), full_page=True)
        await panel.set_viewport_size(TABLET)
        await panel.screenshot(path=artifact("panel-tablet.png"), full_page=True)
        await panel.set_viewport_size(LAPTOP)

        # Reorder and end: a second drop moves up; ending the live one reaches the viewer.
        await api.post("/api/shows/s1/drops", json={"drop_id": "d2", "sku": "TEE-1", "title": "Second tee", "total": 3})
        await panel.get_by_role("button", name="Shows").click()
        await panel.get_by_role("button", name=re.compile("Browser show")).click()
        await expect(queue.get_by_role("listitem")).to_have_count(2)
        await panel.get_by_role("button", name="Move Second tee up").click()
        await expect(queue.get_by_role("listitem").first).to_contain_text("Second tee")
        async with asyncio.timeout(scaled(5)):
            while (await api.get("/api/shows/s1/order")).json()["drop_ids"] != ["d2", drop_id]:
                await asyncio.sleep(0.05)
        card = panel.get_by_role("article", name="Drop Test sneaker")
        await card.get_by_role("button", name="End drop").click()
        await expect(viewer.get_by_text("This drop has ended")).to_be_visible(timeout=ms(3))
        await expect(viewer.get_by_text("Order confirmed")).to_be_visible()
        assert (await api.get(f"/api/drops/{drop_id}")).json()["stock"]["state"] == "closed"
        await viewer.screenshot(path=artifact("viewer-ended.png"), full_page=True)
        # The one expected error: Chromium logs the refused sign-in's 401.
        assert [e for e in errors.errors if "status of 401" not in e] == []
    finally:
        await panel_context.close()
        await viewer_context.close()
        await api.aclose()


async def test_viewer_page_states_sold_out_waitlist_and_watch_only(
    redis: Redis, nodes: NodeFactory, browser: Browser
) -> None:
    """Without a token the page watches; a sold-out drop offers the waitlist; a unit that comes
    back goes to the waitlisted viewer as a hold."""
    from playwright.async_api import expect

    node = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN})
    errors = PageErrors()
    headers = {"Authorization": f"Bearer {HOST_TOKEN}"}
    contexts: list[Any] = []
    async with httpx.AsyncClient(base_url=node.http, headers=headers) as api:
        try:
            await api.post("/api/shows", json={"show_id": "s2", "title": "Tiny stock"})
            await api.post(
                "/api/shows/s2/drops",
                json={"drop_id": "one", "sku": "ONE-1", "title": "Only one", "total": 1, "prices": {"JPY": 5000}},
            )
            await api.post("/api/drops/one/launch", json={"duration_seconds": 600})
            pages = []
            for viewer_id in ("first", "second", None):
                context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
                contexts.append(context)
                page = await context.new_page()
                errors.watch(page, viewer_id or "watcher")
                fragment = ""
                if viewer_id:
                    token = (await api.post("/api/shows/s2/tokens", json={"viewer_id": viewer_id})).json()["token"]
                    fragment = f"#token={token}"
                await page.goto(f"{node.http}/demo/shows/s2{fragment}")
                await expect(page.get_by_role("heading", name="Only one")).to_be_visible()
                pages.append(page)
            first, second, watcher = pages
            await expect(first.get_by_text("¥5,000")).to_be_visible()

            await expect(watcher.get_by_role("button", name="Buy now")).to_be_disabled()
            await expect(watcher.get_by_role("status")).to_contain_text("Watching only")

            await first.get_by_role("button", name="Buy now").click()
            await expect(first.get_by_role("timer", name="Hold time left")).to_be_visible()
            await expect(second.get_by_text("Sold out", exact=True)).to_be_visible()
            await second.get_by_role("button", name="Join waitlist").click()
            await expect(second.get_by_text("You're #1 on the waitlist")).to_be_visible()
            await second.screenshot(path=artifact("viewer-waitlisted.png"), full_page=True)

            await first.get_by_role("button", name="Release").click()
            await expect(second.get_by_text("A unit came back")).to_be_visible(timeout=ms(3))
            await expect(first.get_by_text("Sold out", exact=True)).to_be_visible()  # it went to the waitlist
            await expect(second.get_by_role("timer", name="Hold time left")).to_be_visible()
            await expect(second.get_by_role("button", name="Pay now")).to_have_count(0)  # not a demo node
            await watcher.screenshot(path=artifact("viewer-watch-only.png"), full_page=True)
            assert errors.errors == []
        finally:
            for context in contexts:
                await context.close()
