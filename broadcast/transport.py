"""Non-awaiting writes to a viewer's socket: the hub's hot path.

The textbook design (a queue and a writer task per viewer) fell to about a quarter of the
throughput of plain sends from one loop (DESIGN §8). So the broadcast loop writes to each socket
itself and never awaits one: a write the transport takes at once is done; a viewer whose
transport is paused (its send would wait) is reported as ``WOULD_WAIT`` and set aside by the
hub. Two implementations:

* ``SansIOSocket``, the fast path under uvicorn's websockets-sansio protocol: the frame is
  serialised once per node (``Message.framed``) and the same bytes are written to every
  transport, with the protocol's own ``writable`` event (cleared by ``pause_writing``) telling
  a paused transport. ``capture_sansio`` finds the protocol object behind ASGI's ``send``; it
  is checked against the uvicorn releases whose code was read (``UVICORN_CHECKED``).
* ``AsgiSocket``, the portable path for any other ASGI server: it steps the ASGI ``send``
  coroutine once by hand; a server whose ``send`` only suspends for backpressure finishes a
  writable send in that step, and a send that would wait is abandoned before it wrote anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import struct
from collections.abc import MutableMapping
from typing import Any, Final, Protocol

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from websockets.protocol import State

EXTENSION: Final = "livedrop.transport"
# uvicorn releases whose WebSocketsSansIOProtocol was read for the fast path: ``send`` awaits
# ``writable``, ``pause_writing``/``resume_writing`` clear/set it, ``conn`` is a websockets
# ServerProtocol, ``disconnected`` turns True in ``connection_lost``. 0.52.4 is the first with
# write backpressure; 0.55.0 only added a handshake-error path and ``initial_response`` checks,
# and sets ``writable`` in ``connection_lost`` (harmless: ``disconnected`` is checked first).
# The upper bound is exclusive and matches pyproject.toml's, so a fresh install always gets a
# release that was read. Re-read the protocol before widening both.
UVICORN_CHECKED: Final = ((0, 52, 4), (0, 56, 0))


# Seconds a connection found closing may take to finish its close before it is reset: uvicorn's
# own closing handshake timeout (``close_timeout``), after which it only closes gracefully.
CLOSING_GRACE: Final = 10.0


class SendResult(enum.Enum):
    SENT = "sent"
    # Written, and the write filled the transport past its high-water mark (it paused): the
    # next write would wait. The hub starts the slow-viewer clock now, not at the next frame,
    # or a viewer that stalls after the last frame of a burst is never closed.
    SENT_PAUSED = "sent_paused"
    WOULD_WAIT = "would_wait"  # transport paused: nothing written, the viewer is set aside
    GONE = "gone"  # closing or closed


class Message:
    """One server frame, serialised once per node and shared by every viewer's write."""

    __slots__ = ("_framed", "_text", "bulk", "floor", "key", "payload", "seq")

    def __init__(
        self, payload: bytes, key: str | None = None, seq: int | None = None, floor: bool = False, bulk: bool = False
    ) -> None:
        self.payload = payload
        self.key = key  # conflation key: a later message with the same key replaces this one
        # The show's seq this frame carries. A viewer is never sent a seq'd frame at or below
        # the last seq it has (the hub skips it): a welcome or a replay already covered it.
        self.seq = seq
        # A welcome: its ``seq`` *sets* the viewer's position (it may go back after a reset).
        self.floor = floor
        # Bulk (a show's chat): other frames of the show go out before it, even while it is being
        # broadcast (``Hub._broadcast``), so a drop never waits behind chat for a large audience.
        self.bulk = bulk
        self._framed: bytes | None = None
        self._text: str | None = None

    @property
    def framed(self) -> bytes:
        """The whole WebSocket text frame as a server sends it (RFC 6455 §5.2: FIN, opcode 1,
        no mask, no extension)."""
        if self._framed is None:
            self._framed = frame_text(self.payload)
        return self._framed

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self.payload.decode()
        return self._text


def frame_text(payload: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x81, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + payload


class ViewerSocket(Protocol):
    def try_write(self, message: Message) -> SendResult: ...

    async def wait_writable(self) -> None: ...

    @property
    def buffered(self) -> int: ...

    def close_slow(self, code: int, grace: float) -> None: ...


class AsgiSocket:
    """Portable path: steps Starlette's ``WebSocket.send`` once, never suspends the caller.

    ``transport`` is the server's asyncio transport when it could be reached (every uvicorn
    protocol has one): a close frame cannot pass a stalled viewer's full buffer, and without
    an abort the connection would stay open, and counted, for as long as the peer lives."""

    __slots__ = ("transport", "websocket")

    def __init__(self, websocket: WebSocket, transport: Any = None) -> None:
        self.websocket = websocket
        self.transport = transport

    def try_write(self, message: Message) -> SendResult:
        if self.websocket.application_state is not WebSocketState.CONNECTED:
            return SendResult.GONE
        step = self.websocket.send({"type": "websocket.send", "text": message.text})
        try:
            step.send(None)
        except StopIteration:
            return SendResult.SENT
        except (WebSocketDisconnect, OSError, RuntimeError):
            return SendResult.GONE
        # Suspended before writing (waiting for the transport to drain): abandon this send;
        # closing the coroutine unwinds its wait, no byte of the frame was written.
        step.close()
        return SendResult.WOULD_WAIT

    async def wait_writable(self) -> None:
        await asyncio.sleep(0.05)  # no portable signal: poll

    @property
    def buffered(self) -> int:
        return 0

    def close_slow(self, code: int, grace: float) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            reset_on_close(transport)

        async def close() -> None:
            try:
                async with asyncio.timeout(grace):
                    await self.websocket.close(code, "slow")
            except (TimeoutError, RuntimeError, OSError):
                pass
            if transport is not None:
                transport.abort()  # unconditionally: aborting a transport that is gone does nothing

        _background(asyncio.get_running_loop().create_task(close()))


class SansIOSocket:
    """Fast path: writes ``Message.framed`` straight to uvicorn's transport."""

    __slots__ = ("_conn", "_proto", "_transport", "_watched", "_writable")

    def __init__(self, proto: Any) -> None:
        self._proto = proto
        self._conn = proto.conn
        self._transport = proto.transport
        self._writable: asyncio.Event = proto.writable
        self._watched = False

    def try_write(self, message: Message) -> SendResult:
        if self._proto.disconnected or self._conn.state is not State.OPEN or self._transport.is_closing():
            self._watch_closing()
            return SendResult.GONE
        if not self._writable.is_set():
            return SendResult.WOULD_WAIT
        if self._conn.extensions:  # permessage-deflate negotiated: frame per viewer
            self._conn.send_text(message.payload)
            self._transport.write(b"".join(self._conn.data_to_send()))
        else:
            self._transport.write(message.framed)
        return SendResult.SENT if self._writable.is_set() else SendResult.SENT_PAUSED

    async def wait_writable(self) -> None:
        await self._writable.wait()

    @property
    def buffered(self) -> int:
        return int(self._transport.get_write_buffer_size())

    def close_slow(self, code: int, grace: float) -> None:
        """Queue a close frame past the paused transport's buffer, and drop the TCP connection
        after ``grace`` seconds whatever happened meanwhile: a stalled viewer never reads the
        close. The connection is reset, not closed (``reset_on_close``): the viewer is being
        dropped for being slow. ``abort()`` on a transport that is already gone does nothing,
        so it always runs; uvicorn then delivers ``websocket.disconnect`` to the endpoint,
        which leaves the hub and the connection gauge. (A transport found closing on its own,
        reported ``GONE``, is seen to by ``_watch_closing``.)"""
        if not self._proto.disconnected:  # else the socket is closed already (its fd may be reused)
            reset_on_close(self._transport)
        if self._conn.state is State.OPEN and not self._transport.is_closing():
            self._conn.send_close(code, "slow")
            self._transport.write(b"".join(self._conn.data_to_send()))
        asyncio.get_running_loop().call_later(grace, self._transport.abort)

    def _watch_closing(self) -> None:
        """A connection found closing (a keepalive timeout, a close handshake) behind a buffer
        its peer no longer reads would stay open for as long as the peer lives: reset it if it
        is still there after CLOSING_GRACE. Not at once: a normal close must not lose its
        close frame to a reset."""
        if not self._watched and not self._proto.disconnected:
            self._watched = True
            asyncio.get_running_loop().call_later(CLOSING_GRACE, self._reset_if_stuck)

    def _reset_if_stuck(self) -> None:
        if not self._proto.disconnected:  # else the fd is closed already (and may be reused)
            reset_on_close(self._transport)
            self._transport.abort()


def reset_on_close(transport: Any) -> None:
    """Make closing this socket drop what the kernel still queues for the peer (SO_LINGER 0:
    a reset). ``abort()`` only discards the transport's own buffer: the kernel went on trying
    to deliver a stalled viewer's ~3 MB for minutes, the server's end of the connection an
    orphan in FIN_WAIT1 holding that memory."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _uvicorn_checked() -> bool:
    try:
        version = tuple(int(part) for part in uvicorn.__version__.split(".")[:3])
    except ValueError:
        return False
    low, high = UVICORN_CHECKED
    return low <= version < high


def sansio_protocol(send: Send) -> Any | None:
    """uvicorn's protocol object behind an ASGI ``send``, when the fast path applies."""
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    proto = getattr(send, "__self__", None)
    if not _uvicorn_checked() or not isinstance(proto, WebSocketsSansIOProtocol):
        return None
    if not isinstance(getattr(proto, "writable", None), asyncio.Event):
        return None
    return proto


_tasks: set[asyncio.Task[None]] = set()


def _background(task: asyncio.Task[None]) -> None:
    """Keep a fire-and-forget task referenced until it finishes (the loop holds weak refs)."""
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def _server_transport(send: Send) -> Any:
    """The asyncio transport of the server protocol behind ``send``, when it exposes one (every
    uvicorn WebSocket protocol does): the portable path's last resort for a stalled viewer."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    # Duck-typed: uvloop's TCPTransport is not an asyncio.Transport subclass.
    needed = ("abort", "is_closing", "get_extra_info")
    return transport if all(callable(getattr(transport, name, None)) for name in needed) else None


# What uvicorn's sansio protocol logs, with a traceback at ERROR, for every text frame that is
# not UTF-8. It answers the client with 1007 itself; one client could flood the log with it.
_INVALID_UTF8 = "Invalid UTF-8 sequence received from client."


class QuietClientErrors(logging.Filter):
    """Turns uvicorn's log of a client's bad UTF-8 into an INFO line without a traceback: a
    client's bad input is not a server error (it still shows when the log level is INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != _INVALID_UTF8:
            return True
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.INFO, "INFO"
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


def quiet_client_errors(logger: logging.Logger) -> None:
    """Install ``QuietClientErrors`` on ``logger`` once."""
    if not any(isinstance(f, QuietClientErrors) for f in logger.filters):
        logger.addFilter(QuietClientErrors())


class CaptureTransport:
    """Outermost ASGI middleware: records the server's protocol object for each WebSocket in
    ``scope["extensions"]["livedrop.transport"]`` so the endpoint can write without awaiting.
    It must wrap the app directly: another middleware wrapping ``send`` hides the protocol,
    and the endpoint then falls back to the portable path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        quiet_client_errors(logging.getLogger("uvicorn.error"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            extensions: MutableMapping[str, Any] = scope.get("extensions") or {}
            extensions[EXTENSION] = {"protocol": sansio_protocol(send), "transport": _server_transport(send)}
            scope["extensions"] = extensions
        await self.app(scope, receive, send)


def socket_for(websocket: WebSocket) -> AsgiSocket | SansIOSocket:
    """The fastest socket writer available for this (accepted) WebSocket."""
    captured = (websocket.scope.get("extensions") or {}).get(EXTENSION, {})
    found = captured.get("protocol")
    if found is not None:
        return SansIOSocket(found)
    return AsgiSocket(websocket, captured.get("transport"))
