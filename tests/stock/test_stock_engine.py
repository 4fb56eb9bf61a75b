"""Every stock operation and every rejection, on a real Redis, invariants checked after each."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from stock import (
    DropConfig,
    DropConflict,
    HoldNotActive,
    HoldTaken,
    InsufficientStock,
    InvalidArgument,
    NotOwner,
    PlatformCancel,
    PlatformSale,
    RejectReason,
    StockEngine,
    UnknownDrop,
    UnknownHold,
)
from stock.types import CancelOutcome, Counters, DropState, HoldState, OrderOutcome, WaitlistOutcome
from tests.support.invariants import assert_drop_invariants


@pytest.fixture
async def engine(redis: Redis) -> AsyncIterator[StockEngine]:
    engine = StockEngine(redis)
    yield engine
    for drop_id in await engine.drop_ids():
        await assert_drop_invariants(engine, drop_id)


async def live_drop(
    engine: StockEngine, total: int = 5, limit: int = 0, hold_seconds: float = 60, drop_id: str = "d1"
) -> str:
    await engine.define(DropConfig(drop_id, "show1", total, limit, hold_seconds))
    await engine.open(drop_id)
    return drop_id


async def test_define_is_idempotent_and_conflicts_on_other_settings(engine: StockEngine) -> None:
    config = DropConfig("d1", "show1", 10, 2, 30)
    assert await engine.define(config) == Counters(10, 10, 0, 0, 0)
    assert await engine.define(config) == Counters(10, 10, 0, 0, 0)
    with pytest.raises(DropConflict):
        await engine.define(DropConfig("d1", "show1", 11, 2, 30))
    snapshot = await engine.snapshot("d1")
    assert snapshot.state is DropState.DRAFT
    assert (snapshot.per_customer_limit, snapshot.hold_seconds) == (2, 30)
    assert len(await engine.ledger("d1")) == 1


async def test_reserve_needs_a_live_drop(engine: StockEngine) -> None:
    await engine.define(DropConfig("d1", "show1", 5))
    assert (await engine.reserve("d1", "c1", 1, "r1")).reason is RejectReason.NOT_LIVE
    await engine.open("d1")
    assert (await engine.reserve("d1", "c1", 1, "r2")).ok
    await engine.close("d1")
    assert (await engine.reserve("d1", "c1", 1, "r3")).reason is RejectReason.NOT_LIVE
    assert (await engine.snapshot("d1")).end_reason == "host"


async def test_reserve_grants_a_hold_with_a_redis_clock_deadline(engine: StockEngine, redis: Redis) -> None:
    await live_drop(engine, hold_seconds=30)
    seconds, micros = await redis.time()
    result = await engine.reserve("d1", "c1", 2, "r1")
    assert result.ok and result.hold_id == "d1.1" and result.qty == 2
    assert result.counters == Counters(5, 3, 2, 0, 0)
    expected = seconds * 1000 + micros // 1000 + 30_000
    assert expected <= result.expires_at_ms <= expected + 2_000
    hold = await engine.hold("d1.1")
    assert (hold.customer, hold.qty, hold.state) == ("c1", 2, HoldState.HELD)


async def test_reserve_sold_out_takes_nothing(engine: StockEngine) -> None:
    await live_drop(engine, total=3)
    assert (await engine.reserve("d1", "c1", 2, "r1")).ok
    sold_out = await engine.reserve("d1", "c2", 2, "r2")
    assert sold_out.reason is RejectReason.SOLD_OUT and sold_out.hold_id is None
    assert sold_out.counters == Counters(3, 1, 2, 0, 0)
    assert (await engine.snapshot("d1")).rejected["sold_out"] == 1


async def test_per_customer_limit_counts_held_and_sold(engine: StockEngine) -> None:
    await live_drop(engine, total=10, limit=2)
    first = await engine.reserve("d1", "c1", 1, "r1")
    await engine.confirm(first.hold_id or "", "o1")
    assert (await engine.reserve("d1", "c1", 1, "r2")).ok
    assert (await engine.reserve("d1", "c1", 1, "r3")).reason is RejectReason.LIMIT_EXCEEDED
    assert (await engine.reserve("d1", "c2", 3, "r4")).reason is RejectReason.LIMIT_EXCEEDED
    assert (await engine.reserve("d1", "c2", 2, "r5")).ok


async def test_retried_request_gets_its_first_answer(engine: StockEngine) -> None:
    await live_drop(engine, total=1)
    first = await engine.reserve("d1", "c1", 1, "r1")
    again = await engine.reserve("d1", "c1", 1, "r1")
    assert again.duplicate and again.hold_id == first.hold_id and again.expires_at_ms == first.expires_at_ms
    rejected = await engine.reserve("d1", "c2", 1, "r2")
    await engine.release(first.hold_id or "")
    # Units are back, but r2's first answer was sold_out and stays so.
    assert (await engine.reserve("d1", "c2", 1, "r2")).reason is rejected.reason is RejectReason.SOLD_OUT
    assert (await engine.counters("d1")).available == 1


async def test_bad_arguments_raise_and_change_nothing(engine: StockEngine, redis: Redis) -> None:
    await live_drop(engine)
    before = await redis.dbsize()
    for call in (
        engine.reserve("d1", "c1", 0, "r1"),
        engine.reserve("d1", "c1", -1, "r1"),
        engine.reserve("d1", "c" * 129, 1, "r1"),
        engine.reserve("d1", "c1", 1, "r|1"),
        engine.reserve("bad{tag}", "c1", 1, "r1"),
        engine.confirm("not-a-hold"),
        engine.adjust("d1", 1, "has space"),
        engine.join_waitlist("d1", "c1", 0),
    ):
        with pytest.raises(InvalidArgument):
            await call
    with pytest.raises(UnknownDrop):
        await engine.reserve("nope", "c1", 1, "r1")
    with pytest.raises(UnknownHold):
        await engine.confirm("d1.99")
    with pytest.raises(UnknownDrop):
        await engine.counters("nope")
    assert await redis.dbsize() == before
    assert len(await engine.ledger("d1")) == 2  # define, open


async def test_confirm_is_idempotent_and_refuses_dead_holds(engine: StockEngine) -> None:
    await live_drop(engine)
    a = await engine.reserve("d1", "c1", 2, "r1")
    done = await engine.confirm(a.hold_id or "", "order-1")
    assert not done.duplicate and done.counters == Counters(5, 3, 0, 2, 0)
    again = await engine.confirm(a.hold_id or "", "order-1")
    assert again.duplicate and again.order_ref == "order-1" and again.counters == done.counters
    # Another order for the same hold is a second payment for one unit: a conflict, never a duplicate.
    with pytest.raises(HoldTaken):
        await engine.confirm(a.hold_id or "", "other")
    assert await engine.counters("d1") == done.counters
    assert (await engine.ledger("d1"))[-1].fields == {"hold": a.hold_id, "order": "other", "by": "order-1"}
    b = await engine.reserve("d1", "c2", 1, "r2")
    await engine.release(b.hold_id or "")
    with pytest.raises(HoldNotActive) as info:
        await engine.confirm(b.hold_id or "")
    assert info.value.state == "released"
    with pytest.raises(HoldNotActive):
        await engine.release(a.hold_id or "")


async def test_release_checks_the_owner_and_is_idempotent(engine: StockEngine) -> None:
    await live_drop(engine)
    a = await engine.reserve("d1", "c1", 2, "r1")
    with pytest.raises(NotOwner):
        await engine.release(a.hold_id or "", "c2")
    first = await engine.release(a.hold_id or "", "c1")
    assert not first.duplicate and first.counters == Counters(5, 5, 0, 0, 0)
    assert (await engine.release(a.hold_id or "", "c1")).duplicate
    assert (await engine.hold(a.hold_id or "")).state is HoldState.RELEASED


async def test_expiry_by_sweep_and_lazily_inside_reserve(engine: StockEngine) -> None:
    await live_drop(engine, total=2, hold_seconds=10)
    a = await engine.reserve("d1", "c1", 2, "r1")
    assert (await engine.reserve("d1", "c2", 1, "r2")).reason is RejectReason.SOLD_OUT
    await engine.fast_forward("d1", 11)
    # No sweep ran: reserve expires the due hold itself and sells its units at once.
    b = await engine.reserve("d1", "c2", 1, "r3")
    assert b.ok and b.counters == Counters(2, 1, 1, 0, 0)
    assert (await engine.hold(a.hold_id or "")).state is HoldState.EXPIRED
    with pytest.raises(HoldNotActive) as info:
        await engine.confirm(a.hold_id or "")
    assert info.value.state == "expired"
    await engine.fast_forward("d1", 11)
    swept = await engine.sweep("d1")
    assert swept.expired == 1 and not swept.more and swept.next_due_ms == 0
    assert swept.counters == Counters(2, 2, 0, 0, 0)
    assert (await engine.snapshot("d1")).holds_expired == 2


async def test_confirm_of_a_due_hold_expires_it(engine: StockEngine) -> None:
    await live_drop(engine, hold_seconds=5)
    a = await engine.reserve("d1", "c1", 1, "r1")
    await engine.fast_forward("d1", 6)
    with pytest.raises(HoldNotActive):
        await engine.confirm(a.hold_id or "")
    assert await engine.counters("d1") == Counters(5, 5, 0, 0, 0)


async def test_sweep_is_bounded_and_reports_more(engine: StockEngine) -> None:
    await live_drop(engine, total=300, hold_seconds=1)
    for i in range(300):
        await engine.reserve("d1", f"c{i}", 1, f"r{i}")
    await engine.fast_forward("d1", 2)
    first = await engine.sweep("d1", max_holds=256)
    assert first.expired == 256 and first.more
    second = await engine.sweep("d1", max_holds=256)
    assert second.expired == 44 and not second.more
    assert second.counters == Counters(300, 300, 0, 0, 0)


async def test_sweep_closes_a_drop_at_its_end_time(engine: StockEngine) -> None:
    await engine.define(DropConfig("d1", "show1", 5))
    change = await engine.open("d1", duration_seconds=30)
    assert change.changed and change.state is DropState.LIVE and change.ends_at_ms > 0
    assert not (await engine.sweep("d1")).closed
    await engine.fast_forward("d1", 31)
    assert (await engine.reserve("d1", "c1", 1, "r1")).reason is RejectReason.NOT_LIVE
    assert (await engine.sweep("d1")).closed
    snapshot = await engine.snapshot("d1")
    assert snapshot.state is DropState.CLOSED and snapshot.end_reason == "time"


async def test_open_and_close_are_idempotent(engine: StockEngine) -> None:
    await engine.define(DropConfig("d1", "show1", 5))
    assert (await engine.open("d1")).changed
    assert not (await engine.open("d1")).changed
    assert (await engine.close("d1", "sold_out")).changed
    assert not (await engine.close("d1")).changed
    with pytest.raises(InvalidArgument):
        await engine.close("d1", "bored")


async def test_restock_and_withdraw_respect_held_and_sold(engine: StockEngine) -> None:
    await live_drop(engine, total=5)
    await engine.reserve("d1", "c1", 3, "r1")
    restock = await engine.adjust("d1", 4, "a1")
    assert restock.counters == Counters(9, 6, 3, 0, 0)
    assert (await engine.adjust("d1", 4, "a1")).duplicate
    with pytest.raises(InsufficientStock):
        await engine.adjust("d1", -7, "a2")
    assert (await engine.adjust("d1", -6, "a3")).counters == Counters(3, 0, 3, 0, 0)


async def test_configure_changes_rules_for_new_holds(engine: StockEngine) -> None:
    await live_drop(engine, total=10, limit=1)
    assert (await engine.reserve("d1", "c1", 1, "r1")).ok
    assert (await engine.reserve("d1", "c1", 1, "r2")).reason is RejectReason.LIMIT_EXCEEDED
    await engine.configure("d1", per_customer_limit=3, hold_seconds=5)
    third = await engine.reserve("d1", "c1", 2, "r3")
    assert third.ok
    snapshot = await engine.snapshot("d1")
    assert (snapshot.per_customer_limit, snapshot.hold_seconds) == (3, 5)


async def test_waitlist_gets_returned_units_first_in_fifo_order(engine: StockEngine) -> None:
    await live_drop(engine, total=2)
    a = await engine.reserve("d1", "c1", 2, "r1")
    assert (await engine.join_waitlist("d1", "w1", 1)).outcome is WaitlistOutcome.WAITLISTED
    second = await engine.join_waitlist("d1", "w2", 2)
    assert second.outcome is WaitlistOutcome.WAITLISTED and second.position == 2
    assert (await engine.join_waitlist("d1", "w2", 2)).outcome is WaitlistOutcome.DUPLICATE
    assert await engine.waitlist("d1") == [("w1", 1), ("w2", 2)]
    released = await engine.release(a.hold_id or "")
    # w1 gets its unit, w2 the one left (a partial hand-out), nothing stays on sale.
    assert released.counters == Counters(2, 0, 2, 0, 0)
    holds = {h.customer: h for h in await engine.holds("d1") if h.state is HoldState.HELD}
    assert (holds["w1"].qty, holds["w2"].qty) == (1, 1)
    assert await engine.waitlist("d1") == []
    assert (await engine.reserve("d1", "c3", 1, "r2")).reason is RejectReason.SOLD_OUT
    ops = [entry.op for entry in await engine.ledger("d1")]
    assert ops[-3:] == ["release", "handout", "handout"]


async def test_waitlist_join_rules(engine: StockEngine) -> None:
    await engine.define(DropConfig("d1", "show1", 2, per_customer_limit=1))
    assert (await engine.join_waitlist("d1", "w1")).outcome is WaitlistOutcome.NOT_LIVE
    await engine.open("d1")
    assert (await engine.join_waitlist("d1", "w1")).outcome is WaitlistOutcome.AVAILABLE
    assert (await engine.join_waitlist("d1", "w1", 2)).outcome is WaitlistOutcome.LIMIT_EXCEEDED
    await engine.reserve("d1", "c1", 1, "r1")
    await engine.reserve("d1", "c2", 1, "r2")
    assert (await engine.join_waitlist("d1", "w1")).outcome is WaitlistOutcome.WAITLISTED
    assert await engine.leave_waitlist("d1", "w1")
    assert not await engine.leave_waitlist("d1", "w1")


async def test_a_refused_withdrawal_still_hands_expired_units_to_the_waitlist(engine: StockEngine) -> None:
    # Found by the model test: adjust expired a hold lazily, then refused the withdrawal and
    # left the returned unit on sale while w1 waited for it.
    await live_drop(engine, total=1, hold_seconds=10)
    await engine.reserve("d1", "c1", 1, "r1")
    assert (await engine.join_waitlist("d1", "w1")).outcome is WaitlistOutcome.WAITLISTED
    await engine.fast_forward("d1", 11)
    with pytest.raises(InsufficientStock):
        await engine.adjust("d1", -1, "withdraw-1")
    live = [h.customer for h in await engine.holds("d1") if h.state is HoldState.HELD]
    assert live == ["w1"] and await engine.waitlist("d1") == []
    assert await assert_drop_invariants(engine, "d1") == Counters(1, 0, 1, 0, 0)


async def test_waitlist_is_served_by_restock_and_expiry(engine: StockEngine) -> None:
    await live_drop(engine, total=1, hold_seconds=10)
    await engine.reserve("d1", "c1", 1, "r1")
    await engine.join_waitlist("d1", "w1")
    await engine.join_waitlist("d1", "w2")
    restock = await engine.adjust("d1", 1, "restock-1")
    assert restock.counters == Counters(2, 0, 2, 0, 0)  # w1 holds the new unit
    await engine.fast_forward("d1", 11)
    swept = await engine.sweep("d1")
    # c1's and w1's holds ran out: w2 is served next, one unit is left on sale.
    assert swept.expired == 2 and swept.counters == Counters(2, 1, 1, 0, 0)
    live = [h.customer for h in await engine.holds("d1") if h.state is HoldState.HELD]
    assert live == ["w2"]


async def test_platform_sale_without_hold_takes_available_then_oversells(engine: StockEngine) -> None:
    await live_drop(engine, total=3)
    sale = await engine.apply_sale(PlatformSale("shopify", "1001", "1", "d1", 2))
    assert (sale.outcome, sale.sold, sale.oversold) == (OrderOutcome.APPLIED, 2, 0)
    over = await engine.apply_sale(PlatformSale("tiktok", "77", "a", "d1", 3))
    assert (over.sold, over.oversold) == (1, 2)
    assert over.counters == Counters(3, 0, 0, 3, 2)
    dup = await engine.apply_sale(PlatformSale("tiktok", "77", "a", "d1", 3))
    assert (dup.outcome, dup.sold, dup.oversold) == (OrderOutcome.DUPLICATE, 1, 2)
    assert dup.counters == over.counters
    entry = (await engine.ledger("d1"))[-1]
    assert entry.fields["alert"] == "oversold"


async def test_platform_sale_confirms_the_hold_it_names(engine: StockEngine) -> None:
    await live_drop(engine, total=5)
    a = await engine.reserve("d1", "c1", 2, "r1")
    sale = await engine.apply_sale(PlatformSale("shopify", "1001", "1", "d1", 2, hold_ref=a.hold_ref))
    assert sale.hold_id == a.hold_id and sale.counters == Counters(5, 3, 0, 2, 0)
    hold = await engine.hold(a.hold_id or "")
    assert hold.state is HoldState.CONFIRMED and hold.matched_line == "shopify|1001|1"


async def test_platform_sale_for_an_expired_hold_takes_from_available(engine: StockEngine) -> None:
    await live_drop(engine, total=2, hold_seconds=5)
    a = await engine.reserve("d1", "c1", 2, "r1")
    await engine.fast_forward("d1", 6)
    sale = await engine.apply_sale(PlatformSale("shopify", "1001", "1", "d1", 2, hold_ref=a.hold_ref))
    assert (sale.sold, sale.oversold, sale.hold_id) == (2, 0, None)
    assert sale.counters == Counters(2, 0, 0, 2, 0)


async def test_checkout_confirm_then_webhook_counts_once(engine: StockEngine) -> None:
    await live_drop(engine, total=5)
    a = await engine.reserve("d1", "c1", 2, "r1")
    await engine.confirm(a.hold_id or "", "1001")
    # The platform's webhook names no hold, but the order id matches the checkout's confirm.
    sale = await engine.apply_sale(PlatformSale("shopify", "1001", "1", "d1", 2))
    assert sale.hold_id == a.hold_id and sale.counters == Counters(5, 3, 0, 2, 0)


async def test_order_for_fewer_units_than_held_returns_the_rest(engine: StockEngine) -> None:
    await live_drop(engine, total=5, limit=3)
    a = await engine.reserve("d1", "c1", 3, "r1")
    sale = await engine.apply_sale(PlatformSale("shopify", "1001", "1", "d1", 1, hold_ref=a.hold_ref))
    assert sale.counters == Counters(5, 4, 0, 1, 0)
    assert (await engine.reserve("d1", "c1", 2, "r2")).ok  # the limit counts 1 unit now


async def test_cancel_restocks_and_lowers_oversold_first(engine: StockEngine) -> None:
    await live_drop(engine, total=1)
    await engine.apply_sale(PlatformSale("shopify", "1", "1", "d1", 3))
    assert await engine.counters("d1") == Counters(1, 0, 0, 1, 2)
    part = await engine.apply_cancel(PlatformCancel("shopify", "1", "1", "d1", event="refund-1", qty=2))
    assert (part.restocked, part.unoversold) == (0, 2)
    rest = await engine.apply_cancel(PlatformCancel("shopify", "1", "1", "d1"))
    assert (rest.outcome, rest.restocked, rest.unoversold) == (CancelOutcome.RESTOCKED, 1, 0)
    assert rest.counters == Counters(1, 1, 0, 0, 0)
    dup = await engine.apply_cancel(PlatformCancel("shopify", "1", "1", "d1"))
    assert dup.outcome is CancelOutcome.DUPLICATE and dup.counters == rest.counters


async def test_cancel_before_order_leaves_a_tombstone(engine: StockEngine) -> None:
    await live_drop(engine, total=5)
    first = await engine.apply_cancel(PlatformCancel("woocommerce", "9", "1", "d1"))
    assert first.outcome is CancelOutcome.TOMBSTONED
    late = await engine.apply_sale(PlatformSale("woocommerce", "9", "1", "d1", 2))
    assert late.outcome is OrderOutcome.IGNORED and late.counters == Counters(5, 5, 0, 0, 0)
    again = await engine.apply_sale(PlatformSale("woocommerce", "9", "1", "d1", 2))
    assert again.outcome is OrderOutcome.IGNORED


async def test_cancel_before_webhook_restocks_a_checkout_confirmed_hold(engine: StockEngine) -> None:
    await live_drop(engine, total=5, limit=2)
    a = await engine.reserve("d1", "c1", 2, "r1")
    await engine.confirm(a.hold_id or "", "555")
    cancel = await engine.apply_cancel(PlatformCancel("shopify", "555", "1", "d1"))
    assert (cancel.outcome, cancel.restocked) == (CancelOutcome.RESTOCKED, 2)
    assert cancel.counters == Counters(5, 5, 0, 0, 0)
    assert (await engine.reserve("d1", "c1", 2, "r2")).ok  # the customer's limit is free again


async def test_cancel_of_a_hold_sale_frees_the_customer_limit(engine: StockEngine) -> None:
    await live_drop(engine, total=5, limit=1)
    a = await engine.reserve("d1", "c1", 1, "r1")
    await engine.apply_sale(PlatformSale("meta", "m1", "1", "d1", 1, hold_ref=a.hold_ref))
    assert (await engine.reserve("d1", "c1", 1, "r2")).reason is RejectReason.LIMIT_EXCEEDED
    await engine.apply_cancel(PlatformCancel("meta", "m1", "1", "d1"))
    assert (await engine.reserve("d1", "c1", 1, "r3")).ok


async def test_erasure_replaces_the_customer_everywhere_and_keeps_counters(engine: StockEngine, redis: Redis) -> None:
    await live_drop(engine, total=2, limit=2)
    await live_drop(engine, total=1, drop_id="d2")
    a = await engine.reserve("d1", "alice-7", 1, "r1")
    await engine.confirm(a.hold_id or "", "o1")
    await engine.reserve("d1", "bob-3", 1, "r2")
    await engine.reserve("d2", "bob-3", 1, "r3")
    await engine.join_waitlist("d2", "alice-7")
    await engine.apply_sale(PlatformSale("shopify", "o1", "1", "d1", 1))
    before = {d: await engine.counters(d) for d in ("d1", "d2")}
    ledger_ids = [e.entry_id for e in await engine.ledger("d1")]
    places = await engine.erase_customer("alice-7")
    assert places >= 5
    assert {d: await engine.counters(d) for d in ("d1", "d2")} == before
    assert [e.entry_id for e in await engine.ledger("d1")][: len(ledger_ids)] == ledger_ids
    for key in await redis.keys("*"):
        kind = await redis.type(key)
        if kind == b"hash":
            dump = repr(await redis.hgetall(key))
        elif kind == b"zset":
            dump = repr(await redis.zrange(key, 0, -1))
        elif kind == b"stream":
            dump = repr(await redis.xrange(key))
        else:
            dump = repr(await redis.dump(key))
        assert "alice-7" not in dump, key
    assert "bob-3" in repr(await redis.xrange("ld:{drop:d1}:ledger"))
    # The erased customer's tombstone still counts toward the limit and keeps its waitlist place.
    assert (await engine.waitlist("d2"))[0][0].startswith("erased-")
    assert await engine.erase_customer("alice-7") == 0


async def test_ledger_pages_and_replays(engine: StockEngine) -> None:
    await live_drop(engine, total=50)
    for i in range(30):
        await engine.reserve("d1", f"c{i}", 1, f"r{i}")
    page = await engine.ledger("d1", count=10)
    rest = await engine.ledger("d1", after=page[-1].entry_id, count=100)
    assert len(page) + len(rest) == 32
    assert [e.op for e in rest][-1] == "reserve" and rest[-1].fields["cust"] == "c29"
