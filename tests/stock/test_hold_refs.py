"""Hold references (DESIGN §13) on a real node over real sockets: a buyer cannot take another
viewer's hold by naming its id or by forging a reference, a checkout cannot confirm one hold for
two orders, and every kind of hold a viewer is handed (reserve, waitlist) comes with a reference
that its checkout can use."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from broadcast.hub import Hub
from server.platforms.webhooks.events import Platform
from server.shows.actions import HostActions
from server.shows.catalog import Catalog, DropInfo, Show
from server.shows.node import ShowNode
from server.viewers.tokens import mint
from stock import HoldRefs, HoldTaken, StockEngine, UnknownHold
from stock.types import Counters, DropConfig, HoldState, OrderOutcome, PlatformSale
from tests.support.invariants import assert_drop_invariants
from tests.support.servers import VIEWER_SECRET, Node
from tests.support.util import scaled
from tests.support.viewer_client import Viewer
from tests.support.webhooks import STANDARD_SECRET, standard_headers, standard_order

NodeFactory = Callable[..., Node]
HOST_TOKEN = "host-secret-refs"


@pytest.fixture
async def host(redis: Redis) -> AsyncIterator[HostActions]:
    """Show s1 with drop d1 (SKU-1, 3 units, limit 1 per customer), on the nodes' key."""
    engine = StockEngine(redis, HoldRefs(VIEWER_SECRET.encode()))
    catalog = Catalog(redis, engine)
    live = ShowNode(redis=redis, engine=engine, catalog=catalog, hub=Hub(), node_id="test")
    await catalog.put_show(Show(show_id="s1", title="Friday drop"))
    await catalog.put_drop(
        DropInfo(drop_id="d1", show_id="s1", sku="SKU-1", title="Sneaker", total=3, per_customer_limit=1)
    )
    yield HostActions(engine, catalog, live)


@pytest.fixture
async def api(nodes: NodeFactory, host: HostActions) -> AsyncIterator[tuple[httpx.AsyncClient, Node]]:
    node = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN, "LIVEDROP_STANDARD_SECRETS": STANDARD_SECRET})
    async with httpx.AsyncClient(base_url=node.http, headers={"Authorization": f"Bearer {HOST_TOKEN}"}) as client:
        yield client, node


async def buyer(node: Node, viewer: str) -> Viewer:
    connection = await Viewer.connect(node.ws("s1", "token=" + mint(VIEWER_SECRET.encode(), "s1", viewer)))
    assert (await connection.next())["can_reserve"]
    return connection


async def post_order(client: httpx.AsyncClient, order_id: str, hold: str | None) -> None:
    line: dict[str, Any] = {"line_id": "1", "sku": "SKU-1", "qty": 1}
    if hold is not None:
        line["hold"] = hold
    body = standard_order("paid", order_id, [line])
    response = await client.post(f"/webhooks/{Platform.STANDARD.value}", content=body, headers=standard_headers(body))
    assert response.status_code == 200, response.text


async def orders_without_hold(client: httpx.AsyncClient, count: int) -> dict[str, str]:
    """The report's orders without hold, once the node's consumer has applied ``count`` of them."""
    async with asyncio.timeout(scaled(10)):
        while True:
            report = (await client.get("/api/shows/s1/reconciliation")).json()
            lines = report["drops"][0]["orders_without_hold"]
            if len(lines) >= count:
                return {line["order_id"]: line["reason"] for line in lines}
            await asyncio.sleep(0.02)


async def test_an_order_naming_anothers_hold_takes_nothing_from_it(
    api: tuple[httpx.AsyncClient, Node], host: HostActions
) -> None:
    client, node = api
    await host.launch("d1")
    victim, attacker = await buyer(node, "victim"), await buyer(node, "attacker")
    await victim.send({"type": "reserve", "ref": "r1", "drop": "d1"})
    mine = await victim.until("reserved")
    await attacker.send({"type": "reserve", "ref": "r1", "drop": "d1"})
    theirs = await attacker.until("reserved")
    assert mine["hold"] == "d1.1" and mine["hold_ref"].startswith("d1.1.")

    # The attacker's cart names the victim's hold: by its (guessable) id, with the attacker's own
    # nonce and MAC spliced onto it, and with a reference whose MAC was altered.
    spliced = "d1.1." + theirs["hold_ref"].split(".", 2)[2]
    altered = mine["hold_ref"][:-2] + ("AA" if not mine["hold_ref"].endswith("AA") else "BB")
    for order_id, hold in (("o-id", "d1.1"), ("o-spliced", spliced), ("o-altered", altered)):
        await post_order(client, order_id, hold)
    reasons = await orders_without_hold(client, 3)
    assert reasons == {"o-id": "hold_ref_invalid", "o-spliced": "hold_ref_invalid", "o-altered": "hold_ref_invalid"}

    # Each took a unit from available (the last one oversold); the victim's hold is untouched.
    hold = await host.engine.hold("d1.1")
    assert hold.state is HoldState.HELD and hold.customer == "victim" and hold.matched_line == ""
    assert await host.engine.counters("d1") == Counters(3, 0, 2, 1, 2)

    # The victim's own checkout confirms with the victim's reference: a sale, not a duplicate.
    paid = await client.post(f"/api/holds/{mine['hold_ref']}/confirm", json={"order_ref": "victim-1"})
    assert paid.status_code == 200 and paid.json()["duplicate"] is False and paid.json()["order_ref"] == "victim-1"
    # A retry is a duplicate; a second order for the same hold is a conflict, not a success.
    again = await client.post(f"/api/holds/{mine['hold_ref']}/confirm", json={"order_ref": "victim-1"})
    assert again.status_code == 200 and again.json()["duplicate"] is True
    other = await client.post(f"/api/holds/{mine['hold_ref']}/confirm", json={"order_ref": "attacker-9"})
    assert other.status_code == 409 and other.headers["content-type"] == "application/problem+json"
    assert other.json()["code"] == "hold-taken" and "victim-1" not in other.text
    report = (await client.get("/api/shows/s1/reconciliation")).json()
    assert [(c["hold_id"], c["order_ref"], c["reason"]) for c in report["drops"][0]["confirm_conflicts"]] == [
        ("d1.1", "attacker-9", "hold_taken")
    ]
    await assert_drop_invariants(host.engine, "d1")
    await victim.close()
    await attacker.close()


async def test_a_waitlist_hand_out_comes_with_a_reference_the_checkout_can_use(
    api: tuple[httpx.AsyncClient, Node], host: HostActions
) -> None:
    client, node = api
    await host.engine.adjust("d1", -2, "one-left")
    await host.launch("d1")
    first, second = await buyer(node, "first"), await buyer(node, "second")
    await first.send({"type": "reserve", "ref": "r1", "drop": "d1"})
    held = await first.until("reserved")
    await second.send({"type": "reserve", "ref": "r1", "drop": "d1"})
    assert (await second.until("rejected"))["reason"] == "sold_out"
    await second.send({"type": "waitlist", "drop": "d1", "ref": "w1"})
    await second.until("waitlisted")
    released = await client.post(f"/api/holds/{held['hold_ref']}/release")
    assert released.status_code == 200
    handed = await second.until("reserved", timeout=scaled(5))
    assert handed["from_waitlist"] and handed["hold"] == "d1.2" and handed["hold_ref"].startswith("d1.2.")
    paid = await client.post(f"/api/holds/{handed['hold_ref']}/confirm", json={"order_ref": "w-1"})
    assert paid.status_code == 200 and paid.json()["hold_id"] == "d1.2"
    await first.close()
    await second.close()


async def test_a_reference_is_checked_against_the_hold_it_names(redis: Redis) -> None:
    """The MAC alone is not enough: a well-signed reference whose nonce is not the hold's (a hold id
    reissued after its drop was defined again) names no hold, in confirm, release and orders."""
    refs = HoldRefs(b"k")
    engine = StockEngine(redis, refs)
    await engine.define(DropConfig("d1", "s1", total=3))
    await engine.open("d1")
    result = await engine.reserve("d1", "alice", 1, "r1")
    assert result.hold_id == "d1.1" and refs.verify(result.hold_ref) is not None
    stale = refs.mint("d1", "d1.1", "0" * 32)
    with pytest.raises(UnknownHold):
        await engine.confirm_ref(stale, "o1")
    with pytest.raises(UnknownHold):
        await engine.release_ref(stale)
    sale = await engine.apply_sale(PlatformSale("shopify", "1", "1", "d1", 1, hold_ref=stale))
    assert (sale.outcome, sale.hold_id, sale.hold_issue) == (OrderOutcome.APPLIED, None, "hold_ref_invalid")
    # Another engine's key (another deployment) cannot vouch for this one's holds either.
    foreign = HoldRefs(b"other").mint("d1", "d1.1", (await engine.hold("d1.1")).nonce)
    with pytest.raises(UnknownHold):
        await engine.confirm_ref(foreign)
    assert (await engine.hold("d1.1")).state is HoldState.HELD
    # The genuine reference still works, once; another order for it is a conflict.
    assert not (await engine.confirm_ref(result.hold_ref, "o2")).duplicate
    with pytest.raises(HoldTaken):
        await engine.confirm_ref(result.hold_ref, "o3")
    # A platform order for the confirmed hold with another order id is not paid by it either.
    late = await engine.apply_sale(PlatformSale("shopify", "9", "1", "d1", 1, hold_ref=result.hold_ref))
    assert (late.hold_id, late.hold_issue) == (None, "hold_taken")
    await assert_drop_invariants(engine, "d1")


@given(st.text(max_size=200) | st.from_regex(r"d1\.[0-9]{1,3}\.[0-9a-f]{32}\.[A-Za-z0-9_-]{22}", fullmatch=True))
def test_no_made_up_reference_verifies(text: str) -> None:
    """Fuzz: whatever a cart carries, only a reference minted with the key verifies."""
    refs = HoldRefs(b"k")
    assert refs.verify(text) is None
    genuine = refs.mint("d1", "d1.1", "0" * 32)
    assert refs.verify(genuine) == ("d1", "d1.1", "0" * 32)
    assert refs.verify(genuine + "x") is None and refs.verify(genuine.upper()) is None
