"""Fixtures of the chat tests: a show with two drops, host actions on it, tokens with names."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from broadcast.hub import Hub
from server.shows.actions import HostActions
from server.shows.catalog import Catalog, DropInfo, Show
from server.shows.node import ShowNode
from server.viewers.tokens import mint
from stock import StockEngine
from tests.support.servers import VIEWER_SECRET


@pytest.fixture
async def host(redis: Redis) -> AsyncIterator[HostActions]:
    engine = StockEngine(redis)
    catalog = Catalog(redis, engine)
    live = ShowNode(redis=redis, engine=engine, catalog=catalog, hub=Hub(), node_id="chat-test")
    await catalog.put_show(Show(show_id="s1", title="Chat show"))
    await catalog.put_drop(DropInfo(drop_id="d1", show_id="s1", sku="SKU-1", title="Sneaker", total=5))
    await catalog.put_drop(
        DropInfo(drop_id="d2", show_id="s1", sku="SKU-2", title="Tee", total=3, per_customer_limit=2)
    )
    yield HostActions(engine, catalog, live)


def chat_token(viewer: str, name: str = "", role: str = "", show: str = "s1") -> str:
    """A viewer token with a chat display name (and a role)."""
    return mint(VIEWER_SECRET.encode(), show, viewer, name=name or viewer.title(), role=role)
