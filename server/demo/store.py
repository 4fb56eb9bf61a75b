"""The demo's shop: the stand-in Shopify store (standins/shopify.py) served beside the demo, so
that a viewer's "Checkout" link goes through a real cart permalink, a checkout page and a signed
``orders/create`` webhook back to LiveDrop, which confirms the hold (docs/checkout.md).

Each demo product gets a Shopify variant id in the store and in the show's checkout settings.
The store's webhook secret is drawn for the run and given to LiveDrop's Shopify settings, so
its deliveries verify like a real shop's.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import Iterator

import msgspec
import uvicorn

from server.checkout.config import ShopifyCheckout
from server.checkout.store import CheckoutStore
from server.settings import Settings
from server.shows.catalog import DropInfo
from standins.shopify import ShopifyStandIn
from stock.keys import unit_id

FIRST_VARIANT_ID = 44_000_000_001
STORE_STOCK = 10_000  # the store's own stock: LiveDrop's holds decide who may buy


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the demo handles signals for every server it runs


def with_store_secret(settings: Settings, secret: str) -> Settings:
    """``settings`` that accept the demo store's webhooks (any shop, this secret)."""
    shopify = {**settings.webhooks.shopify, "*": (*settings.webhooks.shopify.get("*", ()), secret)}
    return msgspec.structs.replace(settings, webhooks=msgspec.structs.replace(settings.webhooks, shopify=shopify))


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port


class DemoStore:
    def __init__(self, host: str, shown_host: str) -> None:
        """Bound to ``host``; viewers' browsers reach it at ``shown_host``."""
        self.secret = secrets.token_urlsafe(24)
        self.standin = ShopifyStandIn(shop="livedrop-demo.myshopify.com", webhook_secret=self.secret)
        self.port = free_port(host)
        self.url = f"http://{shown_host}:{self.port}"
        self._server = _Server(uvicorn.Config(self.standin.app, host=host, port=self.port, log_level="warning"))
        self._task: asyncio.Task[None] | None = None

    async def start(self, livedrop_url: str) -> None:
        self._task = asyncio.create_task(self._server.serve(), name="demo-store")
        while not self._server.started:
            if self._task.done():
                raise RuntimeError("the demo store did not start")
            await asyncio.sleep(0.05)
        self.standin.emitter.target.url = f"{livedrop_url}/webhooks/shopify"

    async def stock(self, checkout: CheckoutStore, show_id: str, drops: list[DropInfo]) -> ShopifyCheckout:
        """Put the show's products in the store (each variant of a drop with sizes, each other drop),
        each with a Shopify variant id, and point the show's checkout at the store."""
        items, products = [], {}
        units = [(unit_id(drop.drop_id, v.id), v.sku) for drop in drops for v in drop.variants] + [
            (drop.drop_id, drop.sku) for drop in drops if not drop.variants
        ]
        for n, (unit, sku) in enumerate(units):
            variant_id = str(FIRST_VARIANT_ID + n)
            item = {"inventory_item_id": n + 1, "location_id": 1, "sku": sku, "available": STORE_STOCK}
            items.append({**item, "variant_id": variant_id})
            products[unit] = variant_id
        self.standin.seed({"items": items})
        settings = ShopifyCheckout(store_url=self.url, products=products)
        await checkout.put(show_id, settings)
        return settings

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
