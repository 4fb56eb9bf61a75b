"""Every outcome of a webhook line is visible, on a real node over real sockets: quantities no sale
can have and sales on an ended drop are recorded issues (report + metric), and a partial refund
that arrives before its order leaves the rest of the order sold."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from server.platforms.webhooks.events import Platform
from server.shows.catalog import Catalog, DropInfo, Show
from stock import StockEngine
from stock.types import Counters
from tests.support.invariants import assert_drop_invariants
from tests.support.servers import Node
from tests.support.util import scaled
from tests.support.webhooks import (
    SHOPIFY_SECRET,
    STANDARD_SECRET,
    shopify_headers,
    shopify_order,
    standard_headers,
    standard_order,
)

NodeFactory = Callable[..., Node]
HOST_TOKEN = "host-secret-outcomes"


@pytest.fixture
async def node(nodes: NodeFactory, redis: Redis) -> AsyncIterator[tuple[httpx.AsyncClient, StockEngine]]:
    engine = StockEngine(redis)
    catalog = Catalog(redis, engine)
    await catalog.put_show(Show(show_id="s1", title="Friday"))
    for drop_id, sku in (("d1", "GLOW"), ("d2", "TINT")):
        await catalog.put_drop(DropInfo(drop_id=drop_id, show_id="s1", sku=sku, title=sku, total=10))
        await engine.open(drop_id)
    env = {
        "LIVEDROP_HOST_TOKENS": HOST_TOKEN,
        "LIVEDROP_STANDARD_SECRETS": STANDARD_SECRET,
        "LIVEDROP_SHOPIFY_SECRETS": SHOPIFY_SECRET,
    }
    started = nodes(env=env)
    async with httpx.AsyncClient(base_url=started.http, headers={"Authorization": f"Bearer {HOST_TOKEN}"}) as client:
        yield client, engine


async def post(client: httpx.AsyncClient, platform: Platform, body: bytes, headers: dict[str, str]) -> None:
    response = await client.post(f"/webhooks/{platform.value}", content=body, headers=headers)
    assert response.status_code == 200, response.text


async def standard(client: httpx.AsyncClient, kind: str, order: str, lines: list[dict[str, Any]], **data: Any) -> None:
    body = standard_order(kind, order, lines, **data)
    await post(client, Platform.STANDARD, body, standard_headers(body))


async def report_when(client: httpx.AsyncClient, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The show's reconciliation report, once the node's consumer has applied what ``ready`` needs."""
    async with asyncio.timeout(scaled(10)):
        while True:
            report: dict[str, Any] = (await client.get("/api/shows/s1/reconciliation")).json()
            if ready(report):
                return report
            await asyncio.sleep(0.02)


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


async def test_bad_quantities_and_sales_on_an_ended_drop_are_recorded(
    node: tuple[httpx.AsyncClient, StockEngine],
) -> None:
    client, engine = node
    # Shopify: a line of quantity 0 and one of -1 next to a good one; a quantity over 10,000.
    body = shopify_order(3001, [(1, "GLOW", 0), (2, "GLOW", -1), (3, "GLOW", 1)])
    await post(client, Platform.SHOPIFY, body, shopify_headers(body, "orders/paid"))
    await standard(client, "paid", "o-big", [{"line_id": "1", "sku": "GLOW", "qty": 10_001}])
    # A sale after the host ended d2.
    await engine.close("d2")
    await standard(client, "paid", "o-late", [{"line_id": "1", "sku": "TINT", "qty": 2}])

    report = await report_when(
        client, lambda r: r["totals"]["bad_qty_lines"] == 3 and r["totals"]["sales_when_not_live"] == 1
    )
    assert sorted((b["order_id"], b["line_id"], b["qty"]) for b in report["bad_qty_lines"]) == [
        ("3001", "1", 0),
        ("3001", "2", -1),
        ("o-big", "1", 10_001),
    ]
    d1, d2 = report["drops"]
    assert [(s["order_id"], s["sold"]) for s in d2["sales_when_not_live"]] == [("o-late", 2)]
    assert d1["sales_when_not_live"] == []
    assert await engine.counters("d1") == Counters(10, 9, 0, 1, 0)  # only the good line
    assert await engine.counters("d2") == Counters(10, 8, 0, 2, 0)  # applied: the platform sold them
    metrics = (await client.get("/metrics")).text
    assert metric(metrics, 'livedrop_webhook_issues_total{kind="bad_qty"}') == 3
    assert metric(metrics, 'livedrop_webhook_issues_total{kind="sale_drop_not_live"}') == 1
    assert metric(metrics, 'livedrop_webhook_lines_total{outcome="bad_qty",platform="shopify"}') == 2


async def test_a_partial_refund_before_its_order_leaves_the_rest_sold(
    node: tuple[httpx.AsyncClient, StockEngine],
) -> None:
    client, engine = node
    line = {"line_id": "1", "sku": "GLOW", "qty": 1}
    await standard(client, "refunded", "o1", [line], refund_id="rf-1")
    await report_when(client, lambda r: len(r["drops"][0]["cancelled_before_order"]) == 1)
    await standard(client, "paid", "o1", [line | {"qty": 3}])
    report = await report_when(client, lambda r: r["drops"][0]["restocked_units"] == 1)
    assert await engine.counters("d1") == Counters(10, 8, 0, 2, 0)
    d1 = report["drops"][0]
    assert [(c["order_id"], c["event"], c["qty"], c["order_ignored"]) for c in d1["cancelled_before_order"]] == [
        ("o1", "refund:rf-1", 1, False)
    ]
    assert [(c["order_id"], c["event"], c["restocked"]) for c in d1["cancellations"]] == [("o1", "refund:rf-1", 1)]
    await assert_drop_invariants(engine, "d1")
