"""What each channel holds for each SKU, how far behind it is, and why it fails: for the host API,
the panel's channel strip and ``livedrop channels status``. Reads Redis only (any node answers)."""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from server import keys
from server.platforms.channels.base import ChannelName
from server.platforms.channels.config import ChannelSettings
from server.platforms.channels.store import ChannelStore, parse_dirty
from server.replies import decoded


class Sync(enum.StrEnum):
    IN_SYNC = "in_sync"
    CATCHING_UP = "catching_up"
    FAILING = "failing"


class SkuSync(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    sync: Sync
    available: int | None
    """LiveDrop's available units as of the last change seen."""
    value: int | None
    """The value the channel last acknowledged."""
    at_ms: int
    lag_ms: int | None
    pending_since_ms: int | None
    """When the oldest change not yet acknowledged happened (None: nothing pending)."""
    unapplied: int = 0
    error: str = ""
    error_message: str = ""
    error_at_ms: int = 0


class ChannelStatus(msgspec.Struct, frozen=True, kw_only=True):
    channel: ChannelName
    buffer: int
    pushing: bool
    """A node holds this channel's lease (its loop is running somewhere)."""
    sync: Sync
    skus: list[SkuSync]


class ChannelsStatus(msgspec.Struct, frozen=True, kw_only=True):
    now_ms: int
    channels: list[ChannelStatus]


def sku_sync(error: str, pending: bool) -> Sync:
    if error:
        return Sync.FAILING
    return Sync.CATCHING_UP if pending else Sync.IN_SYNC


async def channels_status(redis: Any, settings: ChannelSettings) -> ChannelsStatus:
    store = ChannelStore(redis)
    now_ms = await store.now_ms()
    stock_raw = await redis.hgetall(keys.CHANNEL_STOCK)
    stock = {decoded(k): int(decoded(v).split(" ")[0]) for k, v in stock_raw.items()}
    mapped = {decoded(k) for k in await redis.hkeys(keys.CHANNEL_MAP)}
    out = []
    for config in settings.channels:
        name = config.name.value
        states = await store.states(name)
        dirty = await store.dirty(name)
        unapplied_raw = await redis.hgetall(keys.channel_unapplied(name))
        unapplied = {decoded(k): int(v) for k, v in unapplied_raw.items()}
        skus = []
        for sku in sorted(mapped | states.keys() | dirty.keys()):
            state = states.get(sku)
            pending = parse_dirty(dirty[sku])[1] if sku in dirty else None
            error = state.error if state else ""
            skus.append(
                SkuSync(
                    sku=sku,
                    sync=sku_sync(error, pending is not None),
                    available=stock.get(sku),
                    value=state.value if state else None,
                    at_ms=state.at_ms if state else 0,
                    lag_ms=state.lag_ms if state else None,
                    pending_since_ms=pending,
                    unapplied=unapplied.get(sku, 0),
                    error=error,
                    error_message=state.error_message if state else "",
                    error_at_ms=state.error_at_ms if state else 0,
                )
            )
        worst = (
            Sync.FAILING
            if any(s.sync is Sync.FAILING for s in skus)
            else (Sync.CATCHING_UP if any(s.sync is Sync.CATCHING_UP for s in skus) else Sync.IN_SYNC)
        )
        pushing = bool(await redis.exists(keys.channel_lease(name)))
        out.append(ChannelStatus(channel=config.name, buffer=config.buffer, pushing=pushing, sync=worst, skus=skus))
    return ChannelsStatus(now_ms=now_ms, channels=out)
