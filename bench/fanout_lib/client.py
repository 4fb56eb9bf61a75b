"""Viewer sockets for the fan-out benchmark, in a process of their own, driven over stdin/stdout.

    python -m bench.fanout_lib.client --port P --count 2500 [--slow 10] [--kind raw|websockets]

``raw`` (default) is a minimal RFC 6455 client on an ``asyncio.Protocol``: one handshake, then it parses
unmasked server frames straight from ``data_received`` and stamps every frame of one read with one clock
reading. It costs a few microseconds per frame, so the server, not the clients, is what saturates.
``websockets`` uses the library's asyncio client, a task per connection (heavier; for comparison).

``--slow`` of the sockets are stalled viewers: a 4 KiB receive buffer and reading paused after the
handshake, so the server's transport to them fills and pauses.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import os
import socket
import sys
import time
from typing import cast

import uvloop
from websockets.asyncio.client import ClientConnection, connect

from bench.fanout_lib import control
from bench.fanout_lib.frames import sent_at

HOST = "127.0.0.1"
CONNECT_CONCURRENCY = 200


class Tally:
    """What this process received since the last ``collect``."""

    def __init__(self) -> None:
        self.frames = 0
        self.latencies: list[float] = []
        self.last = 0.0
        self.target = 0
        self.reached = asyncio.Event()
        self.lost = 0

    def add(self, now: float, sent: float) -> None:
        self.frames += 1
        self.latencies.append(now - sent)
        self.last = now
        if self.frames == self.target:
            self.reached.set()

    def reset(self) -> None:
        self.frames = 0
        self.latencies = []
        self.last = 0.0
        self.reached.clear()


class RawViewer(asyncio.Protocol):
    def __init__(self, tally: Tally, request: bytes, ready: asyncio.Future[None]) -> None:
        self.tally = tally
        self.request = request
        self.ready = ready
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.tally.lost += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"lost during handshake: {exc}"))

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer + data if self.buffer else data
        if not self.open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(ConnectionError(buffer[:80].decode(errors="replace")))
                assert self.transport is not None
                self.transport.close()
                return
            self.open = True
            self.ready.set_result(None)
            buffer = buffer[end + 4 :]
        self.buffer = self.parse(buffer, now)

    def parse(self, buffer: bytes, now: float) -> bytes:
        tally = self.tally
        found, left = split_frames(buffer)
        for opcode, start, end in found:
            if opcode in (1, 2):
                tally.add(now, sent_at(buffer, start))
            elif opcode in (8, 9):
                self.answer(opcode, buffer[start:end])
        return left

    def answer(self, opcode: int, payload: bytes) -> None:
        """Pong a ping, echo a close; masked with a zero key (RFC 6455 requires a mask, not its value)."""
        assert self.transport is not None and len(payload) < 126
        reply = 0x8A if opcode == 9 else 0x88
        self.transport.write(bytes((reply, 0x80 | len(payload))) + b"\0\0\0\0" + payload)
        if opcode == 8:
            self.transport.close()


def handshake(port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def open_raw(port: int, path: str, tally: Tally, slow: bool) -> asyncio.Transport:
    loop = asyncio.get_running_loop()
    for attempt in range(5):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if slow:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            await loop.sock_connect(sock, (HOST, port))
        except OSError:
            sock.close()
            await asyncio.sleep(0.2 * (attempt + 1))
            continue
        ready: asyncio.Future[None] = loop.create_future()
        factory = functools.partial(RawViewer, tally, handshake(port, path), ready)
        transport, _ = await loop.create_connection(factory, sock=sock)
        await asyncio.wait_for(ready, 30)
        if slow:
            transport.pause_reading()
        return transport
    raise ConnectionError("could not connect")


async def read_websockets(connection: ClientConnection, tally: Tally) -> None:
    with contextlib.suppress(Exception):
        async for message in connection:
            data = message.encode() if isinstance(message, str) else message
            tally.add(time.time(), sent_at(data, 0))


async def open_websockets(port: int, path: str, tally: Tally, slow: bool) -> ClientConnection:
    connection = await connect(
        f"ws://{HOST}:{port}{path}", compression=None, ping_interval=None, max_queue=None, open_timeout=30
    )
    if not slow:
        asyncio.get_running_loop().create_task(read_websockets(connection, tally))
    return connection


async def run(args: argparse.Namespace) -> None:
    control.raise_nofile(args.count + 1024)
    tally = Tally()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    holders: list[object] = []

    async def one(index: int) -> None:
        async with gate:
            slow = index < args.slow
            path = f"/ws/shows/show-1?viewer={args.id}-{index}"
            if args.kind == "raw":
                holders.append(await open_raw(args.port, path, tally, slow))
            else:
                holders.append(await open_websockets(args.port, path, tally, slow))

    started = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(args.count)), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    control.reply(
        {
            "event": "connected",
            "ok": args.count - len(failed),
            "failed": len(failed),
            "error": repr(failed[0]) if failed else None,
            "seconds": time.perf_counter() - started,
        }
    )
    commands = await control.commands()
    cpu = time.process_time()
    while True:
        command = await control.next_command(commands)
        match command["cmd"]:
            case "collect":
                tally.target = command["expect"]
                if tally.frames < tally.target:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(tally.reached.wait(), command["timeout"])
                now_cpu = time.process_time()
                control.reply(
                    {
                        "frames": tally.frames,
                        "last": tally.last,
                        "lat": [round(x, 6) for x in tally.latencies],
                        "cpu": now_cpu - cpu,
                        "lost": tally.lost,
                    }
                )
                cpu = now_cpu
                tally.reset()
            case "mark":
                cpu = time.process_time()
                control.reply({"ok": True})
            case "quit":
                break
            case other:
                control.reply({"error": f"unknown command {other!r}"})
    sys.stdout.flush()
    os._exit(0)  # closing thousands of sockets one by one is not part of the measurement


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--slow", type=int, default=0, help="how many of the sockets never read")
    parser.add_argument("--id", default="0")
    parser.add_argument("--kind", choices=("raw", "websockets"), default="raw")
    uvloop.run(run(parser.parse_args()))


def split_frames(buffer: bytes) -> tuple[list[tuple[int, int, int]], bytes]:
    """The complete server frames (unmasked) at the head of ``buffer`` as (opcode, payload
    start, payload end), and what is left of an incomplete one. Shared by the readers of
    ``bench.fanout_ceiling`` and ``bench.fanout``."""
    found: list[tuple[int, int, int]] = []
    size = len(buffer)
    pos = 0
    while size - pos >= 2:
        opcode = buffer[pos] & 0x0F
        length = buffer[pos + 1] & 0x7F
        head = 2
        if length == 126:
            if size - pos < 4:
                break
            length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
            head = 4
        elif length == 127:
            if size - pos < 10:
                break
            length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
            head = 10
        end = pos + head + length
        if end > size:
            break
        found.append((opcode, pos + head, end))
        pos = end
    return found, buffer[pos:] if pos < size else b""


if __name__ == "__main__":
    main()
