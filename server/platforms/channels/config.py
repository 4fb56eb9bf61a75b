"""Channel settings from the environment: which channels push, their credentials, buffers and the
loop's pace. Pure. A channel is on when its credentials are set; ``repr`` never shows a secret.

Buffers (docs/channels.md has the reasoning): what a channel is shown is
``max(0, available - buffer)``. Two races need it. (1) Sell-through: a viewer takes the last unit
while a channel sells it too, before the push that says 0 arrives; every channel has it, for one
push lag. (2) Overwrite: TikTok Shop, Meta and WooCommerce only take absolute values, so an order
they took that LiveDrop has not applied yet is overwritten by the next push and sold again.
Shopify's compare-and-swap removes (2), so its buffer covers (1) alone; the others cover both, for
their webhook or pull latency.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from server.platforms.channels.base import ChannelName

DEFAULT_BUFFERS: Mapping[ChannelName, int] = {
    ChannelName.SHOPIFY: 2,
    ChannelName.TIKTOK: 3,
    ChannelName.META: 4,
    ChannelName.WOOCOMMERCE: 3,
}


class Credentials(msgspec.Struct, frozen=True, kw_only=True):
    """One channel's account. Secrets live only here, and this ``repr`` hides them."""

    url: str = ""
    token: str = ""
    key: str = ""
    secret: str = ""
    shop_cipher: str = ""
    catalog_id: str = ""
    cms_id: str = ""
    api_version: str = ""

    def __repr__(self) -> str:
        return f"Credentials(url={self.url!r}, secrets=***)"


class ChannelConfig(msgspec.Struct, frozen=True, kw_only=True):
    name: ChannelName
    credentials: Credentials
    buffer: int


class ChannelSettings(msgspec.Struct, frozen=True, kw_only=True):
    channels: tuple[ChannelConfig, ...] = ()
    # How often a channel's dirty SKUs are flushed: the latest value of each, batched.
    flush_interval: float = 0.25
    # A node holds a channel's lease this long without renewing it; a dead node's channels are
    # taken over after at most this (renewed every third of it).
    lease_seconds: float = 3.0
    # How often TikTok Shop's order list and Meta's commerce orders are pulled (webhooks may be lost;
    # Meta has none at all for orders). The needs-fetch queue is drained every flush interval.
    pull_interval: float = 30.0
    # Each pull reads orders updated since the last pull's start less this overlap (clocks differ).
    pull_overlap: float = 300.0
    # Seconds any one platform call may take.
    timeout: float = 10.0
    # Consecutive failed calls before ``channel_failing`` is raised.
    failing_after: int = 3

    def get(self, name: ChannelName) -> ChannelConfig | None:
        return next((c for c in self.channels if c.name is name), None)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    return default if raw in (None, "") else float(raw)


def _buffer(env: Mapping[str, str], channel: ChannelName) -> int:
    raw = env.get(f"LIVEDROP_{channel.value.upper()}_BUFFER")
    value = DEFAULT_BUFFERS[channel] if raw in (None, "") else int(raw)
    if value < 0:
        raise ValueError(f"LIVEDROP_{channel.value.upper()}_BUFFER must be >= 0")
    return value


def channel_settings_from_env(env: Mapping[str, str]) -> ChannelSettings:
    found: list[ChannelConfig] = []
    if env.get("LIVEDROP_SHOPIFY_ACCESS_TOKEN") and env.get("LIVEDROP_SHOPIFY_URL"):
        creds = Credentials(
            url=env["LIVEDROP_SHOPIFY_URL"],
            token=env["LIVEDROP_SHOPIFY_ACCESS_TOKEN"],
            api_version=env.get("LIVEDROP_SHOPIFY_API_VERSION") or "2026-04",
        )
        found.append(
            ChannelConfig(name=ChannelName.SHOPIFY, credentials=creds, buffer=_buffer(env, ChannelName.SHOPIFY))
        )
    if env.get("LIVEDROP_TIKTOK_ACCESS_TOKEN") and env.get("LIVEDROP_TIKTOK_APP_SECRET"):
        creds = Credentials(
            url=env.get("LIVEDROP_TIKTOK_URL") or "https://open-api.tiktokglobalshop.com",
            token=env["LIVEDROP_TIKTOK_ACCESS_TOKEN"],
            key=env.get("LIVEDROP_TIKTOK_APP_KEY", ""),
            secret=env["LIVEDROP_TIKTOK_APP_SECRET"],
            shop_cipher=env.get("LIVEDROP_TIKTOK_SHOP_CIPHER", ""),
        )
        found.append(ChannelConfig(name=ChannelName.TIKTOK, credentials=creds, buffer=_buffer(env, ChannelName.TIKTOK)))
    if env.get("LIVEDROP_META_ACCESS_TOKEN") and env.get("LIVEDROP_META_CATALOG_ID"):
        creds = Credentials(
            url=env.get("LIVEDROP_META_URL") or "https://graph.facebook.com",
            token=env["LIVEDROP_META_ACCESS_TOKEN"],
            catalog_id=env["LIVEDROP_META_CATALOG_ID"],
            cms_id=env.get("LIVEDROP_META_CMS_ID", ""),
            api_version=env.get("LIVEDROP_META_API_VERSION") or "v21.0",
        )
        found.append(ChannelConfig(name=ChannelName.META, credentials=creds, buffer=_buffer(env, ChannelName.META)))
    if env.get("LIVEDROP_WOOCOMMERCE_CONSUMER_KEY") and env.get("LIVEDROP_WOOCOMMERCE_URL"):
        creds = Credentials(
            url=env["LIVEDROP_WOOCOMMERCE_URL"],
            key=env["LIVEDROP_WOOCOMMERCE_CONSUMER_KEY"],
            secret=env.get("LIVEDROP_WOOCOMMERCE_CONSUMER_SECRET", ""),
        )
        found.append(
            ChannelConfig(name=ChannelName.WOOCOMMERCE, credentials=creds, buffer=_buffer(env, ChannelName.WOOCOMMERCE))
        )
    return ChannelSettings(
        channels=tuple(found),
        flush_interval=_float(env, "LIVEDROP_CHANNEL_FLUSH_INTERVAL", 0.25),
        lease_seconds=_float(env, "LIVEDROP_CHANNEL_LEASE_SECONDS", 3.0),
        pull_interval=_float(env, "LIVEDROP_CHANNEL_PULL_INTERVAL", 30.0),
        pull_overlap=_float(env, "LIVEDROP_CHANNEL_PULL_OVERLAP", 300.0),
        timeout=_float(env, "LIVEDROP_CHANNEL_TIMEOUT", 10.0),
    )
