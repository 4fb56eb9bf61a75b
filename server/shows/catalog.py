"""Shows and the products they drop: what a drop *is* (sku, title, image, prices, rules),
as opposed to its stock, which only the stock engine writes.

Each write is idempotent, and ordered so that a retry after a failure half-way completes it:
the stock engine's drop first (its ``define`` is idempotent), then the description, then the
indexes that point at it.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from server.keys import SHOWS_KEY, drop_info_key, show_drops_key, show_info_key, sku_key
from server.shows.variants import VariantInfo, unit_of, variant_configs
from stock import DropConfig, StockEngine, keys


class ShowState(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


class Show(msgspec.Struct, frozen=True, kw_only=True):
    show_id: str
    title: str
    state: ShowState = ShowState.SCHEDULED


class DropInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A product drop as hosts describe it. Prices are in minor units per ISO currency
    (``{"EUR": 1900}`` is 19.00 €), so no float ever touches money.

    A drop with ``variants`` sells them, each with its own SKU and stock (``total`` is then
    their sum, and ``sku`` only names the product: no order line sells it);
    ``limit_per_variant`` makes the per-customer limit count in each variant on its own."""

    drop_id: str
    show_id: str
    sku: str
    title: str
    total: int
    image_url: str = ""
    prices: dict[str, int] = msgspec.field(default_factory=dict)
    per_customer_limit: int = 0
    hold_seconds: float = 600.0
    duration_seconds: float | None = None
    variants: list[VariantInfo] = msgspec.field(default_factory=list)
    limit_per_variant: bool = False

    def variant(self, variant_id: str) -> VariantInfo | None:
        return next((v for v in self.variants if v.id == variant_id), None)


_show_codec = (msgspec.json.Encoder(), msgspec.json.Decoder(Show))
_drop_codec = (msgspec.json.Encoder(), msgspec.json.Decoder(DropInfo))


class UnknownShow(LookupError):
    """No show with that id: the one error for it, from the catalog, the show node and the report."""


class Catalog:
    """Shows and drop descriptions in Redis, beside the stock engine's keys."""

    def __init__(self, redis: Any, engine: StockEngine) -> None:
        self.redis = redis
        self.engine = engine

    async def put_show(self, show: Show) -> Show:
        keys.check_name("show id", show.show_id)
        await self.redis.set(show_info_key(show.show_id), _show_codec[0].encode(show))
        await self.redis.sadd(SHOWS_KEY, show.show_id)
        return show

    async def get_show(self, show_id: str) -> Show | None:
        raw = await self.redis.get(show_info_key(show_id))
        return None if raw is None else _show_codec[1].decode(raw)

    async def shows(self) -> list[Show]:
        ids = sorted(m.decode() for m in await self.redis.smembers(SHOWS_KEY))
        found = [await self.get_show(show_id) for show_id in ids]
        return [s for s in found if s is not None]

    async def set_show_state(self, show_id: str, state: ShowState) -> Show | None:
        show = await self.get_show(show_id)
        if show is None:
            return None
        return await self.put_show(msgspec.structs.replace(show, state=state))

    async def put_drop(self, info: DropInfo) -> DropInfo:
        """Create a drop (stock in the engine, description here) at the end of its show's
        run of show. Raises ``stock.DropConflict`` if the drop exists with other stock rules."""
        keys.check_opaque("sku", info.sku)
        await self.engine.define(
            DropConfig(
                info.drop_id,
                info.show_id,
                info.total,
                info.per_customer_limit,
                info.hold_seconds,
                variants=variant_configs(info.variants),
                limit_per_variant=info.limit_per_variant,
            )
        )
        await self.redis.set(drop_info_key(info.drop_id), _drop_codec[0].encode(info))
        order_key = show_drops_key(info.show_id)
        if await self.redis.zscore(order_key, info.drop_id) is None:
            last = await self.redis.zrange(order_key, -1, -1, withscores=True)
            await self.redis.zadd(order_key, {info.drop_id: (last[0][1] + 1) if last else 1}, nx=True)
        if info.variants:
            # Each variant's SKU names its unit of stock; the drop's own SKU sells nothing.
            for v in info.variants:  # one SET each: SKU keys live in many Cluster slots
                await self.redis.set(sku_key(v.sku), unit_of(info.drop_id, v.id))
        else:
            await self.redis.set(sku_key(info.sku), info.drop_id)
        return info

    async def get_drop(self, drop_id: str) -> DropInfo | None:
        raw = await self.redis.get(drop_info_key(drop_id))
        return None if raw is None else _drop_codec[1].decode(raw)

    async def drop_ids(self, show_id: str) -> list[str]:
        """The show's drops in run-of-show order."""
        return [m.decode() for m in await self.redis.zrange(show_drops_key(show_id), 0, -1)]

    async def drops(self, show_id: str) -> list[DropInfo]:
        found = [await self.get_drop(drop_id) for drop_id in await self.drop_ids(show_id)]
        return [d for d in found if d is not None]

    async def reorder(self, show_id: str, drop_ids: list[str]) -> list[str]:
        """Set the run-of-show order; ids not in the show are refused, ids left out keep
        their place after the ones given."""
        current = await self.drop_ids(show_id)
        unknown = set(drop_ids) - set(current)
        if unknown:
            raise KeyError(sorted(unknown))
        ordered = list(dict.fromkeys(drop_ids)) + [d for d in current if d not in drop_ids]
        if ordered:  # ZADD with nothing to add is an error, not a no-op
            await self.redis.zadd(show_drops_key(show_id), {d: i + 1 for i, d in enumerate(ordered)})
        return ordered

    async def drop_for_sku(self, sku: str) -> str | None:
        """The unit that sells ``sku`` (the latest one created for it): how platform order
        lines, which know only SKUs, find their drop — its id, or ``<drop>~<variant>`` for a
        variant's SKU (``server.shows.variants.split_unit``)."""
        raw = await self.redis.get(sku_key(sku))
        return None if raw is None else raw.decode()
