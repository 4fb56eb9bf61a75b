"""A WebSocket of JSON frames for Locust users: ``websocket-client`` plus a reader greenlet.

Locust runs on gevent, where asyncio clients do not work (DESIGN §9). ``websocket-client`` is
a plain blocking client, so under gevent's patched sockets one greenlet can sit in ``recv``
while the user's tasks send: the reader hands every frame to a callback with the time it
arrived, and reports the close code when the server ends the connection (1012 node shutting
down, 1013 too slow...) so the user can resume elsewhere.
"""

from __future__ import annotations

import json
import logging
import struct
import time
from collections.abc import Callable
from typing import Any

import gevent
import websocket

Frame = dict[str, Any]
FrameHandler = Callable[[Frame, int, float], None]  # frame, its size in bytes, arrival (time.time())
CloseHandler = Callable[[int | None, str], None]  # close code (None: connection lost), reason

logger = logging.getLogger("loadtest.ws")

ABNORMAL = None  # no close frame: the TCP connection was lost (a node killed with SIGKILL)


class FrameSocket:
    """One viewer connection. ``connect`` raises ``OSError``/``websocket.WebSocketException``
    when the server cannot be reached or refuses the upgrade."""

    def __init__(self, url: str, on_frame: FrameHandler, on_close: CloseHandler, timeout: float = 10.0) -> None:
        self.url = url
        self.on_frame = on_frame
        self.on_close = on_close
        self.timeout = timeout
        self._ws: Any = None
        self._reader: gevent.Greenlet | None = None
        self._closing = False

    @property
    def connected(self) -> bool:
        return self._ws is not None and bool(self._ws.connected)

    def connect(self) -> None:
        # No permessage-deflate (the server has it off by default), no UTF-8 validation of our
        # own: the JSON decoder checks the bytes anyway.
        ws = websocket.create_connection(self.url, timeout=self.timeout, skip_utf8_validation=True)
        ws.settimeout(None)  # frames may be minutes apart between drops; keepalive is the server's ping
        self._ws = ws
        self._closing = False
        self._reader = gevent.spawn(self._read, ws)

    def send(self, frame: Frame) -> None:
        ws = self._ws
        if ws is None:
            raise websocket.WebSocketConnectionClosedException("not connected")
        ws.send(json.dumps(frame, separators=(",", ":")))

    def close(self) -> None:
        """Close from our side; the close handler is not called for a close we asked for."""
        self._closing = True
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close(timeout=1)
            except (OSError, websocket.WebSocketException):
                pass
        reader, self._reader = self._reader, None
        if reader is not None and reader is not gevent.getcurrent():
            reader.kill(block=False)

    def _read(self, ws: Any) -> None:
        code: int | None = ABNORMAL
        reason = ""
        try:
            while True:
                opcode, frame = ws.recv_data_frame()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    data = frame.data or b""
                    if len(data) >= 2:
                        code = struct.unpack("!H", data[:2])[0]
                        reason = data[2:].decode("utf-8", "replace")
                    else:
                        code = 1005  # no status in the close frame
                    break
                arrived = time.time()
                data = frame.data
                try:
                    decoded = json.loads(data)
                except ValueError:
                    continue
                if isinstance(decoded, dict):
                    try:
                        self.on_frame(decoded, len(data), arrived)
                    except Exception:
                        # A bug in a handler must not silently stop this viewer from reading.
                        logger.exception("frame handler failed on %s", decoded.get("type"))
        except (OSError, websocket.WebSocketException) as exc:
            reason = str(exc)
        if self._ws is ws:
            self._ws = None
        try:
            ws.close(timeout=0.5)
        except (OSError, websocket.WebSocketException):
            pass
        if not self._closing:
            self.on_close(code, reason)
