"""The fast send path (broadcast/transport.py) is what a real ``livedrop serve`` uses.

Falling back to the portable path is silent (every frame still arrives, at two thirds of the
throughput, and a stalled viewer is harder to drop), so these tests fail when it happens: a
uvicorn outside the checked range, or a protocol object the fast path does not recognise.
"""

from __future__ import annotations

import asyncio
import inspect
import tomllib
from collections.abc import Callable
from pathlib import Path

import uvicorn
from packaging.requirements import Requirement
from packaging.version import Version
from redis.asyncio import Redis
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from broadcast.transport import UVICORN_CHECKED
from server.shows.catalog import Catalog, Show
from stock import StockEngine
from tests.support import paths
from tests.support.metrics_scrape import scrape
from tests.support.servers import Node
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]


def _version(parts: tuple[int, int, int]) -> Version:
    return Version(".".join(map(str, parts)))


def test_the_dependency_bound_is_the_checked_range() -> None:
    """pyproject.toml must not let an install pick a uvicorn whose protocol was not read."""
    project = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]
    spec = next(Requirement(d) for d in project["dependencies"] if Requirement(d).name == "uvicorn").specifier
    low, high = (_version(v) for v in UVICORN_CHECKED)
    assert low in spec and Version(uvicorn.__version__) in spec
    assert high not in spec, f"uvicorn{spec} allows {high}, past the checked range {UVICORN_CHECKED}"
    assert {(s.operator, Version(s.version)) for s in spec} == {(">=", low), ("<", high)}


def test_the_sansio_protocol_still_has_what_the_fast_path_uses() -> None:
    """What SansIOSocket relies on, checked on the installed class (not only its version)."""
    for attribute in ("pause_writing", "resume_writing", "connection_lost", "send"):
        assert callable(getattr(WebSocketsSansIOProtocol, attribute))
    source = Path(inspect.getfile(WebSocketsSansIOProtocol)).read_text()
    for needle in (
        "self.writable = asyncio.Event()",
        "self.writable.clear()",
        "self.writable.set()",
        "await self.writable.wait()",
        "self.disconnected = True",
        "self.conn = ServerProtocol(",
    ):
        assert needle in source, needle


async def test_a_real_node_serves_viewers_on_the_fast_path(nodes: NodeFactory, redis: Redis) -> None:
    await Catalog(redis, StockEngine(redis)).put_show(Show(show_id="s1", title="Fast path"))
    node = nodes()
    viewers = [await Viewer.connect(node.ws("s1")) for _ in range(3)]
    for viewer in viewers:
        assert (await viewer.next())["type"] == "welcome"
    samples = await scrape(node.http)
    paths = {k: v for k, v in samples.items() if k.startswith("livedrop_viewer_send_path_total{")}
    assert paths == {'livedrop_viewer_send_path_total{path="sansio"}': 3.0}, paths
    await asyncio.gather(*(v.close() for v in viewers))
