"""The panel's feed import in a real headless Chromium: a host picks a Meta CSV, sees what would
be created and the refused row with its line and reason, sets a default stock and confirms; the
drops (with variants) land in the run of show. A feed URL inside the network is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import httpx
import pytest
from redis.asyncio import Redis

from tests.support import paths
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, LAPTOP, PageErrors, artifact, require_chromium
from tests.support.servers import Node
from tests.support.util import scaled

if TYPE_CHECKING:
    from playwright.async_api import Browser

NodeFactory = Callable[..., Node]
HOST_TOKEN = "panel-import-token"


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


async def test_a_host_previews_and_confirms_an_import(redis: Redis, nodes: NodeFactory, browser: Browser) -> None:
    from playwright.async_api import expect

    node = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN})
    errors = PageErrors()
    async with httpx.AsyncClient(base_url=node.http, headers={"Authorization": f"Bearer {HOST_TOKEN}"}) as api:
        assert (await api.post("/api/shows", json={"show_id": "s1", "title": "Import night"})).status_code == 201
        context = await browser.new_context(viewport=LAPTOP)
        try:
            panel = await context.new_page()
            errors.watch(panel, "panel")
            await panel.goto(f"{node.http}/panel#token={HOST_TOKEN}&show=s1")
            await expect(panel.get_by_role("heading", name="Import night")).to_be_visible(timeout=ms(5))
            section = panel.get_by_role("region", name="Import from a product feed")

            # A URL inside the network: refused by the server, said on the page.
            await section.get_by_label("Feed URL").fill("http://127.0.0.1:9/feed.csv")
            await section.get_by_role("button", name="Preview import").click()
            await expect(section.get_by_role("alert").first).to_contain_text("private", timeout=ms(10))
            await section.get_by_label("Feed URL").fill("")

            await section.get_by_label("Feed file").set_input_files(paths.DATA / "feeds" / "meta_variants.csv")
            await section.get_by_role("button", name="Preview import").click()
            drops = section.get_by_role("table", name="Drops to create")
            await expect(drops.locator("tbody tr")).to_have_count(3, timeout=ms(10))
            await expect(drops.locator("tbody tr").first).to_contain_text("blue-36: 12")
            refused = section.get_by_role("table", name="Refused rows")
            await expect(refused.locator("tbody tr")).to_have_count(1)
            await expect(refused.locator("tbody tr")).to_contain_text("7")
            await expect(refused.locator("tbody tr")).to_contain_text("formula")
            await expect(section).to_contain_text("set a default stock")  # the tote has none
            assert (await api.get("/api/shows/s1")).json()["drops"] == []  # a preview creates nothing
            await panel.screenshot(path=str(artifact("import-preview.png")), full_page=True)

            await section.get_by_label("Default stock").fill("4")
            await section.get_by_role("button", name="Create 3 drop(s)").click()
            await expect(section.get_by_role("status")).to_have_text("Created 3 drop(s).", timeout=ms(10))
            queue = panel.get_by_role("list", name="Run of show")
            await expect(queue.get_by_role("listitem")).to_have_count(3, timeout=ms(5))
            show = (await api.get("/api/shows/s1")).json()
            infos = {d["info"]["drop_id"]: d["info"] for d in show["drops"]}
            assert [v["total"] for v in infos["DRESS-LINEN"]["variants"]] == [12, 8, 0]
            assert infos["TOTE-CANVAS"]["total"] == 4 and infos["SCARF-SILK"]["total"] == 3
            # Expected resource errors: the refused URL's 422, and the feed's product images, whose
            # CDN does not resolve here. Anything else (an uncaught error above all) fails.
            assert [e for e in errors.errors if "Failed to load resource" not in e] == []
        finally:
            await context.close()
