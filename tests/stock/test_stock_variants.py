"""Drops with variants (issue 16, the engine's part): each variant its own SKU, stock, holds,
waitlist and ledger under the drop's hash tag; the per-customer limit across variants or per
variant; the invariants per variant and per drop."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stock import (
    DropConfig,
    DropConflict,
    InvalidArgument,
    PlatformCancel,
    PlatformSale,
    RejectReason,
    ReserveBatcher,
    StockEngine,
    UnknownDrop,
)
from stock.types import Counters, HoldState, ReserveRequest, ReserveResult, VariantConfig, WaitlistOutcome
from tests.support.invariants import assert_drop_invariants, assert_variant_drop_invariants
from tests.support.util import RedisServerFactory, scaled

SIZES = (VariantConfig("S", "TEE-S", 2), VariantConfig("M", "TEE-M", 3), VariantConfig("L", "TEE-L", 0))


@pytest.fixture
def engine(redis: Redis) -> StockEngine:
    return StockEngine(redis)


async def tee(engine: StockEngine, limit: int = 0, per_variant: bool = False, hold_seconds: float = 60) -> None:
    await engine.define(DropConfig("tee", "s1", 0, limit, hold_seconds, SIZES, per_variant))
    await engine.open("tee")


async def test_each_variant_has_its_stock_and_the_drop_is_their_sum(engine: StockEngine) -> None:
    await tee(engine)
    assert [(v.variant, v.sku, v.counters.total) for v in await engine.variants("tee")] == [
        ("S", "TEE-S", 2),
        ("M", "TEE-M", 3),
        ("L", "TEE-L", 0),
    ]
    a = await engine.reserve("tee", "c1", 2, "r1", variant="S")
    assert a.ok and a.hold_id == "tee~S.1" and a.counters == Counters(2, 0, 2, 0, 0)
    assert (await engine.reserve("tee", "c2", 1, "r2", variant="S")).reason is RejectReason.SOLD_OUT
    assert (await engine.reserve("tee", "c2", 1, "r3", variant="M")).ok
    assert (await engine.reserve("tee", "c2", 1, "r4", variant="L")).reason is RejectReason.SOLD_OUT
    assert await engine.counters("tee") == Counters(5, 2, 3, 0, 0)
    snap = await engine.snapshot("tee")
    assert snap.counters == Counters(5, 2, 3, 0, 0) and snap.holds_created == 2
    assert snap.rejected["sold_out"] == 2
    each = await assert_variant_drop_invariants(engine, "tee")
    assert each["S"] == Counters(2, 0, 2, 0, 0)
    assert await engine.drop_ids() == ["tee"]  # a variant is not a drop of its own


async def test_a_request_on_a_drop_with_variants_must_name_one(engine: StockEngine, redis: Redis) -> None:
    await tee(engine)
    before = await redis.dbsize()
    assert (await engine.reserve("tee", "c1", 1, "r1")).reason is RejectReason.INVALID
    with pytest.raises(UnknownDrop):
        await engine.reserve("tee", "c1", 1, "r2", variant="XL")
    with pytest.raises(InvalidArgument):
        await engine.reserve("tee", "c1", 1, "r3", variant="no|pipes")
    with pytest.raises(InvalidArgument):
        await engine.reserve("tee", "c1", 1, "r4", variant="9")  # a variant starts with a letter
    assert await redis.dbsize() == before + 1  # the rejection's record, nothing else
    assert await engine.counters("tee") == Counters(5, 5, 0, 0, 0)


async def test_bad_variant_definitions_write_nothing(engine: StockEngine, redis: Redis) -> None:
    bad = [
        DropConfig("v", "s", 0, variants=(VariantConfig("S", "X", 1), VariantConfig("S", "Y", 1))),
        DropConfig("v", "s", 0, variants=(VariantConfig("S", "X", 1), VariantConfig("M", "X", 1))),
        DropConfig("v", "s", 5, variants=(VariantConfig("S", "X", 1),)),
        DropConfig("v", "s", 0, variants=(VariantConfig("", "X", 1),)),
        DropConfig("v", "s", 0, variants=(VariantConfig("S", "a b", 1),)),
        DropConfig("v", "s", 0, variants=(VariantConfig("S", "X", -1),)),
        DropConfig("v", "s", 0, variants=(VariantConfig("S", "X", 1, per_customer_limit=-1),)),
    ]
    for config in bad:
        with pytest.raises(InvalidArgument):
            await engine.define(config)
    assert await redis.dbsize() == 0


async def test_define_is_idempotent_and_conflicts_on_other_variants(engine: StockEngine) -> None:
    config = DropConfig("tee", "s1", 5, 0, 60, SIZES)
    first = await engine.define(config)
    assert first == Counters(5, 5, 0, 0, 0) == await engine.define(config)
    with pytest.raises(DropConflict):
        await engine.define(DropConfig("tee", "s1", 0, 0, 60, (*SIZES[:2], VariantConfig("L", "TEE-L", 9))))
    with pytest.raises(DropConflict):
        await engine.define(DropConfig("tee", "s1", 0, 0, 60, SIZES[:2]))


async def test_variants_on_an_existing_single_sku_drop_are_a_conflict_that_writes_nothing(
    engine: StockEngine, redis: Redis
) -> None:
    await engine.define(DropConfig("one", "s1", 5))
    keys_before = sorted(await redis.keys("*"))
    with pytest.raises(DropConflict):
        await engine.define(DropConfig("one", "s1", 5, variants=SIZES))
    assert sorted(await redis.keys("*")) == keys_before
    assert await engine.variant_names("one") == []


async def test_the_limit_counts_across_variants(engine: StockEngine) -> None:
    await tee(engine, limit=2)
    assert (await engine.reserve("tee", "c1", 1, "r1", variant="S")).ok
    assert (await engine.reserve("tee", "c1", 1, "r2", variant="M")).ok
    assert (await engine.reserve("tee", "c1", 1, "r3", variant="M")).reason is RejectReason.LIMIT_EXCEEDED
    assert (await engine.join_waitlist("tee", "c1", 1, "S")).outcome is WaitlistOutcome.LIMIT_EXCEEDED
    await engine.release("tee~S.1")
    assert (await engine.reserve("tee", "c1", 1, "r4", variant="M")).ok
    await assert_variant_drop_invariants(engine, "tee")


async def test_the_limit_can_count_per_variant(engine: StockEngine) -> None:
    await tee(engine, limit=2, per_variant=True)
    assert (await engine.reserve("tee", "c1", 2, "r1", variant="S")).ok
    assert (await engine.reserve("tee", "c1", 2, "r2", variant="M")).ok
    assert (await engine.reserve("tee", "c1", 1, "r3", variant="M")).reason is RejectReason.LIMIT_EXCEEDED
    await assert_variant_drop_invariants(engine, "tee")


async def test_waitlists_are_per_variant(engine: StockEngine) -> None:
    await tee(engine)
    s = await engine.reserve("tee", "c1", 2, "r1", variant="S")
    m = await engine.reserve("tee", "c2", 3, "r2", variant="M")
    assert (await engine.join_waitlist("tee", "w1", 1, "S")).outcome is WaitlistOutcome.WAITLISTED
    await engine.release(m.hold_id or "")  # M's units come back: nothing for S's waitlist
    assert await engine.waitlist("tee", "S") == [("w1", 1)]
    assert await engine.counters("tee", "M") == Counters(3, 3, 0, 0, 0)
    await engine.release(s.hold_id or "")
    assert await engine.waitlist("tee", "S") == []
    handed = [h for h in await engine.holds("tee", "S") if h.customer == "w1"]
    assert [(h.hold_id, h.qty) for h in handed] == [("tee~S.2", 1)]
    entry = [e for e in await engine.ledger("tee", variant="S") if e.op == "handout"][-1]
    ref = engine.hold_ref("tee", entry.fields["hold"], entry.fields["nonce"])
    assert (await engine.confirm_ref(ref, "o9")).qty == 1
    await assert_variant_drop_invariants(engine, "tee")


async def test_references_of_variant_holds_work_and_name_their_variant(engine: StockEngine) -> None:
    await tee(engine)
    s = await engine.reserve("tee", "c1", 1, "r1", variant="S")
    assert s.hold_ref.startswith("tee~S.1.")
    ref = engine.verify_ref(s.hold_ref)
    assert (ref.drop_id, ref.hold_id) == ("tee", "tee~S.1")
    # An order line of M cannot be paid by a hold of S (other stock): it takes from M.
    sale = await engine.apply_sale(PlatformSale("shopify", "o1", "1", "tee", 1, s.hold_ref, variant="M"))
    assert (sale.hold_id, sale.hold_issue, sale.sold) == (None, "hold_other_drop", 1)
    assert await engine.counters("tee", "M") == Counters(3, 2, 0, 1, 0)
    paid = await engine.apply_sale(PlatformSale("shopify", "o2", "1", "tee", 1, s.hold_ref, variant="S"))
    assert paid.hold_id == "tee~S.1" and paid.counters == Counters(2, 1, 0, 1, 0)
    cancel = await engine.apply_cancel(PlatformCancel("shopify", "o2", "1", "tee", variant="S"))
    assert cancel.restocked == 1 and cancel.counters == Counters(2, 2, 0, 0, 0)
    await assert_variant_drop_invariants(engine, "tee")


async def test_state_clock_and_sweep_cover_every_variant(engine: StockEngine) -> None:
    await tee(engine, hold_seconds=1)
    await engine.reserve("tee", "c1", 1, "r1", variant="S")
    await engine.reserve("tee", "c1", 1, "r2", variant="M")
    await engine.fast_forward("tee", 2)
    swept = await engine.sweep("tee")
    assert swept.expired == 2 and swept.counters == Counters(5, 5, 0, 0, 0)
    closed = await engine.close("tee")
    assert closed.changed and closed.counters == Counters(5, 5, 0, 0, 0)
    assert (await engine.reserve("tee", "c1", 1, "r3", variant="M")).reason is RejectReason.NOT_LIVE
    assert (await engine.snapshot("tee", "M")).state == "closed"
    await engine.open("tee")
    assert (await engine.reserve("tee", "c1", 1, "r4", variant="M")).ok
    await assert_variant_drop_invariants(engine, "tee")


async def test_the_batcher_serves_each_variant_in_order(engine: StockEngine) -> None:
    await tee(engine)
    batcher = ReserveBatcher(engine)
    answers = await asyncio.gather(
        *(batcher.reserve("tee", f"c{i}", 1, f"r{i}", "S" if i % 2 else "M") for i in range(12))
    )
    await batcher.aclose()
    granted = [i for i, a in enumerate(answers) if a.ok]
    assert granted == [0, 1, 2, 3, 4], "FIFO within each variant: S gets 1, 3; M gets 0, 2, 4"
    assert {a.hold_id for a in answers if a.ok} == {"tee~S.1", "tee~S.2", "tee~M.1", "tee~M.2", "tee~M.3"}
    await assert_variant_drop_invariants(engine, "tee")


async def test_batches_of_a_variant_are_packed_in_its_ledger(engine: StockEngine) -> None:
    await tee(engine)
    requests = [ReserveRequest(f"r{i}", f"c{i}", 1) for i in range(3)]
    await engine.reserve_many("tee", requests, variant="M")
    entries = [e for e in await engine.ledger("tee", variant="M") if e.op == "reserve"]
    assert [e.fields["hold"] for e in entries] == ["tee~M.1", "tee~M.2", "tee~M.3"]
    await assert_drop_invariants(engine, "tee", "M")


async def test_erasure_reaches_every_variant(engine: StockEngine, redis: Redis) -> None:
    await tee(engine, limit=3, per_variant=True)
    await engine.reserve_many("tee", [ReserveRequest("r1", "alice-7", 1), ReserveRequest("r2", "bob", 1)], "S")
    await engine.reserve("tee", "alice-7", 1, "r3", variant="M")
    await engine.reserve("tee", "alice-7", 2, "r4", variant="M")
    await engine.join_waitlist("tee", "alice-7", 1, "L")
    before = await engine.counters("tee")
    assert await engine.erase_customer("alice-7") >= 6
    assert await engine.counters("tee") == before
    for key in await redis.keys("*"):
        kind = await redis.type(key)
        if kind == b"hash":
            dump = repr(await redis.hgetall(key))
        elif kind == b"zset":
            dump = repr(await redis.zrange(key, 0, -1))
        else:
            dump = repr(await redis.xrange(key))
        assert "alice-7" not in dump, key
    await assert_variant_drop_invariants(engine, "tee")


async def test_a_single_sku_drop_is_unchanged(engine: StockEngine, redis: Redis) -> None:
    await engine.define(DropConfig("one", "s1", 2))
    await engine.open("one")
    assert await engine.variant_names("one") == []
    assert await engine.variants("one") == []
    assert (await engine.reserve("one", "c1", 1, "r1")).hold_id == "one.1"
    with pytest.raises(UnknownDrop):
        await engine.reserve("one", "c1", 1, "r2", variant="S")
    assert sorted(k.decode() if isinstance(k, bytes) else k for k in await redis.keys("*")) == sorted(
        f"ld:{{drop:one}}:{name}" for name in ("meta", "holds", "expiry", "requests", "customers", "ledger")
    )
    assert await engine.drop_ids() == ["one"]


@pytest.mark.slow
async def test_kill_9_mid_burst_on_variants_loses_no_acknowledged_hold(fresh_redis_server: RedisServerFactory) -> None:
    server = fresh_redis_server(appendfsync="always")
    redis = Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=1)
    engine = StockEngine(redis)
    batcher = ReserveBatcher(engine, max_batch=16)
    sizes = (VariantConfig("S", "X-S", 50_000), VariantConfig("M", "X-M", 50_000))
    await engine.define(DropConfig("crash", "show", 0, 0, 600, sizes))
    await engine.open("crash")
    acknowledged: list[ReserveResult] = []

    async def buyer(i: int) -> None:
        try:
            acknowledged.append(await batcher.reserve("crash", f"c{i}", 1, f"r{i}", "S" if i % 2 else "M"))
        except (RedisConnectionError, RedisTimeoutError, OSError):
            pass  # not acknowledged: the client would retry with r{i}

    tasks = [asyncio.create_task(buyer(i)) for i in range(4000)]
    while len(acknowledged) < 300:
        await asyncio.sleep(0.001)
    server.kill()
    await asyncio.gather(*tasks)
    server.restart()
    async with asyncio.timeout(scaled(20)):
        while True:
            try:
                await engine.counters("crash")
                break
            except RedisError:
                await asyncio.sleep(0.1)
    held = {h.hold_id for name in ("S", "M") for h in await engine.holds("crash", name) if h.state is HoldState.HELD}
    assert {a.hold_id for a in acknowledged} <= held
    each = await assert_variant_drop_invariants(engine, "crash")
    assert sum(c.held for c in each.values()) == len(held)
    await batcher.aclose()
    await redis.aclose()
