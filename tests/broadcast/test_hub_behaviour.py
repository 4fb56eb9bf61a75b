"""Hub behaviour under load on a real node: stock conflation, a reconnect storm, shutdown."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable

from redis.asyncio import Redis

from stock import ReserveBatcher
from tests.server.shows.test_hub_nodes import make_host
from tests.support.invariants import assert_drop_invariants
from tests.support.servers import Node
from tests.support.util import scaled
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]


async def test_stock_is_conflated_and_ends_on_the_final_counters(nodes: NodeFactory, redis: Redis) -> None:
    host = await make_host(redis, total=3000)
    node = nodes()
    watcher = await Viewer.connect(node.ws("s1"))
    await watcher.next()
    await host.launch("d1")
    await watcher.until("drop")

    batcher = ReserveBatcher(host.engine)
    started = time.monotonic()

    async def burst() -> None:
        # 6,000 reservations over ~1.5 s on 3,000 units.
        for wave in range(15):
            await asyncio.gather(*(batcher.reserve("d1", f"c{wave}-{i}", 1, f"r{wave}-{i}") for i in range(400)))
            await asyncio.sleep(0.1)

    await burst()
    elapsed = time.monotonic() - started
    final = await assert_drop_invariants(host.engine, "d1")
    assert final.available == 0 and final.held == 3000
    stock_frames = []
    async with asyncio.timeout(scaled(10)):
        while True:
            frame = await watcher.until("stock")
            stock_frames.append(frame)
            if frame["available"] == final.available and frame["held"] == final.held:
                break
    # At most one frame per 100 ms tick (plus the ticks that straddle the ends), not one per
    # reservation; the last one carries the final counters.
    assert len(stock_frames) <= (elapsed + 1) / 0.1 + 2, (len(stock_frames), elapsed)
    assert len(stock_frames) >= 3
    await asyncio.sleep(0.5)
    leftover = []
    while True:
        try:
            leftover.append(await watcher.next(timeout=0.3))
        except TimeoutError:
            break
    assert all(f["type"] != "stock" for f in leftover), "no stock frame after the final counters"
    await batcher.aclose()
    await watcher.close()


async def test_reconnect_storm_every_viewer_gets_its_welcome(nodes: NodeFactory, redis: Redis) -> None:
    await make_host(redis, total=10)
    node = nodes()
    count = 1000  # bench/fanout.py runs the same storm with 10,000

    async def one() -> dict[str, object]:
        viewer = await Viewer.connect(node.ws("s1"))
        try:
            return await viewer.next(timeout=30)
        finally:
            await viewer.close()

    started = time.monotonic()
    welcomes = await asyncio.gather(*(one() for _ in range(count)))
    assert all(w["type"] == "welcome" for w in welcomes)
    assert time.monotonic() - started < scaled(30)
    async with asyncio.timeout(scaled(5)):
        while True:
            try:
                ready = await asyncio.to_thread(_status, node.http + "/readyz")
                break
            except OSError:
                await asyncio.sleep(0.1)
    assert ready == 200


def _status(url: str) -> int:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status)


async def test_graceful_shutdown_closes_viewers_with_1012(nodes: NodeFactory, redis: Redis) -> None:
    await make_host(redis)
    node = nodes()
    viewer = await Viewer.connect(node.ws("s1"))
    await viewer.next()
    await asyncio.to_thread(node.stop)
    async with asyncio.timeout(scaled(10)):
        try:
            while True:
                await viewer.next()
        except Exception:
            pass
    assert viewer.conn.close_code == 1012


async def test_livedrop_watch_prints_a_shows_frames(nodes: NodeFactory, redis: Redis) -> None:
    host = await make_host(redis)
    node = nodes()
    watch = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.cli",
        "watch",
        "s1",
        "--url",
        f"ws://127.0.0.1:{node.port}",
        "--count",
        "0",
        stdout=asyncio.subprocess.PIPE,
    )
    assert watch.stdout is not None
    welcome = json.loads(await asyncio.wait_for(watch.stdout.readline(), scaled(10)))
    assert welcome["type"] == "welcome" and welcome["show"] == "s1"
    await host.launch("d1")
    async with asyncio.timeout(scaled(10)):
        while (frame := json.loads(await watch.stdout.readline()))["type"] != "drop":
            pass  # viewers and stock frames interleave
    assert frame["seq"] == welcome["seq"] + 1 and frame["drop"]["id"] == "d1"
    watch.terminate()
    await watch.wait()
