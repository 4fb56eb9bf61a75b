"""Several nodes on one Redis, and a Redis that dies mid-show: real processes, real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from redis.asyncio import Redis

from broadcast.hub import Hub
from server.shows.actions import HostActions
from server.shows.catalog import Catalog, DropInfo, Show
from server.shows.node import ShowNode
from stock import StockEngine
from tests.server.viewers.test_viewer_ws import token
from tests.support.invariants import assert_drop_invariants
from tests.support.servers import Node
from tests.support.util import RedisServerFactory, scaled
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]


async def make_host(redis: Redis, total: int = 10) -> HostActions:
    engine = StockEngine(redis)
    catalog = Catalog(redis, engine)
    live = ShowNode(redis=redis, engine=engine, catalog=catalog, hub=Hub(), node_id="test-host")
    await catalog.put_show(Show(show_id="s1", title="Two nodes"))
    await catalog.put_drop(DropInfo(drop_id="d1", show_id="s1", sku="SKU-1", title="Sneaker", total=total))
    return HostActions(engine, catalog, live)


async def test_two_nodes_same_order_no_oversell_counts_and_private_pushes(nodes: NodeFactory, redis: Redis) -> None:
    host = await make_host(redis, total=10)
    for i in range(2, 6):
        await host.add_drop(DropInfo(drop_id=f"d{i}", show_id="s1", sku=f"S{i}", title=f"P{i}", total=5))
    a, b = nodes(), nodes()
    buyers = [await Viewer.connect((a if i % 2 else b).ws("s1", token(f"v{i}"))) for i in range(30)]
    for v in buyers:
        assert (await v.next())["type"] == "welcome"

    for drop in ("d1", "d2", "d3", "d4", "d5"):
        await host.launch(drop)
    await host.end("d5")
    orders = []
    for v in (buyers[0], buyers[1]):  # one viewer on each node
        frames = [await v.until("drop") for _ in range(5)] + [await v.until("drop_ended")]
        orders.append(
            [(f["type"], f["seq"], f.get("drop", {}).get("id") if f["type"] == "drop" else f["drop"]) for f in frames]
        )
    assert orders[0] == orders[1]
    assert [s for _, s, _ in orders[0]] == sorted(s for _, s, _ in orders[0])

    # 30 viewers, half on each node, race for 10 units of d1.
    await asyncio.gather(*(v.send({"type": "reserve", "ref": "buy", "drop": "d1"}) for v in buyers))
    answers = await asyncio.gather(*(_answer(v) for v in buyers))
    assert sum(1 for a in answers if a["type"] == "reserved") == 10
    assert {a["reason"] for a in answers if a["type"] == "rejected"} == {"sold_out"}
    assert (await assert_drop_invariants(host.engine, "d1")).held == 10

    # Viewer counts add both nodes up.
    async with asyncio.timeout(scaled(10)):
        while (await buyers[0].until("viewers", timeout=5))["count"] != 30:
            pass

    # A hold's expiry is pushed to its holder on every node it is connected to.
    holder_index = next(i for i, a in enumerate(answers) if a["type"] == "reserved")
    customer = f"v{holder_index}"
    other_node = b if holder_index % 2 else a
    second = await Viewer.connect(other_node.ws("s1", token(customer)))
    await second.next()
    hold = answers[holder_index]["hold"]
    await host.engine.fast_forward("d1", 3600)
    for v in (buyers[holder_index], second):
        expired = await v.until("hold_expired", timeout=10, hold=hold)
        assert expired["drop"] == "d1"
    for v in [*buyers, second]:
        await v.close()


async def _answer(v: Viewer) -> dict[str, object]:
    while True:
        frame = await v.next(timeout=10)
        if frame["type"] in ("reserved", "rejected"):
            return frame


async def test_redis_restart_mid_show_the_hub_recovers(
    nodes: NodeFactory, fresh_redis_server: RedisServerFactory
) -> None:
    server = fresh_redis_server(appendfsync="always")
    redis = Redis.from_url(server.url)
    host = await make_host(redis, total=100)
    node = nodes(redis_url=server.url)
    watcher = await Viewer.connect(node.ws("s1"))
    buyer = await Viewer.connect(node.ws("s1", token("buyer")))
    welcome = await watcher.next()
    await buyer.next()
    await host.launch("d1")
    launched = await watcher.until("drop")

    server.kill()
    await buyer.send({"type": "reserve", "ref": "during", "drop": "d1"})
    assert (await buyer.until("error", timeout=15))["code"] == "unavailable"
    server.restart()

    # The node reconnects by itself; the stream kept its epoch and seq (AOF, fsync always).
    async with asyncio.timeout(scaled(20)):
        while True:
            await buyer.send({"type": "reserve", "ref": f"after-{asyncio.get_running_loop().time()}", "drop": "d1"})
            frame = await _answer_or_error(buyer)
            if frame["type"] == "reserved":
                break
            await asyncio.sleep(0.2)
    await redis.aclose()  # the test's own client saw the crash: start a fresh one
    redis = Redis.from_url(server.url)
    host = await make_host(redis, total=100)
    await host.add_drop(DropInfo(drop_id="d2", show_id="s1", sku="SKU-2", title="After", total=5))
    await host.launch("d2")
    after = await watcher.until("drop", timeout=15)
    assert after["drop"]["id"] == "d2" and after["seq"] == launched["seq"] + 1
    assert welcome["epoch"] == (await host.live.feed.position("s1"))[1]
    # The reservation's stock frame may have come before the new drop (skipped by `until`).
    seen = [f for f in watcher.frames if f["type"] == "stock" and f["drop"] == "d1" and f["held"] >= 1]
    if not seen:
        async with asyncio.timeout(scaled(10)):
            while (await watcher.until("stock", timeout=10, drop="d1"))["held"] < 1:
                pass
    await assert_drop_invariants(host.engine, "d1")
    for v in (watcher, buyer):
        await v.close()
    await redis.aclose()


async def _answer_or_error(v: Viewer) -> dict[str, object]:
    while True:
        frame = await v.next(timeout=10)
        if frame["type"] in ("reserved", "rejected", "error"):
            return frame
