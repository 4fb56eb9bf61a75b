"""The viewer protocol end to end: real `livedrop serve` nodes, real WebSocket clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from websockets.exceptions import InvalidStatus

from broadcast.hub import Hub
from server.shows.actions import HostActions
from server.shows.catalog import Catalog, DropInfo, Show
from server.shows.node import ShowNode
from server.viewers.tokens import mint
from stock import StockEngine
from tests.support.invariants import assert_drop_invariants
from tests.support.servers import VIEWER_SECRET, Node
from tests.support.util import scaled
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]


@pytest.fixture
async def host(redis: Redis) -> AsyncIterator[HostActions]:
    engine = StockEngine(redis)
    catalog = Catalog(redis, engine)
    live = ShowNode(redis=redis, engine=engine, catalog=catalog, hub=Hub(), node_id="test")
    await catalog.put_show(Show(show_id="s1", title="Friday drop"))
    await catalog.put_drop(
        DropInfo(drop_id="d1", show_id="s1", sku="SKU-1", title="Sneaker", total=5, prices={"EUR": 1900})
    )
    yield HostActions(engine, catalog, live)


def token(viewer: str, show: str = "s1") -> str:
    return "token=" + mint(VIEWER_SECRET.encode(), show, viewer)


async def test_welcome_drop_stock_drop_ended(nodes: NodeFactory, host: HostActions) -> None:
    node = nodes()
    watcher = await Viewer.connect(node.ws("s1"))
    welcome = await watcher.next()
    assert welcome["type"] == "welcome" and welcome["show"] == "s1" and not welcome["can_reserve"]
    assert welcome["drops"][0]["stock"] == {"available": 5, "held": 0, "sold": 0, "total": 5}
    assert welcome["drops"][0]["prices"] == {"EUR": 1900} and welcome["drops"][0]["state"] == "draft"

    await host.launch("d1", duration_seconds=60)
    drop = await watcher.until("drop")
    assert drop["drop"]["state"] == "live" and drop["drop"]["ends_at"] > welcome["server_time"]
    assert drop["seq"] == welcome["seq"] + 1

    buyer = await Viewer.connect(node.ws("s1", token("alice")))
    assert (await buyer.next())["can_reserve"]
    await buyer.send({"type": "reserve", "ref": "r1", "drop": "d1", "qty": 2})
    reserved = await buyer.until("reserved")
    assert reserved["ref"] == "r1" and reserved["qty"] == 2 and reserved["hold"] == "d1.1"
    stock = await watcher.until("stock", available=3)
    assert stock == stock | {"drop": "d1", "held": 2, "sold": 0, "total": 5}

    await host.end("d1")
    ended = await watcher.until("drop_ended")
    assert ended == ended | {"drop": "d1", "reason": "host", "seq": drop["seq"] + 1}
    await buyer.send({"type": "reserve", "ref": "r2", "drop": "d1"})
    assert (await buyer.until("rejected"))["reason"] == "not_live"
    for v in (watcher, buyer):
        await v.close()


async def test_reserve_needs_a_token_and_answers_every_reason(nodes: NodeFactory, host: HostActions) -> None:
    node = nodes()
    await host.launch("d1")
    await host.engine.configure("d1", per_customer_limit=2)
    watcher = await Viewer.connect(node.ws("s1"))
    await watcher.next()
    await watcher.send({"type": "reserve", "ref": "r1", "drop": "d1"})
    assert (await watcher.until("error"))["code"] == "unauthenticated"

    bob = await Viewer.connect(node.ws("s1", token("bob")))
    await bob.next()
    await bob.send({"type": "reserve", "ref": "a", "drop": "d1", "qty": 3})
    assert (await bob.until("rejected"))["reason"] == "limit_exceeded"
    await bob.send({"type": "reserve", "ref": "b", "drop": "d1", "qty": 2})
    hold = (await bob.until("reserved"))["hold"]
    await bob.send({"type": "reserve", "ref": "b", "drop": "d1", "qty": 2})  # a retry: same answer
    assert (await bob.until("reserved"))["hold"] == hold
    await bob.send({"type": "reserve", "ref": "x", "drop": "nope"})
    assert (await bob.until("error"))["code"] == "unknown_drop"
    await bob.send({"type": "release", "hold": hold, "ref": "c"})
    assert (await bob.until("released"))["hold"] == hold

    carol = await Viewer.connect(node.ws("s1", token("carol")))
    await carol.next()
    await carol.send({"type": "reserve", "ref": "1", "drop": "d1", "qty": 2})
    await carol.until("reserved")
    dave = await Viewer.connect(node.ws("s1", token("dave")))
    await dave.next()
    await dave.send({"type": "reserve", "ref": "1", "drop": "d1", "qty": 2})
    await dave.until("reserved")
    erin = await Viewer.connect(node.ws("s1", token("erin")))
    await erin.next()
    await erin.send({"type": "reserve", "ref": "1", "drop": "d1", "qty": 2})
    assert (await erin.until("rejected"))["reason"] == "sold_out"
    await erin.send({"type": "waitlist", "drop": "d1", "qty": 2, "ref": "w"})
    assert (await erin.until("waitlisted"))["position"] == 1
    # Carol's hold goes back: the waitlist gets it first, and erin is told.
    await host.engine.release((await host.engine.holds("d1"))[1].hold_id)
    handed = await erin.until("reserved", timeout=10)
    assert handed["from_waitlist"] and handed["qty"] == 2
    await assert_drop_invariants(host.engine, "d1")
    for v in (watcher, bob, carol, dave, erin):
        await v.close()


async def test_bad_frames_get_error_frames_and_the_connection_stays(nodes: NodeFactory, host: HostActions) -> None:
    node = nodes()
    viewer = await Viewer.connect(node.ws("s1", token("mallory")))
    await viewer.next()
    for bad, code in (
        ("not json", "bad_json"),
        ("[]", "bad_frame"),
        ('{"type": "nope"}', "bad_frame"),
        ('{"type": "reserve", "ref": "1"}', "bad_frame"),
        ('{"type": "reserve", "ref": "1", "drop": "d1", "qty": 0}', "bad_frame"),
        ('{"type": "reserve", "ref": "1", "drop": "d1", "extra": 1}', "bad_frame"),
        ('{"type": "release", "hold": "../etc"}', "bad_frame"),
    ):
        await viewer.send(bad)
        assert (await viewer.until("error"))["code"] == code, bad
    await viewer.send({"type": "ping", "ref": "p"})
    assert (await viewer.until("pong"))["ref"] == "p"
    await viewer.close()


async def test_oversized_frame_closes_with_1009(nodes: NodeFactory, host: HostActions) -> None:
    node = nodes()
    viewer = await Viewer.connect(node.ws("s1"))
    await viewer.next()
    await viewer.send("x" * 10_000)
    with pytest.raises(Exception):  # noqa: B017 - the close surfaces as ConnectionClosed
        while True:
            await viewer.next()
    assert viewer.conn.close_code == 1009


async def test_bad_tokens_and_unknown_shows_are_refused(nodes: NodeFactory, host: HostActions) -> None:
    # Refused in the handshake (server.viewers.handshake): the upgrade never succeeds.
    node = nodes()
    for query, status in ((token("eve", show="other"), 403), ("token=forged.sig", 401), ("", 404)):
        with pytest.raises(InvalidStatus) as refused:
            await Viewer.connect(node.ws("nope" if status == 404 else "s1", query))
        assert refused.value.response.status_code == status


async def test_resume_after_a_dropped_connection_misses_and_repeats_nothing(
    nodes: NodeFactory, host: HostActions
) -> None:
    node = nodes()
    for i in range(2, 6):
        await host.add_drop(DropInfo(drop_id=f"d{i}", show_id="s1", sku=f"SKU-{i}", title=f"P{i}", total=3))
    viewer = await Viewer.connect(node.ws("s1"))
    welcome = await viewer.next()
    await host.launch("d1")
    await host.launch("d2")
    first = await viewer.until("drop")
    second = await viewer.until("drop")
    assert [first["seq"], second["seq"]] == [welcome["seq"] + 1, welcome["seq"] + 2]
    await viewer.close()
    for drop in ("d3", "d4", "d5"):
        await host.launch(drop)
    await host.end("d1")
    back = await Viewer.connect(node.ws("s1", f"resume_from={second['seq']}&epoch={welcome['epoch']}"))
    missed = [await back.next() for _ in range(4)]
    assert [f["seq"] for f in missed] == [second["seq"] + i for i in range(1, 5)]
    assert [f["type"] for f in missed] == ["drop", "drop", "drop", "drop_ended"]
    stocks = {(await back.until("stock"))["drop"] for _ in range(5)}
    assert stocks == {"d1", "d2", "d3", "d4", "d5"}
    # An unknown epoch or a seq from the future gets a fresh welcome marked reset.
    stale = await Viewer.connect(node.ws("s1", "resume_from=1&epoch=other"))
    reset = await stale.next()
    assert reset["type"] == "welcome" and reset["reset"]
    for v in (back, stale):
        await v.close()


garbage_frames = st.one_of(
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    st.from_regex(r'\{"type":.{0,80}\}'),
    st.dictionaries(
        st.sampled_from(["type", "ref", "drop", "qty", "hold", "resume_from"]), st.integers() | st.text(max_size=20)
    ).map(lambda d: __import__("json").dumps(d)),
)


def test_garbage_frames_never_affect_other_viewers(nodes: NodeFactory, host: HostActions) -> None:
    node = nodes()

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(garbage=garbage_frames)
    def round_trip(garbage: str) -> None:
        # Each example on a fresh loop of its own: hypothesis drives sync functions.
        asyncio.run(_garbage_round(node, garbage))

    round_trip()


async def _garbage_round(node: Node, garbage: str) -> None:
    attacker = await Viewer.connect(node.ws("s1", token("attacker")))
    bystander = await Viewer.connect(node.ws("s1"))
    await attacker.next()
    await bystander.next()
    await attacker.send(garbage)
    await attacker.send({"type": "ping", "ref": "after"})
    assert (await attacker.until("pong", timeout=5))["ref"] == "after"
    await bystander.send({"type": "ping", "ref": "ok"})
    assert (await bystander.until("pong"))["ref"] == "ok"
    await attacker.close()
    await bystander.close()


async def test_slow_viewer_is_closed_while_others_keep_receiving(nodes: NodeFactory, host: HostActions) -> None:
    node = nodes(env={"LIVEDROP_SLOW_AFTER": "1.0", "LIVEDROP_OUTBOX_LIMIT": "2097152"})
    fast = await Viewer.connect(node.ws("s1"))
    await fast.next()
    # A viewer that never reads: a tiny receive buffer so its socket backs up quickly.
    import socket as socket_module

    raw = socket_module.socket()
    raw.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_RCVBUF, 4096)  # before connect: a small window
    raw.connect(("127.0.0.1", node.port))
    raw.sendall(
        b"GET /ws/shows/s1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    # Wait for the server's answer to the handshake (it has taken the viewer), not a guessed time.
    raw.settimeout(scaled(10))
    assert (await asyncio.to_thread(raw.recv, 1024)).startswith(b"HTTP/1.1 101")

    async def read_fast() -> list[int]:
        seqs: list[int] = []
        while len(seqs) < 200:
            frame = await fast.next(timeout=30)
            if frame["type"] == "drop":
                seqs.append(frame["seq"])
        return seqs

    reader = asyncio.create_task(read_fast())  # the healthy viewer reads as frames come
    big = "x" * 50_000
    # ~10 MB of drop frames: past what the kernel buffers on loopback, so the stalled viewer's
    # transport pauses, and past its 2 MiB outbox bound.
    for i in range(200):
        await host.add_drop(DropInfo(drop_id=f"b{i}", show_id="s1", sku=f"B{i}", title=big, total=1))
        await host.live.publish_drop(f"b{i}")
    seqs = await reader
    assert seqs == sorted(seqs) and len(set(seqs)) == 200
    # The stalled socket was closed by the server (1013 queued, then the TCP connection aborted).
    raw.settimeout(scaled(10))
    raw.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_RCVBUF, 1 << 20)
    closed = False
    try:
        while raw.recv(65536):
            pass
        closed = True
    except ConnectionResetError:
        closed = True
    except TimeoutError:
        closed = False
    raw.close()
    assert closed
    metrics = await asyncio.to_thread(_get, node.http + "/metrics")
    closed_count = next(line for line in metrics.splitlines() if line.startswith("livedrop_slow_closed_total"))
    assert float(closed_count.split()[1]) >= 1, metrics
    await fast.close()


def _get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def test_a_token_buys_only_its_own_shows_drops(nodes: NodeFactory, host: HostActions) -> None:
    await host.catalog.put_show(Show(show_id="s2", title="Another show"))
    await host.catalog.put_drop(DropInfo(drop_id="x1", show_id="s2", sku="X-1", title="Other", total=5))
    await host.launch("x1")
    await host.launch("d1")
    node = nodes()
    viewer = await Viewer.connect(node.ws("s1", token("alice")))
    await viewer.next()
    await viewer.send({"type": "reserve", "ref": "r1", "drop": "x1"})
    assert (await viewer.until("error"))["code"] == "unknown_drop"
    await viewer.send({"type": "waitlist", "ref": "w1", "drop": "x1"})
    assert (await viewer.until("error"))["code"] == "unknown_drop"
    other = await host.engine.reserve("x1", "bob", 1, "b1")
    await viewer.send({"type": "release", "ref": "r2", "hold": other.hold_id})
    assert (await viewer.until("error"))["code"] == "unknown_hold"
    assert (await host.engine.counters("x1")).held == 1  # bob's hold, nothing of alice's
    await viewer.send({"type": "reserve", "ref": "r3", "drop": "d1"})
    assert (await viewer.until("reserved"))["drop"] == "d1"
    await viewer.close()
