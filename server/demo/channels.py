"""The demo's sales channels: the four stand-in platforms (standins/) served beside the demo, with
LiveDrop's stock pushed to them and their orders coming back, so a newcomer sees the panel's channel
strip move (docs/channels.md).

Every drop is mapped on every channel, a drop with variants size by size (each platform's own
model of variants, see ``DemoChannels.stock``). A few "platform buyers" order a unit now
and then on a random channel: Shopify and WooCommerce webhooks carry the lines, TikTok Shop and Meta
notifications are thin and their orders are pulled. Credentials and webhook secrets are drawn for
the run. The Meta stand-in's hourly batch budget is raised for the demo (the real 100 calls an hour
would leave its chip "catching up" most of the time; docs/channels.md explains the spacing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Iterator
from typing import Any, NamedTuple

import msgspec
import uvicorn
from redis.exceptions import RedisError

from server import keys
from server.platforms.channels.base import ChannelName
from server.platforms.channels.config import ChannelConfig, ChannelSettings, Credentials
from server.platforms.channels.mapping import (
    Mappings,
    MetaMapping,
    ShopifyMapping,
    SkuMapping,
    TikTokMapping,
    WooCommerceMapping,
)
from server.platforms.channels.store import ChannelStore
from server.replies import decoded
from server.settings import Settings
from server.shows.catalog import DropInfo
from server.shows.variants import unit_of
from standins.base import Conflict, ControlError, StandIn
from standins.meta import MetaStandIn
from standins.shopify import ShopifyStandIn
from standins.tiktok import TikTokStandIn
from standins.woocommerce import WooCommerceStandIn
from stock import StockEngine, StockError
from stock.types import DropState

logger = logging.getLogger("livedrop.demo")

BUYER_INTERVAL = 4.0  # mean seconds between two platform orders, all channels together


class Listing(NamedTuple):
    """One SKU the demo puts on sale on the stand-ins: a drop's, or one variant's (a size)."""

    drop_id: str
    variant: str
    """'' for a drop without variants."""
    sku: str


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the demo handles signals for every server it runs


def _free_port(host: str) -> int:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port


class DemoChannels:
    def __init__(self, host: str) -> None:
        token = secrets.token_urlsafe(12)
        self.shopify = ShopifyStandIn(access_token=f"shpat_{token}", webhook_secret=secrets.token_urlsafe(24))
        self.tiktok = TikTokStandIn(app_secret=secrets.token_urlsafe(24), access_token=f"TTP_{token}")
        self.meta = MetaStandIn(access_token=f"EAA{token}", app_secret=secrets.token_urlsafe(24), calls_per_hour=3600)
        self.woo = WooCommerceStandIn(consumer_secret=f"cs_{token}", webhook_secret=secrets.token_urlsafe(24))
        self.standins: list[StandIn] = [self.shopify, self.tiktok, self.meta, self.woo]
        self.host = host
        self.urls: dict[str, str] = {}
        self._servers: list[tuple[_Server, asyncio.Task[None]]] = []
        self._ports = [_free_port(host) for _ in self.standins]
        for s, port in zip(self.standins, self._ports, strict=True):
            self.urls[s.name] = f"http://127.0.0.1:{port}"

    def settings(self, settings: Settings) -> Settings:
        """``settings`` that push to these stand-ins and accept their webhooks."""
        hooks = settings.webhooks
        hooks = msgspec.structs.replace(
            hooks,
            shopify={**hooks.shopify, "*": (*hooks.shopify.get("*", ()), self.shopify.emitter.target.secret)},
            tiktok_app_key=self.tiktok.app_key,
            tiktok=(*hooks.tiktok, self.tiktok.emitter.target.secret),
            meta=(*hooks.meta, self.meta.emitter.target.secret),
            woocommerce={**hooks.woocommerce, "*": (*hooks.woocommerce.get("*", ()), self.woo.emitter.target.secret)},
        )
        channels = ChannelSettings(
            channels=(
                ChannelConfig(
                    name=ChannelName.SHOPIFY,
                    credentials=Credentials(url=self.urls["shopify"], token=self.shopify.access_token),
                    buffer=2,
                ),
                ChannelConfig(
                    name=ChannelName.TIKTOK,
                    credentials=Credentials(
                        url=self.urls["tiktok"],
                        token=self.tiktok.access_token,
                        key=self.tiktok.app_key,
                        secret=self.tiktok.app_secret,
                        shop_cipher=self.tiktok.shop_cipher,
                    ),
                    buffer=3,
                ),
                ChannelConfig(
                    name=ChannelName.META,
                    credentials=Credentials(
                        url=self.urls["meta"],
                        token=self.meta.access_token,
                        catalog_id=self.meta.catalog_id,
                        cms_id=self.meta.cms_id,
                    ),
                    buffer=4,
                ),
                ChannelConfig(
                    name=ChannelName.WOOCOMMERCE,
                    credentials=Credentials(
                        url=self.urls["woocommerce"], key=self.woo.consumer_key, secret=self.woo.consumer_secret
                    ),
                    buffer=3,
                ),
            ),
            pull_interval=10.0,
        )
        return msgspec.structs.replace(settings, webhooks=hooks, channels=channels)

    async def start(self, livedrop_url: str) -> None:
        for s, port in zip(self.standins, self._ports, strict=True):
            server = _Server(uvicorn.Config(s.app, host=self.host, port=port, log_level="warning", lifespan="on"))
            task = asyncio.create_task(server.serve(), name=f"demo-{s.name}")
            self._servers.append((server, task))
            while not server.started:
                if task.done():
                    raise RuntimeError(f"the demo's {s.name} stand-in did not start")
                await asyncio.sleep(0.05)
            s.emitter.target.url = f"{livedrop_url}/webhooks/{s.name}"

    async def forget(self, redis: Any) -> list[str]:
        """Forget the SKUs a previous run mapped (their mappings and everything the push loop knows
        of them) and empty the stand-ins: a new run's platforms hold nothing, so values that an
        earlier run's platforms acknowledged must not be taken for theirs. Returns the SKUs."""
        for standin in self.standins:
            standin.reset_state()
        raw = await redis.hgetall(keys.DEMO_CHANNEL_SKUS)
        recorded = {decoded(k): decoded(v) for k, v in raw.items()}
        mappings = Mappings(redis)
        for sku in recorded:
            await mappings.delete(sku)
        await ChannelStore(redis).forget(list(recorded), list(recorded.values()), [c.value for c in ChannelName])
        await redis.delete(keys.DEMO_CHANNEL_SKUS)
        return sorted(recorded)

    async def stock(self, redis: Any, drops: list[DropInfo]) -> list[Listing]:
        """Put every drop on every channel, the way each platform models it (at 0: LiveDrop's push
        sets the stock), and map it; returns what is on sale there. A drop with variants is one
        product with one entry per size: Shopify variants (each its own inventory item), TikTok
        Shop SKUs under one product, Meta items sharing an ``item_group_id``, WooCommerce
        variations of one variable product. Whatever a previous run mapped is forgotten first."""
        await self.forget(redis)
        listings: list[Listing] = []
        mappings: dict[str, SkuMapping] = {}
        shopify, tiktok, meta, woo = [], [], [], []
        k = 0  # one number per SKU across drops: inventory items, TikTok SKUs, Woo variations
        for n, drop in enumerate(drops, start=1):
            sizes = [(v.id, v.sku) for v in drop.variants] or [("", drop.sku)]
            for variant, sku in sizes:
                k += 1
                shopify.append(
                    {"inventory_item_id": k, "location_id": 1, "sku": sku, "available": 0, "variant_id": str(500 + k)}
                )
                tiktok.append({"product_id": f"p{n}", "sku_id": f"s{k}", "seller_sku": sku, "stock": {"w1": 0}})
                item: dict[str, Any] = {"retailer_id": sku, "quantity": 0}
                if variant:
                    item["item_group_id"] = drop.sku
                meta.append(item)
                woo.append(
                    {"id": 1000 + k, "sku": sku, "stock_quantity": 0, "parent_id": 100 + n}
                    if variant
                    else {"id": 100 + n, "sku": sku, "stock_quantity": 0}
                )
                mappings[sku] = SkuMapping(
                    shopify=ShopifyMapping(inventory_item_id=str(k), location_id="1"),
                    tiktok=TikTokMapping(product_id=f"p{n}", sku_id=f"s{k}"),
                    meta=MetaMapping(retailer_id=sku),
                    woocommerce=WooCommerceMapping(product_id=str(100 + n), variation_id=str(1000 + k))
                    if variant
                    else WooCommerceMapping(product_id=str(100 + n)),
                )
                listings.append(Listing(drop.drop_id, variant, sku))
        # Also the SKUs of this run: a run of an older demo mapped them without recording them.
        await ChannelStore(redis).forget(
            [x.sku for x in listings], [unit_of(x.drop_id, x.variant) for x in listings], [c.value for c in ChannelName]
        )
        self.shopify.seed({"items": shopify})
        self.tiktok.seed({"skus": tiktok})
        self.meta.seed({"items": meta})
        self.woo.seed({"products": woo})
        store = Mappings(redis)
        for sku, mapping in mappings.items():
            await store.put(sku, mapping)
        if listings:
            await redis.hset(keys.DEMO_CHANNEL_SKUS, mapping={x.sku: unit_of(x.drop_id, x.variant) for x in listings})
        return listings

    async def buyers(self, listings: list[Listing], engine: StockEngine, rng: random.Random) -> None:
        """Now and then, a buyer orders one unit of a live drop (one size of a drop with sizes) on
        a random channel (if it shows any)."""
        lines = {
            "shopify": lambda sku: {"sku": sku},
            "tiktok": lambda sku: {"seller_sku": sku},
            "meta": lambda sku: {"retailer_id": sku},
            "woocommerce": lambda sku: {"sku": sku},
        }
        while True:
            await asyncio.sleep(rng.expovariate(1 / BUYER_INTERVAL))
            standin = rng.choice(self.standins)
            listing = rng.choice(listings)
            with contextlib.suppress(StockError, RedisError):
                if (await engine.snapshot(listing.drop_id)).state is not DropState.LIVE:
                    continue
            with contextlib.suppress(Conflict, ControlError):  # nothing on sale there right now
                await standin.sell({"lines": [{**lines[standin.name](listing.sku), "quantity": 1}]})

    async def stop(self) -> None:
        for server, _ in self._servers:
            server.should_exit = True
        for _, task in self._servers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
