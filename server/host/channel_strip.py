"""The panel's channel strip: per drop, how each sales channel stands (in sync, catching up,
failing) and since when, sent on the host channel as a ``channel_sync`` frame every tick and to a
host as soon as it connects.

A drop with variants sells its sizes under their own SKUs: its entry carries each variant's chips
and, in ``channels``, one summary chip per channel (the worst state of its sizes, the oldest
acknowledgement), so the drop card reads the same whether the drop has sizes or not.

Built from ``server.platforms.channels.status`` (Redis only); ``strip_frame`` is pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from server.platforms.channels.config import ChannelSettings
from server.platforms.channels.mapping import Mappings, SkuMapping
from server.platforms.channels.status import ChannelsStatus, Sync, channels_status
from server.shows.catalog import DropInfo


class ChannelChip(msgspec.Struct, frozen=True, kw_only=True):
    channel: str
    sync: str
    """in_sync · catching_up · failing"""
    value: int | None
    """What the channel holds (as it last acknowledged); for a summary, the sum over the sizes."""
    at: int
    """Server ms of that acknowledgement (0: never); for a summary, the oldest of its sizes."""
    pending_since: int | None = None
    error: str = ""
    message: str = ""
    ids: dict[str, str] = msgspec.field(default_factory=dict)
    """The SKU's ids on that channel (its mapping), for the host to check (empty in a summary)."""


class VariantChannels(msgspec.Struct, frozen=True, kw_only=True):
    variant: str
    sku: str
    channels: list[ChannelChip]


class DropChannels(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    drop: str
    sku: str
    channels: list[ChannelChip]
    """Per channel: the SKU's chip, or for a drop with variants the summary of its sizes' chips."""
    variants: list[VariantChannels] = msgspec.field(default_factory=list)
    """Each variant a channel sells, with its own chips (absent for a drop without variants)."""


class ChannelSync(msgspec.Struct, frozen=True, kw_only=True, tag="channel_sync", tag_field="type"):
    show: str
    server_time: int
    drops: list[DropChannels]


# Worse first: a summary shows the worst state any of its sizes is in.
_SEVERITY = {Sync.FAILING.value: 2, Sync.CATCHING_UP.value: 1, Sync.IN_SYNC.value: 0}


def _chips(sku: str, status: ChannelsStatus, mapping: SkuMapping | None) -> list[ChannelChip]:
    chips = []
    for channel in status.channels:
        state = next((s for s in channel.skus if s.sku == sku), None)
        if state is None:
            continue
        chips.append(
            ChannelChip(
                channel=channel.channel.value,
                sync=state.sync.value,
                value=state.value,
                at=state.at_ms,
                pending_since=state.pending_since_ms,
                error=state.error,
                message=state.error_message,
                ids=(mapping.ids(channel.channel) or {}) if mapping else {},
            )
        )
    return chips


def summary_chip(channel: str, sizes: Sequence[tuple[str, ChannelChip]]) -> ChannelChip:
    """One chip for the sizes (variant SKU, its chip) a channel sells: the worst state, the sum of
    the values acknowledged, the oldest acknowledgement (0 when one size was never acknowledged)
    and the oldest pending change. A failing summary names the first failing size's SKU."""
    worst = max((chip for _, chip in sizes), key=lambda c: _SEVERITY.get(c.sync, 2))
    failing = next(((sku, c) for sku, c in sizes if c.sync == Sync.FAILING.value), None)
    values = [c.value for _, c in sizes if c.value is not None]
    pending = [c.pending_since for _, c in sizes if c.pending_since is not None]
    return ChannelChip(
        channel=channel,
        sync=worst.sync,
        value=sum(values) if values else None,
        at=min(c.at for _, c in sizes),
        pending_since=min(pending) if pending else None,
        error=failing[1].error if failing else "",
        message=f"{failing[0]}: {failing[1].message or failing[1].error}" if failing else "",
    )


def strip_frame(
    show_id: str,
    status: ChannelsStatus,
    infos: Mapping[str, DropInfo],
    mappings: Mapping[str, SkuMapping] | None = None,
) -> ChannelSync:
    """One chip per channel for every drop of the show whose SKU (or one of whose variants' SKUs)
    a channel sells; a drop with variants also lists each variant's chips."""
    mappings = mappings or {}
    drops = []
    for drop_id, info in infos.items():
        if not info.variants:
            chips = _chips(info.sku, status, mappings.get(info.sku))
            if chips:
                drops.append(DropChannels(drop=drop_id, sku=info.sku, channels=chips))
            continue
        variants = []
        for v in info.variants:
            chips = _chips(v.sku, status, mappings.get(v.sku))
            if chips:
                variants.append(VariantChannels(variant=v.id, sku=v.sku, channels=chips))
        if not variants:
            continue
        summary = []
        for channel in status.channels:
            name = channel.channel.value
            sizes = [(v.sku, c) for v in variants for c in v.channels if c.channel == name]
            if sizes:
                summary.append(summary_chip(name, sizes))
        drops.append(DropChannels(drop=drop_id, sku=info.sku, channels=summary, variants=variants))
    return ChannelSync(show=show_id, server_time=status.now_ms, drops=drops)


async def channel_sync(
    redis: Any, settings: ChannelSettings, show_id: str, infos: Mapping[str, DropInfo]
) -> ChannelSync | None:
    """The frame, or None when no channel is configured (the panel then shows no strip)."""
    if not settings.channels:
        return None
    status = await channels_status(redis, settings)
    return strip_frame(show_id, status, infos, await Mappings(redis).all())
