"""Concurrency on real Redis: bursts from many connections, one greedy customer, batching,
a Redis killed mid-burst, and the same burst on a 3-master Redis Cluster."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.ops.local_redis import LocalCluster, LocalRedis
from stock import DropConfig, RejectReason, ReserveBatcher, ReserveResult, StockEngine
from stock.types import Counters, HoldState
from tests.support.invariants import assert_drop_invariants
from tests.support.util import RedisServerFactory, scaled


async def jittered(engine: StockEngine | ReserveBatcher, drop: str, customer: str, request_id: str) -> ReserveResult:
    await asyncio.sleep(random.random() / 100)
    return await engine.reserve(drop, customer, 1, request_id)


@pytest.fixture
async def clients(redis_server: LocalRedis, redis: Redis) -> AsyncIterator[list[StockEngine]]:
    """Four engines, each on its own client and connection pool: several connections race."""
    pools = [BlockingConnectionPool.from_url(redis_server.url, max_connections=100, timeout=30) for _ in range(4)]
    redises = [Redis(connection_pool=pool) for pool in pools]
    yield [StockEngine(r) for r in redises]
    for r, pool in zip(redises, pools, strict=True):
        await r.aclose()
        await pool.aclose()


async def test_2000_concurrent_reserves_on_100_units(redis: Redis, clients: list[StockEngine]) -> None:
    engine = StockEngine(redis)
    await engine.define(DropConfig("burst", "show", 100))
    await engine.open("burst")
    results = await asyncio.gather(*(jittered(clients[i % 4], "burst", f"c{i}", f"r{i}") for i in range(2000)))
    granted = [r for r in results if r.ok]
    assert len(granted) == 100
    assert {r.reason for r in results if not r.ok} == {RejectReason.SOLD_OUT}
    assert len({r.hold_id for r in granted}) == 100
    assert await assert_drop_invariants(engine, "burst") == Counters(100, 0, 100, 0, 0)


async def test_one_customer_firing_50_concurrent_reserves_with_limit_2(
    redis: Redis, clients: list[StockEngine]
) -> None:
    engine = StockEngine(redis)
    await engine.define(DropConfig("greedy", "show", 100, per_customer_limit=2))
    await engine.open("greedy")
    results = await asyncio.gather(*(jittered(clients[i % 4], "greedy", "bot", f"r{i}") for i in range(50)))
    assert sum(r.ok for r in results) == 2
    assert {r.reason for r in results if not r.ok} == {RejectReason.LIMIT_EXCEEDED}
    await assert_drop_invariants(engine, "greedy")


async def test_batched_burst_keeps_fifo_and_exact_count(redis: Redis) -> None:
    engine = StockEngine(redis)
    batcher = ReserveBatcher(engine)
    await engine.define(DropConfig("fifo", "show", 500))
    await engine.open("fifo")
    # Submitted in this order, no jitter: the first 500 submitted get the units.
    results = await asyncio.gather(*(batcher.reserve("fifo", f"c{i}", 1, f"r{i}") for i in range(3000)))
    assert [r.ok for r in results] == [True] * 500 + [False] * 2500
    assert batcher.calls < 100, "concurrent requests should share script calls"
    holds = await engine.holds("fifo")
    assert [h.request_id for h in holds] == [f"r{i}" for i in range(500)]
    await assert_drop_invariants(engine, "fifo")
    # Retries through the batcher are answered from the record, not reserved again.
    again = await asyncio.gather(*(batcher.reserve("fifo", f"c{i}", 1, f"r{i}") for i in range(600)))
    assert all(r.duplicate for r in again) and [r.hold_id for r in again] == [r.hold_id for r in results[:600]]
    await batcher.aclose()


async def test_batcher_reports_errors_to_every_waiter_and_recovers(redis: Redis) -> None:
    engine = StockEngine(redis)
    batcher = ReserveBatcher(engine)
    with pytest.raises(Exception) as info:
        await asyncio.gather(*(batcher.reserve("missing", f"c{i}", 1, f"r{i}") for i in range(10)))
    assert type(info.value).__name__ == "UnknownDrop"
    await engine.define(DropConfig("missing", "show", 1))
    await engine.open("missing")
    assert (await batcher.reserve("missing", "c1", 1, "r1")).ok


async def test_kill_9_mid_burst_loses_no_acknowledged_reservation(fresh_redis_server: RedisServerFactory) -> None:
    server = fresh_redis_server(appendfsync="always")
    redis = Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=1)
    engine = StockEngine(redis)
    batcher = ReserveBatcher(engine, max_batch=16)
    await engine.define(DropConfig("crash", "show", 100_000))
    await engine.open("crash")
    acknowledged: list[ReserveResult] = []

    async def buyer(i: int) -> None:
        try:
            acknowledged.append(await batcher.reserve("crash", f"c{i}", 1, f"r{i}"))
        except (RedisConnectionError, RedisTimeoutError, OSError):
            pass  # not acknowledged: the client does not know, and would retry with r{i}

    tasks = [asyncio.create_task(buyer(i)) for i in range(5000)]
    while len(acknowledged) < 300:
        await asyncio.sleep(0.001)
    server.kill()
    await asyncio.gather(*tasks)
    assert 300 <= len(acknowledged) < 5000
    server.restart()

    # The engine reconnects by itself (redis-py reconnects; EVALSHA reloads scripts on NOSCRIPT).
    async with asyncio.timeout(scaled(20)):
        while True:
            try:
                counters = await engine.counters("crash")
                break
            except RedisError:
                await asyncio.sleep(0.1)
    held = {h.hold_id: h for h in await engine.holds("crash") if h.state is HoldState.HELD}
    for answer in acknowledged:
        assert answer.hold_id in held, answer
    assert counters.held == len(held) >= len(acknowledged)
    await assert_drop_invariants(engine, "crash")
    # Batches are packed into one ledger entry each: every acknowledged hold is in the ledger
    # (expanded, one entry per hold) once, and so is every hold that survived.
    in_ledger = [e.fields["hold"] async for e in engine.iter_ledger("crash") if e.op == "reserve"]
    assert sorted(in_ledger) == sorted(held)
    assert {a.hold_id for a in acknowledged} <= set(in_ledger)
    # Retrying every request now gives each acknowledged one its first answer.
    retried = await asyncio.gather(*(batcher.reserve("crash", f"c{i}", 1, f"r{i}") for i in range(5000)))
    first = {a.request_id: (a.hold_id, a.hold_ref) for a in acknowledged}
    for answer in retried:
        if answer.request_id in first:
            # The same hold, and its reference carries the nonce stored with it, not the retry's.
            assert answer.duplicate and (answer.hold_id, answer.hold_ref) == first[answer.request_id]
    await batcher.aclose()
    await redis.aclose()


async def test_burst_on_a_redis_cluster(cluster_redis: RedisCluster, redis_cluster: LocalCluster) -> None:
    # redis-py's cluster pool raises MaxConnectionsError past 100 connections per node at once
    # (DESIGN §9): half of this burst goes one EVALSHA per request, so size the pool for it.
    wide = RedisCluster.from_url(redis_cluster.url, max_connections=2000)
    engine = StockEngine(wide)
    drops = [f"cl{i}" for i in range(3)]  # different slots, so different masters
    for drop in drops:
        await engine.define(DropConfig(drop, "show", 50, per_customer_limit=1))
        await engine.open(drop)
    batcher = ReserveBatcher(engine)
    results = await asyncio.gather(
        *(jittered(engine if i % 2 else batcher, drops[i % 3], f"c{i}", f"r{i}") for i in range(1500))
    )
    for drop in drops:
        assert sum(r.ok for r, i in zip(results, range(1500), strict=True) if drops[i % 3] == drop) == 50
        assert await assert_drop_invariants(engine, drop) == Counters(50, 0, 50, 0, 0)
    nodes = {getattr(wide.get_node_from_key(f"ld:{{drop:{d}}}:meta"), "name", None) for d in drops}
    assert len(nodes) >= 2, "the test should span several masters"
    swept = await engine.sweep(drops[0])
    assert swept.counters.held == 50
    assert sorted(await engine.drop_ids()) == drops
    await batcher.aclose()
    await wide.aclose()
