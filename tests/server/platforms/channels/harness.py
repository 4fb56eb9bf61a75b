"""An in-process LiveDrop stack (real Redis, engine, catalog, webhook applier) with a channel
service pointed at stand-in platforms, for the push-loop tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from server.ops.metrics import Metrics
from server.platforms.channels.base import ChannelName
from server.platforms.channels.config import ChannelConfig, ChannelSettings, Credentials
from server.platforms.channels.mapping import (
    MetaMapping,
    ShopifyMapping,
    SkuMapping,
    TikTokMapping,
    WooCommerceMapping,
)
from server.platforms.channels.service import ChannelService
from server.platforms.webhooks.config import WebhookSettings
from server.platforms.webhooks.service import WebhookService
from server.shows.catalog import Catalog, DropInfo, Show
from stock import HoldRefs, StockEngine
from tests.support.standins import Running
from tests.support.util import scaled

BUFFERS = {"shopify": 2, "tiktok": 3, "meta": 4, "woocommerce": 3}


def credentials(stands: dict[str, Running], **wrong: str) -> tuple[ChannelConfig, ...]:
    return (
        ChannelConfig(
            name=ChannelName.SHOPIFY,
            credentials=Credentials(url=stands["shopify"].url, token=wrong.get("shopify", "shpat_standin")),
            buffer=BUFFERS["shopify"],
        ),
        ChannelConfig(
            name=ChannelName.TIKTOK,
            credentials=Credentials(
                url=stands["tiktok"].url,
                token="TTP_standin_token",
                key="standin_app_key",
                secret=wrong.get("tiktok", "standin_app_secret"),
                shop_cipher="ROW_standin",
            ),
            buffer=BUFFERS["tiktok"],
        ),
        ChannelConfig(
            name=ChannelName.META,
            credentials=Credentials(
                url=stands["meta"].url,
                token=wrong.get("meta", "EAAstandin"),
                catalog_id="880000000000001",
                cms_id="990000000000001",
            ),
            buffer=BUFFERS["meta"],
        ),
        ChannelConfig(
            name=ChannelName.WOOCOMMERCE,
            credentials=Credentials(
                url=stands["woocommerce"].url, key="ck_standin", secret=wrong.get("woocommerce", "cs_standin")
            ),
            buffer=BUFFERS["woocommerce"],
        ),
    )


GLOW = SkuMapping(
    shopify=ShopifyMapping(inventory_item_id="1", location_id="9"),
    tiktok=TikTokMapping(product_id="p1", sku_id="s1"),
    meta=MetaMapping(retailer_id="GLOW"),
    woocommerce=WooCommerceMapping(product_id="10"),
)


def seed(stands: dict[str, Running], qty: int) -> None:
    for running in stands.values():
        running.control("POST", "reset")
    stands["shopify"].control(
        "POST", "seed", {"items": [{"inventory_item_id": 1, "location_id": 9, "sku": "GLOW", "available": qty}]}
    )
    stands["tiktok"].control(
        "POST", "seed", {"skus": [{"product_id": "p1", "sku_id": "s1", "seller_sku": "GLOW", "stock": {"w1": qty}}]}
    )
    stands["meta"].control("POST", "seed", {"items": [{"retailer_id": "GLOW", "quantity": qty}]})
    stands["woocommerce"].control("POST", "seed", {"products": [{"id": 10, "sku": "GLOW", "stock_quantity": qty}]})


def held(stands: dict[str, Running]) -> dict[str, int]:
    """What each stand-in holds for GLOW now."""
    shop = stands["shopify"].control("GET", "stock")["items"]
    tiktok = stands["tiktok"].control("GET", "stock")["skus"]
    meta = stands["meta"].control("GET", "stock")["items"]
    woo = stands["woocommerce"].control("GET", "stock")["products"]
    return {
        "shopify": shop[0]["available"] if shop else -1,
        "tiktok": sum(tiktok[0]["stock"].values()) if tiktok else -1,
        "meta": meta[0]["quantity"] if meta else -1,
        "woocommerce": woo[0]["stock_quantity"] if woo else -1,
    }


def expected(available: int) -> dict[str, int]:
    return {name: max(0, available - buffer) for name, buffer in BUFFERS.items()}


async def until(predicate: Callable[[], Any], timeout: float = 15.0, show: Callable[[], Any] | None = None) -> Any:
    """Wait for ``predicate`` (run in a thread: it may call a stand-in's control API)."""
    try:
        async with asyncio.timeout(scaled(timeout)):
            while True:
                value = await asyncio.to_thread(predicate)
                if value:
                    return value
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out; now {await asyncio.to_thread(show) if show else ''}") from None


class Stack:
    def __init__(self, redis: Any, stands: dict[str, Running], *, flush: float = 0.1, **wrong: str) -> None:
        self.redis = redis
        self.metrics = Metrics()
        self.engine = StockEngine(redis, HoldRefs(b"k" * 32))
        self.catalog = Catalog(redis, self.engine)
        self.webhooks = WebhookService(redis, self.catalog, self.metrics, WebhookSettings())
        settings = ChannelSettings(
            channels=credentials(stands, **wrong), flush_interval=flush, lease_seconds=1.0, pull_interval=1.0
        )
        self.channels = ChannelService(
            redis, self.catalog, self.webhooks.applier, self.webhooks.alerts, self.metrics, settings
        )

    async def drop(self, total: int, sku: str = "GLOW") -> None:
        await self.catalog.put_show(Show(show_id="s1", title="Show"))
        await self.catalog.put_drop(DropInfo(drop_id="d1", show_id="s1", sku=sku, title="Glow", total=total))
        await self.engine.open("d1", duration_seconds=600)
        await self.channels.mappings.put(sku, GLOW)

    async def aclose(self) -> None:
        await self.channels.aclose()
        await self.webhooks.aclose()

    def calls(self, name: str) -> int:
        return int(self.metrics.channel_calls.labels(name, "ok")._value.get())
