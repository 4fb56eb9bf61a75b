"""One clock: what nodes tell viewers and each other is on Redis' clock, whatever their own.

Nodes here run with a skewed wall clock — a ``sitecustomize`` module on their ``PYTHONPATH``
shifts ``time.time`` in the node process, as a machine whose clock drifted would — against a
real Redis whose ``TIME`` dates hold expiries and ``ends_at``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import httpx
from redis.asyncio import Redis

from broadcast.presence import Presence, presence_keys
from server.shows.clock import redis_now_ms
from tests.server.shows.test_hub_nodes import make_host
from tests.support.servers import Node
from tests.support.util import scaled
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]
HOST_TOKEN = "clock-host"

_SKEW = """\
import os
import time

_real_time, _real_time_ns = time.time, time.time_ns
_skew = float(os.environ["LIVEDROP_TEST_CLOCK_SKEW"])
time.time = lambda: _real_time() + _skew
time.time_ns = lambda: _real_time_ns() + int(_skew * 1e9)
"""


def skewed(tmp_path: Path, seconds: float) -> dict[str, str]:
    """Environment of a node whose wall clock is ``seconds`` ahead (behind if negative)."""
    site = tmp_path / "skewed-clock"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_SKEW)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "LIVEDROP_TEST_CLOCK_SKEW": str(seconds), "LIVEDROP_HOST_TOKENS": HOST_TOKEN}


def _last_count(viewer: Viewer) -> int | None:
    """The newest viewer count this viewer was told: a ``viewers`` frame, or its welcome's."""
    for frame in reversed(viewer.frames):
        if frame["type"] == "viewers":
            return int(frame["count"])
        if frame["type"] == "welcome":
            return int(frame["viewers"])
    return None


async def count_reaches(viewer: Viewer, count: int, timeout: float) -> None:
    """Wait until ``viewer`` has been told ``count`` (generous timeouts: a wait for an event on a
    loaded machine, not a latency bound). The count may already be right in its
    welcome, and then no ``viewers`` frame follows (they are sent on change only)."""
    try:
        async with asyncio.timeout(scaled(timeout)):
            while _last_count(viewer) != count:
                await viewer.next(timeout=timeout)
    except TimeoutError:
        raise AssertionError(f"never told {count} viewers; frames: {viewer.frames}") from None


async def test_countdowns_use_redis_time_not_the_node_clock(nodes: NodeFactory, redis: Redis, tmp_path: Path) -> None:
    host = await make_host(redis)
    node = nodes(env=skewed(tmp_path, 60))  # a minute fast
    viewer = await Viewer.connect(node.ws("s1"))
    welcome = await viewer.next()
    await host.launch("d1", duration_seconds=30)
    drop = (await viewer.until("drop"))["drop"]
    now = await redis_now_ms(redis)
    # What a countdown shows is ends_at - server_time: 30 s, not 30 s minus the node's skew.
    assert abs(welcome["server_time"] - now) < 5000, welcome["server_time"] - now
    assert 25_000 < drop["ends_at"] - welcome["server_time"] < 35_000
    await viewer.send({"type": "ping", "ref": "p"})
    pong = await viewer.until("pong")
    assert abs(pong["server_time"] - await redis_now_ms(redis)) < 5000
    await viewer.close()


async def test_viewer_counts_add_up_across_nodes_whose_clocks_disagree(
    nodes: NodeFactory, redis: Redis, tmp_path: Path
) -> None:
    await make_host(redis)
    behind = nodes(env=skewed(tmp_path, -30))  # its reports look 30 s old to an honest clock
    honest = nodes()
    on_behind = await Viewer.connect(behind.ws("s1"))
    on_honest = await Viewer.connect(honest.ws("s1"))
    for v in (on_behind, on_honest):
        await count_reaches(v, 2, timeout=30)
        await v.close()


async def test_a_dead_node_leaves_the_count_and_its_entries_are_deleted(
    nodes: NodeFactory, redis: Redis, tmp_path: Path
) -> None:
    await make_host(redis)
    env = {"LIVEDROP_HOST_TOKENS": HOST_TOKEN}
    doomed, survivor = nodes(env=env), nodes(env=env)
    gone = await Viewer.connect(doomed.ws("s1"))
    staying = await Viewer.connect(survivor.ws("s1"))
    await count_reaches(staying, 2, timeout=30)
    doomed.kill()  # SIGKILL: it never removes its own entry
    await count_reaches(staying, 1, timeout=30)
    # The dead node's report is gone from Redis, and the audience a host sees (the denominator
    # of "viewers at launch") counts the living only.
    assert len(await redis.hgetall("ld:{show:s1}:viewers")) == 1
    async with httpx.AsyncClient(base_url=survivor.http, headers={"Authorization": f"Bearer {HOST_TOKEN}"}) as c:
        stats = (await c.get("/api/shows/s1/stats")).json()
    assert stats["viewers"] == 1
    await staying.close()
    del gone


async def test_presence_deletes_stale_and_clockless_entries(redis: Redis) -> None:
    presence = Presence(redis, ttl_ms=5000)
    counts, seen, legacy = presence_keys("s1")
    await redis.hset(legacy, "dead", 1)
    now = await redis_now_ms(redis)
    await redis.hset(counts, mapping={"dead": 7, "legacy": 3, "alive": 2})
    await redis.zadd(seen, {"dead": now - 60_000, "alive": now})  # "legacy" has no report time
    assert (await presence.report("s1", "me", 4)).total == 6  # me + alive
    assert set(await redis.hgetall(counts)) == {b"me", b"alive"}
    assert set(await redis.zrange(seen, 0, -1)) == {b"me", b"alive"}
    assert not await redis.exists(legacy)
    assert (await presence.others("s1", "me")).total == 2
    assert (await presence.leave("s1", "me")).total == 2
    assert set(await redis.hgetall(counts)) == {b"alive"}
