"""Drops with variants over real WebSockets: viewers reserve sizes by name, each size sells out
on its own, frames carry per-variant counters, and a single-SKU drop's frames have no trace of
variants. Invariants are checked per variant and per drop after every step."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from broadcast.hub import Hub
from server.ops.local_redis import LocalRedis
from server.shows.actions import HostActions
from server.shows.catalog import Catalog, DropInfo, Show
from server.shows.node import ShowNode
from server.shows.variants import VariantInfo
from server.viewers.tokens import mint
from stock import HoldRefs, StockEngine
from tests.support.invariants import assert_drop_invariants, assert_variant_drop_invariants
from tests.support.servers import VIEWER_SECRET, Node
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]
VARIANT_KEYS = {"variant", "variants", "limit_per_variant"}


@pytest.fixture
async def host(redis: Redis) -> AsyncIterator[HostActions]:
    engine = StockEngine(redis, HoldRefs(VIEWER_SECRET.encode()))  # the nodes' key
    catalog = Catalog(redis, engine)
    live = ShowNode(redis=redis, engine=engine, catalog=catalog, hub=Hub(), node_id="test")
    await catalog.put_show(Show(show_id="s1", title="Sneakers"))
    await catalog.put_drop(
        DropInfo(
            drop_id="shoe",
            show_id="s1",
            sku="SNK",
            title="Sneaker",
            total=3,
            prices={"EUR": 8900},
            per_customer_limit=3,  # across sizes
            variants=[
                VariantInfo(id="s41", sku="SNK-41", total=1, options={"size": "41"}),
                VariantInfo(id="s42", sku="SNK-42", total=2, options={"size": "42"}, prices={"EUR": 9900}),
            ],
        )
    )
    await catalog.put_drop(DropInfo(drop_id="mug", show_id="s1", sku="MUG", title="Mug", total=2))
    yield HostActions(engine, catalog, live)


def token(viewer: str) -> str:
    return "token=" + mint(VIEWER_SECRET.encode(), "s1", viewer)


async def check(host: HostActions) -> None:
    await assert_variant_drop_invariants(host.engine, "shoe")
    await assert_drop_invariants(host.engine, "mug")


async def test_sizes_are_reserved_by_name_and_sell_out_on_their_own(nodes: NodeFactory, host: HostActions) -> None:
    node = nodes()
    watcher = await Viewer.connect(node.ws("s1"))
    welcome = await watcher.next()
    shoe, mug = welcome["drops"]
    assert shoe["stock"] == {"available": 3, "held": 0, "sold": 0, "total": 3}
    assert [(v["id"], v["sku"], v["options"], v["stock"]["available"]) for v in shoe["variants"]] == [
        ("s41", "SNK-41", {"size": "41"}, 1),
        ("s42", "SNK-42", {"size": "42"}, 2),
    ]
    assert "prices" not in shoe["variants"][0] and shoe["variants"][1]["prices"] == {"EUR": 9900}
    assert "limit_per_variant" not in shoe
    assert not VARIANT_KEYS & mug.keys()  # a single-SKU drop: exactly as before variants

    await host.launch("shoe")
    await host.launch("mug")
    launched = await watcher.until("drop")
    assert launched["drop"]["id"] == "shoe" and len(launched["drop"]["variants"]) == 2
    await check(host)

    alice = await Viewer.connect(node.ws("s1", token("alice")))
    bob = await Viewer.connect(node.ws("s1", token("bob")))
    await alice.next()
    await bob.next()
    await alice.send({"type": "reserve", "ref": "a1", "drop": "shoe", "variant": "s41"})
    held = await alice.until("reserved")
    assert held["variant"] == "s41" and held["hold"] == "shoe~s41.1" and held["hold_ref"]
    await check(host)
    await bob.send({"type": "reserve", "ref": "b1", "drop": "shoe", "variant": "s41"})
    rejected = await bob.until("rejected")
    assert rejected == rejected | {"reason": "sold_out", "variant": "s41", "drop": "shoe"}
    # Size 41 is sold out; size 42 still sells.
    await bob.send({"type": "reserve", "ref": "b2", "drop": "shoe", "variant": "s42", "qty": 2})
    assert (await bob.until("reserved"))["variant"] == "s42"
    await check(host)
    stock = await watcher.until("stock", drop="shoe", available=0)
    assert stock["variants"] == {
        "s41": {"available": 0, "held": 1, "sold": 0, "total": 1},
        "s42": {"available": 0, "held": 2, "sold": 0, "total": 2},
    }
    assert stock["held"] == 3 and stock["total"] == 3

    # The waitlist of a size: a release of size 41 goes to its waiter, not to size 42's.
    await bob.send({"type": "waitlist", "drop": "shoe", "variant": "s41", "ref": "w"})
    waiting = await bob.until("waitlisted")
    assert waiting["variant"] == "s41" and waiting["position"] == 1
    await alice.send({"type": "release", "hold": held["hold"], "ref": "r"})
    assert (await alice.until("released"))["hold"] == "shoe~s41.1"
    handed = await bob.until("reserved", ref="waitlist", timeout=10)
    assert handed["from_waitlist"] and handed["variant"] == "s41" and handed["hold"].startswith("shoe~s41.")
    await check(host)
    await host.engine.confirm_ref(handed["hold_ref"], "order-1")
    confirmed = await bob.until("confirmed", timeout=10)
    assert confirmed["variant"] == "s41"
    await check(host)

    # The single-SKU drop in the same show: no variant anywhere in its frames.
    await alice.send({"type": "reserve", "ref": "m1", "drop": "mug"})
    mug_hold = await alice.until("reserved")
    assert not VARIANT_KEYS & mug_hold.keys()
    mug_stock = await watcher.until("stock", drop="mug", available=1)
    assert not VARIANT_KEYS & mug_stock.keys()
    await check(host)
    for v in (watcher, alice, bob):
        await v.close()


async def test_variant_errors_are_clear_and_change_nothing(nodes: NodeFactory, host: HostActions) -> None:
    node = nodes()
    await host.launch("shoe")
    await host.launch("mug")
    viewer = await Viewer.connect(node.ws("s1", token("mallory")))
    await viewer.next()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"type": "reserve", "ref": "1", "drop": "shoe"}, "variant_required"),
        ({"type": "reserve", "ref": "2", "drop": "shoe", "variant": "s99"}, "unknown_variant"),
        ({"type": "reserve", "ref": "3", "drop": "mug", "variant": "s41"}, "unknown_variant"),
        ({"type": "waitlist", "ref": "4", "drop": "shoe"}, "variant_required"),
        ({"type": "reserve", "ref": "5", "drop": "shoe", "variant": "4x"}, "bad_frame"),
        ({"type": "reserve", "ref": "6", "drop": "shoe", "variant": ["s41"]}, "bad_frame"),
        ({"type": "release", "ref": "7", "hold": "other~s41.1"}, "unknown_hold"),
        ({"type": "release", "ref": "8", "hold": "shoe~s41.99"}, "unknown_hold"),
    ]
    for frame, code in cases:
        await viewer.send(frame)
        error = await viewer.until("error")
        assert error["code"] == code, (frame, error)
    await viewer.send({"type": "ping", "ref": "alive"})
    assert (await viewer.until("pong"))["ref"] == "alive"
    assert await host.engine.holds("shoe", "s41") == [] and await host.engine.holds("shoe", "s42") == []
    await check(host)
    await viewer.close()


# -- hypothesis: the variant field of reserve and waitlist frames ----------------------------------
ANSWERS = {"reserved", "rejected", "error", "waitlisted"}
variant_values = st.one_of(
    st.sampled_from(["s41", "s42", "s99", "S41", "", "4x", "s41~", "a" * 33, "s41.1"]),
    st.text(max_size=40),
    st.integers(-3, 3),
    st.none(),
    st.lists(st.sampled_from(["s41", "s42"]), max_size=2),
    st.dictionaries(st.sampled_from(["id", "size"]), st.sampled_from(["s41", "42"]), max_size=2),
)
variant_frames = st.builds(
    lambda kind, drop, variant, qty, omit: (
        {"type": kind, "ref": "f", "drop": drop, "qty": qty} | ({} if omit else {"variant": variant})
    ),
    st.sampled_from(["reserve", "waitlist"]),
    st.sampled_from(["shoe", "mug", "nope"]),
    variant_values,
    st.integers(1, 2),
    st.booleans(),
)


async def _answer(viewer: Viewer) -> dict[str, Any]:
    while (frame := await viewer.next())["type"] not in ANSWERS:
        pass
    return frame


async def _fuzz_example(node: Node, url: str, frames: list[dict[str, Any]], viewer_id: str) -> None:
    redis = Redis.from_url(url)
    engine = StockEngine(redis)
    try:
        viewer = await Viewer.connect(node.ws("s1", "token=" + mint(VIEWER_SECRET.encode(), "s1", viewer_id)))
        await viewer.next()
        for i, frame in enumerate(frames):
            frame = frame | {"ref": f"f{i}"}
            await viewer.send(frame)
            answer = await _answer(viewer)
            variant = frame.get("variant")
            if answer["type"] == "reserved":
                # Only a well-formed variant of the drop with variants, or none on the single-SKU drop.
                assert (frame["drop"], variant) in {("shoe", "s41"), ("shoe", "s42"), ("mug", None)}, (frame, answer)
                assert answer.get("variant") == variant
            if frame["drop"] == "mug" and "variant" in frame and variant is not None:
                assert answer["type"] == "error", (frame, answer)
        await assert_variant_drop_invariants(engine, "shoe")
        await assert_drop_invariants(engine, "mug")
        await viewer.close()
    finally:
        await redis.aclose()


def test_fuzzed_variant_fields_get_an_answer_and_keep_stock_true(nodes: NodeFactory, redis_server: LocalRedis) -> None:
    async def setup() -> None:
        redis = Redis.from_url(redis_server.url)
        engine = StockEngine(redis)
        catalog = Catalog(redis, engine)
        host = HostActions(
            engine, catalog, ShowNode(redis=redis, engine=engine, catalog=catalog, hub=Hub(), node_id="t")
        )
        await catalog.put_show(Show(show_id="s1", title="Fuzz"))
        await catalog.put_drop(
            DropInfo(
                drop_id="shoe",
                show_id="s1",
                sku="SNK",
                title="Sneaker",
                total=0,
                variants=[VariantInfo(id="s41", sku="F-41", total=40), VariantInfo(id="s42", sku="F-42", total=40)],
            )
        )
        await catalog.put_drop(DropInfo(drop_id="mug", show_id="s1", sku="F-MUG", title="Mug", total=40))
        await host.launch("shoe")
        await host.launch("mug")
        await redis.aclose()

    node = nodes()
    asyncio.run(setup())
    seen = iter(range(10**6))

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(frames=st.lists(variant_frames, min_size=1, max_size=6))
    def run(frames: list[dict[str, Any]]) -> None:
        asyncio.run(_fuzz_example(node, redis_server.url, frames, f"fz{next(seen)}"))  # a fresh loop per example

    run()
    with urllib.request.urlopen(node.http + "/readyz", timeout=5) as response:
        assert response.status == 200


async def test_two_nodes_a_burst_on_one_size_expiry_and_resume(nodes: NodeFactory, host: HostActions) -> None:
    """A burst of viewers on two nodes at the one unit of size 41: exactly one hold; a watcher on
    the other node sees each size's counters; the hold's expiry reaches its holder with the size;
    a resuming viewer gets the per-size counters."""
    a, b = nodes(), nodes()
    await host.launch("shoe")
    watcher = await Viewer.connect(b.ws("s1"))
    welcome = await watcher.next()
    buyers = [await Viewer.connect((a, b)[i % 2].ws("s1", token(f"v{i}"))) for i in range(12)]
    for v in buyers:
        await v.next()
    await asyncio.gather(*(v.send({"type": "reserve", "ref": "buy", "drop": "shoe", "variant": "s41"}) for v in buyers))
    answers = [await _answer(v) for v in buyers]
    granted = [(i, f) for i, f in enumerate(answers) if f["type"] == "reserved"]
    assert len(granted) == 1 and {f["reason"] for f in answers if f["type"] == "rejected"} == {"sold_out"}
    await check(host)
    stock = await watcher.until("stock", drop="shoe", held=1)
    assert stock["variants"]["s41"] == {"available": 0, "held": 1, "sold": 0, "total": 1}
    assert stock["variants"]["s42"]["available"] == 2

    index, held = granted[0]
    await host.engine.fast_forward("shoe", 3600)
    expired = await buyers[index].until("hold_expired", timeout=10, hold=held["hold"])
    assert expired["variant"] == "s41" and expired["drop"] == "shoe"
    await check(host)

    resumed = await Viewer.connect(a.ws("s1", f"resume_from={welcome['seq']}&epoch={welcome['epoch']}"))
    frame = await resumed.until("stock", drop="shoe")
    assert set(frame["variants"]) == {"s41", "s42"}
    for v in [watcher, resumed, *buyers]:
        await v.close()


async def test_a_size_held_on_one_node_reaches_the_viewers_tab_on_another(
    nodes: NodeFactory, host: HostActions
) -> None:
    a, b = nodes(), nodes()
    await host.launch("shoe")
    here = await Viewer.connect(a.ws("s1", token("tabs")))
    there = await Viewer.connect(b.ws("s1", token("tabs")))
    for v in (here, there):
        await v.next()
    await here.send({"type": "reserve", "ref": "t1", "drop": "shoe", "variant": "s42"})
    held = await here.until("reserved")
    echoed = await there.until("reserved", timeout=10, ref="t1")
    assert echoed["variant"] == held["variant"] == "s42" and echoed["hold"] == held["hold"]
    assert echoed["hold_ref"] == held["hold_ref"]
    await check(host)
    for v in (here, there):
        await v.close()
