"""Per-connection limits on what one viewer can make the node do (docs/protocol.md).

One anonymous socket sending 500 ``hello`` frames once made the node send back 92 frames for
each; every ``release`` is a Redis script call; a text frame that is not UTF-8 logged a
traceback at ERROR. Bounds here are computed from the documented rates and the time the test
measured, never from how fast the machine is.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Callable

import msgspec
import pytest
from redis.asyncio import Redis

from broadcast.feed import Feed
from server.shows.catalog import Catalog, DropInfo, Show
from server.viewers.endpoint import HELLO_BURST, HELLO_RATE
from server.viewers.tokens import mint
from stock import StockEngine
from tests.support.servers import VIEWER_SECRET, Node
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]
EVENTS = 10


@pytest.fixture
async def show(redis: Redis) -> AsyncIterator[str]:
    """Show s1 with one drop and EVENTS events in its stream; yields the stream's epoch."""
    engine = StockEngine(redis)
    catalog = Catalog(redis, engine)
    await catalog.put_show(Show(show_id="s1", title="Limits"))
    await catalog.put_drop(DropInfo(drop_id="d1", show_id="s1", sku="SKU-1", title="Sneaker", total=5))
    feed = Feed(redis)
    _, epoch = await feed.start("s1")
    for i in range(EVENTS):
        await feed.publish("s1", "show", msgspec.json.encode({"show": "s1", "title": f"t{i}", "state": "live"}))
    yield epoch


async def _answers_until_pong(viewer: Viewer) -> list[dict[str, object]]:
    """Every frame up to a pong, pinging until one gets through the frame limit."""
    frames: list[dict[str, object]] = []
    for attempt in range(1000):
        await viewer.send({"type": "ping", "ref": f"end-{attempt}"})
        while True:
            try:
                frame = await viewer.next(timeout=0.5)
            except TimeoutError:
                break
            frames.append(frame)
            if frame["type"] == "pong":
                return frames
    raise AssertionError("no pong")


async def test_hello_floods_are_limited(nodes: NodeFactory, show: str) -> None:
    node = nodes()
    viewer = await Viewer.connect(node.ws("s1"))
    await viewer.next()
    started = time.monotonic()
    hello = json.dumps({"type": "hello", "resume_from": 0, "epoch": show})
    await asyncio.gather(*(viewer.send(hello) for _ in range(500)))
    frames = await _answers_until_pong(viewer)
    elapsed = time.monotonic() - started
    replayed = sum(1 for f in frames if f["type"] == "show")
    limited = sum(1 for f in frames if f["type"] == "error" and f["code"] == "rate_limited")
    # Each hello that passes replays the EVENTS events; at most the burst plus the refill.
    allowed = HELLO_BURST + math.ceil(elapsed * HELLO_RATE)
    assert replayed <= EVENTS * allowed, (replayed, allowed)
    assert limited >= 500 - allowed
    await viewer.close()


async def test_release_floods_are_limited_before_redis(nodes: NodeFactory, show: str) -> None:
    node = nodes()
    token = mint(VIEWER_SECRET.encode(), "s1", "mallory")
    viewer = await Viewer.connect(node.ws("s1", f"token={token}"))
    await viewer.next()
    started = time.monotonic()
    for i in range(30):
        await viewer.send({"type": "release", "hold": "d1.999", "ref": f"r{i}"})
    answers = [await viewer.until("error") for _ in range(30)]
    elapsed = time.monotonic() - started
    codes = [a["code"] for a in answers]
    # The node's default reserve budget: 10 at once, 5 a second (LIVEDROP_RESERVE_*).
    assert codes.count("unknown_hold") <= 10 + math.ceil(elapsed * 5), codes
    assert codes.count("rate_limited") >= 1 and set(codes) == {"unknown_hold", "rate_limited"}
    assert {a["ref"] for a in answers} == {f"r{i}" for i in range(30)}
    await viewer.close()


async def test_invalid_utf8_is_refused_without_an_error_log(nodes: NodeFactory, show: str) -> None:
    node = nodes()
    for _ in range(3):
        viewer = await Viewer.connect(node.ws("s1"))
        await viewer.next()
        await viewer.conn.send(b'{"type": "ping", "ref": "\xff\xfe"}', text=True)
        with pytest.raises(Exception):  # noqa: B017 - the close surfaces as ConnectionClosed
            while True:
                await viewer.next()
        assert viewer.conn.close_code == 1007
    bystander = await Viewer.connect(node.ws("s1"))
    await bystander.next()
    await bystander.send({"type": "ping", "ref": "ok"})
    assert (await bystander.until("pong"))["ref"] == "ok"
    await bystander.close()
    log = node.log_path.read_text()
    assert "Traceback" not in log and "ERROR" not in log, log[-2000:]
