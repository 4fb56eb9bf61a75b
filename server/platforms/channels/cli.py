"""``livedrop channels status``: what every channel holds for every SKU, as a table or JSON."""

from __future__ import annotations

import msgspec

from server.platforms.channels.config import ChannelSettings
from server.platforms.channels.status import ChannelsStatus, channels_status


def _age(now_ms: int, at_ms: int) -> str:
    if not at_ms:
        return "never"
    seconds = max(0.0, (now_ms - at_ms) / 1000)
    return f"{seconds:.1f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


def render(status: ChannelsStatus) -> str:
    """The status as a plain-text table (one line per channel and SKU)."""
    if not status.channels:
        return "no channel configured (see docs/channels.md)"
    lines = [f"{'channel':<12} {'sku':<20} {'sync':<12} {'livedrop':>8} {'pushed':>7} {'lag':>8}  when / error"]
    for channel in status.channels:
        owner = "" if channel.pushing else "  (no node pushes it)"
        lines.append(f"{channel.channel.value:<12} {'':<20} {channel.sync.value:<12} buffer {channel.buffer}{owner}")
        for sku in channel.skus:
            lag = "" if sku.lag_ms is None else f"{sku.lag_ms} ms"
            pushed = "" if sku.value is None else str(sku.value)
            available = "" if sku.available is None else str(sku.available)
            detail = f"{sku.error}: {sku.error_message}" if sku.error else _age(status.now_ms, sku.at_ms)
            lines.append(f"{'':<12} {sku.sku:<20} {sku.sync.value:<12} {available:>8} {pushed:>7} {lag:>8}  {detail}")
    return "\n".join(lines)


async def print_status(redis_url: str, settings: ChannelSettings, *, as_json: bool = False) -> int:
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        status = await channels_status(redis, settings)
    finally:
        await redis.aclose()
    if as_json:
        print(msgspec.json.format(msgspec.json.encode(status), indent=2).decode())
    else:
        print(render(status))
    return 0
