"""Reconnect latency: one viewer reconnecting again and again to a show nobody else watches on the
node (a phone flapping between Wi-Fi and mobile data), against a bare Starlette/uvicorn WebSocket
endpoint measured in the same run (DESIGN §8: every figure beside its ceiling, and the ratio).

    python -m bench.reconnect                 # ~1 min: 200 fresh connects, 200 resumes
    python -m bench.reconnect --reconnects 500 --pause 0.3 --json results.json

Each reconnect opens a WebSocket with a viewer token (in Sec-WebSocket-Protocol), waits for the
first frame, and closes: the show's only viewer leaves, so the node unsubscribes, and the next
connect subscribes it again (a snapshot read from Redis). Latency runs from the start of the
connect to the first frame: ``welcome`` for a fresh connect, the first frame of the resume (the
drops' ``stock``) with ``resume_from``/``epoch``. ``--pause`` seconds pass between a close and the
next connect, time enough for the node's stream reader to block again (the old bug made a join
wait out that blocking read, ~1.7 s).

The ceiling is a bare Starlette app on uvicorn with the node's own flags (uvloop,
websockets-sansio, no permessage-deflate) in a process of its own, which accepts and sends one text
frame the size of the node's welcome: the handshake and one frame, no Redis, no hub. Redis, the node
and this client share the machine's cores: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from loadtest.hostapi import HostApi
from loadtest.stack import LOOPBACK, Stack, free_port

SHOW = "reconnect"
PAYLOAD_ENV = "LIVEDROP_BENCH_PAYLOAD"


async def _ceiling_endpoint(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="livedrop.v1" if "livedrop.v1" in websocket.scope["subprotocols"] else None)
    await websocket.send_text(os.environ.get(PAYLOAD_ENV, "{}"))
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    except RuntimeError:
        pass


ceiling_app = Starlette(routes=[WebSocketRoute("/ws/shows/{show_id}", _ceiling_endpoint)])


@dataclass
class Row:
    target: str
    kind: str
    reconnects: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    ratio_p50: float = 0.0  # this row's p50 over the ceiling's, same kind
    ratio_p99: float = 0.0


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def reconnects(url: str, token: str, count: int, pause: float, resume: bool) -> tuple[list[float], str]:
    """``count`` connect/first-frame/close cycles; their latencies (s) and the last first frame."""
    offered = [Subprotocol("livedrop.v1"), Subprotocol(f"livedrop.token.{token}")]
    waits: list[float] = []
    position = ""
    first = ""
    for _ in range(count):
        started = time.perf_counter()
        async with connect(url + position, compression=None, subprotocols=offered, max_size=2**20) as ws:
            first = str(await asyncio.wait_for(ws.recv(), 10))
            waits.append(time.perf_counter() - started)
            frame = json.loads(first)
            if resume and frame.get("type") == "welcome":
                position = f"?resume_from={frame['seq']}&epoch={frame['epoch']}"
        await asyncio.sleep(pause)
    return waits, first


def row(target: str, kind: str, waits: list[float]) -> Row:
    ms = [w * 1000 for w in waits]
    return Row(target, kind, len(ms), round(percentile(ms, 0.5), 2), round(percentile(ms, 0.99), 2), round(max(ms), 2))


def start_ceiling(payload: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bench.reconnect:ceiling_app", "--host", LOOPBACK, "--port", str(port)]
    argv += ["--loop", "uvloop", "--ws", "websockets-sansio", "--ws-per-message-deflate", "false"]
    argv += ["--log-level", "warning"]
    proc = subprocess.Popen(argv, env={**os.environ, PAYLOAD_ENV: payload})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://{LOOPBACK}:{port}/", timeout=1)
        except urllib.error.HTTPError:
            return proc, f"ws://{LOOPBACK}:{port}"  # up: a 404 for a plain GET
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the ceiling server did not start")


async def amain(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="livedrop-bench-reconnect-") as workdir, Stack(workdir) as stack:
        api = HostApi(stack.urls[0], stack.host_token)
        api.call("POST", "/api/shows", {"show_id": SHOW, "title": "Reconnects"})
        for i in range(3):
            body = {"drop_id": f"r{i}", "sku": f"R-{i}", "title": f"Drop {i}", "total": 100, "prices": {"EUR": 1900}}
            api.call("POST", f"/api/shows/{SHOW}/drops", body)
        api.launch("r0")
        token = api.viewer_token(SHOW, "v-flapping")
        url = stack.urls[0].replace("http://", "ws://") + f"/ws/shows/{SHOW}"
        await reconnects(url, token, 5, args.pause, False)  # warm-up
        fresh, welcome = await reconnects(url, token, args.reconnects, args.pause, False)
        resumed, _ = await reconnects(url, token, args.reconnects, args.pause, True)
        proc, base = start_ceiling(welcome)
        try:
            ceiling_url = f"{base}/ws/shows/{SHOW}"
            await reconnects(ceiling_url, token, 5, args.pause, False)
            bare, _ = await reconnects(ceiling_url, token, args.reconnects, args.pause, False)
        finally:
            proc.terminate()
            proc.wait(10)
    ceiling = row("bare Starlette/uvicorn", "connect + 1 frame", bare)
    rows.append(ceiling)
    for kind, waits in (("fresh connect: welcome", fresh), ("resume: first frame", resumed)):
        r = row("LiveDrop node", kind, waits)
        r.ratio_p50 = round(r.p50_ms / ceiling.p50_ms, 2) if ceiling.p50_ms else 0.0
        r.ratio_p99 = round(r.p99_ms / ceiling.p99_ms, 2) if ceiling.p99_ms else 0.0
        rows.append(r)
    return rows


def render(rows: list[Row], args: argparse.Namespace, load: tuple[float, float, float]) -> str:
    header = f"{'target':<24}{'kind':<24}{'n':>5}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'x p50':>7}{'x p99':>7}"
    lines = [
        f"{args.reconnects} reconnects each, {args.pause:g} s apart; load average before the run {load[0]:.2f}",
        header,
        "-" * len(header),
    ]
    for r in rows:
        ratios = f"{r.ratio_p50:>7}{r.ratio_p99:>7}" if r.ratio_p50 else f"{'1.00':>7}{'1.00':>7}"
        lines.append(f"{r.target:<24}{r.kind:<24}{r.reconnects:>5}{r.p50_ms:>9}{r.p99_ms:>9}{r.max_ms:>9}{ratios}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.reconnect", description=__doc__.split("\n\n")[0])
    parser.add_argument("--reconnects", type=int, default=200, help="reconnects per row (default 200)")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between a close and a connect")
    parser.add_argument("--json", help="write the rows to this file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    load = os.getloadavg()
    rows = asyncio.run(amain(args))
    print(render(rows, args, load))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"rows": [asdict(r) for r in rows], "load": load}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
