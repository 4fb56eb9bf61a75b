"""Channels on real LiveDrop nodes: the pushing node killed mid-burst (kill -9) and another taking
over with nothing lost; and the multi-channel sale of issue "stock truth both ways" — viewers reserve
over WebSocket while all four stand-ins sell the same SKU, and at the end no unit is sold twice,
every channel shows the true stock, and reconciliation accounts for every order."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from server import keys
from standins.cli import livedrop_channel_env, livedrop_env
from standins.meta import MetaStandIn
from standins.shopify import ShopifyStandIn
from standins.tiktok import TikTokStandIn
from standins.woocommerce import WooCommerceStandIn
from stock import StockEngine
from stock.types import ReserveRequest
from tests.server.platforms.channels.harness import BUFFERS, expected, held, seed, until
from tests.server.viewers.test_viewer_ws import token
from tests.support.servers import Node
from tests.support.standins import Running, serving
from tests.support.util import scaled
from tests.support.viewer_client import Viewer

HOST_TOKEN = "channels-host-token"
NodeFactory = Callable[..., Node]
GLOW_MAPPING = {
    "shopify": {"inventory_item_id": "1", "location_id": "9"},
    "tiktok": {"product_id": "p1", "sku_id": "s1"},
    "meta": {"retailer_id": "GLOW"},
    "woocommerce": {"product_id": "10"},
}


@pytest.fixture(scope="module")
def stands() -> Iterator[dict[str, Running]]:
    with (
        serving(ShopifyStandIn()) as shop,
        serving(TikTokStandIn()) as tiktok,
        serving(MetaStandIn(batch_polls=1, calls_per_hour=100_000)) as meta,
        serving(WooCommerceStandIn()) as woo,
    ):
        yield {"shopify": shop, "tiktok": tiktok, "meta": meta, "woocommerce": woo}


def node_env(stands: dict[str, Running]) -> dict[str, str]:
    running = list(stands.values())
    standins = [r.standin for r in running]
    return {
        "LIVEDROP_HOST_TOKENS": HOST_TOKEN,
        "LIVEDROP_CHANNEL_FLUSH_INTERVAL": "0.1",
        "LIVEDROP_CHANNEL_LEASE_SECONDS": "1",
        "LIVEDROP_CHANNEL_PULL_INTERVAL": "1",
        **livedrop_env(standins),
        **livedrop_channel_env(standins, [r.url for r in running]),
    }


async def api(node: Node, method: str, path: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {HOST_TOKEN}"}
    async with httpx.AsyncClient(base_url=node.http, headers=headers, timeout=scaled(10)) as client:
        response = await client.request(method, path, json=body)
    assert response.status_code in (200, 201), (method, path, response.status_code, response.text)
    return response.json()


async def lease_owner(redis: Redis, channel: str) -> str:
    raw: bytes | None = await redis.get(keys.channel_lease(channel))  # type: ignore[assignment]
    assert raw is not None, f"nobody pushes {channel}"
    return raw.decode()


async def live_drop(node: Node, total: int) -> None:
    await api(node, "POST", "/api/shows", {"show_id": "s1", "title": "Show"})
    drop = {"drop_id": "d1", "sku": "GLOW", "title": "Glow", "total": total, "hold_seconds": 600}
    await api(node, "POST", "/api/shows/s1/drops", drop)
    await api(node, "POST", "/api/drops/d1/launch", {"duration_seconds": 600})
    mapped = await api(node, "PUT", "/api/channels/mappings/GLOW", GLOW_MAPPING)
    assert mapped["mapping"]["tiktok"] == {"product_id": "p1", "sku_id": "s1"}


async def test_the_pushing_node_killed_mid_burst_is_taken_over_and_nothing_is_lost(
    nodes: NodeFactory, stands: dict[str, Running], redis: Redis
) -> None:
    seed(stands, 500)
    env = node_env(stands)
    a, b = nodes(env=env), nodes(env=env)
    await live_drop(a, 500)
    await until(lambda: held(stands) == expected(500), show=lambda: held(stands))
    holder = await lease_owner(redis, "shopify")
    pid = int(holder.split("|")[0].split(":")[1])
    pusher, survivor = (a, b) if a.proc is not None and a.proc.pid == pid else (b, a)
    assert pusher.proc is not None and pusher.proc.pid == pid
    engine = StockEngine(redis)
    for n in range(6):  # a burst of 300 reservations; the pushing node dies after the second
        await engine.reserve_many("d1", [ReserveRequest(f"r{n}.{i}", f"c{n}.{i}", 1) for i in range(50)])
        if n == 1:
            pusher.kill()
    await until(lambda: held(stands) == expected(200), show=lambda: held(stands))
    assert survivor.proc is not None
    for channel in GLOW_MAPPING:
        owner = await lease_owner(redis, channel)
        assert f":{survivor.proc.pid}:" in owner
    status = await api(survivor, "GET", "/api/channels")
    assert {c["channel"]: c["sync"] for c in status["channels"]} == dict.fromkeys(GLOW_MAPPING, "in_sync")


async def sell_until_refused(running: Running, line: dict[str, Any], pause: float, stop: asyncio.Event) -> int:
    """Sell one unit at a time on a stand-in, as its buyers do, until told to stop; returns units sold."""
    sold = 0
    async with httpx.AsyncClient(timeout=scaled(10)) as client:
        while not stop.is_set():
            response = await client.post(f"{running.url}/_standin/sell", json={"lines": [{**line, "quantity": 1}]})
            assert response.status_code in (200, 409), response.text
            if response.status_code == 200:
                assert response.json()["delivery"]["status"] == 200, response.json()["delivery"]
                sold += 1
            await asyncio.sleep(pause * random.uniform(0.5, 1.5))
    return sold


async def test_a_multi_channel_sale_sells_no_unit_twice_and_every_channel_ends_true(
    nodes: NodeFactory, stands: dict[str, Running]
) -> None:
    seed(stands, 0)  # the platforms learn the stock from LiveDrop
    node = nodes(env=node_env(stands))
    for running in stands.values():
        running.control("PUT", "webhook", {"url": f"{node.http}/webhooks/{running.standin.name}"})
    total = 60
    await live_drop(node, total)
    await until(lambda: held(stands) == expected(total), show=lambda: held(stands))

    stop = asyncio.Event()
    lines: dict[str, dict[str, Any]] = {
        "shopify": {"sku": "GLOW"},
        "tiktok": {"sku_id": "s1"},
        "meta": {"retailer_id": "GLOW"},
        "woocommerce": {"product_id": 10},
    }
    # Each platform's buyers order about every third of a second (Meta's every 0.6 s), all at once.
    pauses = {"shopify": 0.3, "tiktok": 0.35, "meta": 0.6, "woocommerce": 0.35}
    sellers = {
        name: asyncio.create_task(sell_until_refused(stands[name], line, pauses[name], stop))
        for name, line in lines.items()
    }
    viewers = [await Viewer.connect(node.ws("s1", token(f"v{i}"))) for i in range(20)]
    for viewer in viewers:
        await viewer.until("welcome")
    reserved = 0
    for viewer in viewers:  # viewers reserve one unit each, spread over the sale
        await viewer.send({"type": "reserve", "ref": "buy", "drop": "d1"})
        while True:
            frame = await viewer.next(timeout=10)
            if frame["type"] in ("reserved", "rejected", "error"):
                break
        assert frame["type"] != "error", frame
        reserved += frame["type"] == "reserved"
        await asyncio.sleep(0.1)
    # Their holds stay; the sockets go (closed together, while the platforms keep selling).
    closing = asyncio.gather(*(viewer.close() for viewer in viewers))

    async def sold_out() -> None:
        async with asyncio.timeout(scaled(30)):
            while (await api(node, "GET", "/api/drops/d1"))["stock"]["counters"]["available"] > max(BUFFERS.values()):
                await asyncio.sleep(0.2)

    await sold_out()
    await asyncio.sleep(3.0)  # the last sales and their pulls settle
    stop.set()
    sold = {name: await task for name, task in sellers.items()}
    await closing

    async def settled() -> dict[str, Any]:
        report: dict[str, Any] = {}
        try:
            async with asyncio.timeout(scaled(20)):
                while True:
                    report = await api(node, "GET", "/api/shows/s1/reconciliation")
                    [drop] = report["drops"]
                    lines: dict[str, int] = {}
                    for line in drop["orders_without_hold"]:  # every platform line (none names a hold)
                        lines[line["platform"]] = lines.get(line["platform"], 0) + line["qty"]
                    if report["totals"]["needs_fetch"] == 0 and lines == {k: v for k, v in sold.items() if v}:
                        return report
                    await asyncio.sleep(0.2)
        except TimeoutError:
            raise AssertionError(f"not settled: sold {sold}, report {report}") from None

    report = await settled()
    counters = report["drops"][0]["counters"]
    # No unit sold twice: every platform sale and every viewer hold was covered by stock.
    assert counters["oversold"] == 0, (counters, sold, report["drops"][0]["oversold_lines"])
    assert counters["sold"] == sum(sold.values()) and counters["held"] == reserved
    assert counters["available"] + counters["held"] + counters["sold"] == total
    assert sold["tiktok"] > 0 and sold["meta"] > 0  # both pulled platforms really sold
    # Every channel ends at the true stock, less its buffer.
    await until(lambda: held(stands) == expected(counters["available"]), show=lambda: held(stands))
