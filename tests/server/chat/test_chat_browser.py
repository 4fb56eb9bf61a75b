"""The chat in a real headless Chromium, on a real node: the panel's chat pane (post, delete,
time out, pin, the moderation log) and the demo viewer page's (send, a comment claim), with
markup in a message shown as text in both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import httpx
import pytest
from redis.asyncio import Redis

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, LAPTOP, PHONE, PageErrors, artifact, require_chromium
from tests.support.servers import Node
from tests.support.util import scaled

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

NodeFactory = Callable[..., Node]
HOST_TOKEN = "chat-panel-host"
HOSTILE = '<img src=x onerror="window.pwned=1"><b>bold</b><script>window.pwned=2</script>'


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


async def viewer_page(browser: Browser, node: Node, api: httpx.AsyncClient, viewer: str, name: str) -> Page:
    token = (await api.post("/api/shows/s1/tokens", json={"viewer_id": viewer, "name": name})).json()["token"]
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = await context.new_page()
    await page.goto(f"{node.http}/demo/shows/s1#token={token}")
    return page


async def send(page: Page, text: str) -> None:
    await page.get_by_label("Message", exact=True).fill(text)
    await page.get_by_role("button", name="Send").click()


async def test_panel_and_viewer_chat_moderation_and_a_comment_claim(
    redis: Redis, nodes: NodeFactory, browser: Browser
) -> None:
    from playwright.async_api import expect

    node = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN, "LIVEDROP_DEMO": "1"})
    errors = PageErrors()
    api = httpx.AsyncClient(base_url=node.http, headers={"Authorization": f"Bearer {HOST_TOKEN}"})
    await api.post("/api/shows", json={"show_id": "s1", "title": "Chat show"})
    await api.post(
        "/api/shows/s1/drops",
        json={"drop_id": "d1", "sku": "SNK-1", "title": "Sneaker", "total": 5, "prices": {"EUR": 1900}},
    )
    await api.post("/api/drops/d1/launch", json={})
    panel_context = await browser.new_context(viewport=LAPTOP)
    try:
        panel = await panel_context.new_page()
        errors.watch(panel, "panel")
        await panel.goto(f"{node.http}/panel#token={HOST_TOKEN}&show=s1")
        await expect(panel.get_by_role("status", name="Connection")).to_have_text("Live", timeout=ms(5))
        alice = await viewer_page(browser, node, api, "alice", "Alice")
        errors.watch(alice, "alice")
        bob = await viewer_page(browser, node, api, "bob", "Bob")
        errors.watch(bob, "bob")
        panel_chat = panel.get_by_role("log", name="Chat messages")
        alice_chat = alice.get_by_role("log", name="Chat messages")
        bob_chat = bob.get_by_role("log", name="Chat messages")
        await expect(alice.locator("#drop-code")).to_have_text("A", timeout=ms(5))
        await expect(alice.locator("#chat-hint")).to_have_text("Type “SOLD A” or “SOLD A 2” to claim.")

        # Markup is text: shown as typed, no element made from it, no script run.
        await send(alice, HOSTILE)
        for log in (panel_chat, bob_chat, alice_chat):
            await expect(log.locator(".chat-text").last).to_have_text(HOSTILE, timeout=ms(5))
            assert await log.locator("img, b, script").count() == 0
        for page in (panel, alice, bob):
            assert await page.evaluate("window.pwned") is None

        # The host posts; viewers see it marked.
        await panel.get_by_label("Message as host").fill("Welcome to the show!")
        await panel.get_by_role("button", name="Send").click()
        await expect(bob_chat.locator(".by-host .chat-text")).to_have_text("Welcome to the show!", timeout=ms(5))
        await expect(bob_chat.locator(".by-host .chat-role")).to_have_text("Host")

        # Pin the host's line: above the chat on every viewer.
        await panel_chat.locator(".by-host").get_by_role("button", name="Pin").click()
        await expect(bob.locator("#chat-pinned")).to_contain_text("Welcome to the show!", timeout=ms(5))

        # Delete Alice's message: gone everywhere.
        await panel_chat.locator(".by-viewer").first.get_by_role("button", name="Delete").click()
        for log in (panel_chat, bob_chat, alice_chat):
            await expect(log.locator(".by-viewer")).to_have_count(0, timeout=ms(5))

        # A comment claim: Bob types "SOLD A 2", holds two units, everyone sees the claim line.
        await send(bob, "SOLD A 2")
        await expect(bob.get_by_text("Reserved for you")).to_be_visible(timeout=ms(5))
        await expect(alice_chat.locator(".kind-claim")).to_have_text("Bob claimed 2 of A", timeout=ms(5))
        holds = (await api.get("/api/drops/d1/holds")).json()["holds"]
        assert [(h["customer"], h["qty"]) for h in holds] == [("bob", 2)]

        # Time Bob out from his claim message: his next message is refused, with a clear line.
        await panel_chat.locator(".by-viewer", has_text="SOLD A 2").get_by_role("button", name="Timeout").click()
        await panel.wait_for_timeout(300)
        await send(bob, "am I muted?")
        await expect(bob.locator("#chat-status")).to_contain_text("timed out", timeout=ms(5))

        # The moderation log names every action.
        log = panel.locator("#chat-audit")
        await panel.get_by_text("Moderation log").click()
        await expect(log.locator("li")).to_have_count(3, timeout=ms(5))
        await expect(log).to_contain_text("timeout")
        await expect(log).to_contain_text("delete")
        await expect(log).to_contain_text("pin")
        await panel.screenshot(path=artifact("chat-panel.png"), full_page=True)
        await bob.screenshot(path=artifact("chat-viewer.png"), full_page=True)
        assert errors.errors == []
    finally:
        await panel_context.close()
        await api.aclose()
