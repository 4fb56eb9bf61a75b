"""A small test client for the viewer protocol over a real WebSocket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from server.viewers.auth import subprotocols
from tests.support.util import scaled

Frame = dict[str, Any]


class Viewer:
    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.frames: list[Frame] = []
        self._seen = 0

    @classmethod
    async def connect(cls, url: str, token: str | None = None) -> Viewer:
        """Connect to ``url``; ``token`` goes in the Sec-WebSocket-Protocol header (a token in
        ``url``'s query, the old form, works too)."""
        offered = [Subprotocol(p) for p in subprotocols(token)] if token else None
        conn = await connect(url, compression=None, open_timeout=scaled(10), max_size=2**20, subprotocols=offered)
        return cls(conn)

    async def send(self, frame: Frame | str) -> None:
        await self.conn.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def next(self, timeout: float = 5.0) -> Frame:
        async with asyncio.timeout(scaled(timeout)):
            raw = await self.conn.recv()
        frame: Frame = json.loads(raw)
        self.frames.append(frame)
        return frame

    async def until(self, kind: str, timeout: float = 5.0, **match: Any) -> Frame:
        """The next frame of type ``kind`` (and matching fields), skipping others."""
        async with asyncio.timeout(scaled(timeout)):
            while True:
                frame = await self.next(timeout=timeout)
                if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
                    return frame

    def seqs(self) -> list[int]:
        return [f["seq"] for f in self.frames if "seq" in f and f["type"] != "welcome"]

    async def close(self) -> None:
        await self.conn.close()
