"""Refusals in the handshake (server/viewers/handshake.py): a bad token (401), a token that does
not open the show (403) and an unknown show (404) get an HTTP status and a problem body instead
of the upgrade, from a raw client and from Chromium; the same verdict over plain HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from starlette.datastructures import QueryParams
from starlette.websockets import WebSocket
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server.shows.catalog import Catalog, Show
from server.viewers.handshake import BAD_POSITION, refuse, resume_position, token_refusal
from server.viewers.tokens import ExpiredToken, mint
from stock import StockEngine
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.support.metrics_scrape import scrape
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
    ("not a show id", "a:b", None, 404, "unknown_show"),
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
    # Counted by its code (the plain-HTTP check is not a refused upgrade, and is not counted).
    assert (await scrape(node.http))[f'livedrop_viewer_refused_total{{code="{code}"}}'] == 1


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


# -- after the handshake: the query's resume position, binary frames, token expiry ---------------


@pytest.mark.parametrize(
    "query",
    [
        "resume_from=-1&epoch=e",
        "resume_from=abc&epoch=e",
        "resume_from=%C2%B2&epoch=e",  # "²": a digit to str.isdigit, not to int()
        "resume_from=1e3&epoch=e",
        "resume_from=99999999999999999999&epoch=e",
        "resume_from=1",  # no epoch
        "resume_from=1&epoch=",
        "resume_from=1&epoch=a%20b",
        "resume_from=1&resume_from=2&epoch=e",
        "resume_from=&epoch=e",
    ],
)
async def test_a_malformed_resume_position_gets_a_reset_welcome(nodes: NodeFactory, show: str, query: str) -> None:
    node = nodes()
    viewer = await Viewer.connect(node.ws("s1", query))
    welcome = await viewer.next()
    assert welcome["type"] == "welcome" and welcome["reset"] is True, (query, welcome)
    await viewer.send({"type": "ping", "ref": "p"})
    assert (await viewer.until("pong"))["ref"] == "p"
    await viewer.close()


async def test_a_binary_frame_closes_with_1003(nodes: NodeFactory, show: str) -> None:
    node = nodes()
    viewer = await Viewer.connect(node.ws("s1"))
    await viewer.next()
    await viewer.conn.send(b'{"type": "ping", "ref": "p"}')  # valid JSON, but binary
    with pytest.raises(ConnectionClosed):
        while True:
            await viewer.next()
    assert viewer.conn.close_code == 1003


async def test_a_token_that_expires_on_an_open_connection_closes_it_with_4401(nodes: NodeFactory, show: str) -> None:
    node = nodes()
    viewer = await Viewer.connect(node.ws("s1"), mint(SECRET, "s1", "v1", ttl=1.5))
    assert (await viewer.next())["can_reserve"] is True
    with pytest.raises(ConnectionClosed):
        while True:
            await viewer.next(timeout=5)
    assert (viewer.conn.close_code, viewer.conn.close_reason) == (4401, "token_expired")
    assert (await scrape(node.http))['livedrop_viewer_refused_total{code="closed_token_expired"}'] == 1
    # A watcher without a token has nothing to expire.
    watcher = await Viewer.connect(node.ws("s1"))
    await watcher.next()
    await watcher.send({"type": "ping", "ref": "p"})
    assert (await watcher.until("pong"))["ref"] == "p"
    await watcher.close()


@given(
    seqs=st.lists(st.text(max_size=24) | st.integers().map(str), max_size=3),
    epochs=st.lists(st.text(max_size=70), max_size=2),
)
def test_any_query_gives_a_position_or_a_reset_never_an_exception(seqs: list[str], epochs: list[str]) -> None:
    query = QueryParams([("resume_from", s) for s in seqs] + [("epoch", e) for e in epochs])
    position = resume_position(query)
    if not seqs:
        assert position is None
    elif position is not BAD_POSITION:
        assert position is not None and position.after == int(seqs[0]) < 2**53 and position.epoch == epochs[0]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    query=st.text(max_size=60).map(lambda q: "resume_from=" + quote(q, safe="") + "&epoch=" + quote(q[::-1], safe=""))
)
def test_any_resume_query_gets_a_welcome_from_a_node(node_for_fuzz: Node, query: str) -> None:
    async def once() -> None:
        viewer = await Viewer.connect(node_for_fuzz.ws("s1", query))
        assert (await viewer.next())["type"] == "welcome"
        await viewer.close()

    asyncio.run(once())


@pytest.fixture
def node_for_fuzz(nodes: NodeFactory, show: str) -> Node:
    return nodes()


async def test_a_server_without_the_denial_extension_gets_the_close_code_after_the_upgrade() -> None:
    """The fallback of ``refuse``: the upgrade is accepted and closed at once with the refusal's
    close code (what every server did before the ASGI WebSocket Denial Response extension)."""
    sent: list[MutableMapping[str, Any]] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws/shows/s1", "headers": [], "extensions": {}, "subprotocols": []}
    refusal = token_refusal(ExpiredToken("expired token"))
    await refuse(WebSocket(scope, receive, send), refusal, "livedrop.v1")
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.close"]
    assert sent[1]["code"] == 1008 and refusal.body.status == 401


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    header=st.text(max_size=200).filter(lambda h: h.isprintable() and h.isascii()),
    # Any show id a route can carry ("/" and dot segments make other paths, the router's 404).
    show_id=st.text(min_size=1, max_size=30).filter(lambda s: "/" not in s and s.strip(".")),
)
def test_any_authorization_header_gets_a_verdict_never_a_crash(node_for_fuzz: Node, header: str, show_id: str) -> None:
    async def once() -> None:
        async with httpx.AsyncClient(base_url=node_for_fuzz.http) as client:
            path = "/ws/shows/" + quote(show_id, safe="")
            answer = await client.get(path, headers={"Authorization": header.strip()})
        assert answer.status_code in (204, 401, 403, 404), (header, show_id, answer.text)
        if answer.status_code != 204:
            assert answer.headers["content-type"] == "application/problem+json"

    asyncio.run(once())


async def test_the_fast_path_capture_keeps_the_servers_denial_extension() -> None:
    """``CaptureTransport`` (the hub's fast send path) adds its own extension to the scope: it must
    keep the server's, or every refusal would fall back to a close after the upgrade."""
    from broadcast.transport import EXTENSION, CaptureTransport

    seen: list[MutableMapping[str, Any]] = []

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["extensions"])

    async def nothing(*_: Any) -> Any:
        return None

    scope = {"type": "websocket", "extensions": {"websocket.http.response": {}}}
    await CaptureTransport(app)(scope, nothing, nothing)
    assert set(seen[0]) == {"websocket.http.response", EXTENSION}
