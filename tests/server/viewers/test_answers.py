"""Who gets the answer to a request (docs/protocol.md, "Who gets which frame"): every answer
carries its request's ``ref``, errors included, and reaches every connection of the viewer, on
the node that answered and, for a granted hold or a release, on the others."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from broadcast.hub import Hub
from server.shows.actions import HostActions
from server.shows.catalog import Catalog, DropInfo, Show
from server.shows.node import ShowNode
from server.viewers.answers import ref_of, ref_of_request, request_id
from server.viewers.tokens import mint
from stock import StockEngine
from tests.support.servers import VIEWER_SECRET, Node
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]


@pytest.fixture
async def host(redis: Redis) -> AsyncIterator[HostActions]:
    engine = StockEngine(redis)
    catalog = Catalog(redis, engine)
    live = ShowNode(redis=redis, engine=engine, catalog=catalog, hub=Hub(), node_id="test")
    await catalog.put_show(Show(show_id="s1", title="Friday drop"))
    await catalog.put_drop(DropInfo(drop_id="d1", show_id="s1", sku="SKU-1", title="Sneaker", total=3))
    await catalog.put_drop(DropInfo(drop_id="d2", show_id="s1", sku="SKU-2", title="Tee", total=1))
    await engine.configure("d1", per_customer_limit=2)
    yield HostActions(engine, catalog, live)


def token(viewer: str) -> str:
    return mint(VIEWER_SECRET.encode(), "s1", viewer)


async def tab(node: Node, viewer: str) -> Viewer:
    conn = await Viewer.connect(node.ws("s1"), token(viewer))
    await conn.until("welcome")
    return conn


def test_ref_of_reads_a_well_formed_ref_from_any_object() -> None:
    assert ref_of(b'{"type": "reserve", "ref": "r-1", "qty": 0}') == "r-1"
    assert ref_of(b'{"ref": "bad ref with spaces"}') is None
    assert ref_of(b'{"ref": 5}') is None
    assert ref_of(b"[1, 2]") is None
    assert ref_of(b"not json") is None
    secret = b"k" * 32
    assert ref_of_request(secret, "alice", request_id(secret, "alice", "r-7")) == "r-7"
    assert ref_of_request(secret, "bob", request_id(secret, "alice", "r-7")) is None
    assert ref_of_request(secret, "alice", "host-restock-1") is None


async def test_an_invalid_frame_gets_its_error_with_its_ref(nodes: NodeFactory, host: HostActions) -> None:
    node = nodes()
    viewer = await tab(node, "alice")
    for bad in (
        '{"type": "reserve", "ref": "r-9", "drop": "d1", "qty": 0}',
        '{"type": "reserve", "ref": "r-9", "drop": "d1", "colour": "red"}',
        '{"type": "release", "ref": "r-9", "hold": "../etc"}',
        '{"type": "teleport", "ref": "r-9"}',
    ):
        await viewer.send(bad)
        error = await viewer.until("error")
        assert error["code"] == "bad_frame" and error["ref"] == "r-9", bad
    await viewer.send('{"type": "reserve", "ref": "not a ref!", "drop": "d1"}')
    assert (await viewer.until("error"))["ref"] is None
    await viewer.close()


async def test_every_answer_reaches_every_tab_of_the_viewer_on_the_node(nodes: NodeFactory, host: HostActions) -> None:
    await host.launch("d1")
    await host.launch("d2")
    node = nodes()
    phone, laptop, stranger = await tab(node, "alice"), await tab(node, "alice"), await tab(node, "bob")

    await phone.send({"type": "reserve", "ref": "r-1", "drop": "d1", "qty": 1})
    mine = await phone.until("reserved", ref="r-1")
    other = await laptop.until("reserved", ref="r-1")
    assert other == mine and mine["hold_ref"]
    await phone.send({"type": "reserve", "ref": "r-2", "drop": "d1", "qty": 2})
    assert (await laptop.until("rejected", ref="r-2"))["reason"] == "limit_exceeded"
    await phone.until("rejected", ref="r-2")
    await phone.send({"type": "reserve", "ref": "r-3", "drop": "nope"})
    assert (await laptop.until("error", ref="r-3"))["code"] == "unknown_drop"
    await phone.send({"type": "release", "ref": "r-4", "hold": mine["hold"]})
    assert (await laptop.until("released", ref="r-4"))["hold"] == mine["hold"]
    await phone.until("released", ref="r-4")
    await phone.send({"type": "reserve", "ref": "r-5", "drop": "d2"})
    await phone.until("reserved", ref="r-5")
    await phone.send({"type": "waitlist", "ref": "r-6", "drop": "d2"})
    assert (await laptop.until("waitlisted", ref="r-6"))["position"] == 1
    await phone.until("waitlisted", ref="r-6")

    # A pong is the pinging socket's own (a clock sample); an unreadable frame's error too.
    await phone.send({"type": "ping", "ref": "p-1"})
    await phone.send("not json")
    await phone.until("error", code="bad_json")
    await laptop.send({"type": "ping", "ref": "p-2"})
    await laptop.until("pong", ref="p-2")
    assert not [f for f in laptop.frames if f.get("ref") == "p-1" or f.get("code") == "bad_json"]
    # Another viewer hears none of it.
    await stranger.send({"type": "ping", "ref": "p-3"})
    await stranger.until("pong")
    assert not [f for f in stranger.frames if f.get("ref", "").startswith("r-")]
    for v in (phone, laptop, stranger):
        await v.close()


async def test_a_hold_and_its_release_reach_the_viewers_tab_on_another_node(
    nodes: NodeFactory, host: HostActions
) -> None:
    await host.launch("d1")
    first, second = nodes(env={"LIVEDROP_HOST_TOKENS": "t"}), nodes()
    checkout = {"platform": "shopify", "store_url": "https://shop.example", "products": {"d1": "4242"}}
    async with httpx.AsyncClient(base_url=first.http, headers={"Authorization": "Bearer t"}) as api:
        assert (await api.put("/api/shows/s1/checkout", json=checkout)).status_code == 200
    phone, laptop = await tab(first, "alice"), await tab(second, "alice")

    await phone.send({"type": "reserve", "ref": "r-1", "drop": "d1", "qty": 1})
    mine = await phone.until("reserved", ref="r-1")
    there = await laptop.until("reserved", ref="r-1")
    assert there == mine  # the signed hold_ref and the checkout link too
    assert mine["checkout_url"].startswith("https://shop.example/cart/4242:1?")
    await phone.send({"type": "release", "ref": "r-2", "hold": mine["hold"]})
    await phone.until("released", ref="r-2")
    assert (await laptop.until("released"))["hold"] == mine["hold"]
    # The answering node read the same ledger entries: its tab was told once, not twice.
    await phone.until("stock", held=0)
    await phone.send({"type": "ping", "ref": "p-1"})
    await phone.until("pong")
    assert [f["type"] for f in phone.frames if f["type"] in ("reserved", "released")] == ["reserved", "released"]
    for v in (phone, laptop):
        await v.close()


async def test_a_retried_ref_says_what_became_of_its_hold(nodes: NodeFactory, host: HostActions) -> None:
    await host.launch("d1")
    node = nodes()
    viewer = await tab(node, "alice")

    async def ask(ref: str) -> dict[str, Any]:
        await viewer.send({"type": "reserve", "ref": ref, "drop": "d1", "qty": 1})
        return await viewer.until("reserved", ref=ref)

    first = await ask("r-1")
    assert first["state"] == "held"
    assert (await ask("r-1")) == first  # a retry while held: the same answer
    await viewer.send({"type": "release", "ref": "l-1", "hold": first["hold"]})
    await viewer.until("released", ref="l-1")
    again = await ask("r-1")
    assert again == first | {"state": "released"}  # the same hold, and the truth about it
    assert (await host.engine.counters("d1")).held == 0  # never a second hold

    paid = await ask("r-2")
    await host.engine.confirm(paid["hold"], "order-1")
    assert (await ask("r-2"))["state"] == "confirmed"

    await host.engine.configure("d1", hold_seconds=0.2)
    short = await ask("r-3")
    await viewer.until("hold_expired", hold=short["hold"])
    assert (await ask("r-3")) == short | {"state": "expired"}
    assert len(await host.engine.holds("d1")) == 3
    await viewer.close()


@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_ref_of_never_raises_and_only_returns_well_formed_refs(raw: bytes) -> None:
    ref = ref_of(raw)
    assert ref is None or re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", ref)


async def test_a_sizes_hold_reaches_the_viewers_tab_on_another_node_with_its_size(
    nodes: NodeFactory, redis: Redis
) -> None:
    from server.shows.variants import VariantInfo
    from stock import HoldRefs

    engine = StockEngine(redis, HoldRefs(VIEWER_SECRET.encode()))
    catalog = Catalog(redis, engine)
    host = HostActions(engine, catalog, ShowNode(redis=redis, engine=engine, catalog=catalog, hub=Hub(), node_id="t"))
    await catalog.put_show(Show(show_id="s1", title="Sneakers"))
    sizes = [VariantInfo(id="s41", sku="SNK-41", total=2, options={"size": "41"})]
    await catalog.put_drop(DropInfo(drop_id="shoe", show_id="s1", sku="SNK", title="Sneaker", total=2, variants=sizes))
    await host.launch("shoe")
    first, second = nodes(), nodes()
    phone, laptop = await tab(first, "alice"), await tab(second, "alice")
    await phone.send({"type": "reserve", "ref": "r-1", "drop": "shoe", "variant": "s41"})
    mine = await phone.until("reserved", ref="r-1")
    there = await laptop.until("reserved", ref="r-1")
    assert there == mine and there["variant"] == "s41" and there["hold_ref"]
    for v in (phone, laptop):
        await v.close()
