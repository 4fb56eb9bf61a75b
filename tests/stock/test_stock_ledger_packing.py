"""The packed ledger entry of a reserve batch (issue 17): one stream entry per script call, read
back as one ``reserve`` entry per hold with ids of their own, paged, replayed and erased like any
other entry."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from stock import DropConfig, StockEngine
from stock.keys import drop_keys
from stock.ledger import PACKED_OP, decode_entries, decode_entry, entry_key, replay
from stock.types import ReserveRequest
from tests.support.invariants import assert_drop_invariants


@pytest.fixture
def engine(redis: Redis) -> StockEngine:
    return StockEngine(redis)


async def live_drop(engine: StockEngine, total: int = 100, limit: int = 0) -> None:
    await engine.define(DropConfig("d1", "s1", total, limit, 60))
    await engine.open("d1")


def batch(n: int, start: int = 0, qty: int = 1) -> list[ReserveRequest]:
    return [ReserveRequest(f"r{i}", f"c{i}", qty) for i in range(start, start + n)]


async def test_a_batch_is_one_stream_entry_read_as_one_entry_per_hold(engine: StockEngine, redis: Redis) -> None:
    await live_drop(engine)
    before = await redis.xlen(drop_keys("d1").ledger)
    answers = await engine.reserve_many("d1", batch(5, qty=2))
    assert await redis.xlen(drop_keys("d1").ledger) == before + 1
    entries = (await engine.ledger("d1"))[before:]
    assert [e.op for e in entries] == ["reserve"] * 5
    assert [e.fields["hold"] for e in entries] == [a.hold_id for a in answers]
    assert [e.fields["cust"] for e in entries] == [f"c{i}" for i in range(5)]
    assert [e.fields["req"] for e in entries] == [f"r{i}" for i in range(5)]
    assert {e.fields["exp"] for e in entries} == {str(a.expires_at_ms) for a in answers}
    assert [e.after.available for e in entries] == [98, 96, 94, 92, 90]
    ids = [entry_key(e.entry_id) for e in entries]
    assert ids == sorted(set(ids)), "each reservation has an id of its own, in order"
    assert replay(await engine.ledger("d1")) == await assert_drop_invariants(engine, "d1")


async def test_the_raw_packed_entry_is_the_batch_as_a_whole(engine: StockEngine, redis: Redis) -> None:
    # What a node's tail reads (server/live.py): counters after the batch, deltas summed.
    await live_drop(engine)
    await engine.reserve_many("d1", batch(3))
    raw: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(drop_keys("d1").ledger)  # type: ignore[assignment]
    whole = [decode_entry(i, f) for i, f in raw]
    assert whole[-1].op == PACKED_OP and whole[-1].d_held == 3
    assert replay(whole) == await engine.counters("d1")
    last_id, last_fields = raw[-1]
    assert decode_entries(last_id, last_fields)[-1].entry_id == last_id.decode()


async def test_pages_that_end_inside_a_packed_entry_miss_nothing(engine: StockEngine) -> None:
    await live_drop(engine)
    await engine.reserve_many("d1", batch(7))
    await engine.reserve("d1", "solo", 1, "solo")
    await engine.reserve_many("d1", batch(6, start=10))
    everything = await engine.ledger("d1")
    for size in (1, 2, 3, 5, 8):
        paged, after = [], "-"
        while True:
            page = await engine.ledger("d1", after=after, count=size)
            paged += page
            if len(page) < size:
                break
            after = page[-1].entry_id
        assert paged == everything, size
    assert [e.fields.get("cust") for e in everything[-14:]] == [
        *(f"c{i}" for i in range(7)),
        "solo",
        *(f"c{i}" for i in range(10, 16)),
    ]
    assert replay(everything) == await engine.counters("d1")


async def test_writes_of_the_same_call_keep_their_order(engine: StockEngine) -> None:
    # A hold expires and goes to the waitlist inside the reserve call that then packs its batch:
    # the ledger must list the expiry, the hand-out, then the reservations.
    await engine.define(DropConfig("d1", "s1", 3, 0, 1))
    await engine.open("d1")
    first = await engine.reserve_many("d1", batch(3))
    assert all(a.ok for a in first)
    await engine.join_waitlist("d1", "waiter", 1)
    await engine.fast_forward("d1", 2)
    answers = await engine.reserve_many("d1", batch(3, start=10))
    assert [a.ok for a in answers] == [True, True, False]
    ops = [e.op for e in await engine.ledger("d1")]
    assert ops[-8:] == ["wait_join", "fast_forward", "expire", "expire", "expire", "handout", "reserve", "reserve"]
    await assert_drop_invariants(engine, "d1")


async def test_limits_count_every_hold_of_one_batch(engine: StockEngine, redis: Redis) -> None:
    await live_drop(engine, limit=3)
    requests = [ReserveRequest(f"r{i}", "same", 1) for i in range(5)] + [ReserveRequest("r9", "other", 2)]
    answers = await engine.reserve_many("d1", requests)
    assert [a.ok for a in answers] == [True, True, True, False, False, True]
    assert await redis.hget(drop_keys("d1").customers, "same") == b"3"
    await engine.release(answers[0].hold_id or "")
    assert await redis.hget(drop_keys("d1").customers, "same") == b"2"
    await assert_drop_invariants(engine, "d1")


async def test_erasure_reaches_customers_inside_packed_entries(engine: StockEngine, redis: Redis) -> None:
    await live_drop(engine)
    await engine.reserve_many("d1", [ReserveRequest("r1", "alice-7", 1), ReserveRequest("r2", "bob-3", 1)])
    ids = [e.entry_id for e in await engine.ledger("d1")]
    assert await engine.erase_customer("alice-7", ["d1"]) >= 3  # hold, customer tally, ledger
    assert "alice-7" not in repr(await redis.xrange(drop_keys("d1").ledger))
    entries = await engine.ledger("d1")
    assert [e.entry_id for e in entries][: len(ids)] == ids
    custs = [e.fields.get("cust", "") for e in entries if e.op == "reserve"]
    assert custs[0].startswith("erased-") and custs[1] == "bob-3"
    await assert_drop_invariants(engine, "d1")


async def test_a_stream_whose_tail_was_deleted_gets_one_entry_per_hold(engine: StockEngine, redis: Redis) -> None:
    # Someone deleted the ledger's last entry by hand, after it had been added under an id ahead of
    # the clock: the stream's top id is above its last entry, so the packed entry's id would be
    # refused. The script writes one plain entry per hold instead, and nothing is half-applied.
    await live_drop(engine)
    key = drop_keys("d1").ledger
    ahead = await redis.xadd(key, {"op": "noise"}, id=f"{2**42}-0")
    await redis.xdel(key, ahead)
    answers = await engine.reserve_many("d1", batch(4))
    assert all(a.ok for a in answers)
    entries = await engine.ledger("d1")
    assert [e.op for e in entries[-4:]] == ["reserve"] * 4
    assert [e.fields["hold"] for e in entries[-4:]] == [a.hold_id for a in answers]
    assert [e.after.available for e in entries[-4:]] == [99, 98, 97, 96]
    assert await redis.xlen(key) == len(entries)
    await assert_drop_invariants(engine, "d1")
