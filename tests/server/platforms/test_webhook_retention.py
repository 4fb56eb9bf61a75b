"""Personal data in webhook bodies does not stay forever: dead-lettered deliveries expire after their
own retention like applied ones, and the erase path (``livedrop erase``) deletes every applied or
dead-lettered delivery that names a person, on real nodes and real Redis, with stock untouched."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
from redis.asyncio import Redis

from server import keys
from server.ops.local_redis import LocalRedis
from server.platforms.webhooks.config import webhook_settings_from_env
from stock import StockEngine
from tests.support.servers import Node
from tests.support.util import scaled
from tests.support.webhooks import drain, running_app, shopify_headers, stream, webhook_settings

SHOPIFY_SECRET = "shpss_test_secret"
HOST_TOKEN = "retention-host-token"
ENV = {"LIVEDROP_HOST_TOKENS": HOST_TOKEN, "LIVEDROP_SHOPIFY_SECRETS": SHOPIFY_SECRET}
JANE = "jane.doe@example.com"


async def test_dead_letters_expire_after_their_retention(redis_server: LocalRedis, redis: Redis) -> None:
    assert webhook_settings_from_env({"LIVEDROP_WEBHOOK_DEAD_RETENTION": "3600"}).dead_retention_seconds == 3600
    assert webhook_settings_from_env({}).dead_retention_seconds == 14 * 24 * 3600  # days, not forever
    async with running_app(redis_server.url, webhook_settings(dead_retention_seconds=3600)) as app:
        await drain(app.state)  # creates the group
        seconds, _ = await redis.time()
        old = f"{(seconds - 3700) * 1000}-0"  # died 3,700 s ago: past the hour
        recent = f"{(seconds - 3500) * 1000}-0"
        for entry_id in (old, recent):
            await redis.xadd(keys.DEAD, {b"p": b"shopify", b"b": b'{"email": "x@example.com"}'}, id=entry_id)
        await app.state["webhooks"].consumer.housekeeping()
        left = await redis.xrange(keys.DEAD)
        assert left is not None and [_text(entry_id) for entry_id, _ in left] == [recent]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def order_body(order_id: int, email: str, customer_id: int) -> bytes:
    return json.dumps(
        {
            "id": order_id,
            "email": email,
            "customer": {"id": customer_id, "email": email, "first_name": "Jane"},
            "line_items": [{"id": 1, "sku": "GLOW", "quantity": 1}],
        }
    ).encode()


async def api(node: Node, path: str, body: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=node.http, headers={"Authorization": f"Bearer {HOST_TOKEN}"}) as client:
        response = await client.post(path, json=body)
    assert response.status_code in (200, 201), response.text


async def post(node: Node, body: bytes) -> None:
    async with httpx.AsyncClient(base_url=node.http) as client:
        response = await client.post("/webhooks/shopify", content=body, headers=shopify_headers(body, "orders/paid"))
    assert response.json() == {"status": "accepted"}


async def until(check: Callable[[], Any]) -> None:
    deadline = time.monotonic() + scaled(10)
    while not await check():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


def erase(redis_url: str, *args: str) -> tuple[int, dict[str, int]]:
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "erase", "--redis-url", redis_url, *args],
        capture_output=True,
        timeout=scaled(30),
    )
    assert done.returncode in (0, 3), done.stderr
    return done.returncode, json.loads(done.stdout)


async def bodies(redis: Redis, name: str) -> list[bytes]:
    return [fields[b"b"] for fields in await stream(redis, name)]


async def test_the_erase_path_removes_a_persons_webhook_bodies(
    nodes: Callable[..., Node], redis: Redis, redis_server: LocalRedis
) -> None:
    node = nodes(env=ENV)
    await api(node, "/api/shows", {"show_id": "s1", "title": "Retention"})
    await api(node, "/api/shows/s1/drops", {"drop_id": "d1", "sku": "GLOW", "title": "Glow", "total": 10})
    await api(node, "/api/drops/d1/launch", {})
    engine = StockEngine(redis)
    jane, other = order_body(9001, JANE, 7351001), order_body(9002, "sam@example.com", 7351002)
    await post(node, jane)
    await post(node, other)
    # A delivery that could not be applied (a foreign entry): dead-lettered with its body.
    await redis.xadd(keys.STREAM, {b"b": order_body(9003, "JANE.DOE@example.com", 1), b"h": b"{}"})
    await until(lambda: redis_has(redis, keys.DEAD, 1))
    await until(lambda: sold(engine, 2))
    node.stop()
    # Recorded while no node applies: not applied yet, so it must survive the erasure.
    ingest = nodes(env={**ENV, "LIVEDROP_WEBHOOK_APPLY": "0"})
    waiting = order_body(9004, JANE, 7351001)
    await post(ingest, waiting)

    code, result = erase(redis_server.url, "--customer", "v-jane", "--identifier", "Jane.Doe@example.com")
    # Jane's applied order, the foreign entry (applied: dead-lettered) and its dead letter.
    assert (code, result["webhooks_erased"], result["deferred"]) == (3, 3, 1)
    assert await bodies(redis, keys.STREAM) == [other, waiting]
    assert await bodies(redis, keys.DEAD) == []
    # By the platform's customer id alone, once the last one is applied.
    ingest.stop()
    node.start()
    await until(lambda: sold(engine, 3))
    code, result = erase(redis_server.url, "--identifier", "7351001")
    assert (code, result["webhooks_erased"], result["deferred"]) == (0, 1, 0)
    assert await bodies(redis, keys.STREAM) == [other]
    counters = await engine.counters("d1")
    assert (counters.total, counters.available, counters.sold) == (10, 7, 3)  # erasing changed no stock


async def redis_has(redis: Redis, name: str, count: int) -> bool:
    return int(await redis.xlen(name)) >= count


async def sold(engine: StockEngine, count: int) -> bool:
    return (await engine.counters("d1")).sold >= count


async def test_a_shopify_customers_redact_erases_the_customers_deliveries(
    nodes: Callable[..., Node], redis: Redis
) -> None:
    # Shopify's mandatory compliance webhook: the consumer carries it out as an erasure, then
    # deletes the request itself (it names the customer too).
    node = nodes(env=ENV)
    await api(node, "/api/shows", {"show_id": "s1", "title": "Redact"})
    await api(node, "/api/shows/s1/drops", {"drop_id": "d1", "sku": "GLOW", "title": "Glow", "total": 10})
    await api(node, "/api/drops/d1/launch", {})
    engine = StockEngine(redis)
    jane, other = order_body(9101, JANE, 7351101), order_body(9102, "sam@example.com", 7351102)
    await post(node, jane)
    await post(node, other)
    await until(lambda: sold(engine, 2))
    redact = json.dumps(
        {
            "shop_id": 954889,
            "shop_domain": "livedrop-demo.myshopify.com",
            "customer": {"id": 7351101, "email": JANE, "phone": "555-625-1199"},
            "orders_to_redact": [9101],
        }
    ).encode()
    async with httpx.AsyncClient(base_url=node.http) as client:
        response = await client.post(
            "/webhooks/shopify", content=redact, headers=shopify_headers(redact, "customers/redact")
        )
    assert response.json() == {"status": "accepted"}

    async def only_other_left() -> bool:
        return await bodies(redis, keys.STREAM) == [other]

    await until(only_other_left)
    assert (await engine.counters("d1")).sold == 2
