"""The control panel with a drop that has sizes, in a real headless Chromium on a real node: the
add-drop form defines the sizes (rows of size, SKU, stock), the drop card shows each size's
counters as the engine has them, a size sells out on its own and is marked so, and a restock names
the size. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import httpx
import pytest
from redis.asyncio import Redis

from stock import StockEngine
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, LAPTOP, PageErrors, artifact, require_chromium
from tests.support.invariants import assert_variant_drop_invariants
from tests.support.servers import Node
from tests.support.util import scaled
from tests.support.viewer_client import Viewer

if TYPE_CHECKING:
    from playwright.async_api import Browser

NodeFactory = Callable[..., Node]
HOST_TOKEN = "panel-variants-token"


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


async def test_panel_defines_sizes_and_shows_each_sizes_counters(
    redis: Redis, nodes: NodeFactory, browser: Browser
) -> None:
    from playwright.async_api import expect

    node = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN})
    errors = PageErrors()
    engine = StockEngine(redis)
    api = httpx.AsyncClient(base_url=node.http, headers={"Authorization": f"Bearer {HOST_TOKEN}"})
    await api.post("/api/shows", json={"show_id": "s1", "title": "Sizes show"})
    context = await browser.new_context(viewport=LAPTOP)
    try:
        panel = await context.new_page()
        errors.watch(panel, "panel")
        await panel.goto(f"{node.http}/panel#token={HOST_TOKEN}&show=s1")
        await expect(panel.get_by_role("status", name="Connection")).to_have_text("Live", timeout=ms(5))

        form = panel.get_by_role("region", name="Add a drop")
        for label, value in {
            "SKU": "SNK-AURORA",
            "Title": "Aurora sneaker",
            "Price": "89.00",
            "Currency": "EUR",
        }.items():
            await form.get_by_label(label, exact=True).fill(value)
        await form.get_by_label("Per-customer limit").fill("2")
        sizes = [("41", "SNK-41", "1"), ("42", "SNK-42", "3"), ("43", "SNK-43", "2")]
        for i, (size, sku, stock) in enumerate(sizes):
            await form.get_by_role("button", name="Add variant").click()
            row = form.get_by_role("list", name="Variants").get_by_role("listitem").nth(i)
            await row.get_by_label("Size / option").fill(size)
            await row.get_by_label("Variant SKU").fill(sku)
            await row.get_by_label("Variant stock").fill(stock)
        # A bad row is refused before anything is sent.
        await form.get_by_role("button", name="Add variant").click()
        bad = form.get_by_role("list", name="Variants").get_by_role("listitem").nth(3)
        await bad.get_by_label("Size / option").fill("44")
        await bad.get_by_label("Variant SKU").fill("has space")
        await form.get_by_role("button", name="Add drop").click()
        await expect(form.get_by_role("alert")).to_contain_text("Variant 44")
        assert (await api.get("/api/shows/s1")).json()["drops"] == []
        await bad.get_by_role("button", name="Remove this variant").click()
        await form.get_by_role("button", name="Add drop").click()
        queue = panel.get_by_role("list", name="Run of show")
        await expect(queue.get_by_role("listitem")).to_have_count(1)
        info = (await api.get("/api/shows/s1")).json()["drops"][0]["info"]
        assert info["total"] == 6 and info["sku"] == "SNK-AURORA"
        assert [(v["id"], v["sku"], v["options"], v["total"]) for v in info["variants"]] == [
            ("v41", "SNK-41", {"size": "41"}, 1),
            ("v42", "SNK-42", {"size": "42"}, 3),
            ("v43", "SNK-43", {"size": "43"}, 2),
        ]
        drop_id = info["drop_id"]

        await panel.get_by_role("button", name="Launch next").click()
        card = panel.get_by_role("article", name="Drop Aurora sneaker")
        table = card.get_by_role("table", name="Variants")
        await expect(table.get_by_role("row")).to_have_count(4)  # a head row and one per size

        token = (await api.post("/api/shows/s1/tokens", json={"viewer_id": "v1"})).json()["token"]
        viewer = await Viewer.connect(node.ws("s1", f"token={token}"))
        await viewer.next()
        await viewer.send({"type": "reserve", "ref": "a", "drop": drop_id, "variant": "v41"})
        await viewer.until("reserved")
        await viewer.send({"type": "reserve", "ref": "b", "drop": drop_id, "variant": "v42"})
        await viewer.until("reserved")
        each = await assert_variant_drop_invariants(engine, drop_id)

        for size, vid in (("41", "v41"), ("42", "v42"), ("43", "v43")):
            row = table.get_by_role("row", name=size)
            c = each[vid]
            await expect(row.get_by_role("cell")).to_have_text(
                [f"SNK-{size}", str(c.available), str(c.held), str(c.sold), str(c.oversold)], timeout=ms(3)
            )
        await expect(table.get_by_role("row", name="41")).to_have_class("sold-out")
        await expect(card.get_by_label("Held", exact=True)).to_have_text("2")
        await expect(card).to_contain_text("1 of 3 variants sold out")

        # Restock size 41 from the card: it is on sale again.
        await card.get_by_label("Variant to restock").select_option(label="41")
        await card.get_by_label("Restock units").fill("4")
        await card.get_by_role("button", name="Restock").click()
        await expect(table.get_by_role("row", name="41").get_by_role("cell").nth(1)).to_have_text("4", timeout=ms(3))
        await expect(table.get_by_role("row", name="41")).not_to_have_class("sold-out")
        each = await assert_variant_drop_invariants(engine, drop_id)
        assert each["v41"].total == 5 and each["v42"].total == 3
        await panel.screenshot(path=artifact("panel-variants.png"), full_page=True)
        await viewer.close()
        assert errors.errors == []
    finally:
        await context.close()
        await api.aclose()
