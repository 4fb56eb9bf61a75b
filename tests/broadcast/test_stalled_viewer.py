"""A viewer that completes the handshake and stops reading loses its socket and its memory.

The viewers here are raw TCP sockets with a tiny receive window that never read again. The
checks are on the server's side of each connection: gone from the kernel's table (not merely
sent a close frame that can never pass the full buffer), and no longer counted by the node.
``LIVEDROP_STALL_ROUNDS`` repeats the scenario (the task asks for it to be run in a loop).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from redis.asyncio import Redis

from broadcast.feed import Feed
from server.ops.local_redis import LocalRedis
from server.shows.catalog import Catalog, Show
from server.viewers.protocol import MAX_FRAME_BYTES
from stock import StockEngine
from tests.support.metrics_scrape import scrape
from tests.support.servers import Node
from tests.support.util import scaled
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]

ROUNDS = int(os.environ.get("LIVEDROP_STALL_ROUNDS", "1"))
STALLED_PER_ROUND = 5
PAD = "x" * 50_000


linux_only = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the kernel's TCP table (Linux)")


def _established(server_port: int, client_port: int) -> bool:
    """Whether the server's end of one loopback connection is still in the kernel's table."""
    local = f"0100007F:{server_port:04X}"
    remote = f"0100007F:{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return True  # any state but gone: ESTABLISHED, or FIN_WAIT with the data still queued
    return False


def _stalled_viewer(port: int) -> socket.socket:
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    raw.connect(("127.0.0.1", port))
    raw.sendall(
        b"GET /ws/shows/s1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    raw.settimeout(scaled(10))
    assert raw.recv(4096).startswith(b"HTTP/1.1 101")  # then never read again
    return raw


async def _until(check: Callable[[], bool], timeout: float) -> None:
    """Poll ``check`` until it holds; the timeout only bounds a failure (and is scaled)."""
    async with asyncio.timeout(scaled(timeout)):
        while not check():
            await asyncio.sleep(0.05)


async def _connections(node: Node) -> float:
    return (await scrape(node.http))["livedrop_viewer_connections"]


class PortableNode(Node):
    """A node on uvicorn's wsproto protocol: the fast path does not apply, every viewer goes
    through the portable ASGI path (what a uvicorn outside the checked range used to get)."""

    def argv(self) -> list[str]:
        return [
            *(sys.executable, "-m", "uvicorn", "server.app:create_app", "--factory", "--port", str(self.port)),
            *("--loop", "uvloop", "--ws", "wsproto", "--ws-max-size", str(MAX_FRAME_BYTES), "--log-level", "warning"),
        ]


NODE_ENV = {"LIVEDROP_SLOW_AFTER": "0.5", "LIVEDROP_OUTBOX_LIMIT": str(64 << 20)}


@linux_only
async def test_stalled_viewers_lose_their_tcp_connection(nodes: NodeFactory, redis: Redis) -> None:
    node = nodes(env=NODE_ENV)
    await _stalls(node, redis, "sansio")


@linux_only
async def test_stalled_viewers_lose_their_tcp_connection_on_the_portable_path(
    redis: Redis, redis_server: LocalRedis, tmp_path: Path
) -> None:
    node = PortableNode(redis_server.url, tmp_path, NODE_ENV).start()
    try:
        await _stalls(node, redis, "asgi")
    finally:
        node.stop()


async def _stalls(node: Node, redis: Redis, path: str) -> None:
    await Catalog(redis, StockEngine(redis)).put_show(Show(show_id="s1", title="Stalls"))
    feed = Feed(redis)
    # A healthy viewer that reads throughout: it must get every frame, in order.
    healthy = await Viewer.connect(node.ws("s1"))
    await healthy.next()
    closed_before = 0.0
    for _ in range(ROUNDS):
        stalled = [_stalled_viewer(node.port) for _ in range(STALLED_PER_ROUND)]
        try:
            await _stall_round(node, feed, healthy, stalled)
        finally:
            for raw in stalled:
                raw.close()
        samples = await scrape(node.http)
        assert samples["livedrop_viewer_connections"] == 1.0, samples  # the healthy viewer only
        closed = samples["livedrop_slow_closed_total"]
        assert closed >= closed_before + STALLED_PER_ROUND
        closed_before = closed
    assert samples[f'livedrop_viewer_send_path_total{{path="{path}"}}'] == 1 + ROUNDS * STALLED_PER_ROUND
    await healthy.close()


async def _stall_round(node: Node, feed: Feed, healthy: Viewer, stalled: list[socket.socket]) -> None:
    """Stall ``stalled`` under ~5 MB of frames each; returns once the server dropped them all."""
    first = healthy.seqs()[-1] if healthy.seqs() else healthy.frames[0]["seq"]
    ports = [s.getsockname()[1] for s in stalled]
    async with asyncio.timeout(scaled(10)):
        while await _connections(node) < STALLED_PER_ROUND + 1:
            await asyncio.sleep(0.05)
    # ~5 MB per viewer: past what the kernel queues for a 4 KiB receive window, so each
    # stalled transport pauses; the outbox bound is far away, so only the clock closes them.
    # Publishing stops with the transports paused and (often) nothing parked: the case the
    # hub used to leave open forever.
    reader = asyncio.create_task(_read_until(healthy, first + 100))
    for _ in range(100):
        await feed.publish("s1", "show", msgspec.json.encode({"show": "s1", "state": "live", "pad": PAD}))
    await reader
    for port in ports:
        await _until(lambda port=port: not _established(node.port, port), 15)  # type: ignore[misc]


async def _read_until(viewer: Viewer, last: int) -> None:
    """Read every frame up to seq ``last``: the healthy viewer keeps getting them all, in order."""
    seqs: list[int] = []
    while not seqs or seqs[-1] < last:
        frame = await viewer.next(timeout=30)
        if "seq" in frame and frame["type"] != "welcome":
            seqs.append(frame["seq"])
    assert seqs == list(range(seqs[0], last + 1)), seqs
