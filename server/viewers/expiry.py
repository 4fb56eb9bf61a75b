"""A viewer token's ``exp`` holds for the whole connection, not only for its handshake.

Without this a token checked once at the upgrade kept reserving for as long as the socket lived:
a day-old link stayed a valid key. At ``exp`` the connection is closed with 4401
``token_expired`` (docs/protocol.md): the client gets a fresh token from its backend and
reconnects with it, resuming where it was (``@livedrop/client`` asks its token hook once).
``exp`` is on this node's wall clock, as the handshake's check is (``server.viewers.tokens``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Final

from starlette.websockets import WebSocket, WebSocketDisconnect

from broadcast.hub import Connection

CLOSE_TOKEN_EXPIRED: Final = 4401
REASON: Final = "token_expired"

_closing: set[asyncio.Task[None]] = set()


def close_at_expiry(
    websocket: WebSocket, viewer: Connection, exp: float, counted: Callable[[], None] | None = None
) -> asyncio.TimerHandle:
    """Close the connection with 4401 at ``exp`` (epoch seconds), calling ``counted`` (a metric)
    if it was still open; cancel the handle when the connection ends first."""
    loop = asyncio.get_running_loop()

    def expire() -> None:
        if counted is not None and not viewer.closed:
            counted()
        task = loop.create_task(_close(websocket, viewer), name="token-expired")
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    return loop.call_later(max(0.0, exp - time.time()), expire)


async def _close(websocket: WebSocket, viewer: Connection) -> None:
    if viewer.closed:
        return
    viewer.closed = True  # nothing more is written to it: the close frame is its last
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
        await websocket.close(CLOSE_TOKEN_EXPIRED, REASON)
