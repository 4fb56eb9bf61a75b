"""The node's stream reader: one blocking read for every feed and ledger the node follows,
supervised, and never in the way of a viewer joining. Real Redis (and Redis Cluster), real
nodes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from server.shows.catalog import DropInfo
from server.shows.tails import Entries, StreamTails
from stock import keys
from tests.server.shows.test_hub_nodes import make_host
from tests.server.viewers.test_viewer_ws import token
from tests.support.servers import Node
from tests.support.util import scaled
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]


class Collected:
    """What a handler was given, and an event per new arrival."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.arrived = asyncio.Event()

    def __call__(self, entries: Entries) -> None:
        self.ids += [e[0].decode() for e in entries]
        self.arrived.set()

    async def wait_for(self, count: int) -> list[str]:
        async with asyncio.timeout(scaled(10)):
            while len(self.ids) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.ids


async def test_a_stream_watched_while_the_read_blocks_is_read_at_once(redis: Redis) -> None:
    # BLOCK for a minute: only the wake-up can make the new stream's entry arrive in time.
    tails = StreamTails(redis, redis, node_id="n1", block_ms=60_000)
    first, second = Collected(), Collected()
    try:
        tails.watch("ld:{show:a}:events", "0-0", first)
        await asyncio.sleep(0.1)  # the read is now blocked in Redis on stream a only
        tails.watch("ld:{show:b}:events", "0-0", second)
        await redis.xadd("ld:{show:b}:events", {"k": "v"}, id="1-0")
        assert await second.wait_for(1) == ["1-0"]
        await redis.xadd("ld:{show:a}:events", {"k": "v"}, id="1-0")
        assert await first.wait_for(1) == ["1-0"]
        assert len(tails.groups) == 1  # one read for both
    finally:
        await tails.aclose()


async def test_watching_again_never_replays_what_the_new_watcher_already_has(redis: Redis) -> None:
    tails = StreamTails(redis, redis, node_id="n1", block_ms=60_000)
    key = "ld:{show:a}:events"
    old, new = Collected(), Collected()
    try:
        tails.watch(key, "0-0", old)
        await asyncio.sleep(0.1)
        tails.unwatch(key)
        for i in (1, 2, 3):  # the read in flight still names the stream from 0-0
            await redis.xadd(key, {"k": "v"}, id=f"{i}-0")
        tails.watch(key, "2-0", new)  # a snapshot taken now covers up to 2
        await redis.xadd(key, {"k": "v"}, id="4-0")
        assert await new.wait_for(2) == ["3-0", "4-0"]
        assert old.ids == []
    finally:
        await tails.aclose()


async def test_a_handler_that_raises_does_not_stop_the_reader(redis: Redis) -> None:
    tails = StreamTails(redis, redis, node_id="n1", block_ms=60_000)
    good = Collected()

    def bad(entries: Entries) -> None:
        raise RuntimeError("a bug in one handler")

    try:
        tails.watch("ld:{show:bad}:events", "0-0", bad)
        tails.watch("ld:{show:good}:events", "0-0", good)
        await redis.xadd("ld:{show:bad}:events", {"k": "v"}, id="1-0")
        await redis.xadd("ld:{show:good}:events", {"k": "v"}, id="1-0")
        await redis.xadd("ld:{show:bad}:events", {"k": "v"}, id="2-0")
        await redis.xadd("ld:{show:good}:events", {"k": "v"}, id="2-0")
        assert await good.wait_for(2) == ["1-0", "2-0"]
        assert tails.position("ld:{show:bad}:events") == "2-0"
    finally:
        await tails.aclose()


async def test_on_a_cluster_streams_are_read_per_slot(cluster_redis: RedisCluster) -> None:
    tails = StreamTails(cluster_redis, cluster_redis, node_id="n1", cluster=True, block_ms=60_000)
    names = [f"ld:{{drop:d{i}}}:ledger" for i in range(6)]
    got = {name: Collected() for name in names}
    try:
        for name in names:
            tails.watch(name, "0-0", got[name])
        await asyncio.sleep(0.1)
        for name in names:
            await cluster_redis.xadd(name, {"k": "v"}, id="1-0")
        for name in names:
            assert await got[name].wait_for(1) == ["1-0"]
        assert len(tails.groups) == len({cluster_redis.keyslot(n) for n in names})
    finally:
        await tails.aclose()


async def blocked_stream_reads(redis: Redis) -> int:
    """Clients blocked in XREAD right now (the webhook consumer's XREADGROUP is not one)."""
    clients = await redis.client_list()
    return sum(1 for c in clients if c.get("cmd") == "xread" and "b" in c.get("flags", ""))


async def test_a_node_follows_every_show_and_drop_with_one_blocking_read(nodes: NodeFactory, redis: Redis) -> None:
    host = await make_host(redis, total=5)
    drops = [f"x{i}" for i in range(40)]
    for drop_id in drops:
        await host.add_drop(DropInfo(drop_id=drop_id, show_id="s1", sku=f"SKU-{drop_id}", title=drop_id, total=5))
    node = nodes()
    viewer = await Viewer.connect(node.ws("s1"))
    assert (await viewer.next())["type"] == "welcome"
    seen = []
    for _ in range(20):
        seen.append(await blocked_stream_reads(redis))
        await asyncio.sleep(0.05)
    assert max(seen) == 1, seen  # 41 streams (a feed, 41 ledgers), one read

    for drop_id in drops:
        await host.launch(drop_id)
        await host.engine.reserve(drop_id, "c1", 1, f"r-{drop_id}")
    pending = set(drops)
    async with asyncio.timeout(scaled(20)):
        while pending:
            frame = await viewer.until("stock", timeout=20)
            if frame["held"] == 1:
                pending.discard(frame["drop"])
    await viewer.close()


async def test_a_malformed_ledger_entry_costs_only_itself(nodes: NodeFactory, redis: Redis) -> None:
    host = await make_host(redis, total=5)
    await host.launch("d1")
    node = nodes()
    buyer = await Viewer.connect(node.ws("s1", token("v1")))
    assert (await buyer.next())["type"] == "welcome"
    # An entry the node cannot read (a newer script's format, a hand-made repair): a
    # confirmation without its hold.
    await redis.xadd(
        keys.drop_keys("d1").ledger, {"op": "confirm", "cust": "v1", "a": 5, "h": 0, "s": 0, "t": 5, "o": 0, "ts": 1}
    )
    await buyer.send({"type": "reserve", "ref": "r1", "drop": "d1"})
    assert (await buyer.until("reserved"))["drop"] == "d1"
    async with asyncio.timeout(scaled(10)):
        while (await buyer.until("stock", timeout=10, drop="d1"))["held"] != 1:
            pass
    await buyer.close()


@pytest.mark.timeout(120)
async def test_a_viewer_reconnecting_alone_gets_each_welcome_quickly(nodes: NodeFactory, redis: Redis) -> None:
    """The show's only viewer leaves and comes back, 20 times: its unsubscribe must not make
    the next join wait for a blocking read (figures for the distribution: a benchmark)."""
    await make_host(redis)
    node = nodes()
    waits = []
    for _ in range(20):
        started = time.perf_counter()
        viewer = await Viewer.connect(node.ws("s1"))
        assert (await viewer.next())["type"] == "welcome"
        waits.append(time.perf_counter() - started)
        await viewer.close()
    assert max(waits) < scaled(1.0), waits


async def test_watching_again_from_further_back_misses_nothing(redis: Redis) -> None:
    tails = StreamTails(redis, redis, node_id="n1", block_ms=60_000)
    key = "ld:{show:a}:events"
    for i in (1, 2, 3):
        await redis.xadd(key, {"k": "v"}, id=f"{i}-0")
    ahead, behind = Collected(), Collected()
    try:
        tails.watch(key, "3-0", ahead)  # the read now blocks from 3
        await asyncio.sleep(0.1)
        tails.watch(key, "1-0", behind)  # e.g. after Redis lost the stream: start again at 1
        await redis.xadd(key, {"k": "v"}, id="4-0")
        assert await behind.wait_for(3) == ["2-0", "3-0", "4-0"]
        assert ahead.ids == []
    finally:
        await tails.aclose()
