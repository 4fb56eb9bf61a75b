"""Platforms do not deliver in order: every ordering of an order line's create, partial refunds and
cancel must end in the state the in-order delivery gives (counters, the customer's tally, the
ledger), on real Redis. A partial refund that arrives first is remembered with its quantity and
applied when the order comes; only a whole-line cancel makes the order be ignored."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis

from stock import StockEngine
from stock.keys import drop_keys
from stock.types import Counters, DropConfig, PlatformCancel, PlatformSale
from tests.support.invariants import assert_drop_invariants

Event = Callable[[StockEngine, str, str], Awaitable[object]]
State = tuple[Counters, dict[bytes | str, bytes | str]]


def create(qty: int) -> Event:
    async def run(engine: StockEngine, drop_id: str, hold_ref: str) -> object:
        return await engine.apply_sale(PlatformSale("shopify", "1001", "1", drop_id, qty, hold_ref=hold_ref or None))

    run.__name__ = f"create{qty}"
    return run


def refund(refund_id: str, qty: int) -> Event:
    async def run(engine: StockEngine, drop_id: str, hold_ref: str) -> object:
        return await engine.apply_cancel(PlatformCancel("shopify", "1001", "1", drop_id, f"refund:{refund_id}", qty))

    run.__name__ = f"refund-{refund_id}x{qty}"
    return run


async def cancel(engine: StockEngine, drop_id: str, hold_ref: str) -> object:
    return await engine.apply_cancel(PlatformCancel("shopify", "1001", "1", drop_id))


SCENARIOS: dict[str, list[Event]] = {
    "create+refund": [create(3), refund("r1", 1)],
    "create+two refunds": [create(3), refund("r1", 1), refund("r2", 1)],
    "create+refund+cancel": [create(3), refund("r1", 1), cancel],
    "create+cancel": [create(3), cancel],
    "refund larger than the line": [create(2), refund("r1", 5)],
}


async def final_state(
    engine: StockEngine, redis: Redis, drop_id: str, events: tuple[Event, ...], *, total: int, with_hold: bool
) -> State:
    await engine.define(DropConfig(drop_id, "s1", total=total, per_customer_limit=5))
    await engine.open(drop_id)
    hold_ref = ""
    if with_hold:
        hold_ref = (await engine.reserve(drop_id, "alice", 1, "r1")).hold_ref
    for event in events:
        await event(engine, drop_id, hold_ref)
        await event(engine, drop_id, hold_ref)  # every delivery may come twice
    await assert_drop_invariants(engine, drop_id)
    return await engine.counters(drop_id), await redis.hgetall(drop_keys(drop_id).customers)


@pytest.mark.parametrize("with_hold", [False, True], ids=["no-hold", "hold"])
@pytest.mark.parametrize("total", [10, 2], ids=["in-stock", "oversold"])
@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_every_delivery_order_ends_in_the_in_order_state(
    redis: Redis, name: str, total: int, with_hold: bool
) -> None:
    engine = StockEngine(redis)
    events = SCENARIOS[name]
    expected = await final_state(engine, redis, "d0", tuple(events), total=total, with_hold=with_hold)
    for n, ordering in enumerate(itertools.permutations(events), start=1):
        got = await final_state(engine, redis, f"d{n}", ordering, total=total, with_hold=with_hold)
        assert got == expected, [event.__name__ for event in ordering]


async def test_a_partial_refund_before_its_order_leaves_the_rest_sold(redis: Redis) -> None:
    engine = StockEngine(redis)
    # In order: 3 sold, 1 refunded -> 2 sold.
    in_order = await final_state(engine, redis, "a", (create(3), refund("r1", 1)), total=10, with_hold=False)
    assert in_order[0] == Counters(10, 8, 0, 2, 0)
    # Refund first: the tombstone remembers 1 unit, and the order applies the other 2.
    first = await engine.define(DropConfig("b", "s1", total=10))
    assert first == Counters(10, 10, 0, 0, 0)
    await engine.open("b")
    tomb = await refund("r1", 1)(engine, "b", "")
    assert await engine.counters("b") == first, tomb
    await create(3)(engine, "b", "")
    assert await engine.counters("b") == Counters(10, 8, 0, 2, 0)
    ops = [(e.op, e.fields.get("event", ""), e.d_sold) for e in await engine.ledger("b")]
    assert ops[-3:] == [("cancel_first", "refund:r1", 0), ("order", "", 3), ("cancel", "refund:r1", -1)]
