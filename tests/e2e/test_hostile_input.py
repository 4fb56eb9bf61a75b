"""Hostile input on every surface of a real node (real sockets, real Redis): signed webhook bodies,
host API bodies and viewer frames that are too deep, too big, of the wrong shape or not JSON at all
get a 4xx problem document or an error frame; the node stays healthy, logs no traceback, and the
stock of the show's drop is untouched (DESIGN §13)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from server import keys
from server.platforms.webhooks.events import Platform
from server.shows.catalog import Catalog, DropInfo, Show
from server.viewers.protocol import MAX_FRAME_BYTES
from server.viewers.tokens import mint
from stock import StockEngine
from stock.types import Counters
from tests.support.servers import VIEWER_SECRET, Node
from tests.support.util import scaled
from tests.support.webhooks import (
    META_SECRET,
    STANDARD_SECRET,
    TIKTOK_APP_KEY,
    TIKTOK_SECRET,
    WOO_SECRET,
    meta_headers,
    shopify_headers,
    standard_headers,
    tiktok_headers,
    woo_headers,
)

SHOPIFY_SECRET = "shpss_test_secret"
HOST_TOKEN = "hostile-host-token"
DROP, SKU = "fuzz-target-drop", "FUZZ-TARGET-SKU"
ENV = {
    "LIVEDROP_HOST_TOKENS": HOST_TOKEN,
    "LIVEDROP_SHOPIFY_SECRETS": SHOPIFY_SECRET,
    "LIVEDROP_TIKTOK_APP_KEY": TIKTOK_APP_KEY,
    "LIVEDROP_TIKTOK_SECRETS": TIKTOK_SECRET,
    "LIVEDROP_META_SECRETS": META_SECRET,
    "LIVEDROP_WOOCOMMERCE_SECRETS": json.dumps([WOO_SECRET]),
    "LIVEDROP_STANDARD_SECRETS": STANDARD_SECRET,
}
START = Counters(10, 10, 0, 0, 0)
NodeFactory = Callable[..., Node]


@pytest.fixture
async def node(nodes: NodeFactory, redis: Redis) -> AsyncIterator[Node]:
    engine = StockEngine(redis)
    catalog = Catalog(redis, engine)
    await catalog.put_show(Show(show_id="s1", title="Hostile"))
    await catalog.put_drop(DropInfo(drop_id=DROP, show_id="s1", sku=SKU, title="Target", total=10))
    await engine.open(DROP)
    started = nodes(env=ENV)
    yield started
    # Every test: the node is alive and ready, logged no traceback, and the drop is untouched.
    assert started.proc is not None and started.proc.poll() is None
    with httpx.Client(base_url=started.http) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
    log = started.log_path.read_text()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    deadline = time.monotonic() + scaled(10)
    while True:  # what was accepted is applied (or dead-lettered) before stock is compared
        groups = await redis.xinfo_groups(keys.STREAM) if await redis.exists(keys.STREAM) else []
        if all(int(g["pending"]) == 0 and not g.get("lag") for g in groups) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert await engine.counters(DROP) == START


# -- what the issue reported: 5,000 levels of signed JSON ------------------------------------------

DEEP = b"[" * 5000 + b"]" * 5000


def signed(platform: Platform, body: bytes, topic: str | None = None) -> dict[str, str]:
    match platform:
        case Platform.SHOPIFY:
            return shopify_headers(body, topic or "orders/paid", secret=SHOPIFY_SECRET)
        case Platform.TIKTOK:
            return tiktok_headers(body)
        case Platform.META:
            return meta_headers(body)
        case Platform.WOOCOMMERCE:
            return woo_headers(body, topic or "order.updated")
        case Platform.STANDARD:
            return standard_headers(body)


@pytest.mark.parametrize("platform", list(Platform))
def test_deeply_nested_signed_json_is_a_400_problem_on_every_webhook(node: Node, platform: Platform) -> None:
    with httpx.Client(base_url=node.http) as client:
        for body in (DEEP, b'{"id": 1, "line_items": ' + DEEP + b"}", b'{"type": "order.paid", "data": ' + DEEP + b"}"):
            response = client.post(f"/webhooks/{platform.value}", content=body, headers=signed(platform, body))
            assert response.status_code == 400, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == "too_deep"


def test_deep_or_huge_host_api_bodies_are_refused(node: Node) -> None:
    auth = {"Authorization": f"Bearer {HOST_TOKEN}"}
    with httpx.Client(base_url=node.http, headers=auth) as client:
        deep = client.post("/api/shows", content=b'{"show_id": "x", "title": ' + DEEP + b"}")
        assert deep.status_code == 400 and deep.json()["code"] == "too-deep"
        assert deep.headers["content-type"] == "application/problem+json"
        huge = client.post("/api/shows", content=b'{"show_id": "x", "title": "' + b"a" * 2_000_000 + b'"}')
        assert huge.status_code == 413 and huge.json()["code"] == "too-large"


def test_a_deep_viewer_frame_gets_an_error_frame_and_the_connection_stays(node: Node) -> None:
    with viewer(node) as ws:
        ws.send('{"x": ' + "[" * 2000 + "]" * 2000 + ', "type": "ping"}')  # a text frame: binary closes (1003)
        frame = next_answer(ws)
        assert frame["type"] == "error" and frame["code"] == "bad_json", frame
        assert_alive(ws)


def test_a_deep_first_frame_on_the_host_channel_gets_an_error_frame(node: Node) -> None:
    url = node.ws("s1").replace("/ws/shows/", "/ws/host/shows/")
    with connect(url, compression=None, open_timeout=scaled(10)) as ws:
        ws.send(b'{"x": ' + b"[" * 2000 + b"]" * 2000 + b', "type": "auth"}')
        frame = json.loads(ws.recv(timeout=scaled(5)))
        assert frame["type"] == "error" and frame["code"] == "bad_json", frame
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=scaled(5))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008  # no token: refused as before


# -- property tests: generated bodies and frames ----------------------------------------------------

KEYS = [
    "id",
    "type",
    "data",
    "order_id",
    "lines",
    "line_items",
    "sku",
    "qty",
    "quantity",
    "line_id",
    "status",
    "cancelled_at",
    "refund_line_items",
    "refund_id",
    "entry",
    "changes",
    "value",
    "event",
    "tts_notification_id",
    "update_time",
    "order_status",
    "drop",
    "ref",
    "hold",
    "resume_from",
    "epoch",
    "show_id",
    "title",
    "total",
    "delta",
    "request_id",
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["paid", "CANCEL", "order.cancelled", "orders/cancelled", "cancelled", "CREATED", "ping"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=25,
)
nested = st.integers(min_value=1, max_value=6000).flatmap(
    lambda n: st.sampled_from([b"[" * n + b"]" * n, b'{"a":' * n + b"1" + b"}" * n, b"[" * n])
)
bodies = (
    values.map(lambda v: json.dumps(v).encode())
    | nested
    | st.binary(max_size=300)
    | st.tuples(st.sampled_from([b'{"type":"order.paid","data":', b'{"id":1,"line_items":', b'{"entry":']), nested).map(
        lambda t: t[0] + t[1] + b"}"
    )
)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def test_generated_signed_webhooks_get_a_problem_or_an_acknowledgement(node: Node) -> None:
    with httpx.Client(base_url=node.http, timeout=scaled(10)) as client:

        @FUZZ
        @given(
            body=bodies,
            platform=st.sampled_from(list(Platform)),
            topic=st.sampled_from(["orders/paid", "orders/cancelled", "refunds/create", "order.updated", "x"]),
        )
        def post(body: bytes, platform: Platform, topic: str) -> None:
            response = client.post(f"/webhooks/{platform.value}", content=body, headers=signed(platform, body, topic))
            assert response.status_code in (200, 400, 413), (response.status_code, response.text)
            if response.status_code != 200:
                assert response.headers["content-type"] == "application/problem+json"

        post()


API_PATHS = [
    "/api/shows",
    "/api/shows/s1/drops",
    "/api/shows/s1/tokens",
    "/api/shows/nope/order",
    "/api/drops/nope/launch",
    "/api/drops/nope/end",
    "/api/drops/nope/restock",
]


def test_generated_host_api_bodies_get_a_problem_or_an_answer(node: Node) -> None:
    auth = {"Authorization": f"Bearer {HOST_TOKEN}"}
    with httpx.Client(base_url=node.http, headers=auth, timeout=scaled(10)) as client:

        @FUZZ
        @given(body=bodies, path=st.sampled_from(API_PATHS))
        def send(body: bytes, path: str) -> None:
            method = "PUT" if path.endswith("/order") else "POST"
            response = client.request(method, path, content=body)
            assert response.status_code < 500, (path, response.status_code, response.text)
            if response.status_code >= 400:
                assert response.headers["content-type"] == "application/problem+json"

        send()


def test_generated_viewer_frames_get_an_answer_and_the_connection_stays(node: Node) -> None:
    frames = bodies | values.map(lambda v: json.dumps({"type": "reserve", "drop": v, "ref": "r"}).encode())
    holder: list[ClientConnection] = []

    @FUZZ
    @given(frame=frames, as_text=st.booleans())
    def send(frame: bytes, as_text: bool) -> None:
        if not holder:
            holder.append(viewer(node))
        ws = holder[0]
        ws.send(frame.decode(errors="replace") if as_text else frame)
        if len(frame) > MAX_FRAME_BYTES or not as_text:  # too big (1009), or binary (1003)
            with pytest.raises(ConnectionClosed):
                assert_alive(ws)
            holder.clear()
            return
        if not as_text:  # the protocol is text frames: a binary frame closes with 1003 (docs/protocol.md)
            with pytest.raises(ConnectionClosed) as closed:
                assert_alive(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003
            holder.clear()
            return
        assert_alive(ws)

    try:
        send()
    finally:
        for ws in holder:
            ws.close()


def viewer(node: Node) -> ClientConnection:
    """A viewer connection with a token, its welcome read (close it, or use it in ``with``)."""
    token = mint(VIEWER_SECRET.encode(), "s1", "fuzzer")
    ws = connect(node.ws("s1", f"token={token}"), compression=None, open_timeout=scaled(10), legacy=True)
    assert json.loads(ws.recv(timeout=scaled(5)))["type"] == "welcome"
    return ws


_pings = iter(range(10**9))


# Frames the node broadcasts to every viewer of the show, whatever this viewer sent.
# The chat's frames to every viewer (server/chat) too: the history after a welcome, a tick's messages,
# moderation. They are no answer to what this viewer sent.
_BROADCASTS = ("stock", "viewers", "drop", "drop_ended", "show", "show_ended")
_BROADCASTS += ("chat", "chat_history", "chat_delete", "chat_clear", "chat_pin", "chat_mode", "chat_held")  # type: ignore[assignment]


def next_answer(ws: ClientConnection) -> dict[str, Any]:
    """The next frame that answers this viewer, skipping the show's broadcasts."""
    while True:
        frame: dict[str, Any] = json.loads(ws.recv(timeout=scaled(5)))
        if frame["type"] not in _BROADCASTS:
            return frame


def assert_alive(ws: ClientConnection) -> None:
    """Ping and read until the pong: every frame before it must be a private answer. A fuzzer
    outruns the per-connection frame budget, so a ping refused as ``rate_limited`` is sent again
    once the budget has refilled (the refusal itself proves the connection alive and answering)."""
    ref = f"alive-{next(_pings)}"
    ws.send(json.dumps({"type": "ping", "ref": ref}))
    while True:
        frame = next_answer(ws)
        if frame["type"] == "pong" and frame.get("ref") == ref:
            return
        assert frame["type"] in (
            "error",
            "pong",
            "welcome",
            "rejected",
            "waitlisted",
            "released",
            "chat_ack",
            "chat_rejected",
        ), frame
        if frame["type"] == "error" and frame.get("code") == "rate_limited" and frame.get("ref") is None:
            time.sleep(0.1)
            ref = f"alive-{next(_pings)}"
            ws.send(json.dumps({"type": "ping", "ref": ref}))
