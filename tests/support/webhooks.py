"""Helpers for the webhook and reconciliation tests: a real app (its lifespan run by hand, requests
through httpx's ASGI transport), signed deliveries for every platform, and order bodies.

The signatures are made with the signing helpers of ``server.platforms.webhooks.signatures``, whose recipes
``tests/server/platforms/test_webhook_signatures.py`` pins against each platform's published vectors.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import httpx
import msgspec
from starlette.types import Receive, Scope, Send

from server import keys
from server.app import State, create_app
from server.platforms.reconcile.read import build_report
from server.platforms.reconcile.report import ReconciliationReport
from server.platforms.webhooks.config import ANY_SHOP, WebhookSettings
from server.platforms.webhooks.events import Platform
from server.platforms.webhooks.signatures import (
    META_SIGNATURE,
    SHOPIFY_EVENT_ID,
    SHOPIFY_HMAC,
    SHOPIFY_SHOP,
    SHOPIFY_TOPIC,
    SHOPIFY_WEBHOOK_ID,
    SW_ID,
    SW_SIGNATURE,
    SW_TIMESTAMP,
    TIKTOK_SIGNATURE,
    WC_DELIVERY_ID,
    WC_SIGNATURE,
    WC_SOURCE,
    WC_TOPIC,
    WC_WEBHOOK_ID,
    sign_meta,
    sign_shopify,
    sign_standard,
    sign_tiktok,
    sign_woocommerce,
)
from server.settings import Settings
from server.shows.catalog import DropInfo, Show

SHOP = "livedrop-demo.myshopify.com"
WOO_SITE = "https://shop.example.com"
SHOPIFY_SECRET = "shpss_test_secret"
SHOPIFY_OLD_SECRET = "shpss_rotated_out"
TIKTOK_APP_KEY = "abcdef"
TIKTOK_SECRET = "tiktok-secret"
META_SECRET = "meta-app-secret"
META_TOKEN = "meta-verify-token"
WOO_SECRET = "woo,secret;with punctuation"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

_ids = itertools.count(1)


def webhook_settings(**changes: Any) -> WebhookSettings:
    """Every platform enabled with the test secrets; the consumer off unless ``apply=True``."""
    base = WebhookSettings(
        shopify={SHOP: (SHOPIFY_OLD_SECRET, SHOPIFY_SECRET)},
        tiktok_app_key=TIKTOK_APP_KEY,
        tiktok=(TIKTOK_SECRET,),
        meta=(META_SECRET,),
        meta_verify_tokens=(META_TOKEN,),
        woocommerce={ANY_SHOP: (WOO_SECRET,)},
        standard=(STANDARD_SECRET,),
        apply=False,
        reconcile_interval=0,
        claim_idle_seconds=0.2,
        consumer_name="test-node",
    )
    return msgspec.structs.replace(base, **changes)


class LiveApp:
    """A running app: its lifespan state, and an httpx client that sends requests to it."""

    def __init__(self, state: State, client: httpx.AsyncClient) -> None:
        self.state = state
        self.client = client

    async def post(self, platform: Platform, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.client.post(f"/webhooks/{platform.value}", content=body, headers=headers)


@contextlib.asynccontextmanager
async def running_app(redis_url: str, webhooks: WebhookSettings, *, cluster: bool = False) -> AsyncIterator[LiveApp]:
    """The real app on ``redis_url``, lifespan started and stopped around the block.

    httpx's ASGI transport does not run the lifespan, so it is run here, and its state is put in
    each request's scope as an ASGI server would.
    """
    settings = Settings(
        redis_url=redis_url, redis_cluster=cluster, sweep_interval=3600, viewer_secret="t", webhooks=webhooks
    )
    app = create_app(settings)
    before = asyncio.all_tasks()
    async with app.router.lifespan_context(app) as started:
        state = cast(State, started)
        await _sweeper_asleep(next(t for t in asyncio.all_tasks() - before if t.get_name() == "sweeper"))

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = dict(state)
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://livedrop.test") as client:
            yield LiveApp(state, client)


async def _sweeper_asleep(task: asyncio.Task[Any]) -> None:
    """Wait until the app's sweeper has made its first sweep and sleeps (for an hour here).

    redis-py 8 sends each command through ``asyncio.wait_for`` (5 s socket timeout by default),
    and Python 3.11's ``wait_for`` drops a cancellation that races with the command completing.
    The sweeper's loop only stops on CancelledError, so an app shut down a few milliseconds after
    it started (as these tests do) could lose the cancel and never finish its lifespan. Shutting
    down while the sweeper sleeps is deterministic. (Reported upstream of this file: the sweeper
    should check ``Task.cancelling()``, as the webhook consumer does.)
    """

    def innermost() -> str:
        coro: Any = task.get_coro()
        while getattr(coro, "cr_await", None) is not None and hasattr(coro.cr_await, "cr_code"):
            coro = coro.cr_await
        return str(coro.cr_code.co_name)

    async with asyncio.timeout(10):
        while innermost() != "sleep":
            await asyncio.sleep(0.001)


async def define_drop(state: State, drop_id: str, sku: str, total: int, *, show_id: str = "show1") -> None:
    """A show and a live drop selling ``sku`` (through the catalog, as hosts create them)."""
    catalog = state["catalog"]
    if await catalog.get_show(show_id) is None:
        await catalog.put_show(Show(show_id=show_id, title="Show"))
    await catalog.put_drop(DropInfo(drop_id=drop_id, show_id=show_id, sku=sku, title=sku, total=total))
    await state["engine"].open(drop_id)


# -- bodies -------------------------------------------------------------------------------------


def shopify_order(order_id: int, lines: Sequence[tuple[int, str, int]], *, hold: str | None = None) -> bytes:
    """An orders/* body: lines of (line id, sku, qty); ``hold`` as the order's note attribute."""
    notes = [{"name": "livedrop_hold", "value": hold}] if hold else []
    items = [{"id": i, "sku": sku, "quantity": qty, "properties": []} for i, sku, qty in lines]
    return json.dumps({"id": order_id, "note_attributes": notes, "line_items": items}).encode()


def standard_order(kind: str, order_id: str, lines: Sequence[dict[str, Any]], **data: Any) -> bytes:
    """A LiveDrop Standard Webhooks body (docs/webhooks.md)."""
    return json.dumps({"type": f"order.{kind}", "data": {"order_id": order_id, "lines": list(lines), **data}}).encode()


def woo_order(order_id: int, status: str, lines: Sequence[tuple[int, str, int]]) -> bytes:
    items = [{"id": i, "sku": sku, "quantity": qty, "meta_data": []} for i, sku, qty in lines]
    return json.dumps({"id": order_id, "status": status, "line_items": items}).encode()


def tiktok_note(order_id: str, status: str, notification_id: str | None = None) -> bytes:
    return json.dumps(
        {
            "type": 1,
            "tts_notification_id": notification_id or f"n{next(_ids)}",
            "shop_id": "7494049642642441621",
            "timestamp": 1644412885,
            "data": {"order_id": order_id, "order_status": status, "update_time": 1644412885},
        }
    ).encode()


# -- signed headers -------------------------------------------------------------------------------


def shopify_headers(
    body: bytes, topic: str, *, webhook_id: str | None = None, secret: str = SHOPIFY_SECRET
) -> dict[str, str]:
    return {
        SHOPIFY_HMAC: sign_shopify(body, secret),
        SHOPIFY_TOPIC: topic,
        SHOPIFY_SHOP: SHOP,
        SHOPIFY_WEBHOOK_ID: webhook_id or f"wh-{next(_ids)}",
        SHOPIFY_EVENT_ID: f"ev-{next(_ids)}",
        "Content-Type": "application/json",
    }


def tiktok_headers(body: bytes) -> dict[str, str]:
    return {TIKTOK_SIGNATURE: sign_tiktok(body, app_key=TIKTOK_APP_KEY, secret=TIKTOK_SECRET)}


def meta_headers(body: bytes) -> dict[str, str]:
    return {META_SIGNATURE: sign_meta(body, META_SECRET), "Content-Type": "application/json"}


def woo_headers(body: bytes, topic: str = "order.updated", *, delivery: str | None = None) -> dict[str, str]:
    return {
        WC_SIGNATURE: sign_woocommerce(body, WOO_SECRET),
        WC_TOPIC: topic,
        WC_WEBHOOK_ID: "12",
        WC_DELIVERY_ID: delivery or f"d{next(_ids)}",
        WC_SOURCE: WOO_SITE + "/",
    }


def standard_headers(body: bytes, *, msg_id: str | None = None, timestamp: int | None = None) -> dict[str, str]:
    msg_id = msg_id or f"msg_{next(_ids)}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        SW_ID: msg_id,
        SW_TIMESTAMP: str(timestamp),
        SW_SIGNATURE: sign_standard(body, msg_id=msg_id, timestamp=timestamp, secret=STANDARD_SECRET),
    }


async def drain(state: State) -> int:
    """Apply everything recorded, with this app's consumer, deterministically (no task)."""
    consumer = state["webhooks"].consumer
    await consumer.ensure_group()
    applied = 0
    while n := await consumer.step():
        applied += n
    return applied


async def stream(redis: Any, name: str) -> list[dict[bytes, bytes]]:
    """The fields of every entry of a stream, oldest first."""
    return [fields for _, fields in await redis.xrange(name, "-", "+")]


async def read_as(redis: Any, consumer: str, count: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Read new deliveries as group member ``consumer`` (a consumer about to die, in tests)."""
    raw = await redis.xreadgroup(keys.GROUP, consumer, {keys.STREAM: ">"}, count=count)
    return list(raw[0][1]) if raw else []


async def reconciliation_report(state: State, show_id: str) -> ReconciliationReport:
    """The report of ``show_id`` built from an app's state, as the host API builds it."""
    return await build_report(
        state["redis"],
        state["engine"],
        state["catalog"],
        show_id,
        grace_seconds=state["settings"].webhooks.reconcile_grace_seconds,
    )
