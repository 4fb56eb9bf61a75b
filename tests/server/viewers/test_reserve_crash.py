"""Redis killed (SIGKILL) in the middle of a reservation burst over WebSocket: no hold that a
viewer was told about is lost once Redis is back from its AOF (docs/operations.md, "Redis
persistence"). The engine-level crash tests are in tests/stock; this one goes through a real node,
its batcher and real sockets, with the AOF as LiveDrop configures it (``everysec``) and ``always``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from broadcast.hub import Hub
from server.ops.local_redis import AppendFsync
from server.shows.actions import HostActions
from server.shows.catalog import Catalog, DropInfo, Show
from server.shows.node import ShowNode
from server.viewers.tokens import mint
from stock import StockEngine
from stock.types import HoldState
from tests.support.invariants import assert_drop_invariants
from tests.support.servers import VIEWER_SECRET, Node
from tests.support.util import RedisServerFactory, scaled
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]
BUYERS = 12


async def _buy(node: Node, name: str, stop: asyncio.Event, acked: dict[str, tuple[str, str]]) -> int:
    """Reserve one unit after another until ``stop``, through the crash: an ``unavailable`` error
    is an answer too (the client tries again). Returns how many errors it got."""
    viewer = await Viewer.connect(node.ws("s1"), mint(VIEWER_SECRET.encode(), "s1", name))
    await viewer.until("welcome")
    errors = n = 0
    try:
        while not stop.is_set():
            n += 1
            ref = f"{name}-{n}"
            await viewer.send({"type": "reserve", "ref": ref, "drop": "d1"})
            async with asyncio.timeout(scaled(20)):
                while True:
                    frame = await viewer.next(timeout=20)
                    if frame.get("ref") == ref and frame["type"] in ("reserved", "rejected", "error"):
                        break
            if frame["type"] == "reserved":
                acked[ref] = (str(frame["hold"]), name)
            elif frame["type"] == "error":
                assert frame["code"] == "unavailable", frame
                errors += 1
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"unexpected answer {frame}")
    finally:
        await viewer.close()
    return errors


@pytest.mark.parametrize("appendfsync", ["everysec", "always"])
async def test_redis_killed_mid_burst_loses_no_acknowledged_hold(
    nodes: NodeFactory, fresh_redis_server: RedisServerFactory, appendfsync: AppendFsync
) -> None:
    server = fresh_redis_server(appendfsync=appendfsync)
    redis = Redis.from_url(server.url)
    engine = StockEngine(redis)
    catalog = Catalog(redis, engine)
    host = HostActions(engine, catalog, ShowNode(redis=redis, engine=engine, catalog=catalog, hub=Hub(), node_id="t"))
    await catalog.put_show(Show(show_id="s1", title="Crash"))
    await catalog.put_drop(
        DropInfo(drop_id="d1", show_id="s1", sku="SKU-1", title="Sneaker", total=100_000, prices={"EUR": 1900})
    )
    await host.launch("d1")
    node = nodes(redis_url=server.url, env={"LIVEDROP_RESERVE_RATE": "1000", "LIVEDROP_RESERVE_BURST": "1000"})
    stop = asyncio.Event()
    acked: dict[str, tuple[str, str]] = {}
    buyers = [asyncio.create_task(_buy(node, f"b{i}", stop, acked)) for i in range(BUYERS)]
    async with asyncio.timeout(scaled(20)):
        while len(acked) < 300:  # mid-burst: every buyer has requests in flight
            await asyncio.sleep(0.01)
    server.kill()
    before_restart = len(acked)
    await asyncio.sleep(0.3)
    server.restart()
    async with asyncio.timeout(scaled(30)):
        while len(acked) < before_restart + 300:  # the node sells again after the restart
            await asyncio.sleep(0.02)
    stop.set()
    errors = sum(await asyncio.gather(*buyers))
    await redis.aclose()

    redis = Redis.from_url(server.url)
    engine = StockEngine(redis)
    holds = {h.hold_id: h for h in await engine.holds("d1")}
    lost = {ref: hold for ref, (hold, _) in acked.items() if hold not in holds}
    assert not lost, f"{len(lost)} acknowledged holds lost, e.g. {list(lost.items())[:3]}"
    for hold_id, customer in acked.values():
        assert holds[hold_id].state is HoldState.HELD and holds[hold_id].customer == customer
    assert len({hold for hold, _ in acked.values()}) == len(acked), "a hold was given to two requests"
    counters = await engine.counters("d1")
    assert counters.held >= len(acked)  # granted but unanswered ones (the answer lost with the socket) too
    await assert_drop_invariants(engine, "d1")
    print(f"{appendfsync}: {len(acked)} holds acknowledged ({before_restart} before the kill), {errors} unavailable")
    await redis.aclose()
