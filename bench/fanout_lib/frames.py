"""The frame every variant broadcasts: encoded once, with its send time inside."""

from __future__ import annotations

import time

import msgspec
from websockets.frames import Frame, Opcode

_ENCODER = msgspec.json.Encoder()
_TS_KEY = b'"ts":'


class BenchFrame(msgspec.Struct, tag="bench", tag_field="type"):
    """Shaped like a viewer frame (``type`` first); ``ts`` is the wall clock when its broadcast began."""

    ts: float
    seq: int
    show: str
    pad: str


class Wire(msgspec.Struct, frozen=True):
    """One broadcast frame in the three shapes the variants hand to their sockets."""

    payload: bytes  # UTF-8 JSON, for websockets.broadcast(text=True)
    text: str  # the same JSON as str, for ASGI websocket.send
    framed: bytes  # the whole unmasked server-side WebSocket text frame, for transport.write


def build(seq: int, size: int, show: str = "show-1") -> Wire:
    """Encode one frame of about ``size`` bytes, stamped with the current time."""
    head = BenchFrame(ts=time.time(), seq=seq, show=show, pad="")
    pad = "x" * max(0, size - len(_ENCODER.encode(head)))
    payload = _ENCODER.encode(BenchFrame(ts=head.ts, seq=seq, show=show, pad=pad))
    return Wire(
        payload=payload,
        text=payload.decode(),
        framed=Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[]),
    )


def sent_at(data: bytes, offset: int) -> float:
    """Read ``ts`` of the payload starting at ``offset`` in ``data`` without decoding the rest
    (clients call it once per received frame)."""
    start = data.find(_TS_KEY, offset, offset + 64) + len(_TS_KEY)
    return float(data[start : data.index(b",", start)])
