"""``livedrop reconcile``: print a show's report from the command line."""

from __future__ import annotations

import sys

import msgspec

from server.platforms.reconcile.read import build_report
from server.shows.catalog import Catalog, UnknownShow
from stock import StockEngine
from stock.errors import InvalidArgument

# -- the CLI ------------------------------------------------------------------------------------


async def print_report(redis_url: str, show_id: str, grace_seconds: float) -> int:
    """``livedrop reconcile SHOW``: print the report as JSON; 1 if the show is unknown."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        engine = StockEngine(redis)
        try:
            report = await build_report(redis, engine, Catalog(redis, engine), show_id, grace_seconds=grace_seconds)
        except UnknownShow:
            print(f"livedrop: no show {show_id}", file=sys.stderr)
            return 1
        except InvalidArgument as exc:
            print(f"livedrop: {exc}", file=sys.stderr)
            return 1
    finally:
        await redis.aclose()
    print(msgspec.json.format(msgspec.json.encode(report), indent=2).decode())
    return 0
