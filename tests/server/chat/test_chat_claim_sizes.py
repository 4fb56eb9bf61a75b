"""Comment-to-buy on a drop with sizes, end to end: two real `livedrop serve` nodes on a real Redis,
real WebSocket viewers. A claim names a size ("SOLD 42", "SOLD C 43 2") and reserves that size
through the Buy button's engine call; no size, or a size the drop lacks, is refused privately; a
sold-out size waitlists; the per-variant limit holds; the stock invariants hold per size."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from server.shows.actions import HostActions
from server.shows.catalog import DropInfo
from server.shows.variants import VariantInfo
from tests.server.chat.test_chat_nodes import HOST_ENV, NodeFactory, answer, joined, message_where
from tests.support.invariants import assert_variant_drop_invariants
from tests.support.servers import Node

CLAIM_ANSWERS = ("reserved", "rejected", "waitlisted", "chat_rejected")


@pytest.fixture
async def sneaker(host: HostActions) -> HostActions:
    """Drop d3 (code C, after d1 and d2): sizes 41 (1 unit), 42 (3) and 43 (2), at most two
    units per customer in each size."""
    sizes = [
        VariantInfo(id="s41", sku="SNK-41", total=1, options={"size": "41"}),
        VariantInfo(id="s42", sku="SNK-42", total=3, options={"size": "42"}),
        VariantInfo(id="s43", sku="SNK-43", total=2, options={"size": "43"}),
    ]
    await host.add_drop(
        DropInfo(
            drop_id="d3",
            show_id="s1",
            sku="SNK",
            title="Aurora sneaker",
            total=6,
            per_customer_limit=2,
            limit_per_variant=True,
            variants=sizes,
        )
    )
    await host.launch("d3")
    return host


@pytest.fixture
async def two(nodes: NodeFactory, sneaker: HostActions) -> AsyncIterator[tuple[Node, Node]]:
    # A buyer here says more in a few seconds than the default chat rate lets through (tested elsewhere).
    env = {**HOST_ENV, **{f"LIVEDROP_CHAT_{k}": "50" for k in ("VIEWER_BURST", "CONNECTION_BURST")}}
    yield nodes(env=env), nodes(env=env)


async def test_a_claim_names_a_size_and_reserves_that_size_once(two: tuple[Node, Node], sneaker: HostActions) -> None:
    a, b = two
    engine = sneaker.engine
    buyer, reader = await joined(a, "buyer"), await joined(b, None)
    assert reader.frames[-1]["codes"] == {"d1": "A", "d2": "B", "d3": "C"}

    await buyer.send({"type": "chat_send", "ref": "c1", "text": "SOLD 42"})
    reserved = await answer(buyer, "c1", CLAIM_ANSWERS)
    assert reserved["type"] == "reserved" and reserved["variant"] == "s42" and reserved["qty"] == 1
    assert reserved["hold"].startswith("d3~s42.")
    line = await message_where(reader, lambda m: m["kind"] == "claim")
    assert line["text"] == "Buyer claimed 1 of C in 42"

    # The same message again: the same hold, nothing more held.
    await buyer.send({"type": "chat_send", "ref": "c1", "text": "SOLD 42"})
    assert (await answer(buyer, "c1"))["status"] == "duplicate"
    assert (await answer(buyer, "c1", CLAIM_ANSWERS))["hold"] == reserved["hold"]
    assert (await engine.counters("d3", "s42")).held == 1

    # The limit counts in each size: two more of 42 is over it, two of 43 is not.
    await buyer.send({"type": "chat_send", "ref": "c2", "text": "sold c 42 2"})
    over = await answer(buyer, "c2", CLAIM_ANSWERS)
    assert (over["type"], over["reason"], over["variant"]) == ("rejected", "limit_exceeded", "s42")
    await buyer.send({"type": "chat_send", "ref": "c3", "text": "SOLD C 43 2"})
    both = await answer(buyer, "c3", CLAIM_ANSWERS)
    assert (both["type"], both["variant"], both["qty"]) == ("reserved", "s43", 2)

    # No size, a number that is no size, a size the drop lacks: refused privately, nothing held.
    await buyer.send({"type": "chat_send", "ref": "c4", "text": "SOLD"})
    required = await answer(buyer, "c4", CLAIM_ANSWERS)
    assert required["type"] == "chat_rejected" and required["code"] == "claim_variant_required"
    assert "on sale: 41, 42" in required["message"]  # 43 is sold out now
    await buyer.send({"type": "chat_send", "ref": "c5", "text": "SOLD 2"})
    assert (await answer(buyer, "c5", CLAIM_ANSWERS))["code"] == "claim_variant_required"
    await buyer.send({"type": "chat_send", "ref": "c6", "text": "SOLD C 44 1"})
    unknown = await answer(buyer, "c6", CLAIM_ANSWERS)
    assert unknown["code"] == "claim_unknown_variant" and "44" in unknown["message"]
    each = await assert_variant_drop_invariants(engine, "d3")
    assert {v: (c.available, c.held) for v, c in each.items()} == {"s41": (1, 0), "s42": (2, 1), "s43": (0, 2)}
    for v in (buyer, reader):
        await v.close()


async def test_a_claim_for_a_sold_out_size_joins_that_size_waitlist(
    two: tuple[Node, Node], sneaker: HostActions
) -> None:
    a, b = two
    engine = sneaker.engine
    first, second = await joined(a, "first"), await joined(b, "second")
    await first.send({"type": "chat_send", "ref": "f1", "text": "SOLD 41"})
    assert (await answer(first, "f1", CLAIM_ANSWERS))["variant"] == "s41"

    await second.send({"type": "chat_send", "ref": "s1", "text": "SOLD 41"})
    waiting = await answer(second, "s1", CLAIM_ANSWERS)
    assert (waiting["type"], waiting["variant"], waiting["position"]) == ("waitlisted", "s41", 1)
    assert await engine.waitlist("d3", "s41") == [("second", 1)]
    assert await engine.waitlist("d3", "s42") == []
    # The same message again is the same place in the line, not a second one.
    await second.send({"type": "chat_send", "ref": "s1", "text": "SOLD 41"})
    again = await answer(second, "s1", CLAIM_ANSWERS)
    assert (again["type"], again["position"]) == ("waitlisted", 1)
    assert await engine.waitlist("d3", "s41") == [("second", 1)]

    # More than a size has left: what is left is held, the rest waits for that size.
    await first.send({"type": "chat_send", "ref": "f2", "text": "SOLD 42 2"})
    assert (await answer(first, "f2", CLAIM_ANSWERS))["qty"] == 2
    await second.send({"type": "chat_send", "ref": "s2", "text": "SOLD C 42 2"})
    part = await answer(second, "s2", CLAIM_ANSWERS)
    assert (part["type"], part["qty"], part["variant"]) == ("reserved", 1, "s42")
    rest = await answer(second, "s2", ("waitlisted",))
    assert rest["variant"] == "s42"
    assert await engine.waitlist("d3", "s42") == [("second", 1)]
    each = await assert_variant_drop_invariants(engine, "d3")
    assert {v: c.available for v, c in each.items()} == {"s41": 0, "s42": 0, "s43": 2}
    for v in (first, second):
        await v.close()
