"""Viewers of a real LiveDrop node (or of the bare ``websockets`` ceiling), in a process of their own,
driven over stdin/stdout by ``bench.fanout`` (JSON lines, see ``control``).

    python -m bench.fanout_lib.live_viewers --port P --clients 2 --id 0

Each viewer is a minimal RFC 6455 client on an ``asyncio.Protocol``, like the raw reader of
``bench.fanout_lib.client``: one handshake to ``/ws/shows/{show}?token=...`` (the token minted here with
``LIVEDROP_VIEWER_SECRET`` from the environment), then the unmasked server frames are parsed straight from
``data_received``, every frame of one read stamped with one ``time.time()`` reading. Unlike that reader it
decodes each text frame as JSON (``type``, ``seq``, ``ref``, ``reason``, ``code``), and it sends masked
client frames (``reserve``), so it speaks the viewer protocol of docs/protocol.md.

Sockets are kept in named groups. Commands (one JSON object a line, one reply each):

* ``connect``: open ``count`` viewers of a show, either as fast as ``concurrency`` allows or each at its
  own due time spread over ``spread`` seconds (a reconnect storm); waits for every ``welcome``.
* ``mark``: forget what was received, restart the CPU count.
* ``collect``: wait until every ``drop`` frame of the given seqs reached every viewer (or a timeout); answer
  the latencies against the publish times the orchestrator sends.
* ``reserve_burst``: every viewer of a group sends one ``reserve`` at its due time within ``spread`` s.
* ``reserve_steady``: ``reserve`` frames at a steady rate, round robin over a group, at most one
  unanswered per viewer, for ``warmup`` + ``duration`` s.
* ``chat_steady``: ``chat_send`` frames at a steady rate, round robin over a group, for ``duration`` s
  (bench/chat.py); ``chat_reset`` / ``chat_count``: every ``chat`` frame received is counted, with the
  messages it carries and its receive time, across ``mark``s.
* ``abort``: drop every socket of a group at once (RST, as a crashed network path), ``status``, ``quit``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import os
import socket
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec
import uvloop

from bench.fanout_lib import control
from bench.fanout_lib.client import split_frames
from server.viewers.tokens import mint

HOST = "127.0.0.1"
TOKEN_TTL = 3600.0
CONNECT_RETRIES = 8


class Head(msgspec.Struct):
    """The fields of a server frame the benchmark looks at; the rest is skipped by the decoder."""

    type: str
    seq: int | None = None
    ref: str | None = None
    reason: str | None = None
    code: str | None = None


_decode_head = msgspec.json.Decoder(Head).decode


def client_frame(payload: bytes) -> bytes:
    """A masked text frame (RFC 6455 requires a mask from clients, not a random one: zero key)."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x81, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, length)
    return header + b"\0\0\0\0" + payload


def handshake(port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


@dataclass
class Tally:
    """What this process received since the last ``mark``."""

    types: Counter[str] = field(default_factory=Counter)
    drops: dict[int, list[float]] = field(default_factory=dict)  # seq -> receive times
    drop_frames: int = 0
    welcomes: int = 0
    bad_frames: int = 0
    out_of_order: int = 0  # ordered events whose seq was not above the viewer's last one
    # answers to reserve frames
    answers: Counter[str] = field(default_factory=Counter)  # reserved / rejected:<reason> / error:<code>
    answered_at: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    answer_sent: list[float] = field(default_factory=list)  # send time of each answered request
    sent_at: dict[str, float] = field(default_factory=dict)  # ref -> send time, unanswered
    granted: list[str] = field(default_factory=list)  # refs answered ``reserved`` (FIFO checks)
    unknown_refs: int = 0
    cpu_mark: float = field(default_factory=time.process_time)


class Viewer(asyncio.Protocol):
    __slots__ = (
        "buffer",
        "closed_code",
        "group",
        "last_seq",
        "open",
        "outstanding",
        "ready",
        "request",
        "transport",
        "welcome",
    )

    def __init__(self, group: Group, request: bytes, ready: asyncio.Future[float]) -> None:
        self.group = group
        self.request = request
        self.ready = ready  # resolves with the time the welcome (or, without one, the 101) arrived
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.open = False
        self.welcome = 0.0
        self.closed_code: int | None = None
        self.outstanding: str | None = None  # ref of this viewer's unanswered reserve
        self.last_seq = 0  # seq of the last ordered event (or welcome) this viewer got

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self.group.lost += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"lost before welcome: {exc}"))

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer + data if self.buffer else data
        if not self.open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(buffer[:80].decode(errors="replace")))
                assert self.transport is not None
                self.transport.close()
                return
            self.open = True
            if not self.group.wait_welcome and not self.ready.done():
                self.ready.set_result(now)
            buffer = buffer[end + 4 :]
        self.buffer = self.parse(buffer, now)

    def parse(self, buffer: bytes, now: float) -> bytes:
        found, left = split_frames(buffer)
        for opcode, start, end in found:
            if opcode == 1:
                self.group.state.on_frame(self, buffer[start:end], now)
            elif opcode in (8, 9):
                self.answer(opcode, buffer[start:end])
        return left

    def answer(self, opcode: int, payload: bytes) -> None:
        """Pong a ping, echo a close."""
        assert self.transport is not None and len(payload) < 126
        if opcode == 8:
            self.closed_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.group.state.closes[str(self.closed_code)] += 1
        reply = 0x8A if opcode == 9 else 0x88
        self.transport.write(bytes((reply, 0x80 | len(payload))) + b"\0\0\0\0" + payload)
        if opcode == 8:
            self.transport.close()

    def send(self, payload: bytes) -> bool:
        if not self.open or self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(client_frame(payload))
        return True


@dataclass
class Group:
    state: State
    name: str
    wait_welcome: bool
    viewers: list[Viewer] = field(default_factory=list)
    lost: int = 0


class State:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tally = Tally()
        self.groups: dict[str, Group] = {}
        self.closes: Counter[str] = Counter()
        self.secret = os.environ.get("LIVEDROP_VIEWER_SECRET", "").encode()
        # chat (bench/chat.py): ``chat`` frames received and the messages in them, kept across ``mark``
        # (drop probes mark while the chat flows); reset when a ``chat_steady`` starts
        self.chat_frames = 0
        self.chat_messages = 0
        self.chat_times: list[float] = []

    # -- frames -------------------------------------------------------------------------------------

    def on_frame(self, viewer: Viewer, payload: bytes, now: float) -> None:
        tally = self.tally
        try:
            head = _decode_head(payload)
        except msgspec.DecodeError:
            tally.bad_frames += 1
            return
        kind = head.type
        tally.types[kind] += 1
        if head.seq is not None:
            if kind == "welcome":
                viewer.last_seq = head.seq
            else:
                if head.seq <= viewer.last_seq:
                    tally.out_of_order += 1
                viewer.last_seq = head.seq
        if kind == "chat":
            self.chat_frames += 1
            self.chat_messages += payload.count(b'"n":')
            self.chat_times.append(now)
        elif kind == "drop":
            tally.drop_frames += 1
            if head.seq is not None:
                times = tally.drops.get(head.seq)
                if times is None:
                    tally.drops[head.seq] = [now]
                else:
                    times.append(now)
        elif kind == "welcome":
            tally.welcomes += 1
            if not viewer.welcome:
                viewer.welcome = now
                if not viewer.ready.done():
                    viewer.ready.set_result(now)
        elif kind in ("reserved", "rejected", "error"):
            if kind == "reserved":
                outcome = kind
                if head.ref is not None:
                    tally.granted.append(head.ref)
            elif kind == "rejected":
                outcome = f"rejected:{head.reason}"
            else:
                outcome = f"error:{head.code}"
            tally.answers[outcome] += 1
            sent = tally.sent_at.pop(head.ref, None) if head.ref is not None else None
            if head.ref is not None and viewer.outstanding == head.ref:
                viewer.outstanding = None
            if sent is None:
                tally.unknown_refs += 1
                return
            tally.answered_at.append(now)
            tally.answer_sent.append(sent)
            tally.latencies.append(now - sent)

    def reserve(self, viewer: Viewer, drop: str, ref: str) -> bool:
        payload = b'{"type":"reserve","ref":"%s","drop":"%s","qty":1}' % (ref.encode(), drop.encode())
        now = time.time()
        if not viewer.send(payload):
            return False
        self.tally.sent_at[ref] = now
        viewer.outstanding = ref
        return True

    # -- commands -----------------------------------------------------------------------------------

    async def connect(self, cmd: control.JSON) -> control.JSON:
        """Open ``count`` viewers; viewer k of this process is global viewer ``first + k * clients``."""
        group = self.groups.setdefault(cmd["group"], Group(self, cmd["group"], cmd.get("wait_welcome", True)))
        loop = asyncio.get_running_loop()
        count: int = cmd["count"]
        spread: float = cmd.get("spread", 0.0)
        start_at: float = cmd.get("start_at", 0.0) or time.time()
        gate = asyncio.Semaphore(cmd.get("concurrency", 200) if not spread else count or 1)
        total = max(1, cmd.get("total", count))
        retries = 0
        due_times: list[float] = []
        welcomes: list[float] = []

        async def one(k: int) -> None:
            nonlocal retries
            index = cmd["first"] + k * cmd["clients"]
            due = start_at + index * spread / total
            if spread:
                await asyncio.sleep(max(0.0, due - time.time()))
            async with gate:
                started = time.time()
                viewer_id = f"{cmd['prefix']}{index}"
                query = f"?token={mint(self.secret, cmd['show'], viewer_id, ttl=TOKEN_TTL)}" if cmd.get("token") else ""
                path = f"/ws/shows/{cmd['show']}{query}"
                for attempt in range(CONNECT_RETRIES):
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.setblocking(False)
                    # close() sends RST: no TIME_WAIT left behind by tens of thousands of sockets
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    try:
                        await loop.sock_connect(sock, (HOST, cmd["port"]))
                    except OSError:
                        sock.close()
                        retries += 1
                        await asyncio.sleep(0.1 * (attempt + 1))
                        continue
                    ready: asyncio.Future[float] = loop.create_future()
                    factory = functools.partial(Viewer, group, handshake(cmd["port"], path), ready)
                    _, viewer = await loop.create_connection(factory, sock=sock)
                    try:
                        welcomed = await asyncio.wait_for(ready, cmd.get("timeout", 60))
                    except (ConnectionError, TimeoutError):
                        if viewer.transport is not None:
                            viewer.transport.abort()
                        retries += 1
                        if attempt == CONNECT_RETRIES - 1:
                            raise
                        await asyncio.sleep(0.1 * (attempt + 1))
                        continue
                    group.viewers.append(viewer)
                    due_times.append(due if spread else started)
                    welcomes.append(welcomed)
                    return
                raise ConnectionError("could not connect")

        started = time.time()
        results = await asyncio.gather(*(one(k) for k in range(count)), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        return {
            "ok": count - len(failed),
            "failed": len(failed),
            "error": repr(failed[0]) if failed else None,
            "retries": retries,
            "started": started,
            "last_welcome": max(welcomes, default=0.0),
            "lat": [round(w - d, 6) for w, d in zip(welcomes, due_times, strict=True)],
            "cpu": time.process_time() - self.tally.cpu_mark,
        }

    def mark(self) -> control.JSON:
        self.tally = Tally()
        self.closes.clear()
        return {"ok": True}

    async def collect(self, cmd: control.JSON) -> control.JSON:
        """Latency of every ``drop`` frame of ``sent`` (seq -> publish time) to every viewer here."""
        sent = {int(seq): float(ts) for seq, ts in cmd["sent"].items()}
        expect = len(sent) * sum(len(g.viewers) for g in self.groups.values() if g.name in cmd["groups"])
        deadline = time.monotonic() + cmd["timeout"]

        def received() -> int:
            return sum(len(self.tally.drops.get(seq, ())) for seq in sent)

        while received() < expect and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        lat: list[float] = []
        last = 0.0
        for seq, published in sent.items():
            times = self.tally.drops.get(seq, [])
            lat.extend(round(t - published, 6) for t in times)
            last = max([last, *times])
        return {
            "frames": len(lat),
            "expect": expect,
            "lat": lat,
            "last": last,
            "cpu": time.process_time() - self.tally.cpu_mark,
            "types": dict(self.tally.types),
            "closes": dict(self.closes),
            "lost": sum(g.lost for g in self.groups.values()),
            "out_of_order": self.tally.out_of_order,
            "bad_frames": self.tally.bad_frames,
            "chat_frames": self.chat_frames,
            "chat_messages": self.chat_messages,
        }

    async def chat_steady(self, cmd: control.JSON) -> control.JSON:
        """``rate`` chat messages/s from this process, round robin over the group, for ``duration`` s
        from ``start_at``; then what this process received in the window."""
        viewers = self.groups[cmd["group"]].viewers
        rate, start_at, duration = cmd["rate"], cmd["start_at"], cmd["duration"]
        cpu_start = time.process_time()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        end = start_at + duration
        slots = sent = 0
        cursor = 0
        while (now := time.time()) < end:
            due = int((now - start_at) * rate)
            while slots < due:
                slots += 1
                viewer = viewers[cursor]
                cursor = (cursor + 1) % len(viewers)
                ref = f"c{self.args.id}.{slots}"
                text = f"message {slots} from writer {cursor} of process {self.args.id}, hello!"
                if viewer.send(b'{"type":"chat_send","ref":"%s","text":"%s"}' % (ref.encode(), text.encode())):
                    sent += 1
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.5)  # the last tick's frames
        tally = self.tally
        in_window = [t for t in self.chat_times if start_at <= t < end]
        return {
            "sent": sent,
            "chat_frames": self.chat_frames,
            "chat_frames_window": len(in_window),
            "chat_messages": self.chat_messages,
            "acks": tally.types.get("chat_ack", 0),
            "rejected": tally.types.get("chat_rejected", 0),
            "types": dict(tally.types),
            "closes": dict(self.closes),
            "cpu": time.process_time() - cpu_start,
        }

    async def reserve_burst(self, cmd: control.JSON) -> control.JSON:
        """Request g of the burst (0 <= g < total * per_viewer) is sent by global viewer g % total at
        start_at + g * spread / (total * per_viewer), with ref ``<ref>.<g>``; this process sends those
        of its own viewers (global index first + k * clients). Then wait for every answer; the reply
        carries the granted refs (FIFO checks)."""
        viewers = self.groups[cmd["group"]].viewers
        start_at, spread, total = cmd["start_at"], cmd["spread"], max(1, cmd["total"])
        per_viewer = max(1, cmd.get("per_viewer", 1))
        requests = total * per_viewer
        by_index = {cmd["first"] + k * cmd["clients"]: viewers[k] for k in range(len(viewers))}
        order = [g for g in range(requests) if g % total in by_index]
        sent = failed = 0
        pos = 0
        first_sent = last_sent = 0.0
        while pos < len(order):
            now = time.time()
            first_sent = first_sent or now
            last_sent = now
            while pos < len(order):
                g = order[pos]
                if start_at + g * spread / requests > now:
                    break
                if self.reserve(by_index[g % total], cmd["drop"], f"{cmd['ref']}.{g}"):
                    sent += 1
                else:
                    failed += 1
                pos += 1
            await asyncio.sleep(0.001)
        await self._wait_answers(cmd["timeout"])
        reply = self._answers(sent, failed, 0, 0.0, float("inf"))
        reply["granted"] = list(self.tally.granted)
        reply["sent_span"] = [first_sent, last_sent]  # when this process sent its first and last request
        return reply

    async def reserve_steady(self, cmd: control.JSON) -> control.JSON:
        """``rate`` reserves/s from this process, round robin over the group, at most one
        unanswered per viewer (a slot that finds its viewer still waiting is skipped and counted)."""
        viewers = self.groups[cmd["group"]].viewers
        rate, start_at = cmd["rate"], cmd["start_at"]
        window_start = start_at + cmd["warmup"]
        window_end = window_start + cmd["duration"]
        await asyncio.sleep(max(0.0, start_at - time.time()))
        slots = sent = failed = skipped = 0
        sent_in_window = 0
        cursor = 0
        cpu_start = cpu_end = 0.0
        while True:
            now = time.time()
            if now >= window_end:
                cpu_end = time.process_time()
                break
            if not cpu_start and now >= window_start:
                cpu_start = time.process_time()
            due = int((now - start_at) * rate)
            while slots < due:
                slots += 1
                viewer = viewers[cursor]
                cursor = (cursor + 1) % len(viewers)
                if viewer.outstanding is not None:
                    skipped += 1
                    continue
                ref = f"{cmd['ref']}.{self.args.id}.{slots}"
                if self.reserve(viewer, cmd["drop"], ref):
                    sent += 1
                    if now >= window_start:
                        sent_in_window += 1
                else:
                    failed += 1
            await asyncio.sleep(0.002)
        in_window = sum(1 for t in self.tally.answered_at if window_start <= t < window_end)
        await self._wait_answers(cmd["timeout"])
        reply = self._answers(sent, failed, skipped, window_start, window_end)
        reply["answered_window"] = in_window
        reply["sent_window"] = sent_in_window
        reply["slots"] = slots
        reply["cpu_window"] = cpu_end - cpu_start if cpu_start else 0.0
        return reply

    def chat_reset(self) -> control.JSON:
        self.chat_frames = self.chat_messages = 0
        self.chat_times = []
        return {"ok": True, "cpu": time.process_time()}

    def chat_count(self, cmd: control.JSON) -> control.JSON:
        """``chat`` frames received between ``start`` and ``end`` (epoch s), and messages per frame."""
        in_window = sum(1 for t in self.chat_times if cmd["start"] <= t < cmd["end"])
        return {
            "frames": self.chat_frames,
            "frames_window": in_window,
            "messages": self.chat_messages,
            "last": max(self.chat_times, default=0.0),
            "viewers": sum(len(g.viewers) for g in self.groups.values()),
            "closes": dict(self.closes),
            "cpu": time.process_time(),
        }

    async def _wait_answers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.tally.sent_at and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def _answers(self, sent: int, failed: int, skipped: int, window_start: float, window_end: float) -> control.JSON:
        tally = self.tally
        return {
            "sent": sent,
            "send_failed": failed,
            "skipped": skipped,
            "answers": dict(tally.answers),
            "unanswered": len(tally.sent_at),
            "unknown_refs": tally.unknown_refs,
            # latencies of the requests sent inside the window
            "lat": [
                round(x, 6)
                for x, s in zip(tally.latencies, tally.answer_sent, strict=True)
                if window_start <= s < window_end
            ],
            "cpu": time.process_time() - tally.cpu_mark,
            "types": dict(tally.types),
            "closes": dict(self.closes),
            "bad_frames": tally.bad_frames,
        }

    def abort(self, cmd: control.JSON) -> control.JSON:
        group = self.groups.pop(cmd["group"], None)
        count = 0
        for viewer in group.viewers if group else []:
            if viewer.transport is not None and not viewer.transport.is_closing():
                viewer.transport.abort()
                count += 1
        return {"aborted": count}

    def status(self) -> control.JSON:
        return {
            "groups": {name: sum(1 for v in g.viewers if v.open) for name, g in self.groups.items()},
            "lost": {name: g.lost for name, g in self.groups.items()},
            "closes": dict(self.closes),
            "types": dict(self.tally.types),
            "cpu": time.process_time() - self.tally.cpu_mark,
        }


async def run(args: argparse.Namespace) -> None:
    control.raise_nofile(args.nofile)
    state = State(args)
    control.reply({"event": "ready", "pid": os.getpid()})
    commands = await control.commands()
    while True:
        command = await control.next_command(commands)
        reply: dict[str, Any]
        match command["cmd"]:
            case "connect":
                reply = await state.connect(command)
            case "mark":
                reply = state.mark()
            case "collect":
                reply = await state.collect(command)
            case "reserve_burst":
                reply = await state.reserve_burst(command)
            case "reserve_steady":
                reply = await state.reserve_steady(command)
            case "chat_steady":
                reply = await state.chat_steady(command)
            case "chat_reset":
                reply = state.chat_reset()
            case "chat_count":
                reply = state.chat_count(command)
            case "abort":
                reply = state.abort(command)
            case "status":
                reply = state.status()
            case "quit":
                break
            case other:
                reply = {"error": f"unknown command {other!r}"}
        control.reply(reply)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    os._exit(0)  # closing thousands of sockets one by one is not part of the measurement


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--id", type=int, default=0)
    parser.add_argument("--nofile", type=int, default=65536)
    uvloop.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
