"""Host actions, shared by the HTTP API, the demo and the tests: each changes stock through
the engine and announces the change to viewers through the show's feed."""

from __future__ import annotations

from server.keys import launch_key
from server.shows.catalog import Catalog, DropInfo, Show
from server.shows.clock import redis_now_ms
from server.shows.node import ShowNode, viewers_now
from server.shows.sweeper import enlist
from stock import StockEngine, UnknownDrop
from stock.types import AdjustResult, StateChange


class HostActions:
    def __init__(self, engine: StockEngine, catalog: Catalog, live: ShowNode) -> None:
        self.engine = engine
        self.catalog = catalog
        self.live = live

    async def create_show(self, show: Show) -> Show:
        return await self.catalog.put_show(show)

    async def add_drop(self, info: DropInfo) -> DropInfo:
        return await self.catalog.put_drop(info)

    async def launch(self, drop_id: str, duration_seconds: float | None = None) -> StateChange:
        """Open a drop (with its configured duration unless one is given) and announce it."""
        info = await self.catalog.get_drop(drop_id)
        if info is None:
            raise UnknownDrop(drop_id)
        await enlist(self.engine.redis, drop_id)  # every node sweeps it from its first second
        change = await self.engine.open(drop_id, duration_seconds=duration_seconds or info.duration_seconds)
        if change.changed:
            # The audience at launch: the denominator of the drop's conversion.
            viewers = await viewers_now(self.live, info.show_id)
            await self.engine.redis.hset(
                launch_key(drop_id), mapping={"viewers": viewers, "at": await redis_now_ms(self.engine.redis)}
            )
        await self.live.publish_drop(drop_id)
        return change

    async def end(self, drop_id: str, reason: str = "host") -> StateChange:
        """End a drop. The end is announced from the drop's ledger by whichever node sees it
        (once, deduplicated), and here too in case no node has viewers for the show."""
        info = await self.catalog.get_drop(drop_id)
        if info is None:
            raise UnknownDrop(drop_id)
        change = await self.engine.close(drop_id, reason)
        if change.changed:
            closed_at = (await self.engine.snapshot(drop_id)).closed_at_ms
            await self.live.publish_drop_ended(info.show_id, drop_id, reason, closed_at)
        return change

    async def restock(self, drop_id: str, delta: int, request_id: str, variant: str = "") -> AdjustResult:
        """Restock (or withdraw from) a drop, or one ``variant`` of a drop with variants."""
        return await self.engine.adjust(drop_id, delta, request_id, variant)
