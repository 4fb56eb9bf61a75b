"""``livedrop serve --workers 2``: one port, two processes sharing only Redis, as operations.md
recommends (one process per core). Viewers land on either process; a drop reaches all of them
in one seq order, a burst through both never oversells, and a scrape of ``/metrics`` answered
by either process counts every viewer of the node."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable

import orjson
from redis.asyncio import Redis

from tests.server.shows.test_hub_nodes import _answer, make_host
from tests.server.viewers.test_viewer_ws import _get, token  # _get: a fresh connection, to either worker
from tests.support.invariants import assert_drop_invariants
from tests.support.servers import Node
from tests.support.util import scaled
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]
VIEWERS = 40


def _sample(scrape: str, name: str) -> float:
    line = next(line for line in scrape.splitlines() if line.startswith(name + " ") or line.startswith(name + "{"))
    return float(line.rsplit(" ", 1)[1])


async def test_two_workers_one_node(nodes: NodeFactory, redis: Redis) -> None:
    host = await make_host(redis, total=15)
    node = nodes(env={"LIVEDROP_WORKERS": "2"})

    # Both processes answer on the one port.
    answered_by: set[str] = set()
    async with asyncio.timeout(scaled(20)):
        while len(answered_by) < 2:
            answered_by.add(orjson.loads(await asyncio.to_thread(_get, node.http + "/healthz"))["node"])
    assert len({name.split(":")[1] for name in answered_by}) == 2, answered_by  # two pids

    viewers = [await Viewer.connect(node.ws("s1", token(f"w{i}"))) for i in range(VIEWERS)]
    for v in viewers:
        assert (await v.next())["type"] == "welcome"

    await host.launch("d1")
    seqs = {(await v.until("drop"))["seq"] for v in viewers}
    assert len(seqs) == 1

    await asyncio.gather(*(v.send({"type": "reserve", "ref": "buy", "drop": "d1"}) for v in viewers))
    answers = await asyncio.gather(*(_answer(v) for v in viewers))
    assert sum(1 for a in answers if a["type"] == "reserved") == 15
    await assert_drop_invariants(host.engine, "d1")

    # Every scrape, whichever worker answers it, sums both: the viewers and the reservations.
    async with asyncio.timeout(scaled(20)):
        while True:
            scrapes = [await asyncio.to_thread(_get, node.http + "/metrics") for _ in range(8)]
            connections = {_sample(s, "livedrop_viewer_connections") for s in scrapes}
            reserved = {_sample(s, 'livedrop_reservations_total{outcome="reserved"}') for s in scrapes}
            if connections == {VIEWERS} and reserved == {15.0}:
                break
            await asyncio.sleep(0.2)

    for v in viewers:
        await v.close()
    async with asyncio.timeout(scaled(20)):
        while _sample(await asyncio.to_thread(_get, node.http + "/metrics"), "livedrop_viewer_connections") != 0:
            await asyncio.sleep(0.2)


def test_workers_refuse_a_shared_consumer_name() -> None:
    env = {**os.environ, "LIVEDROP_WEBHOOK_CONSUMER": "node-1", "REDIS_URL": "redis://127.0.0.1:1"}
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--workers", "2"],
        env=env,
        capture_output=True,
        timeout=scaled(30),
    )
    assert result.returncode == 2
    assert b"LIVEDROP_WEBHOOK_CONSUMER" in result.stderr
