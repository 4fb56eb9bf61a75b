"""The node's sold-out short-circuit (server/shows/soldout.py) on two real nodes.

The race test tries to make a node refuse a reservation that Redis would have granted: buyers on
both nodes reserve without pause on a drop of two units, while releases, restocks, expiries and
confirmations give units back or take them on either node. Each node logs every answer it gave
without Redis with the ledger entry its view was at and its estimate of Redis' clock; the ledger,
replayed afterwards, must show that at that entry nothing was available and no live hold was due.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from broadcast.hub import Hub
from server.ops.local_redis import LocalCluster, LocalRedis
from server.shows.actions import HostActions
from server.shows.catalog import Catalog, DropInfo, Show
from server.shows.known import KnownDrop
from server.shows.node import ShowNode
from server.shows.soldout import keeps_sold_out
from server.shows.variants import VariantInfo
from server.viewers.tokens import mint
from stock import StockEngine
from stock.ledger import entry_key, replay
from stock.types import Counters, LedgerEntry, RejectReason
from tests.e2e.test_scaleout import HOST_TOKEN, api, create_show
from tests.support.invariants import assert_drop_invariants, assert_variant_drop_invariants
from tests.support.metrics_scrape import scrape
from tests.support.servers import VIEWER_SECRET, Node
from tests.support.util import scaled
from tests.support.viewer_client import Viewer

TRACE = re.compile(r"sold_out drop=(\S+) ledger=(\S+) now_ms=(\d+)")
HOLD_SECONDS = 2.5


@pytest.fixture
async def host(redis: Redis) -> AsyncIterator[HostActions]:
    engine = StockEngine(redis)
    catalog = Catalog(redis, engine)
    live = ShowNode(redis=redis, engine=engine, catalog=catalog, hub=Hub(), node_id="test")
    await catalog.put_show(Show(show_id="s1", title="Last units"))
    await catalog.put_drop(
        DropInfo(
            drop_id="d1",
            show_id="s1",
            sku="SKU-1",
            title="Sneaker",
            total=2,
            prices={"EUR": 1900},
            hold_seconds=HOLD_SECONDS,
        )
    )
    yield HostActions(engine, catalog, live)


@pytest.fixture
def debug_nodes(redis: Redis, redis_server: LocalRedis, tmp_path: Path) -> Iterator[list[Node]]:
    """Two nodes whose logs carry the short-circuit's answers (debug level)."""
    lifted = {"LIVEDROP_RESERVE_RATE": "1000", "LIVEDROP_RESERVE_BURST": "1000"}  # buyers tap without pause
    started = [Node(redis_server.url, tmp_path, env=lifted, log_level="debug") for _ in range(2)]
    try:
        for node in started:
            node.start()
        yield started
    finally:
        for node in started:
            node.stop()


def token(viewer: str) -> str:
    return mint(VIEWER_SECRET.encode(), "s1", viewer)


def traces(nodes: list[Node], unit: str) -> list[tuple[str, int]]:
    """(ledger position, Redis' clock) of every answer the nodes gave alone for ``unit``."""
    found = []
    for node in nodes:
        for match in TRACE.finditer(node.log_path.read_text(errors="replace")):
            if match.group(1) == unit:
                found.append((match.group(2), int(match.group(3))))
    return found


def states(entries: list[LedgerEntry]) -> dict[str, tuple[Counters, dict[str, int]]]:
    """Per ledger entry id: the counters after it and the live holds (hold -> deadline)."""
    live: dict[str, int] = {}
    out = {}
    for entry in entries:
        f = entry.fields
        if entry.op in ("reserve", "handout"):
            live[f["hold"]] = int(f["exp"])
        elif "hold" in f and entry.d_held < 0:
            live.pop(f["hold"], None)
        out[entry.entry_id] = (entry.after, dict(live))
    return out


async def buyer(
    node: Node, name: str, stop: asyncio.Event, holds: list[tuple[Viewer, str]], drop: str = "d1", size: str = ""
) -> int:
    """Reserve one unit after another until ``stop``; returns the answers seen."""
    viewer = await Viewer.connect(node.ws("s1"), token(name))
    await viewer.until("welcome")
    answers = 0
    try:
        n = 0
        while not stop.is_set():
            n += 1
            reserve = {"type": "reserve", "ref": f"{name}-{n}", "drop": drop} | ({"variant": size} if size else {})
            await viewer.send(reserve)
            frame = await _answer(viewer, f"{name}-{n}")
            answers += 1
            if frame["type"] == "reserved":
                holds.append((viewer, str(frame["hold"])))
            await asyncio.sleep(random.uniform(0, 0.004))
    finally:
        await viewer.close()
    return answers


async def _answer(viewer: Viewer, ref: str) -> dict[str, object]:
    async with asyncio.timeout(scaled(10)):
        while True:
            frame = await viewer.next(timeout=10)
            if frame.get("ref") == ref and frame["type"] in ("reserved", "rejected", "error"):
                assert frame["type"] != "error", frame
                return frame


@pytest.mark.parametrize("size", ["", "s41"], ids=["drop", "size"])
async def test_short_circuit_never_refuses_what_redis_would_grant(
    debug_nodes: list[Node], host: HostActions, redis: Redis, size: str
) -> None:
    rng = random.Random(17)
    drop = "v1" if size else "d1"
    if size:  # one size of two units sold out and back, beside a size that never sells out
        sizes = [VariantInfo(id="s41", sku="V-41", total=2), VariantInfo(id="s42", sku="V-42", total=1000)]
        info = DropInfo(
            drop_id="v1", show_id="s1", sku="V", title="Sized", total=1002, hold_seconds=HOLD_SECONDS, variants=sizes
        )
        await host.catalog.put_drop(info)
    await host.launch(drop)
    engine = host.engine
    stop = asyncio.Event()
    holds: list[tuple[Viewer, str]] = []
    buyers = [
        asyncio.create_task(buyer(debug_nodes[i % 2], f"b{i}", stop, holds, drop, size), name=f"buyer-{i}")
        for i in range(6)
    ]
    actions = {"release": 0, "restock": 0, "confirm": 0}
    deadline = asyncio.get_running_loop().time() + scaled(4)
    n = 0
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(rng.uniform(0.02, 0.25))
        n += 1
        kind = rng.choice(["release", "release", "restock", "confirm", "wait"])
        if kind == "release" and holds:
            viewer, hold = holds.pop(rng.randrange(len(holds)))
            await viewer.send({"type": "release", "hold": hold, "ref": f"rel-{n}"})  # answered on its socket
            actions["release"] += 1
        elif kind == "restock":
            await engine.adjust(drop, 1, f"restock-{n}", variant=size)
            actions["restock"] += 1
        elif kind == "confirm" and holds:
            _, hold = holds.pop(rng.randrange(len(holds)))
            await engine.confirm(hold)  # sold: the drop stays sold out, the short-circuit stays armed
            actions["confirm"] += 1
    stop.set()
    answered = sum(await asyncio.gather(*buyers))
    if size:
        await assert_variant_drop_invariants(engine, drop)
    else:
        await assert_drop_invariants(engine, drop)

    entries = [e async for e in engine.iter_ledger(drop, variant=size)]
    assert replay(entries) == await engine.counters(drop, variant=size)
    after = states(entries)
    order = [e.entry_id for e in entries]
    found = traces(debug_nodes, f"{drop}~{size}" if size else drop)
    gives_back = [e for e in entries if e.d_available > 0]
    worst_lag = 0
    for position, now_ms in found:
        assert position in after, f"the node answered at {position}, which is no ledger entry"
        counters, live = after[position]
        assert counters.available == 0, f"sold_out at {position}, when {counters.available} were available"
        due = {hold: exp for hold, exp in live.items() if exp <= now_ms}
        assert not due, f"sold_out at {position} (Redis' clock {now_ms}) while holds were due: {due}"
        # Units that came back after that entry: the node had not seen them yet. How long before its
        # answer Redis had them is the window of docs/stock.md (a stream delivery), never more.
        later = [e for e in gives_back if entry_key(e.entry_id) > entry_key(position)]
        if later:
            worst_lag = max(worst_lag, now_ms - later[0].at_ms)
    assert len(order) == len(set(order))
    expired = sum(1 for e in entries if e.op == "expire")
    print(f"{answered} answers, {len(found)} by the short-circuit, {actions}, {expired} expiries, lag {worst_lag} ms")
    assert found, "the short-circuit never answered: the race tested nothing"
    assert actions["release"] and actions["restock"] and expired, f"releases, restocks and expiries raced: {expired}"
    assert worst_lag <= scaled(1.0) * 1000, f"a node answered sold_out {worst_lag} ms after units came back"


async def test_a_retry_of_a_granted_request_gets_its_hold(debug_nodes: list[Node], host: HostActions) -> None:
    await host.launch("d1")
    node = debug_nodes[0]
    alice = await Viewer.connect(node.ws("s1"), token("alice"))
    bob = await Viewer.connect(node.ws("s1"), token("bob"))
    for v in (alice, bob):
        await v.until("welcome")
    await alice.send({"type": "reserve", "ref": "a1", "drop": "d1", "qty": 2})
    first = await alice.until("reserved")
    # Bob's taps arm the short-circuit; keep tapping until one is answered by it.
    async with asyncio.timeout(scaled(10)):
        n = 0
        while not TRACE.search(node.log_path.read_text(errors="replace")):
            n += 1
            await bob.send({"type": "reserve", "ref": f"b{n}", "drop": "d1"})
            assert (await _answer(bob, f"b{n}"))["reason"] == "sold_out"
    await alice.send({"type": "reserve", "ref": "a1", "drop": "d1", "qty": 2})
    again = await alice.until("reserved")
    assert again["hold"] == first["hold"] and again["expires_at"] == first["expires_at"]
    samples = await scrape(node.http)
    assert samples["livedrop_soldout_answers_total"] >= 1 and samples["livedrop_soldout_arms_total"] >= 1
    for v in (alice, bob):
        await v.close()


def test_only_entries_that_take_units_keep_a_drop_sold_out() -> None:
    sold_out = Counters(total=2, available=0, held=1, sold=1, oversold=0)

    def entry(op: str, da: int, dh: int, after: Counters) -> LedgerEntry:
        return LedgerEntry("1-1", op, 0, da, dh, -dh - da, 0, after, 0, {})

    assert keeps_sold_out(entry("confirm", 0, -1, Counters(2, 0, 0, 2, 0)))
    assert not keeps_sold_out(entry("release", 1, -1, Counters(2, 1, 0, 1, 0)))
    assert not keeps_sold_out(entry("expire", 1, -1, Counters(2, 1, 0, 1, 0)))
    assert not keeps_sold_out(entry("adjust", 0, 0, sold_out))  # a state or stock change: ask Redis again
    assert not keeps_sold_out(entry("fast_forward", 0, 0, sold_out))


async def test_a_node_on_redis_cluster_answers_a_sold_out_drop(
    redis_cluster: LocalCluster, cluster_redis: RedisCluster, tmp_path: Path
) -> None:
    env = {"LIVEDROP_REDIS_CLUSTER": "1", "LIVEDROP_HOST_TOKENS": HOST_TOKEN}
    node = Node(redis_cluster.urls[1], tmp_path, env=env, log_level="debug").start()
    try:
        await create_show(node, {"d1": 1})
        await api(node, "POST", "/api/drops/d1/launch", {})
        alice = await Viewer.connect(node.ws("s1"), token("alice"))
        bob = await Viewer.connect(node.ws("s1"), token("bob"))
        for v in (alice, bob):
            await v.until("welcome")
        await alice.send({"type": "reserve", "ref": "a1", "drop": "d1"})
        await alice.until("reserved")
        # The arming read is one MULTI on the drop's slot: the cluster client must run it there.
        async with asyncio.timeout(scaled(10)):
            n = 0
            while not TRACE.search(node.log_path.read_text(errors="replace")):
                n += 1
                await bob.send({"type": "reserve", "ref": f"b{n}", "drop": "d1"})
                assert (await _answer(bob, f"b{n}"))["reason"] == "sold_out"
                await asyncio.sleep(0.01)
        for v in (alice, bob):
            await v.close()
    finally:
        node.stop()


async def _until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(scaled(10)):
        while not check():
            await asyncio.sleep(0.01)


async def test_arming_and_what_disarms_it_in_one_node(host: HostActions) -> None:
    """The short-circuit inside one node: armed by a sold-out view, a granted id still goes to
    Redis, units coming back disarm it, and a view replaced by following the show anew voids it."""
    engine, live = host.engine, host.live
    await host.launch("d1")
    await live.subscribe("s1")
    soldout = live.soldout

    def view() -> KnownDrop:
        return live.shows["s1"].drops["d1"]

    granted = await engine.reserve("d1", "c1", 2, "req-1")
    # The entry that took the last units armed it, before any tap.
    await _until(lambda: view().counters.available == 0 and soldout.armed("d1") is not None)
    assert soldout.arms == 1
    answer = soldout.answer(view(), "req-2")
    assert answer is not None and answer.reason is RejectReason.SOLD_OUT
    assert soldout.answer(view(), "req-1") is None  # a retry of a granted id: Redis has its hold
    assert soldout.answer(view(), "req-3", variant="red") is None

    assert granted.hold_id is not None
    await engine.release(granted.hold_id)
    await _until(lambda: view().counters.available == 2)
    assert soldout.armed("d1") is None and soldout.answer(view(), "req-4") is None

    await engine.reserve("d1", "c2", 2, "req-5")
    await _until(lambda: view().counters.available == 0)
    await _until(lambda: soldout.answer(view(), "req-6") is not None)  # taps arm it (at most every 0.1 s)
    await live.unsubscribe("s1")
    await live.subscribe("s1")  # a new view of the drop, from a new snapshot
    assert soldout.answer(view(), "req-7") is None
    await live.aclose()


async def test_each_size_is_armed_and_disarmed_on_its_own(redis: Redis) -> None:
    """A sold-out size is answered by the node while the other size still sells through Redis; a
    unit of that size coming back disarms it, and only it."""
    engine = StockEngine(redis)
    catalog = Catalog(redis, engine)
    live = ShowNode(redis=redis, engine=engine, catalog=catalog, hub=Hub(), node_id="test")
    host = HostActions(engine, catalog, live)
    await catalog.put_show(Show(show_id="s1", title="Sizes"))
    sizes = [VariantInfo(id="s41", sku="SNK-41", total=1), VariantInfo(id="s42", sku="SNK-42", total=2)]
    await catalog.put_drop(
        DropInfo(drop_id="shoe", show_id="s1", sku="SNK", title="Sneaker", total=3, prices={"EUR": 1}, variants=sizes)
    )
    await host.launch("shoe")
    await live.subscribe("s1")
    soldout = live.soldout

    def view() -> KnownDrop:
        return live.shows["s1"].drops["shoe"]

    taken = await engine.reserve("shoe", "c1", 1, "req-1", variant="s41")
    await _until(lambda: view().variants["s41"].available == 0)
    await _until(lambda: soldout.answer(view(), "req-2", "s41") is not None)
    assert soldout.armed("shoe", "s41") is not None and soldout.armed("shoe", "s42") is None
    assert soldout.answer(view(), "req-3", "s42") is None  # units left: Redis answers
    assert soldout.answer(view(), "req-4") is None  # no size named: Redis says which is needed
    assert soldout.answer(view(), "req-1", "s41") is None  # the granted id is Redis' to answer

    await engine.reserve("shoe", "c2", 1, "req-5", variant="s42")  # the other size's ledger only
    await _until(lambda: view().variants["s42"].available == 1)
    assert soldout.armed("shoe", "s41") is not None
    assert taken.hold_id is not None
    await engine.release(taken.hold_id)
    await _until(lambda: view().variants["s41"].available == 1)
    assert soldout.armed("shoe", "s41") is None and soldout.answer(view(), "req-6", "s41") is None
    await live.aclose()
