"""The panel's channel strip: per live drop, how each sales channel stands (in sync, catching up,
failing) and since when, sent on the host channel as a ``channel_sync`` frame every tick.

Built from ``server.platforms.channels.status`` (Redis only); pure apart from that read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from server.platforms.channels.config import ChannelSettings
from server.platforms.channels.mapping import Mappings, SkuMapping
from server.platforms.channels.status import ChannelsStatus, channels_status
from server.shows.catalog import DropInfo


class ChannelChip(msgspec.Struct, frozen=True, kw_only=True):
    channel: str
    sync: str
    """in_sync · catching_up · failing"""
    value: int | None
    """What the channel holds (as it last acknowledged)."""
    at: int
    """Server ms of that acknowledgement (0: never); the panel shows its age."""
    pending_since: int | None = None
    error: str = ""
    message: str = ""
    ids: dict[str, str] = msgspec.field(default_factory=dict)
    """The SKU's ids on that channel (its mapping), for the host to check."""


class DropChannels(msgspec.Struct, frozen=True, kw_only=True):
    drop: str
    sku: str
    channels: list[ChannelChip]


class ChannelSync(msgspec.Struct, frozen=True, kw_only=True, tag="channel_sync", tag_field="type"):
    show: str
    server_time: int
    drops: list[DropChannels]


def strip_frame(
    show_id: str,
    status: ChannelsStatus,
    infos: Mapping[str, DropInfo],
    mappings: Mapping[str, SkuMapping] | None = None,
) -> ChannelSync:
    """One chip per channel for every drop of the show whose SKU a channel sells."""
    drops = []
    for drop_id, info in infos.items():
        chips = []
        for channel in status.channels:
            sku = next((s for s in channel.skus if s.sku == info.sku), None)
            if sku is None:
                continue
            chips.append(
                ChannelChip(
                    channel=channel.channel.value,
                    sync=sku.sync.value,
                    value=sku.value,
                    at=sku.at_ms,
                    pending_since=sku.pending_since_ms,
                    error=sku.error,
                    message=sku.error_message,
                    ids=(mapping.ids(channel.channel) or {}) if (mapping := (mappings or {}).get(info.sku)) else {},
                )
            )
        if chips:
            drops.append(DropChannels(drop=drop_id, sku=info.sku, channels=chips))
    return ChannelSync(show=show_id, server_time=status.now_ms, drops=drops)


async def channel_sync(
    redis: Any, settings: ChannelSettings, show_id: str, infos: Mapping[str, DropInfo]
) -> ChannelSync | None:
    """The frame, or None when no channel is configured (the panel then shows no strip)."""
    if not settings.channels:
        return None
    status = await channels_status(redis, settings)
    return strip_frame(show_id, status, infos, await Mappings(redis).all())
