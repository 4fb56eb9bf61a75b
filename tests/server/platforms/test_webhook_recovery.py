"""Crash recovery of the webhook consumer on real nodes: a node restarted on the same host and port
takes back its consumer name and re-reads its own pending deliveries at once, instead of waiting
``claim_idle_seconds`` (30 s by default) for an idle take-over while stock stays stale."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
from redis.asyncio import Redis

from server import keys
from server.platforms.webhooks.events import Platform
from stock import StockEngine
from tests.support.servers import Node
from tests.support.util import scaled
from tests.support.webhooks import STANDARD_SECRET, read_as, standard_headers, standard_order

HOST_TOKEN = "recovery-host-token"
ENV = {"LIVEDROP_HOST_TOKENS": HOST_TOKEN, "LIVEDROP_STANDARD_SECRETS": STANDARD_SECRET}


async def api(node: Node, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    async with httpx.AsyncClient(base_url=node.http, headers={"Authorization": f"Bearer {HOST_TOKEN}"}) as client:
        response = await client.request(method, path, json=body)
    assert response.status_code in (200, 201), (method, path, response.status_code, response.text)
    return response.json()


async def consumers(redis: Redis) -> dict[str, int]:
    """Consumer name → pending entries, in the webhook group."""
    found = await redis.xinfo_consumers(keys.STREAM, keys.GROUP)
    return {(c["name"].decode() if isinstance(c["name"], bytes) else c["name"]): int(c["pending"]) for c in found}


async def test_a_restarted_node_reapplies_its_own_pending_deliveries_without_waiting(
    nodes: Callable[..., Node], redis: Redis
) -> None:
    node = nodes(env=ENV)  # the default claim idle time: 30 s
    await api(node, "POST", "/api/shows", {"show_id": "s1", "title": "Recovery"})
    await api(node, "POST", "/api/shows/s1/drops", {"drop_id": "d1", "sku": "GLOW", "title": "Glow", "total": 10})
    await api(node, "POST", "/api/drops/d1/launch", {})
    # The node's consumer has joined the group under its name.
    deadline = time.monotonic() + scaled(10)
    while not (names := await consumers(redis)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    [name] = names
    node.stop()
    # While it is down, an ingest-only node records two sales; then the first node's consumer
    # reads them and dies before applying them (as a crash between XREADGROUP and XACK).
    ingest = nodes(env={**ENV, "LIVEDROP_WEBHOOK_APPLY": "0"})
    async with httpx.AsyncClient(base_url=ingest.http) as client:
        for order in ("o1", "o2"):
            body = standard_order("paid", order, [{"line_id": "1", "sku": "GLOW", "qty": 1}])
            response = await client.post(
                f"/webhooks/{Platform.STANDARD.value}", content=body, headers=standard_headers(body)
            )
            assert response.json() == {"status": "accepted"}
    assert len(await read_as(redis, name, 10)) == 2
    assert (await consumers(redis))[name] == 2

    started = time.monotonic()
    node.start()  # the same host and port
    engine = StockEngine(redis)
    deadline = started + scaled(20)  # well under the 30 s a take-over by another name would need
    while (await engine.counters("d1")).sold < 2:
        assert time.monotonic() < deadline, "pending deliveries were not re-read by the restarted node"
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    print(f"restart to both pending deliveries applied: {elapsed:.2f} s")
    # Applied by the node under its old name, not taken over from a consumer presumed dead.
    assert (await consumers(redis))[name] == 0
    async with httpx.AsyncClient(base_url=node.http) as client:
        scrape = (await client.get("/metrics")).text
    assert "livedrop_webhook_claimed_total 0.0" in scrape
