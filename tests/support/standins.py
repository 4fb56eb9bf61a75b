"""Stand-in platforms served by a real uvicorn on a free loopback port, for tests that talk to
them over real HTTP (as LiveDrop's connectors will).

The server runs in a thread with its own event loop, so a test that blocks its own loop (or a
stand-in told to hang) never stalls the other side. The loop is plain asyncio: uvloop is chosen
by entry points, never by tests (STYLE).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp

from server.ops.local_redis import free_port
from standins.base import StandIn
from tests.support.util import scaled


class Running:
    """A stand-in being served: its URL, and a sync client for its control API."""

    def __init__(self, standin: StandIn, port: int) -> None:
        self.standin = standin
        self.url = f"http://127.0.0.1:{port}"

    def control(self, method: str, verb: str, body: Any = None) -> Any:
        """Call ``/_standin/<verb>``; raise unless it answered 200."""
        response = httpx.request(method, f"{self.url}/_standin/{verb}".rstrip("/"), json=body, timeout=scaled(10))
        assert response.status_code == 200, response.text
        return response.json()

    def calls(self, path_prefix: str = "") -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = self.control("GET", "calls")["calls"]
        return [c for c in calls if c["path"].startswith(path_prefix)]


@contextlib.contextmanager
def serving(standin: StandIn, timeout: float = 10.0) -> Iterator[Running]:
    """Serve ``standin`` for the duration of the block."""
    with serving_app(standin.app, f"standin-{standin.name}", timeout) as port:
        yield Running(standin, port)


@contextlib.contextmanager
def serving_app(app: ASGIApp, name: str, timeout: float = 10.0) -> Iterator[int]:
    """Serve any ASGI ``app`` (a stand-in, or a test's own small server: a merchant's checkout) on
    a free loopback port for the duration of the block, and give the port.

    The port is free when chosen but another process may bind it first (several test runs share
    the machine); uvicorn then exits at start-up, and a new port is tried.
    """
    for _ in range(5):
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="on", loop="asyncio")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name=name, daemon=True)
        thread.start()
        deadline = time.monotonic() + scaled(timeout)
        while not server.started and thread.is_alive():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start")
            time.sleep(0.01)
        if server.started:
            break
    else:
        raise RuntimeError(f"{name} found no free port")
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(scaled(timeout))
