"""Hypothesis against a real node: random chat frames on the viewer WebSocket, random bodies on
every chat endpoint of the host API. Whatever arrives: an answer (a chat_ack, a chat_rejected or
an error frame; a 4xx problem), never a dropped connection or a 5xx; a bystander sees only
normalised text and no error; stock is untouched; the node stays ready."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from server.chat.normalise import display_text
from server.ops.local_redis import LocalRedis
from server.shows.catalog import Catalog, DropInfo, Show
from stock import StockEngine
from tests.server.chat.conftest import chat_token
from tests.support.servers import Node
from tests.support.util import scaled
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]
HOST_TOKEN = "fuzz-host"
ANSWERS = ("chat_ack", "chat_rejected", "error")

refs = st.from_regex(r"[A-Za-z0-9]{1,8}", fullmatch=True)
texts = st.one_of(
    st.text(max_size=320),
    st.sampled_from(["<img src=x onerror=alert(1)>", "SOLD", "SOLD A 2", "sold zz 9", "\u202e\u200b", " "]),
)
ids = st.one_of(st.from_regex(r"[0-9]{1,14}-[0-9]{1,2}", fullmatch=True), st.text(max_size=20))
chat_frames = st.one_of(
    st.builds(lambda r, t: {"type": "chat_send", "ref": r, "text": t}, refs, texts),
    st.builds(
        lambda a, r, m, s: {"type": "chat_mod", "action": a, "ref": r, "message": m, "seconds": s},
        st.sampled_from(["delete", "clear", "timeout", "ban", "unban", "pin", "unpin", "slow", "approve", "nope"]),
        refs,
        ids | st.none(),
        st.integers(-5, 2_000_000) | st.none(),
    ),
    st.dictionaries(
        st.sampled_from(["type", "ref", "text", "action", "message", "uid", "held", "seconds"]),
        st.integers() | st.text(max_size=12) | st.none() | st.just("chat_send"),
    ),
)


async def _setup(url: str) -> None:
    redis = Redis.from_url(url)
    catalog = Catalog(redis, StockEngine(redis))
    await catalog.put_show(Show(show_id="s1", title="Fuzz"))
    await catalog.put_drop(DropInfo(drop_id="d1", show_id="s1", sku="SKU-1", title="Sneaker", total=5))
    await redis.aclose()


async def _example(node: Node, frames: list[Any], moderator: bool) -> None:
    token = chat_token("fuzzer", name="<b>Fuzz</b>", role="moderator" if moderator else "")
    fuzzer = await Viewer.connect(node.ws("s1"), token)
    bystander = await Viewer.connect(node.ws("s1"))
    await fuzzer.until("chat_history")
    await bystander.until("chat_history")
    for frame in frames:
        await fuzzer.send(json.dumps(frame))
    ping = {"type": "ping", "ref": "alive"}
    await fuzzer.send(ping)
    async with asyncio.timeout(scaled(20)):
        while True:
            got = await fuzzer.next(timeout=20)
            if got["type"] == "pong":
                break
            if got["type"] == "error" and got["code"] == "rate_limited" and got.get("ref") is None:
                await asyncio.sleep(0.1)
                await fuzzer.send(ping)
    await asyncio.sleep(0.25)  # a tick: what the fuzzer posted reaches the bystander
    while True:
        try:
            seen = await bystander.next(timeout=0.2)
        except TimeoutError:
            break
        assert seen["type"] != "error", seen
        for message in seen.get("messages", []) if seen["type"] in ("chat", "chat_history") else []:
            assert message["text"] == display_text(message["text"]) and message["text"]
    await fuzzer.close()
    await bystander.close()


def test_random_chat_frames(nodes: NodeFactory, redis_server: LocalRedis) -> None:
    node = nodes(env={"LIVEDROP_CHAT_VIEWER_RATE": "1000", "LIVEDROP_CHAT_VIEWER_BURST": "1000"})
    asyncio.run(_setup(redis_server.url))

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(frames=st.lists(chat_frames, min_size=1, max_size=12), moderator=st.booleans())
    def run(frames: list[Any], moderator: bool) -> None:
        asyncio.run(_example(node, frames, moderator))

    run()

    async def untouched() -> None:
        redis = Redis.from_url(redis_server.url)
        counters = await StockEngine(redis).counters("d1")
        assert (counters.available, counters.held, counters.sold) == (5, 0, 0)  # a draft: no claim reached it
        await redis.aclose()

    asyncio.run(untouched())
    with urllib.request.urlopen(node.http + "/readyz", timeout=5) as response:
        assert response.status == 200


ENDPOINTS = [
    ("POST", "/messages"),
    ("POST", "/clear"),
    ("POST", "/timeouts"),
    ("POST", "/bans"),
    ("POST", "/unbans"),
    ("PUT", "/settings"),
    ("PUT", "/pin"),
    ("POST", "/moderators"),
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "target": st.fixed_dictionaries(
                {}, optional={"message": ids, "uid": st.text(max_size=20), "viewer": st.text(max_size=20)}
            ),
            "seconds": st.integers(-10, 2_000_000),
            "slow_seconds": st.integers(-10, 500),
            "text": texts,
            "keyword": st.text(max_size=20),
            "blocked_words": st.lists(st.text(max_size=70), max_size=5),
            "blocked_action": st.sampled_from(["hold", "drop", "x"]),
            "scope": st.sampled_from(["show", "deployment", "x"]),
            "message": ids,
            "viewer_id": st.text(max_size=20),
            "reason": st.text(max_size=30),
        },
    ),
)


def test_random_bodies_on_every_chat_endpoint(nodes: NodeFactory, redis_server: LocalRedis) -> None:
    node = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN})
    asyncio.run(_setup(redis_server.url))
    client = httpx.Client(base_url=node.http, headers={"Authorization": f"Bearer {HOST_TOKEN}"})

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(endpoint=st.sampled_from(ENDPOINTS), body=bodies, show=st.sampled_from(["s1", "s1", "nope", "b{a}d"]))
    def run(endpoint: tuple[str, str], body: Any, show: str) -> None:
        method, path = endpoint
        response = client.request(method, f"/api/shows/{show}/chat{path}", json=body)
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json"

    try:
        run()
        for path in ("/messages/1-0", "/messages/garbage", "/pin", "/held/zz", "/held/../x"):
            assert client.delete(f"/api/shows/s1/chat{path}").status_code < 500
        assert client.get("/api/shows/s1/chat/audit?after=x").status_code == 422
        assert client.get("/api/shows/s1/chat").status_code == 200
    finally:
        client.close()
