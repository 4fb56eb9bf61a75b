"""Non-blocking send paths for the hub: write now if the transport takes it, else say so without waiting.

Three ways to do it, measured by ``bench.fanout_ceiling``:

* ``send_nowait`` (variant D1) — pure ASGI. It drives the ASGI ``send`` coroutine one step by hand. Under
  uvicorn's websockets-sansio protocol ``send`` starts with ``await self.writable.wait()``; an
  ``asyncio.Event`` that is set returns without suspending, so a send to a writable transport finishes in
  that one step. If the transport is paused the coroutine suspends on the event before it has written
  anything: we close it (nothing is sent) and report ``WOULD_WAIT``.
* ``SansIOTransport`` (variants D2, D3) — the version-pinned hook. ``SansIOHook``, the outermost ASGI
  middleware, receives uvicorn's ``send``, a bound method of ``WebSocketsSansIOProtocol``; through it the
  hub reads ``writable`` (cleared by ``pause_writing``) and writes to the transport itself, with no
  coroutine and no ASGI message per socket.
* ``websockets_write`` (variant E) — the same on the ``websockets`` library's own server, where
  ``Connection.transport`` / ``.protocol`` / ``.paused`` are the attributes ``websockets.broadcast`` uses.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import MutableMapping
from typing import Any, Final

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

SANSIO_EXTENSION: Final = "livedrop.sansio"
# uvicorn releases whose WebSocketsSansIOProtocol was read for this hook (``send`` awaits ``writable``,
# ``pause_writing``/``resume_writing`` clear/set it, ``conn`` is a websockets ServerProtocol). 0.52.4 is
# the first with write backpressure; re-read the module before widening the upper bound.
UVICORN_HOOK_RANGE: Final = ((0, 52, 4), (0, 55, 0))


class SendResult(enum.Enum):
    SENT = "sent"
    WOULD_WAIT = "would_wait"  # transport paused: nothing was written, the viewer is set aside
    GONE = "gone"  # closing or closed: drop the viewer


# ---------------------------------------------------------------------------------------------- D1: ASGI


def send_nowait(websocket: WebSocket, text: str) -> SendResult:
    """Send ``text`` if the server can take it without waiting; never suspends the caller.

    Relies on the server's ``send`` not suspending when its transport is writable (true of uvicorn's
    websockets-sansio and of any server that only awaits for backpressure). A send that would wait is
    abandoned before it writes: the caller keeps the frame and retries later from a task of its own.
    """
    if websocket.application_state is not WebSocketState.CONNECTED:
        return SendResult.GONE
    step = websocket.send({"type": "websocket.send", "text": text})
    try:
        step.send(None)
    except StopIteration:
        return SendResult.SENT
    except (WebSocketDisconnect, OSError, RuntimeError):
        # uvicorn raises ClientDisconnected (an OSError) once the peer is gone, RuntimeError after close.
        return SendResult.GONE
    # Suspended in ``await self.writable.wait()``: closing the coroutine raises GeneratorExit there,
    # Event.wait removes its waiter, and no byte of the frame was written.
    step.close()
    return SendResult.WOULD_WAIT


# ------------------------------------------------------------------------------- D2/D3: uvicorn hook


def hook_supported() -> bool:
    """True when the installed uvicorn is one whose sansio protocol this hook was checked against."""
    try:
        version = tuple(int(part) for part in uvicorn.__version__.split(".")[:3])
    except ValueError:
        return False
    low, high = UVICORN_HOOK_RANGE
    return low <= version < high


class SansIOTransport:
    """Direct, non-awaiting writes to one viewer of uvicorn's websockets-sansio protocol."""

    __slots__ = ("_conn", "_proto", "_transport", "_writable")

    def __init__(self, proto: WebSocketsSansIOProtocol) -> None:
        self._proto = proto
        self._conn = proto.conn
        self._transport = proto.transport
        self._writable = proto.writable

    @classmethod
    def from_send(cls, send: Send) -> SansIOTransport | None:
        """The hook: ``send`` as uvicorn passes it is ``WebSocketsSansIOProtocol.send`` bound to the
        connection. Anything else (another server, uvicorn's trace-level message logger wrapping ``send``,
        an untested uvicorn) gives None, and the caller falls back to ``send_nowait``."""
        proto = getattr(send, "__self__", None)
        if not hook_supported() or not isinstance(proto, WebSocketsSansIOProtocol):
            return None
        if not isinstance(getattr(proto, "writable", None), asyncio.Event):
            return None
        return cls(proto)

    @classmethod
    def from_scope(cls, scope: Scope) -> SansIOTransport | None:
        found = (scope.get("extensions") or {}).get(SANSIO_EXTENSION, {}).get("transport")
        return found if isinstance(found, SansIOTransport) else None

    def _state(self) -> SendResult:
        if self._conn.state is not State.OPEN or self._transport.is_closing():
            return SendResult.GONE
        if not self._writable.is_set():
            return SendResult.WOULD_WAIT
        return SendResult.SENT

    def write_framed(self, framed: bytes) -> SendResult:
        """Variant D3: write a frame serialised once for all viewers (unmasked, no extension)."""
        state = self._state()
        if state is SendResult.SENT:
            self._transport.write(framed)
        return state

    def write_text(self, payload: bytes) -> SendResult:
        """Variant D2: what uvicorn's ``send`` does for ``websocket.send``, minus ``await writable``."""
        state = self._state()
        if state is SendResult.SENT:
            self._conn.send_text(payload)
            self._transport.write(b"".join(self._conn.data_to_send()))
        return state

    @property
    def buffered(self) -> int:
        """Bytes waiting in the transport's user-space buffer (the pause threshold is its high-water mark)."""
        return self._transport.get_write_buffer_size()

    async def wait_writable(self) -> None:
        await self._writable.wait()

    def close_slow(self, code: int, grace: float) -> None:
        """Queue a close frame and abort the TCP connection after ``grace`` seconds if it is still open:
        a stalled viewer never reads its close frame, and ``transport.close()`` would wait for a buffer
        that never drains. uvicorn then delivers ``websocket.disconnect`` to the endpoint as usual."""
        if self._conn.state is State.OPEN and not self._transport.is_closing():
            self._conn.send_close(code, "slow")
            self._transport.write(b"".join(self._conn.data_to_send()))
        proto = self._proto
        asyncio.get_running_loop().call_later(grace, _abort_if_open, proto)


def _abort_if_open(proto: WebSocketsSansIOProtocol) -> None:
    if not proto.disconnected:
        proto.transport.abort()


class SansIOHook:
    """Outermost ASGI middleware: puts a ``SansIOTransport`` for each WebSocket into
    ``scope["extensions"]["livedrop.sansio"]["transport"]`` when the hook applies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            transport = SansIOTransport.from_send(send)
            if transport is not None:
                extensions: MutableMapping[str, Any] = scope.get("extensions") or {}
                extensions[SANSIO_EXTENSION] = {"transport": transport}
                scope["extensions"] = extensions
        await self.app(scope, receive, send)


# ------------------------------------------------------------------------- E: websockets' own server


def websockets_write(connection: ServerConnection, framed: bytes) -> SendResult:
    """Write a pre-serialised frame to a ``websockets`` server connection unless it is paused
    (its transport passed ``write_limit``, 32 KiB by default)."""
    if connection.protocol.state is not State.OPEN:
        return SendResult.GONE
    if connection.paused:
        return SendResult.WOULD_WAIT
    connection.transport.write(framed)
    return SendResult.SENT
