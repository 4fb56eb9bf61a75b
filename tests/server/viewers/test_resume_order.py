"""Resume never reorders or repeats: many viewers resume on a freshly started node (its ring
is empty, so every replay reads Redis) while events are published, and each one's ``seq``
must run from its resume point, one by one, to the last event. Viewers that connect fresh at
the same time must not get again an event their welcome already counts."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import msgspec
from redis.asyncio import Redis

from broadcast.feed import Feed
from server.shows.catalog import Catalog, Show
from stock import StockEngine
from tests.support.servers import Node
from tests.support.util import scaled
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]

BEFORE = 40  # events published before the node starts: the ones the resumes miss
DURING = 200  # events published while the viewers connect
RESUMERS = 60
FRESH = 20


async def _publish(feed: Feed, count: int) -> int:
    seq = 0
    for i in range(count):
        body = msgspec.json.encode({"show": "s1", "title": f"t{i}", "state": "live"})
        seq = (await feed.publish("s1", "show", body)).seq
        if i % 10 == 0:
            await asyncio.sleep(0)  # let the connects interleave with the publishes
    return seq


async def _seqs_until(viewer: Viewer, after: int, last: int) -> list[int]:
    """The seqs a viewer gets until ``last`` (nothing to wait for if it already had it)."""
    seqs: list[int] = []
    async with asyncio.timeout(scaled(30)):
        while (seqs[-1] if seqs else after) < last:
            frame = await viewer.next(timeout=30)
            assert not frame.get("reset"), frame
            if "seq" in frame and frame["type"] != "welcome":
                seqs.append(frame["seq"])
    return seqs


async def test_concurrent_resumes_get_every_missed_event_once_in_order(nodes: NodeFactory, redis: Redis) -> None:
    await Catalog(redis, StockEngine(redis)).put_show(Show(show_id="s1", title="Resumes"))
    feed = Feed(redis)
    _, epoch = await feed.start("s1")
    await _publish(feed, BEFORE)
    node = nodes()
    rng = random.Random(12)
    points = [rng.randrange(0, BEFORE + 1) for _ in range(RESUMERS)]

    async def resumer(after: int) -> tuple[int, Viewer]:
        return after, await Viewer.connect(node.ws("s1", f"resume_from={after}&epoch={epoch}"))

    async def fresh() -> tuple[int, Viewer]:
        viewer = await Viewer.connect(node.ws("s1"))
        welcome = await viewer.next()
        assert welcome["type"] == "welcome"
        return int(welcome["seq"]), viewer

    publisher = asyncio.create_task(_publish(feed, DURING))
    joined = await asyncio.gather(*(resumer(a) for a in points), *(fresh() for _ in range(FRESH)))
    last = await publisher
    bad = []
    for after, viewer in joined:
        seqs = await _seqs_until(viewer, after, last)
        if seqs != list(range(after + 1, last + 1)):
            bad.append((after, seqs[:12]))
    await asyncio.gather(*(viewer.close() for _, viewer in joined))
    assert not bad, f"{len(bad)} of {len(joined)} viewers got events out of order, twice or not at all: {bad}"
