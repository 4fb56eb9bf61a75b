"""Wiring of the sales channels for the app's lifespan: one connector per configured channel on one
shared HTTP client, a push loop per channel, and the order pullers of TikTok Shop and Meta.

Every node runs the loops; the leases decide which node actually pushes each channel (and pulls
each platform's orders), so adding nodes never multiplies platform calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx

from server.loops import Backoff, repeat
from server.ops.metrics import Metrics
from server.platforms.channels.base import Channel, ChannelName
from server.platforms.channels.config import ChannelConfig, ChannelSettings
from server.platforms.channels.http import client
from server.platforms.channels.mapping import Mappings
from server.platforms.channels.meta import MetaChannel
from server.platforms.channels.pull import OrderPuller
from server.platforms.channels.push import ChannelPusher, MappingCache, Marker
from server.platforms.channels.shopify import ShopifyChannel
from server.platforms.channels.store import ChannelStore, Lease
from server.platforms.channels.tiktok import TikTokChannel
from server.platforms.channels.woocommerce import WooCommerceChannel
from server.platforms.webhooks.alerts import Alerts
from server.platforms.webhooks.apply import OrderApplier
from server.shows.catalog import Catalog

logger = logging.getLogger("livedrop.channels")


def build_channel(config: ChannelConfig, http: httpx.AsyncClient) -> Channel:
    c = config.credentials
    match config.name:
        case ChannelName.SHOPIFY:
            return ShopifyChannel(http, base_url=c.url, access_token=c.token, api_version=c.api_version or "2026-04")
        case ChannelName.TIKTOK:
            return TikTokChannel(
                http,
                base_url=c.url,
                app_key=c.key,
                app_secret=c.secret,
                access_token=c.token,
                shop_cipher=c.shop_cipher,
            )
        case ChannelName.META:
            return MetaChannel(
                http,
                base_url=c.url,
                access_token=c.token,
                catalog_id=c.catalog_id,
                cms_id=c.cms_id,
                api_version=c.api_version or "v21.0",
            )
        case ChannelName.WOOCOMMERCE:
            return WooCommerceChannel(http, base_url=c.url, consumer_key=c.key, consumer_secret=c.secret)
    raise ValueError(config.name)


class ChannelService:
    """Everything channels need on one node."""

    def __init__(
        self,
        redis: Any,
        catalog: Catalog,
        applier: OrderApplier,
        alerts: Alerts,
        metrics: Metrics,
        settings: ChannelSettings,
        node_id: str = "",
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.metrics = metrics
        self.http = client(settings.timeout)
        self.store = ChannelStore(redis)
        self.mappings = Mappings(redis)
        self.cache = MappingCache(self.mappings)
        self.channels: dict[ChannelName, Channel] = {c.name: build_channel(c, self.http) for c in settings.channels}
        self.buffers = {c.name: c.buffer for c in settings.channels}
        self.marker = Marker(redis, self.store, catalog, self.cache, list(self.channels))
        self.pushers = {
            name: ChannelPusher(
                channel,
                store=self.store,
                lease=Lease(redis, name.value, settings.lease_seconds, node_id),
                marker=self.marker,
                cache=self.cache,
                alerts=alerts,
                metrics=metrics,
                buffer=self.buffers[name],
                flush_interval=settings.flush_interval,
                failing_after=settings.failing_after,
            )
            for name, channel in self.channels.items()
        }
        pullable: list[TikTokChannel | MetaChannel] = [
            channel
            for channel in self.channels.values()
            if isinstance(channel, TikTokChannel) or (isinstance(channel, MetaChannel) and channel.cms_id)
        ]
        self.pullers = [
            OrderPuller(
                redis,
                channel,
                applier,
                metrics,
                lease_seconds=settings.lease_seconds,
                pull_interval=settings.pull_interval,
                overlap=settings.pull_overlap,
                node_id=node_id,
            )
            for channel in pullable
        ]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        interval = self.settings.flush_interval
        for name, pusher in self.pushers.items():
            self._tasks.append(
                asyncio.create_task(
                    repeat(
                        pusher.turn,
                        name=f"channel {name.value}",
                        interval=pusher.watch_interval,
                        backoff=Backoff(0.25, 5.0),
                        log=logger,
                    ),
                    name=f"channel-{name.value}",
                )
            )
        for puller in self.pullers:
            self._tasks.append(
                asyncio.create_task(
                    repeat(
                        puller.turn,
                        name=f"order pull {puller.platform}",
                        interval=interval,
                        backoff=Backoff(0.25, 5.0),
                        log=logger,
                    ),
                    name=f"pull-{puller.platform}",
                )
            )

    async def touch(self, sku: str) -> None:
        """Push a SKU's value again on every channel (after its mapping changed)."""
        self.cache.invalidate()
        now_ms = await self.store.now_ms()
        for name in self.channels:
            await self.store.touch(name.value, sku, now_ms)

    async def aclose(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for pusher in self.pushers.values():
            if pusher.leader:
                with contextlib.suppress(Exception):
                    await pusher.lease.release()  # a clean stop hands the channel over at once
        for puller in self.pullers:
            with contextlib.suppress(Exception):
                await puller.lease.release()
        await self.http.aclose()
