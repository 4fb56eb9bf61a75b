"""A viewer who reconnects over and over (a phone flapping between Wi-Fi and mobile data) to a
show nobody else watches on the node gets every welcome promptly: the show's last viewer leaving
(unsubscribe) never holds up the next one's join. It once waited ~1.7 s, behind a blocking
stream read that the unsubscribe waited out. Figures: bench/reconnect.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from redis.asyncio import Redis

from server.shows.catalog import Catalog, DropInfo, Show
from server.viewers.tokens import mint
from stock import StockEngine
from tests.support.servers import VIEWER_SECRET, Node
from tests.support.util import scaled
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]


async def test_fifty_reconnects_each_get_their_welcome_promptly(nodes: NodeFactory, redis: Redis) -> None:
    engine = StockEngine(redis)
    catalog = Catalog(redis, engine)
    await catalog.put_show(Show(show_id="s1", title="Quiet show"))
    await catalog.put_drop(DropInfo(drop_id="d1", show_id="s1", sku="S-1", title="Sneaker", total=5))
    node = nodes()
    token = mint(VIEWER_SECRET.encode(), "s1", "v-flapping")
    waits: list[float] = []
    last: dict[str, object] | None = None
    for _ in range(50):
        query = f"resume_from={last['seq']}&epoch={last['epoch']}" if last else ""
        started = time.perf_counter()
        viewer = await Viewer.connect(node.ws("s1", query), token)
        first = await viewer.next(timeout=10)
        waits.append(time.perf_counter() - started)
        if first["type"] == "welcome":
            last = first
        await viewer.close()  # the show's only viewer leaves: the node unsubscribes
        await asyncio.sleep(0.05)  # time enough for the node's reader to block again
    waits.sort()
    # Generous: welcomes take ~10 ms here; the bug made them wait out a 2 s blocking read.
    assert waits[-1] < scaled(1.0), f"slowest welcomes {[round(w, 3) for w in waits[-5:]]} s"
