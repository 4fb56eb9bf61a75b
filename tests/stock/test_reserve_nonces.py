"""Hold nonces drawn by the engine (issue 17): each reservation brings the 128 random bits its hold's
reference will carry, so Redis hashes nothing per hold. A retry gets the stored hold's nonce back,
never the one it came with; a restart from the AOF keeps every nonce; a caller that brings none, or
one that is not 32 hex digits, gets no hold."""

from __future__ import annotations

import re

import pytest
from redis.asyncio import Redis

from stock import DropConfig, HoldRefs, StockEngine
from stock.keys import REJECT_TTL_SECONDS, drop_keys
from stock.scripts import source
from stock.types import HoldState, RejectReason, ReserveRequest
from tests.support.invariants import assert_drop_invariants
from tests.support.util import RedisServerFactory

_HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def engine(redis: Redis) -> StockEngine:
    return StockEngine(redis, HoldRefs(b"nonce-test-secret"))


async def live_drop(engine: StockEngine, total: int = 100) -> None:
    await engine.define(DropConfig("d1", "s1", total, 0, 60))
    await engine.open("d1")


async def test_every_hold_stores_its_own_nonce_and_a_retry_gets_that_one_back(engine: StockEngine) -> None:
    await live_drop(engine)
    first = await engine.reserve_many("d1", [ReserveRequest(f"r{i}", f"c{i}", 1) for i in range(40)])
    nonces = [(await engine.hold(a.hold_id or "")).nonce for a in first]
    assert all(_HEX32.fullmatch(n) for n in nonces)
    assert len(set(nonces)) == 40
    for answer, nonce in zip(first, nonces, strict=True):
        assert answer.hold_ref == engine.hold_ref("d1", answer.hold_id or "", nonce)
        assert engine.verify_ref(answer.hold_ref).nonce == nonce
    # A retry, in a later call (the engine draws new nonces for it) and twice in one batch.
    again = await engine.reserve_many("d1", [ReserveRequest("r3", "c3", 1), ReserveRequest("r3", "c3", 1)])
    assert [(a.hold_id, a.hold_ref, a.duplicate) for a in again] == [(first[3].hold_id, first[3].hold_ref, True)] * 2
    assert (await engine.hold(first[3].hold_id or "")).nonce == nonces[3]
    assert (await engine.counters("d1")).held == 40
    # The reference the first answer carried is the one that confirms the hold.
    confirmed = await engine.confirm_ref(first[3].hold_ref, "order-3")
    assert (confirmed.hold_id, confirmed.order_ref) == (first[3].hold_id, "order-3")
    assert (await engine.hold(first[3].hold_id or "")).state is HoldState.CONFIRMED
    await assert_drop_invariants(engine, "d1")


async def test_a_request_in_one_batch_repeated_answers_its_first_answer(engine: StockEngine) -> None:
    await live_drop(engine, total=1)
    answers = await engine.reserve_many(
        "d1", [ReserveRequest("r1", "c1", 1), ReserveRequest("r2", "c2", 1), ReserveRequest("r1", "c1", 1)]
    )
    assert [a.reason for a in answers] == [None, RejectReason.SOLD_OUT, None]
    assert [a.duplicate for a in answers] == [False, False, True]
    assert answers[2].hold_ref == answers[0].hold_ref != ""
    again = await engine.reserve_many("d1", [ReserveRequest("r2", "c2", 1)])
    assert again[0].reason is RejectReason.SOLD_OUT and again[0].duplicate and again[0].hold_ref == ""


async def test_the_hold_gets_the_nonce_its_request_brought(engine: StockEngine, redis: Redis) -> None:
    await live_drop(engine)
    nonce = "0123456789abcdef" * 2
    args: list[str | int] = [2, REJECT_TTL_SECONDS * 1000, "r1", "c1", 1, nonce, "r1", "c1", 1, "f" * 32]
    status, _, answers = await redis.eval(source("reserve"), 12, *drop_keys("d1"), *args)
    assert status == b"ok"
    assert answers[0] == b"reserved" and answers[5] == nonce.encode()
    assert answers[6] == b"reserved" and answers[10] == 1 and answers[11] == nonce.encode()  # the first one's
    assert (await engine.hold(answers[1].decode())).nonce == nonce


@pytest.mark.parametrize(
    ("nonce", "why"),
    [
        (None, "a caller that sends triples, as before nonces came with the request"),
        ("abc", "too short"),
        ("0" * 31 + "00", "too long"),
    ],
)
async def test_a_request_without_a_proper_nonce_gets_no_hold(
    engine: StockEngine, redis: Redis, nonce: str | None, why: str
) -> None:
    await live_drop(engine)
    before = await engine.counters("d1")
    args: list[str | int] = [1, REJECT_TTL_SECONDS * 1000, "r1", "c1", 1]
    if nonce is not None:
        args.append(nonce)
    status, _, answers = await redis.eval(source("reserve"), 12, *drop_keys("d1"), *args)
    assert status == b"ok", why
    assert answers[0] == b"invalid" and answers[1] == b"" and answers[5] == b"", why
    assert await engine.counters("d1") == before
    assert await engine.holds("d1") == []
    await assert_drop_invariants(engine, "d1")


async def test_nonces_survive_a_crash_because_the_aof_holds_the_records(
    fresh_redis_server: RedisServerFactory,
) -> None:
    """Only the script's effects reach the AOF (the hold record, nonce included): replaying it
    after a kill -9 restores the same nonces, never draws new ones."""
    server = fresh_redis_server(appendfsync="always")
    redis = Redis.from_url(server.url)
    engine = StockEngine(redis, HoldRefs(b"nonce-test-secret"))
    await live_drop(engine)
    answers = await engine.reserve_many("d1", [ReserveRequest(f"r{i}", f"c{i}", 1) for i in range(5)])
    server.kill()
    server.restart()
    await redis.aclose()
    redis = Redis.from_url(server.url)
    engine = StockEngine(redis, HoldRefs(b"nonce-test-secret"))
    retried = await engine.reserve_many("d1", [ReserveRequest(f"r{i}", f"c{i}", 1) for i in range(5)])
    assert [a.hold_ref for a in retried] == [a.hold_ref for a in answers]
    assert all(a.duplicate for a in retried)
    assert (await engine.confirm_ref(answers[0].hold_ref, "o1")).hold_id == answers[0].hold_id
    assert (await engine.hold(answers[0].hold_id or "")).state is HoldState.CONFIRMED
    await assert_drop_invariants(engine, "d1")
    await redis.aclose()
