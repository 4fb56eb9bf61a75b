"""Sweeping from a drop's first second, and what a timer close records: real Redis, real nodes.

Holds expire lazily inside reserve, so when nobody reserves on a drop only the sweepers free
its units. A drop launched between two full drop scans used to be swept only from the next
scan (LIVEDROP_DROP_SCAN_INTERVAL, 5 s by default), so its first holds came back late.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from redis.asyncio import Redis

from server.keys import LAUNCHED_KEY
from server.ops.local_redis import LocalRedis
from server.ops.metrics import Metrics
from server.shows.catalog import DropInfo
from server.shows.clock import redis_now_ms
from server.shows.sweeper import LAUNCH_MARGIN_MS, Sweeper
from stock import StockEngine
from stock.types import DropState, HoldState
from tests.server.shows.test_hub_nodes import make_host
from tests.support.servers import Node
from tests.support.util import scaled
from tests.support.webhooks import running_app, webhook_settings

NodeFactory = Callable[..., Node]


async def test_a_hold_on_a_just_launched_drop_expires_on_time_on_a_node_that_did_not_launch_it(
    nodes: NodeFactory, redis: Redis
) -> None:
    # The node lists drops once, at start-up, and not again for an hour: only a launch that
    # reaches every node's sweep can expire the hold below.
    node = nodes(env={"LIVEDROP_DROP_SCAN_INTERVAL": "3600"})
    host = await make_host(redis)  # the launch goes through another process, not the node
    await host.add_drop(DropInfo(drop_id="d2", show_id="s1", sku="SKU-2", title="Fresh", total=5, hold_seconds=0.2))
    await host.launch("d2")
    reserved = await host.engine.reserve("d2", "c1", 1, "r1")
    assert reserved.hold_id is not None
    async with asyncio.timeout(scaled(10)):
        while (await host.engine.hold(reserved.hold_id)).state is HoldState.HELD:
            await asyncio.sleep(0.02)
    assert (await host.engine.counters("d2")).available == 5
    assert node.proc is not None and node.proc.poll() is None


async def test_a_drop_closed_by_its_timer_records_when_it_closed(redis: Redis) -> None:
    engine = StockEngine(redis)
    await make_host(redis)
    change = await engine.open("d1", duration_seconds=60)
    await engine.fast_forward("d1", 61)
    assert (await engine.sweep("d1")).closed
    snapshot = await engine.snapshot("d1")
    assert snapshot.state is DropState.CLOSED and snapshot.end_reason == "time"
    # Sales stopped at the end time, whenever a sweeper noticed.
    assert snapshot.closed_at_ms == change.ends_at_ms > 0


async def test_the_reconciler_keeps_a_drop_closed_by_its_timer_in_its_window(
    redis_server: LocalRedis, redis: Redis
) -> None:
    settings = webhook_settings(reconcile_window_seconds=3600)
    async with running_app(redis_server.url, settings) as app:
        host = await make_host(redis)
        await host.launch("d1", duration_seconds=0.05)
        await app.state["engine"].fast_forward("d1", 1)
        assert (await app.state["engine"].sweep("d1")).closed
        reports = await app.state["reconciler"].reconcile_once(force=True)
        # Closed a moment ago: late platform webhooks are still reconciled against it.
        assert [r.show_id for r in reports] == ["s1"]


async def test_the_sweep_covers_launches_since_its_last_scan(redis: Redis) -> None:
    host = await make_host(redis)
    await host.add_drop(DropInfo(drop_id="old", show_id="s1", sku="SKU-O", title="Old", total=1))
    # A scan interval longer than any machine's uptime: the first sweep must scan all the same (it
    # did not on a machine up for less than the interval, as monotonic clocks start near boot).
    sweeper = Sweeper(host.engine, Metrics(), interval=3600, scan_interval=1e12)
    await sweeper.sweep_once()  # the full scan: nothing live
    assert sweeper.drops == set()
    # Enlisted long before that scan: the scan saw it as it was (here: never opened).
    now = await redis_now_ms(redis)
    await redis.zadd(LAUNCHED_KEY, {"old": now - LAUNCH_MARGIN_MS - 60_000})
    await host.launch("d1")  # enlisted now, live after the scan
    await sweeper.sweep_once()
    assert sweeper.drops == {"d1"}
