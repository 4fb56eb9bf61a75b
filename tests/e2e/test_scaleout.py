"""Scale-out on Redis Cluster: separate `livedrop serve` processes on a 3-master cluster, each
told a different master (LIVEDROP_REDIS_CLUSTER=1), with real WebSocket viewers spread over them.

What must hold when a show runs on several nodes (DESIGN §2, §4):
- every viewer, whatever its node, sees the same events with the same contiguous seqs;
- reservations made through both nodes at once never oversell;
- a node lost mid-show (SIGKILL: no close frame) or shut down (SIGTERM: close 1012) costs its
  viewers nothing: they resume on another node from their last seq and epoch and get every
  event they missed, in order, then current stock — no reset.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from redis.asyncio.cluster import RedisCluster
from websockets.exceptions import ConnectionClosed

from server.ops.local_redis import LocalCluster
from stock import StockEngine
from tests.server.viewers.test_viewer_ws import token
from tests.support.invariants import assert_drop_invariants
from tests.support.servers import Node
from tests.support.util import scaled
from tests.support.viewer_client import Frame, Viewer

NodeFactory = Callable[..., Node]
HOST_TOKEN = "scaleout-host"


class ClusterNodes:
    """Nodes on the test cluster; node i is given master i (mod 3) as its REDIS_URL."""

    def __init__(self, nodes: NodeFactory, cluster: LocalCluster) -> None:
        self._nodes = nodes
        self._cluster = cluster
        self.started: list[Node] = []

    def start(self) -> Node:
        url = self._cluster.urls[len(self.started) % len(self._cluster.urls)]
        node = self._nodes(redis_url=url, env={"LIVEDROP_REDIS_CLUSTER": "1", "LIVEDROP_HOST_TOKENS": HOST_TOKEN})
        self.started.append(node)
        return node


@pytest.fixture
def cluster_nodes(nodes: NodeFactory, redis_cluster: LocalCluster, cluster_redis: RedisCluster) -> ClusterNodes:
    # cluster_redis flushes every master first: each test starts from an empty cluster.
    return ClusterNodes(nodes, redis_cluster)


@pytest.fixture
async def engine(cluster_redis: RedisCluster) -> AsyncIterator[StockEngine]:
    yield StockEngine(cluster_redis)


async def api(node: Node, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    async with httpx.AsyncClient(base_url=node.http, headers={"Authorization": f"Bearer {HOST_TOKEN}"}) as client:
        response = await client.request(method, path, json=body)
    assert response.status_code in (200, 201), (method, path, response.status_code, response.text)
    return response.json()


async def create_show(node: Node, drops: dict[str, int]) -> None:
    await api(node, "POST", "/api/shows", {"show_id": "s1", "title": "Scale-out"})
    for drop_id, total in drops.items():
        body = {"drop_id": drop_id, "sku": f"SKU-{drop_id}", "title": drop_id, "total": total, "hold_seconds": 300}
        await api(node, "POST", "/api/shows/s1/drops", body)


def ordered(frames: list[Frame]) -> list[tuple[int, str, str]]:
    """(seq, type, drop) of the seq'd events among ``frames``."""
    found = []
    for f in frames:
        if "seq" in f and f["type"] != "welcome":
            drop = f["drop"]["id"] if f["type"] == "drop" else f.get("drop", "")
            found.append((f["seq"], f["type"], drop))
    return found


async def events(viewer: Viewer, count: int, timeout: float = 10.0) -> list[tuple[int, str, str]]:
    """Read until ``count`` seq'd events have arrived since the viewer's last welcome/resume."""
    start = len(viewer.frames)
    async with asyncio.timeout(scaled(timeout)):
        while len(ordered(viewer.frames[start:])) < count:
            await viewer.next(timeout=timeout)
    return ordered(viewer.frames[start:])


async def welcomed(viewer: Viewer) -> Frame:
    frame = await viewer.next()
    assert frame["type"] == "welcome", frame
    return frame


async def test_viewers_on_both_nodes_see_one_seq_order(cluster_nodes: ClusterNodes) -> None:
    a, b = cluster_nodes.start(), cluster_nodes.start()
    await create_show(a, {"d1": 5, "d2": 5, "d3": 5, "d4": 5})
    viewers = [await Viewer.connect((a if i % 2 else b).ws("s1")) for i in range(6)]
    seqs = {(await welcomed(v))["seq"] for v in viewers}
    assert len(seqs) == 1
    first = seqs.pop()

    # Host actions go through either node, as a load balancer would send them.
    await api(a, "POST", "/api/drops/d1/launch", {})
    await api(b, "POST", "/api/drops/d2/launch", {})
    await api(a, "POST", "/api/drops/d3/launch", {})
    await api(b, "POST", "/api/drops/d1/end", {"reason": "host"})
    await api(a, "POST", "/api/drops/d4/launch", {})

    seen = [await events(v, 5) for v in viewers]
    assert all(s == seen[0] for s in seen), seen
    assert [seq for seq, _, _ in seen[0]] == list(range(first + 1, first + 6))
    assert [(kind, drop) for _, kind, drop in seen[0]] == [
        ("drop", "d1"),
        ("drop", "d2"),
        ("drop", "d3"),
        ("drop_ended", "d1"),
        ("drop", "d4"),
    ]
    # The end is published by the API and by every node that sees it in the ledger: once. A
    # marker event (d2 ends) comes after it in the show's order: the next event each viewer sees
    # must be that marker, not a second end of d1.
    await api(b, "POST", "/api/drops/d2/end", {"reason": "host"})
    for v in viewers:
        async with asyncio.timeout(scaled(10)):
            while ("drop_ended", "d2") not in [(kind, drop) for _, kind, drop in ordered(v.frames)]:
                await v.next()
        assert [(kind, drop) for _, kind, drop in ordered(v.frames)][-2:] == [("drop", "d4"), ("drop_ended", "d2")]
        assert [(kind, drop) for _, kind, drop in ordered(v.frames)].count(("drop_ended", "d1")) == 1
        await v.close()


async def test_reservation_burst_through_both_nodes_never_oversells(
    cluster_nodes: ClusterNodes, engine: StockEngine
) -> None:
    a, b = cluster_nodes.start(), cluster_nodes.start()
    await create_show(a, {"d1": 40})
    buyers = [await Viewer.connect((a if i % 2 else b).ws("s1", token(f"v{i}"))) for i in range(60)]
    for v in buyers:
        await welcomed(v)
    await api(b, "POST", "/api/drops/d1/launch", {})
    for v in buyers:
        await v.until("drop")

    await asyncio.gather(*(v.send({"type": "reserve", "ref": "buy", "drop": "d1"}) for v in buyers))
    answers = await asyncio.gather(*(answer(v) for v in buyers))
    kinds = [f["type"] for f in answers]
    assert kinds.count("reserved") == 40, answers
    assert {f["reason"] for f in answers if f["type"] == "rejected"} == {"sold_out"}
    assert "error" not in kinds
    # 30 buyers per node for 40 units: whichever node's batch reaches Redis first, the other
    # node must grant at least 10, so the burst really was served by both.
    granted = {i % 2 for i, f in enumerate(answers) if f["type"] == "reserved"}
    assert granted == {0, 1}
    counters = await assert_drop_invariants(engine, "d1")
    assert (counters.available, counters.held, counters.sold) == (0, 40, 0)
    # Every viewer, on either node, converges to the same counters (conflated stock frames). A stock
    # frame is not ordered with a viewer's own answer: the last one may have come before it.
    for v in buyers:
        async with asyncio.timeout(scaled(10)):
            while [f["held"] for f in v.frames if f["type"] == "stock"][-1:] != [40]:
                await v.until("stock")
        await v.close()


async def answer(viewer: Viewer) -> Frame:
    """The answer to the viewer's reserve, skipping broadcasts."""
    while True:
        frame = await viewer.next(timeout=10)
        if frame["type"] in ("reserved", "rejected", "error"):
            return frame


async def resume(node: Node, last: int, epoch: str) -> Viewer:
    return await Viewer.connect(node.ws("s1", f"resume_from={last}&epoch={epoch}"))


async def lose_connection(viewer: Viewer) -> int | None:
    """Read until the connection ends; its close code (None when no close frame came)."""
    try:
        while True:
            await viewer.next(timeout=10)
    except ConnectionClosed as exc:
        return None if exc.rcvd is None else exc.rcvd.code


async def test_node_lost_mid_show_viewers_resume_on_the_other_node(
    cluster_nodes: ClusterNodes, engine: StockEngine
) -> None:
    a, b, c = cluster_nodes.start(), cluster_nodes.start(), cluster_nodes.start()
    await create_show(b, {"d1": 5, "d2": 5, "d3": 5, "d4": 5})
    on_a = [await Viewer.connect(a.ws("s1")) for _ in range(4)]
    on_b = [await Viewer.connect(b.ws("s1")) for _ in range(4)]
    welcome = [await welcomed(v) for v in on_a + on_b][-1]
    epoch, first = welcome["epoch"], welcome["seq"]
    await api(b, "POST", "/api/drops/d1/launch", {})
    for v in on_a + on_b:
        assert (await events(v, 1))[0][0] == first + 1

    # SIGKILL: no close frame, the TCP connections just die.
    a.kill()
    assert {await lose_connection(v) for v in on_a} == {None}
    # Events the viewers of A miss while they are away, published through the surviving node.
    await api(b, "POST", "/api/drops/d2/launch", {})
    await api(c, "POST", "/api/drops/d1/end", {"reason": "host"})
    resumed = [await resume(b, first + 1, epoch) for _ in on_a]
    missed = [await events(v, 2) for v in resumed]
    assert all(m == [(first + 2, "drop", "d2"), (first + 3, "drop_ended", "d1")] for m in missed), missed
    for v in resumed:
        assert v.frames[0]["type"] != "welcome"  # resumed, not reset
        stock = {f["drop"] for f in v.frames if f["type"] == "stock"}
        async with asyncio.timeout(scaled(5)):
            while stock != {"d1", "d2", "d3", "d4"}:
                stock.add((await v.until("stock"))["drop"])

    # SIGTERM: B drains its viewers with 1012, they resume on C; nothing is missed either.
    b.stop()
    codes = {await lose_connection(v) for v in on_b + resumed}
    assert codes == {1012}, codes
    await api(c, "POST", "/api/drops/d3/launch", {})
    again = [await resume(c, first + 3, epoch) for _ in on_b + resumed]
    for v in again:
        assert await events(v, 1) == [(first + 4, "drop", "d3")]
    await api(c, "POST", "/api/drops/d4/launch", {})
    for v in again:
        assert await events(v, 1) == [(first + 5, "drop", "d4")]
        await v.close()
    for drop in ("d1", "d2", "d3", "d4"):
        await assert_drop_invariants(engine, drop)


async def test_a_node_on_the_cluster_follows_a_show_with_many_drops(
    cluster_nodes: ClusterNodes, engine: StockEngine
) -> None:
    """Each drop's ledger lives on its own slot: the node reads them slot by slot (a multi-key
    XREAD cannot cross slots), every drop's stock still reaches the viewer, and the show's only
    viewer coming back gets its welcome without waiting for those reads."""
    node = cluster_nodes.start()
    drops = {f"m{i}": 3 for i in range(12)}
    await create_show(node, drops)
    viewer = await Viewer.connect(node.ws("s1"))
    await welcomed(viewer)
    for drop_id in drops:
        await api(node, "POST", f"/api/drops/{drop_id}/launch", {})
        await engine.reserve(drop_id, "c1", 1, f"r-{drop_id}")
    pending = set(drops)
    async with asyncio.timeout(scaled(20)):
        while pending:
            frame = await viewer.until("stock", timeout=20)
            if frame["held"] == 1:
                pending.discard(frame["drop"])
    await viewer.close()
    for _ in range(10):
        started = asyncio.get_running_loop().time()
        again = await Viewer.connect(node.ws("s1"))
        assert (await welcomed(again))["drops"]
        assert asyncio.get_running_loop().time() - started < scaled(1.0)
        await again.close()
