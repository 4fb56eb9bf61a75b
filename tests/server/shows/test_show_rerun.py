"""A show that is ended, restarted and ended again: every end reaches the viewers.

``show_ended`` is deduplicated so that several nodes ending the same show publish it once; the
dedupe used to be permanent, so a restarted show could never be ended for its viewers again.
"""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis

from tests.server.shows.test_hub_nodes import make_host
from tests.support.servers import Node
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]


async def test_a_restarted_show_ends_again_for_its_viewers(nodes: NodeFactory, redis: Redis) -> None:
    host = await make_host(redis)
    node = nodes()
    viewer = await Viewer.connect(node.ws("s1"))
    assert (await viewer.next())["type"] == "welcome"

    await host.live.start_show("s1")
    await viewer.until("show")
    first = await host.live.end_show("s1")
    assert await host.live.end_show("s1") == first  # a second node ending the same run: once
    assert (await viewer.until("show_ended"))["seq"] == first

    await host.live.start_show("s1")
    assert (await viewer.until("show"))["state"] == "live"
    second = await host.live.end_show("s1")
    assert second > first
    assert (await viewer.until("show_ended"))["seq"] == second
    assert [f["type"] for f in viewer.frames if "seq" in f][1:] == ["show", "show_ended", "show", "show_ended"]

    # A viewer arriving now is told the show is over.
    late = await Viewer.connect(node.ws("s1"))
    assert (await late.next())["state"] == "ended"
    for v in (viewer, late):
        await v.close()
