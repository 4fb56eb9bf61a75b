"""A drop SKU's ids on each channel, in Redis (``ld:{channels}:map``), with the reverse index pulled
orders are matched by (a TikTok ``sku_id`` or a Meta ``retailer_id`` back to the drop SKU).

The host API validates a mapping with ``decode_mapping`` (msgspec) before anything is written; a
mapping is replaced as a whole, its old reverse entries removed in the same transaction.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from server import keys
from server.platforms.channels.base import ChannelName

PlatformId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:/+=-]+$")]
"""A platform's id: digits, a ``gid://…``, a retailer id. No space, no key separator."""


class ShopifyMapping(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    inventory_item_id: PlatformId
    location_id: PlatformId


class TikTokMapping(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    product_id: PlatformId
    sku_id: PlatformId
    warehouse_id: PlatformId | None = None


class MetaMapping(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    retailer_id: PlatformId
    catalog_id: PlatformId | None = None


class WooCommerceMapping(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    product_id: PlatformId
    variation_id: PlatformId | None = None


class SkuMapping(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One drop SKU on each channel that sells it (a channel left out does not sell it)."""

    shopify: ShopifyMapping | None = None
    tiktok: TikTokMapping | None = None
    meta: MetaMapping | None = None
    woocommerce: WooCommerceMapping | None = None

    def ids(self, channel: ChannelName) -> dict[str, str] | None:
        value = getattr(self, channel.value)
        if value is None:
            return None
        return {k: v for k, v in msgspec.structs.asdict(value).items() if v is not None}

    def channels(self) -> list[ChannelName]:
        return [c for c in ChannelName if getattr(self, c.value) is not None]


REVERSE_FIELD: dict[ChannelName, tuple[str, ...]] = {
    ChannelName.SHOPIFY: ("inventory_item_id",),
    ChannelName.TIKTOK: ("sku_id",),
    ChannelName.META: ("retailer_id",),
    ChannelName.WOOCOMMERCE: ("variation_id", "product_id"),
}

_decoder = msgspec.json.Decoder(SkuMapping)
_encoder = msgspec.json.Encoder()


class BadMapping(ValueError):
    """A mapping body that is not valid: the message says what is wrong."""


def decode_mapping(raw: bytes) -> SkuMapping:
    """Validate a mapping body; raises ``BadMapping``."""
    try:
        mapping = _decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise BadMapping(str(exc)) from None
    return mapping


def reverse_key(channel: ChannelName, ids: dict[str, str]) -> str | None:
    for name in REVERSE_FIELD[channel]:
        if ids.get(name):
            return ids[name]
    return None


class Mappings:
    """Read and write mappings. ``cached`` serves the push loop, which reads them every tick."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def put(self, sku: str, mapping: SkuMapping) -> None:
        old = await self.get(sku)
        async with self.redis.pipeline(transaction=True) as pipe:
            if old is not None:
                for channel in old.channels():
                    rev = reverse_key(channel, old.ids(channel) or {})
                    if rev:
                        pipe.hdel(keys.channel_reverse(channel.value), rev)
            pipe.hset(keys.CHANNEL_MAP, sku, _encoder.encode(mapping))
            for channel in mapping.channels():
                rev = reverse_key(channel, mapping.ids(channel) or {})
                if rev:
                    pipe.hset(keys.channel_reverse(channel.value), rev, sku)
            await pipe.execute()

    async def get(self, sku: str) -> SkuMapping | None:
        raw = await self.redis.hget(keys.CHANNEL_MAP, sku)
        return None if raw is None else _decoder.decode(raw)

    async def delete(self, sku: str) -> bool:
        old = await self.get(sku)
        if old is None:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            for channel in old.channels():
                rev = reverse_key(channel, old.ids(channel) or {})
                if rev:
                    pipe.hdel(keys.channel_reverse(channel.value), rev)
            pipe.hdel(keys.CHANNEL_MAP, sku)
            await pipe.execute()
        return True

    async def all(self) -> dict[str, SkuMapping]:
        raw = await self.redis.hgetall(keys.CHANNEL_MAP)
        found = {}
        for sku, value in raw.items():
            try:
                found[sku.decode()] = _decoder.decode(value)
            except msgspec.DecodeError:
                continue  # written by a newer version: ignored, not fatal
        return found

    async def sku_of(self, channel: ChannelName, platform_id: str) -> str | None:
        raw = await self.redis.hget(keys.channel_reverse(channel.value), platform_id)
        return None if raw is None else str(raw.decode())
