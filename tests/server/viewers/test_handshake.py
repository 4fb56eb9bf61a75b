"""Refusals in the handshake (server/viewers/handshake.py): a bad token (401), a token that does
not open the show (403) and an unknown show (404) get an HTTP status and a problem body instead
of the upgrade, from a raw client and from Chromium; the same verdict over plain HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from websockets.exceptions import InvalidStatus

from server.shows.catalog import Catalog, Show
from server.viewers.tokens import mint
from stock import StockEngine
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.support.servers import VIEWER_SECRET, Node
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]
SECRET = VIEWER_SECRET.encode()


@pytest.fixture
async def show(redis: Redis) -> AsyncIterator[str]:
    await Catalog(redis, StockEngine(redis)).put_show(Show(show_id="s1", title="Friday drop"))
    yield "s1"


REFUSALS: list[tuple[str, str, str | None, int, str]] = [
    # (name, show, token, status, problem code)
    ("forged", "s1", mint(b"another-secret", "s1", "v1"), 401, "invalid_token"),
    ("malformed", "s1", "e30.forged", 401, "invalid_token"),
    ("expired", "s1", mint(SECRET, "s1", "v1", ttl=-5), 401, "token_expired"),
    ("other show", "s1", mint(SECRET, "s2", "v1"), 403, "forbidden_token"),
    ("unknown show", "nope", None, 404, "unknown_show"),
    ("unknown show, good token", "nope", mint(SECRET, "nope", "v1"), 404, "unknown_show"),
]


@pytest.mark.parametrize(("name", "show_id", "token", "status", "code"), REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_a_raw_client_is_refused_in_the_handshake_with_a_problem(
    nodes: NodeFactory, show: str, name: str, show_id: str, token: str | None, status: int, code: str
) -> None:
    node = nodes()
    with pytest.raises(InvalidStatus) as refused:
        await Viewer.connect(node.ws(show_id), token)
    response = refused.value.response
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = json.loads(response.body or b"")
    assert problem["status"] == status and problem["code"] == code and problem["title"]
    assert token is None or token not in (response.body or b"").decode()
    # The same verdict over plain HTTP, the token in the Authorization header.
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=node.http) as client:
        checked = await client.get(f"/ws/shows/{show_id}", headers=headers)
    assert (checked.status_code, checked.json()["code"]) == (status, code)


async def test_an_admitted_upgrade_and_its_check(nodes: NodeFactory, show: str) -> None:
    node = nodes()
    for token in (None, mint(SECRET, "s1", "v1")):
        viewer = await Viewer.connect(node.ws("s1"), token)
        assert (await viewer.next())["can_reserve"] is (token is not None)
        await viewer.close()
        async with httpx.AsyncClient(base_url=node.http) as client:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            assert (await client.get("/ws/shows/s1", headers=headers)).status_code == 204


# In the page: a raw browser WebSocket, then what the upgrade's check says over fetch.
PROBE = """async ({ url, protocols, check, token }) => {
  const events = [];
  await new Promise((resolve) => {
    const ws = new WebSocket(url, protocols);
    ws.onopen = () => { events.push("open"); ws.close(); resolve(); };
    ws.onerror = () => events.push("error");
    ws.onclose = (e) => { events.push("close:" + e.code); resolve(); };
    setTimeout(resolve, 10000);
  });
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const answer = await fetch(check, { headers });
  return { events, status: answer.status, body: answer.status === 204 ? null : await answer.json() };
}"""


async def test_chromium_never_sees_a_refused_connection_open(nodes: NodeFactory, show: str) -> None:
    require_chromium()
    from playwright.async_api import async_playwright

    node = nodes()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{node.http}/healthz")  # a page of the node's origin
            for name, show_id, token, status, code in [*REFUSALS, ("admitted", "s1", mint(SECRET, "s1", "v"), 204, "")]:
                protocols = ["livedrop.v1", *([f"livedrop.token.{token}"] if token else [])]
                args = {
                    "url": node.ws(show_id),
                    "protocols": protocols,
                    "check": f"/ws/shows/{show_id}",
                    "token": token,
                }
                seen: dict[str, Any] = await page.evaluate(PROBE, args)
                if status == 204:
                    assert seen["events"][0] == "open", name
                    continue
                # A refused handshake: no onopen, ever; an error, then a close with 1006.
                assert seen["events"] == ["error", "close:1006"], (name, seen)
                assert (seen["status"], seen["body"]["code"]) == (status, code), name
        finally:
            await browser.close()
