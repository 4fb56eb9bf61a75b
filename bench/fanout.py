"""Fan-out and reservations over WebSocket on a real LiveDrop node, against the ceilings measured in the same
run (DESIGN §8).

    python -m bench.fanout                        # 10,000 viewers, about 2-3 min
    python -m bench.fanout --viewers 2000 --json fanout.json

One ``livedrop serve`` process (uvicorn, uvloop, websockets-sansio, as the CLI sets them) runs on a private
Redis (AOF ``everysec``) that this benchmark starts in a temporary directory (``loadtest.stack``). The viewers
are held by ``--clients`` other processes (``bench.fanout_lib.live_viewers``: raw-socket RFC 6455 clients
that speak the viewer protocol, a signed token each). Everything runs on 127.0.0.1, every process raises its
file-descriptor limit, and every step has a timeout (``--max-seconds`` bounds the whole run). Phases:

1. **Redis ceiling**: ``redis-benchmark`` EVALSHA of the real ``reserve`` script, one reservation per call,
   50 clients, no pipelining, on the node's Redis (``bench.stock.ceiling``).
2. **Sustained reservations**: ``--reserve-viewers`` viewers of another show send ``reserve`` frames
   (distinct refs, at most one unanswered per viewer: a slot that finds its viewer waiting is skipped) at
   steady rates, ``--reserve-load`` times the ceiling of phase 1, on a drop that never sells out, for
   ``--reserve-warmup`` + ``--reserve-seconds`` s each: answers per second in the timed window, answer
   latency, and every answer a hold that Redis holds.
   The node is then restarted, so that the phases below start from a fresh process.
3. **Fan-out**: ``--viewers`` viewers of one show connect to the node. Idle RSS per connection: (node RSS
   with every viewer welcomed - RSS before) / N. The same clients then open as many sockets to the ceiling
   A, a bare ``websockets`` server calling ``websockets.broadcast`` (``bench.fanout_lib.replay_server``),
   and every window below runs on the node, then on A with the very bytes the node sent (idle sockets
   cost no CPU, and alternating lets a neighbour's load hit both alike):
   * ``--probes`` single drops launched through the host API (``POST /api/drops/{id}/launch``), apart:
     latency of the ``drop`` frame to every viewer, from the bench's clock just before the request (A: just
     before its broadcast) to the client's clock at receipt, on the same machine;
   * ``--bursts`` bursts of ``--frames`` ``drop`` frames published back to back from this process with
     ``ShowNode.publish_drop`` (as a host acting through another node; A gets the burst's frames at once):
     delivered frames/s from the first publish to the last receipt, server CPU per delivered frame.
   ``livedrop_viewer_send_path_total`` is read from ``/metrics``; every viewer must get every frame, in
   ``seq`` order.
4. **Reservation burst**: the node's viewers each send one ``reserve`` within ``--burst-spread`` s on a
   drop of ``--burst-units`` units just launched: exactly that many ``reserved``, the rest ``rejected``
   ``sold_out``, no ``error``, and the counters in Redis agree; answer latency from each send.
5. **Reconnect storm**: every viewer's socket is dropped at once (RST); once the node has let them all go,
   the same viewers reconnect, each at its own due time spread over ``--storm-spread`` s. Every one must
   get its ``welcome``; the node must answer ``/readyz`` with 200 afterwards.

Every timed window records CPU in % of one core: the node (or A), the clients, Redis and every other process
on the machine ("others": other people's work on a shared machine distorts every figure). Exit status 1 if a
correctness check failed; a missed performance target prints "misses" and does not change the status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis

from bench.fanout_ceiling import wait_quiet
from bench.fanout_lib import control
from bench.fanout_lib.control import Child
from bench.fanout_lib.measure import Cpu, CpuWindow, percentile, proc_cpu, split, tree_cpu, tree_rss
from bench.fanout_lib.results import Check, FanOut, Reservations, Results, Storm
from bench.fanout_lib.table import cpu_lines, package_version, table
from bench.stock import Report, ceiling
from broadcast.feed import Feed, frame
from broadcast.hub import Hub
from loadtest.hostapi import HostApi
from loadtest.stack import Stack
from server.shows.catalog import Catalog
from server.shows.node import ShowNode
from stock import StockEngine
from stock.scripts import source

ROOT = str(Path(__file__).resolve().parent.parent)
FAN_SHOW = "fan"
RES_SHOW = "res"
BURST_DROPS = 4  # drops whose `drop` frames make up a burst (published in turn)
NOFILE = 65536


# --- the node and its HTTP endpoints ---------------------------------------------------------------------------


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")
    except OSError as exc:
        return 0, str(exc)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")
_CONTENT_LENGTH = re.compile(rb"(?i)content-length: *(\d+)")


def metrics(base: str) -> dict[str, float]:
    """The node's /metrics as {"name{labels}": value}."""
    status, text = http_get(base + "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    out: dict[str, float] = {}
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found and not line.startswith("#"):
            out[found.group(1) + (found.group(2) or "")] = float(found.group(3))
    return out


class LagProbe:
    """``GET /healthz`` on one keep-alive connection every ``interval`` s while a window runs: the answer time
    shows how long the node's event loop went without serving anyone (a full GC, a long callback)."""

    def __init__(self, port: int, interval: float = 0.05) -> None:
        self.port = port
        self.interval = interval
        self.times: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        try:
            while True:
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                found = _CONTENT_LENGTH.search(head)
                await reader.readexactly(int(found.group(1)) if found else 0)
                self.times.append(time.perf_counter() - started)
                await asyncio.sleep(self.interval)
        finally:
            writer.close()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> tuple[float, float]:
        """p99 and max answer time in ms."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await self._task
        return 1000 * percentile(self.times, 0.99), 1000 * max(self.times, default=float("nan"))


class Bench:
    def __init__(self, args: argparse.Namespace, results: Results) -> None:
        self.args = args
        self.results = results
        self.stack: Stack | None = None
        self.clients: list[Child] = []
        self.api: HostApi | None = None
        self.admin: Redis | None = None
        self.node_pid = 0
        self.node_url = ""
        self.port = 0

    # -- helpers ------------------------------------------------------------------------------------------------

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        assert self.api is not None
        return await asyncio.to_thread(self.api.call, method, path, body)

    async def node_cpu(self) -> float:
        return tree_cpu(self.node_pid)

    async def node_metrics(self) -> dict[str, float]:
        return await asyncio.to_thread(metrics, self.node_url)

    async def wait_connections(self, wanted: int, timeout: float) -> int:
        """Until the node's ``livedrop_viewer_connections`` gauge reads ``wanted``."""
        deadline = time.monotonic() + timeout
        current = -1
        while time.monotonic() < deadline:
            current = int((await self.node_metrics()).get("livedrop_viewer_connections", -1))
            if current == wanted:
                return current
            await asyncio.sleep(0.2)
        return current

    async def ask_clients(self, commands: Sequence[control.JSON], timeout: float) -> list[control.JSON]:
        return list(await asyncio.gather(*(c.ask(cmd, timeout) for c, cmd in zip(self.clients, commands, strict=True))))

    async def ask_all(self, command: control.JSON, timeout: float) -> list[control.JSON]:
        return await self.ask_clients([command] * len(self.clients), timeout)

    async def connect(
        self, group: str, show: str, count: int, port: int, *, prefix: str, token: bool, welcome: bool = True
    ) -> tuple[list[control.JSON], float]:
        started = time.perf_counter()
        replies = await self.ask_clients(
            [
                {
                    "cmd": "connect",
                    "group": group,
                    "show": show,
                    "port": port,
                    "count": share,
                    "first": index,
                    "clients": len(self.clients),
                    "total": count,
                    "prefix": prefix,
                    "token": token,
                    "wait_welcome": welcome,
                    "concurrency": self.args.connect_concurrency,
                    "timeout": 60,
                }
                for index, share in enumerate(split(count, len(self.clients)))
            ],
            300,
        )
        return replies, time.perf_counter() - started

    async def collect(self, sent: dict[int, float], groups: list[str]) -> list[control.JSON]:
        timeout = 15 + len(sent) * self.args.viewers / 10_000
        command = {"cmd": "collect", "sent": {str(k): v for k, v in sent.items()}, "groups": groups}
        return await self.ask_all({**command, "timeout": timeout}, timeout + 30)

    # -- setup ---------------------------------------------------------------------------------------------------

    async def start(self, workdir: str) -> None:
        args = self.args
        env = {
            # The steady phase sends several reserves a second per viewer: lift the per-connection
            # limiter (5/s, burst 10 by default) so that it measures the node, not the limiter.
            "LIVEDROP_RESERVE_RATE": str(args.conn_reserve_rate),
            "LIVEDROP_RESERVE_BURST": str(args.conn_reserve_rate),
            **dict(each.split("=", 1) for each in args.node_env),
        }
        self.stack = Stack(workdir, nodes=1, env=env)
        await asyncio.to_thread(self.stack.start, 60.0)
        node = self.stack.nodes[0]
        assert node.proc is not None
        self.node_pid, self.node_url = node.proc.pid, node.url
        self.port = node.port
        self.api = HostApi(node.url, self.stack.host_token)
        self.admin = Redis.from_url(self.stack.redis_url)
        await self.admin.config_set("auto-aof-rewrite-percentage", 0)  # rewrites between phases only
        os.environ["LIVEDROP_VIEWER_SECRET"] = self.stack.secrets["LIVEDROP_VIEWER_SECRET"]  # the clients mint
        for index in range(args.clients):
            child = await Child.start(
                f"viewers {index}", ["-m", "bench.fanout_lib.live_viewers", "--id", str(index)], ROOT
            )
            await child.recv(30)
            self.clients.append(child)

    async def setup_shows(self) -> None:
        async def drop(show: str, drop_id: str, total: int) -> None:
            body = {"drop_id": drop_id, "sku": f"SKU-{drop_id}", "title": f"Drop {drop_id}", "total": total}
            await self.call("POST", f"/api/shows/{show}/drops", {**body, "prices": {"EUR": 1900}})

        for show in (FAN_SHOW, RES_SHOW):
            await self.call("POST", "/api/shows", {"show_id": show, "title": f"Benchmark show {show}"})
            await self.call("POST", f"/api/shows/{show}/start")
        for k in range(BURST_DROPS):
            await drop(FAN_SHOW, f"fan-{k}", 1000)
            await self.call("POST", f"/api/drops/fan-{k}/launch", {})
        for k in range(self.args.probes):
            await drop(FAN_SHOW, f"probe-{k}", 1000)
        await drop(FAN_SHOW, "burst", self.args.burst_units)
        await drop(RES_SHOW, "steady", 1_000_000_000)
        await self.call("POST", "/api/drops/steady/launch", {})

    async def restart_node(self) -> None:
        """Stop the node (SIGTERM, graceful) and start a fresh process on the same port and Redis."""
        assert self.stack is not None
        node = self.stack.nodes[0]
        await asyncio.to_thread(node.stop)
        node.start()
        await asyncio.to_thread(node.wait_ready, 60.0)
        assert node.proc is not None
        self.node_pid = node.proc.pid

    async def stop(self) -> None:
        for child in self.clients:
            await child.stop()
        if self.admin is not None:
            await self.admin.aclose()
        if self.stack is not None:
            await asyncio.to_thread(self.stack.stop)

    # -- 1. redis-benchmark ceiling ------------------------------------------------------------------------------

    async def redis_ceiling(self) -> None:
        args, results = self.args, self.results
        assert self.admin is not None and self.stack is not None
        binary = args.redis_benchmark or shutil.which("redis-benchmark") or shutil.which("valkey-benchmark")
        print("\n[1] ceiling: redis-benchmark EVALSHA of the reserve script, -P 1, 50 clients", flush=True)
        if binary is None:
            results.check("redis-benchmark available", False, "not found on PATH: no reservation ceiling")
            return
        sha = await self.admin.script_load(source("reserve"))
        sha_text = sha.decode() if isinstance(sha, bytes) else str(sha)
        report = Report(command="", machine={}, settings={})
        namespace = argparse.Namespace(
            ceiling_requests=args.ceiling_requests,
            ceiling_runs=args.ceiling_runs,
            ceiling_timeout=120.0,
            run_id=f"fo{int(time.time()) % 100_000}",
            private=True,
        )
        port = urlsplit(self.stack.redis_url).port or 6379
        engine = StockEngine(self.admin)
        row = await ceiling(report, namespace, binary, port, self.admin, engine, sha_text, pipeline=1, batch=1)
        for each in report.checks:
            results.checks.append(Check(each.name, each.ok, each.detail))
        results.redis_ceiling = row.rate
        results.redis_ceiling_runs = row.runs

    # -- 2. fan-out: the node and the ceiling A, interleaved ----------------------------------------------------

    async def fanout(self) -> None:
        """The node's viewers and A's sockets stay connected together (idle sockets cost no CPU); each probe
        and each burst goes to the node, then the same frames to A, so a neighbour's load hits both alike."""
        args, results = self.args, self.results
        assert self.admin is not None
        n = args.viewers
        print(f"\n[3] fan-out: {n:,} viewers of one show on the LiveDrop node, then the same on A", flush=True)
        node = FanOut("LiveDrop", n)
        await asyncio.sleep(0.5)
        rss_before = tree_rss(self.node_pid)
        replies, node.connect_s = await self.connect("fan", FAN_SHOW, n, self.port, prefix="v", token=True)
        failed = sum(r["failed"] for r in replies)
        results.check(
            "fan-out: every viewer connected and welcomed",
            failed == 0,
            f"{n - failed:,}/{n:,} in {node.connect_s:.1f} s, {sum(r['retries'] for r in replies)} retries"
            + (f"; first error {next(r['error'] for r in replies if r['error'])}" if failed else ""),
        )
        if failed:
            return
        seen = await self.wait_connections(n, 30)
        await asyncio.sleep(1.0)
        node.rss_per_conn_kib = (tree_rss(self.node_pid) - rss_before) / n / 1024
        print(f"  node: connected in {node.connect_s:.1f} s; gauge {seen:,}; RSS/conn {node.rss_per_conn_kib:.1f} KiB")
        results.livedrop = node
        page = await self.node_metrics()
        results.send_path = {
            k.split('"')[1]: v for k, v in page.items() if k.startswith("livedrop_viewer_send_path_total{")
        }
        server = await Child.start("ceiling A", ["-m", "bench.fanout_lib.replay_server"], ROOT)
        try:
            await self.fanout_rounds(node, server)
        finally:
            await self.ask_all({"cmd": "abort", "group": "A"}, 60)
            await server.stop()
        hub = await self.node_metrics()
        results.hub = {k: v for k, v in hub.items() if k.split("{")[0] in HUB_METRICS}
        results.check(
            "fan-out: every drop frame reached every viewer, in seq order, none closed",
            node.delivered == node.expected and not node.out_of_order and not node.bad_frames and not node.lost,
            f"{node.delivered:,} of {node.expected:,} frames; {node.out_of_order} out of order, "
            f"{node.bad_frames} not JSON, {node.lost} sockets closed",
        )
        sansio = results.send_path.get("sansio", 0.0)
        other = sum(v for k, v in results.send_path.items() if k != "sansio")
        results.check(
            'fan-out: livedrop_viewer_send_path_total path="sansio"',
            sansio >= n and other == 0,
            ", ".join(f'path="{k}" {v:,.0f}' for k, v in results.send_path.items()) or "metric missing",
        )

    async def fanout_rounds(self, node: FanOut, server: Child) -> None:
        args, results = self.args, self.results
        assert self.admin is not None
        n = args.viewers
        ceiling_a = FanOut("A", n)
        ready = await server.recv(30)
        pid = int(ready["pid"])

        async def a_cpu() -> float:
            return proc_cpu(pid)

        replies, ceiling_a.connect_s = await self.connect(
            "A", FAN_SHOW, n, int(ready["port"]), prefix="a", token=False, welcome=False
        )
        failed = sum(r["failed"] for r in replies)
        if not results.check("ceiling A: every socket connected", failed == 0, f"{n - failed:,}/{n:,}"):
            return
        async with asyncio.timeout(30):
            while (await server.ask({"cmd": "status"}, 30))["viewers"] < n:
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        idle = await server.ask({"cmd": "status"}, 30)
        ceiling_a.rss_per_conn_kib = (idle["rss"] - ready["rss"]) / n / 1024
        print(f"  A: connected in {ceiling_a.connect_s:.1f} s; RSS/conn {ceiling_a.rss_per_conn_kib:.1f} KiB")
        engine = StockEngine(self.admin)
        feed = Feed(self.admin)
        live = ShowNode(
            redis=self.admin, engine=engine, catalog=Catalog(self.admin, engine), hub=Hub(), node_id="bench"
        )

        async def replay(seqs: list[int]) -> tuple[dict[int, float], control.JSON]:
            """The node's frames of ``seqs``, byte for byte, broadcast by A back to back."""
            events = {e.seq: frame(e).decode() for e in await feed.since(FAN_SHOW, min(seqs) - 1, limit=1000) or []}
            await self.ask_all({"cmd": "mark"}, 30)
            reply = await server.ask({"cmd": "broadcast", "payloads": [events[s] for s in seqs]}, 120)
            # Every frame was handed to A at once: latency counts from then for all of them, as the node's
            # counts from each frame's publish (a burst's publishes take a few ms), queueing included.
            return dict.fromkeys(seqs, float(reply["published"][0])), reply

        # single drops: through the host API on the node, then the same frame on A
        probes: dict[str, list[float]] = {"LiveDrop": [], "A": []}
        for k in range(args.probes):
            await self.quiet()
            await self.ask_all({"cmd": "mark"}, 30)
            published = time.time()
            await self.call("POST", f"/api/drops/probe-{k}/launch", {})
            seq, _ = await feed.position(FAN_SHOW)
            lat = node.tally(await self.collect({seq: published}, ["fan"]))
            node.probe_p99_each.append(round(1000 * percentile(lat, 0.99), 1))
            probes["LiveDrop"].extend(lat)
            await asyncio.sleep(0.3)
            sent, _ = await replay([seq])
            lat_a = ceiling_a.tally(await self.collect(sent, ["A"]))
            ceiling_a.probe_p99_each.append(round(1000 * percentile(lat_a, 0.99), 1))
            probes["A"].extend(lat_a)
            print(
                f"  probe {k + 1}: node p50 {1000 * percentile(lat, 0.5):.0f} / p99 {node.probe_p99_each[-1]:.0f} ms;"
                f" A p50 {1000 * percentile(lat_a, 0.5):.0f} / p99 {ceiling_a.probe_p99_each[-1]:.0f} ms",
                flush=True,
            )
            await asyncio.sleep(0.3)
        for out, lat in ((node, probes["LiveDrop"]), (ceiling_a, probes["A"])):
            out.probe_p50_ms = 1000 * percentile(lat, 0.50)
            out.probe_p99_ms = 1000 * percentile(lat, 0.99)

        # bursts: drop frames published back to back from this process (as by another node), then A
        bursts: dict[str, list[tuple[float, float, list[float], Cpu]]] = {"LiveDrop": [], "A": []}
        for b in range(args.bursts):
            await self.quiet()
            await self.ask_all({"cmd": "mark"}, 30)
            window = CpuWindow(self.admin, self.node_cpu)
            await window.begin()
            sent = {}
            for k in range(args.frames):
                published = time.time()
                sent[await live.publish_drop(f"fan-{k % BURST_DROPS}")] = published
            got = await self.collect(sent, ["fan"])
            bursts["LiveDrop"].append(burst_row(node, got, sent, *await window.end(sum(r["cpu"] for r in got))))
            await asyncio.sleep(0.3)
            await self.quiet()
            window = CpuWindow(self.admin, a_cpu)
            await window.begin()
            sent_a, reply = await replay(sorted(sent))
            got = await self.collect(sent_a, ["A"])
            bursts["A"].append(burst_row(ceiling_a, got, sent_a, *await window.end(sum(r["cpu"] for r in got))))
            ceiling_a.hold_ms = reply["hold_ms"]
            for name in ("LiveDrop", "A"):
                fps, us, lat, cpu = bursts[name][-1]
                print(
                    f"  burst {b + 1} {name}: {fps:,.0f} frames/s, p99 {1000 * percentile(lat, 0.99):.0f} ms, "
                    f"{us:.1f} us/frame, CPU % server/clients/redis/others {cpu.text()}",
                    flush=True,
                )
            await asyncio.sleep(0.3)
        summarise(node, bursts["LiveDrop"])
        summarise(ceiling_a, bursts["A"])
        results.ceiling_a = ceiling_a
        results.check(
            "ceiling A: every frame reached every socket, in order",
            ceiling_a.delivered == ceiling_a.expected and not ceiling_a.out_of_order and not ceiling_a.lost,
            f"{ceiling_a.delivered:,} of {ceiling_a.expected:,} frames; {ceiling_a.out_of_order} out of order, "
            f"{ceiling_a.lost} sockets closed",
        )

    async def quiet(self) -> None:
        """Wait up to ``--quiet-wait`` s for the machine to be quiet (other people's work) before a window."""
        if self.args.quiet_wait > 0:
            busy = await wait_quiet(self.args)
            if busy >= self.args.quiet_cpu:
                print(f"  (machine still busy: {busy:.0f}% of a core before this window)", flush=True)

    # -- 4. reconnect storm ---------------------------------------------------------------------------------------

    async def storm(self) -> None:
        args, results = self.args, self.results
        assert self.admin is not None
        n = args.viewers
        print(f"\n[5] reconnect storm: {n:,} viewers dropped at once, back within {args.storm_spread:g} s", flush=True)
        await self.ask_all({"cmd": "abort", "group": "fan"}, 60)
        left = await self.wait_connections(0, 60)
        out = Storm(n, args.storm_spread)
        results.storm = out
        if not results.check("storm: the node let every dropped viewer go", left == 0, f"gauge {left}"):
            return
        await self.ask_all({"cmd": "mark"}, 30)
        window = CpuWindow(self.admin, self.node_cpu)
        await window.begin()
        probe = LagProbe(self.port)
        probe.start()
        start_at = time.time() + 0.5
        readyz: list[int] = []
        stop = asyncio.Event()

        async def poll_ready() -> None:
            while not stop.is_set():
                status, _ = await asyncio.to_thread(http_get, self.node_url + "/readyz", 5.0)
                readyz.append(status)
                await asyncio.sleep(0.25)

        poller = asyncio.create_task(poll_ready())
        try:
            replies = await self.ask_clients(
                [
                    {
                        "cmd": "connect",
                        "group": "storm",
                        "show": FAN_SHOW,
                        "port": self.port,
                        "count": share,
                        "first": index,
                        "clients": len(self.clients),
                        "total": n,
                        "prefix": "v",
                        "token": True,
                        "spread": args.storm_spread,
                        "start_at": start_at,
                        "timeout": 60,
                    }
                    for index, share in enumerate(split(n, len(self.clients)))
                ],
                300,
            )
        finally:
            stop.set()
            await poller
        out.stall_p99_ms, out.stall_max_ms = await probe.stop()
        out.cpu, _ = await window.end(sum(r["cpu"] for r in replies))
        out.failed = sum(r["failed"] for r in replies)
        out.welcomed = sum(r["ok"] for r in replies)
        out.retries = sum(r["retries"] for r in replies)
        lat = [x for r in replies for x in r["lat"]]
        out.p50_ms, out.p99_ms = 1000 * percentile(lat, 0.5), 1000 * percentile(lat, 0.99)
        out.all_welcomed_s = max(r["last_welcome"] for r in replies) - start_at
        out.readyz_during = sorted(Counter(readyz).elements())
        out.readyz_after, _ = await asyncio.to_thread(http_get, self.node_url + "/readyz", 5.0)
        print(
            f"  {out.welcomed:,} welcomed, last {out.all_welcomed_s:.2f} s after the first was due; "
            f"welcome p50 {out.p50_ms:.0f} ms, p99 {out.p99_ms:.0f} ms; {out.retries} retries; "
            f"node /healthz p99 {out.stall_p99_ms:.0f} ms, max {out.stall_max_ms:.0f} ms; "
            f"CPU % node/clients/redis/others {out.cpu.text()}",
            flush=True,
        )
        error = next((r["error"] for r in replies if r["error"]), None)
        results.check(
            "storm: every viewer got its welcome",
            out.failed == 0 and out.welcomed == n,
            f"{out.welcomed:,}/{n:,}" + (f"; first error {error}" if error else ""),
        )
        bad = [s for s in readyz if s != 200]
        results.check(
            "storm: node ready afterwards (/readyz)",
            out.readyz_after == 200,
            f"{out.readyz_after} after; {len(readyz) - len(bad)}/{len(readyz)} polls answered 200 during the storm",
        )

    # -- 3. reservation burst --------------------------------------------------------------------------------------

    async def reserve_burst(self) -> None:
        args, results = self.args, self.results
        assert self.admin is not None
        n = args.viewers
        units = args.burst_units
        print(
            f"\n[4] reservation burst: {n:,} viewers, one reserve each within {args.burst_spread:g} s, {units} units",
            flush=True,
        )
        await self.ask_all({"cmd": "mark"}, 30)
        published = time.time()
        await self.call("POST", "/api/drops/burst/launch", {})
        seq, _ = await Feed(self.admin).position(FAN_SHOW)
        await self.collect({seq: published}, ["fan"])
        await self.ask_all({"cmd": "mark"}, 30)
        window = CpuWindow(self.admin, self.node_cpu)
        await window.begin()
        probe = LagProbe(self.port)
        probe.start()
        start_at = time.time() + 0.3
        replies = await self.ask_clients(
            [
                {
                    "cmd": "reserve_burst",
                    "group": "fan",
                    "drop": "burst",
                    "start_at": start_at,
                    "spread": args.burst_spread,
                    "total": n,
                    "first": index,
                    "clients": len(self.clients),
                    "ref": "b",
                    "timeout": 30,
                }
                for index in range(len(self.clients))
            ],
            120,
        )
        out = Reservations("burst", n)
        out.stall_p99_ms, out.stall_max_ms = await probe.stop()
        out.cpu, _ = await window.end(sum(r["cpu"] for r in replies))
        fold(out, replies)
        out.seconds = args.burst_spread
        out.rate = out.answered / max(1e-9, args.burst_spread)
        results.burst = out
        counters = await StockEngine(self.admin).counters("burst")
        errors = {k: v for k, v in out.answers.items() if k.startswith("error")}
        sold_out = out.answers.get("rejected:sold_out", 0)
        print(
            f"  answers {dict(sorted(out.answers.items()))}, p50 {out.p50_ms:.0f} ms, p99 {out.p99_ms:.0f} ms; "
            f"node /healthz p99 {out.stall_p99_ms:.0f} ms, max {out.stall_max_ms:.0f} ms; "
            f"CPU % node/clients/redis/others {out.cpu.text()}",
            flush=True,
        )
        results.check(
            f"burst: exactly {units} reserved, the rest sold_out, every request answered",
            out.answers.get("reserved", 0) == units and sold_out == n - units and out.unanswered == 0,
            f"{out.answers.get('reserved', 0)} reserved, {sold_out} sold_out, {out.unanswered} unanswered "
            f"of {out.sent:,} sent",
        )
        results.check("burst: no error frames", not errors, str(errors or "none"))
        results.check(
            f"burst: counters {units} held, 0 available",
            counters.held == units and counters.available == 0 and counters.total == units,
            f"held {counters.held}, available {counters.available}, sold {counters.sold}, total {counters.total}",
        )

    # -- 5. sustained reservations ---------------------------------------------------------------------------------

    async def reserve_steady(self) -> None:
        args, results = self.args, self.results
        assert self.admin is not None
        m = args.reserve_viewers
        if args.reserve_rate:
            rates = [args.reserve_rate]
        else:
            base = results.redis_ceiling or 10_000.0
            rates = [base * float(x) for x in args.reserve_load.split(",") if x.strip()]
        print(
            f"\n[2] sustained reservations: {m:,} viewers; offered "
            + ", then ".join(f"{r:,.0f}/s" for r in rates)
            + f"; {args.reserve_warmup:g} s warm-up + {args.reserve_seconds:g} s each",
            flush=True,
        )
        replies, _ = await self.connect("res", RES_SHOW, m, self.port, prefix="r", token=True)
        failed = sum(r["failed"] for r in replies)
        if not results.check("sustained: every viewer connected", failed == 0, f"{m - failed:,}/{m:,}"):
            return
        for index, rate in enumerate(rates):
            await self.steady_window(f"s{index}", m, rate)
            await asyncio.sleep(0.5)
        await self.ask_all({"cmd": "abort", "group": "res"}, 60)

    async def steady_window(self, ref: str, m: int, rate: float) -> None:
        """One timed window at ``rate`` reserves/s offered in total."""
        args, results = self.args, self.results
        assert self.admin is not None
        before = await StockEngine(self.admin).counters("steady")
        await self.ask_all({"cmd": "mark"}, 30)
        start_at = time.time() + 0.5
        window = CpuWindow(self.admin, self.node_cpu)

        probe = LagProbe(self.port)

        async def timed_window() -> None:
            await asyncio.sleep(max(0.0, start_at + args.reserve_warmup - time.time()))
            await window.begin()
            probe.start()

        opener = asyncio.create_task(timed_window())
        clients = len(self.clients)
        pending = asyncio.gather(
            *(
                c.ask(
                    {
                        "cmd": "reserve_steady",
                        "group": "res",
                        "drop": "steady",
                        "rate": rate / clients,
                        "start_at": start_at,
                        "warmup": args.reserve_warmup,
                        "duration": args.reserve_seconds,
                        "ref": ref,
                        "timeout": 30,
                    },
                    args.reserve_warmup + args.reserve_seconds + 90,
                )
                for c in self.clients
            )
        )
        await opener
        await asyncio.sleep(max(0.0, start_at + args.reserve_warmup + args.reserve_seconds - time.time()))
        stall = await probe.stop()
        cpu, _ = await window.end(0.0)
        replies = list(await pending)
        out = Reservations(f"sustained at {rate:,.0f}/s", m)
        fold(out, replies)
        # the clients report their CPU over the window with their answers, after the window closed
        cpu.clients = 100 * sum(r["cpu_window"] for r in replies) / args.reserve_seconds
        cpu.others = max(0.0, cpu.others - cpu.clients)
        out.cpu = cpu
        out.stall_p99_ms, out.stall_max_ms = stall
        out.answered = sum(r["answered_window"] for r in replies)
        out.sent = sum(r["sent"] for r in replies)
        out.skipped = sum(r["skipped"] for r in replies)
        out.seconds = args.reserve_seconds
        out.rate = out.answered / args.reserve_seconds
        out.offered = rate
        results.sustained.append(out)
        after = await StockEngine(self.admin).counters("steady")
        reserved = out.answers.get("reserved", 0)
        errors = {k: v for k, v in out.answers.items() if k.startswith("error")}
        print(
            f"  offered {rate:,.0f}/s: {out.rate:,.0f} answers/s in the window, p50 {out.p50_ms:.0f} ms, "
            f"p99 {out.p99_ms:.0f} ms; {out.sent:,} sent, {out.skipped:,} slots skipped (viewer still waiting); "
            f"node /healthz p99 {out.stall_p99_ms:.0f} ms, max {out.stall_max_ms:.0f} ms; "
            f"CPU % node/clients/redis/others {out.cpu.text()}",
            flush=True,
        )
        results.check(
            f"sustained {rate:,.0f}/s: every request answered with a hold, no error frames",
            reserved == out.sent and out.unanswered == 0 and not errors,
            f"{reserved:,} reserved of {out.sent:,} sent, {out.unanswered} unanswered, answers {out.answers}",
        )
        results.check(
            f"sustained {rate:,.0f}/s: holds in Redis match the answers",
            after.held - before.held == reserved,
            f"held went from {before.held:,} to {after.held:,} for {reserved:,} reserved answers",
        )


HUB_METRICS = {
    "livedrop_frames_sent_total",
    "livedrop_frames_parked_total",
    "livedrop_slow_set_aside_total",
    "livedrop_slow_closed_total",
    "livedrop_broadcasts_total",
}


def burst_row(
    out: FanOut, got: list[control.JSON], sent: dict[int, float], cpu: Cpu, server_seconds: float
) -> tuple[float, float, list[float], Cpu]:
    """frames/s (first publish to last receipt), server CPU us per delivered frame, latencies, CPU shares."""
    lat = out.tally(got)
    seconds = max(1e-9, max(r["last"] for r in got) - min(sent.values()))
    return len(lat) / seconds, 1e6 * server_seconds / max(1, len(lat)), lat, cpu


def summarise(out: FanOut, bursts: list[tuple[float, float, list[float], Cpu]]) -> None:
    if not bursts:
        return
    out.fps_each = [round(b[0]) for b in bursts]
    out.fps_best = max(out.fps_each)
    median = sorted(bursts, key=lambda b: b[0])[len(bursts) // 2]
    out.fps = median[0]
    out.us_per_frame = statistics.median(b[1] for b in bursts)
    out.burst_p50_ms = 1000 * percentile(median[2], 0.50)
    out.burst_p99_ms = 1000 * percentile(median[2], 0.99)
    out.cpu = median[3]


def fold(out: Reservations, replies: list[control.JSON]) -> None:
    answers: Counter[str] = Counter()
    lat: list[float] = []
    for reply in replies:
        answers.update(reply["answers"])
        lat.extend(reply["lat"])
        out.sent += reply["sent"]
        out.unanswered += reply["unanswered"]
    out.answers = dict(answers)
    out.answered = sum(answers.values())
    out.p50_ms, out.p99_ms = 1000 * percentile(lat, 0.5), 1000 * percentile(lat, 0.99)


# --- main --------------------------------------------------------------------------------------------------------


async def guarded(results: Results, label: str, step: Awaitable[None]) -> None:
    try:
        await step
    except Exception as exc:
        results.check(label, False, f"{type(exc).__name__}: {exc}"[:400])


async def main_async(args: argparse.Namespace) -> int:
    control.raise_nofile(NOFILE)  # inherited by Redis, the node and every client
    results = Results(
        command="python -m bench.fanout " + " ".join(sys.argv[1:]),
        machine={
            "cpus": str(os.cpu_count()),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "uvicorn": package_version("uvicorn"),
            "websockets": package_version("websockets"),
            "starlette": package_version("starlette"),
            "uvloop": package_version("uvloop"),
            "redis-py": package_version("redis"),
            "load average before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        },
        settings={k: v for k, v in vars(args).items() if k != "json"},
    )
    started = time.perf_counter()
    bench = Bench(args, results)
    try:
        async with asyncio.timeout(args.max_seconds):
            with tempfile.TemporaryDirectory(prefix="livedrop-fanout-") as workdir:
                try:
                    await bench.start(workdir)
                    await bench.setup_shows()
                    await guarded(results, "redis-benchmark ceiling", bench.redis_ceiling())
                    await guarded(results, "sustained reservations", bench.reserve_steady())
                    # A fresh node for the fan-out: its RSS per viewer must not reuse memory the
                    # sustained phase left behind.
                    await bench.restart_node()
                    await guarded(results, "fan-out", bench.fanout())
                    if results.livedrop is not None:
                        await guarded(results, "reservation burst", bench.reserve_burst())
                        await guarded(results, "reconnect storm", bench.storm())
                finally:
                    await bench.stop()
    except TimeoutError:
        results.check("run finished within --max-seconds", False, f"stopped after {args.max_seconds:g} s")
    results.seconds = time.perf_counter() - started
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(results), indent=1) + "\n", encoding="utf-8")
    return 0 if all(c.ok for c in results.checks) else 1


def report(results: Results) -> None:
    args = results.settings
    print(
        f"\n{results.command}\n({results.seconds:.0f} s; {args['clients']} client processes; "
        f"{args['probes']} probes; median of {args['bursts']} bursts of {args['frames']} drop frames; "
        f"Python {results.machine['python']}, uvicorn {results.machine['uvicorn']}, "
        f"websockets {results.machine['websockets']}; {results.machine['cpus']} cores; "
        f"load average before: {results.machine['load average before']})\n"
    )
    print("\n".join(table(results)))
    print()
    print("\n".join(cpu_lines(results)))
    d, a = results.livedrop, results.ceiling_a
    if d is not None:
        print(f"\n  LiveDrop probes p99 (ms): {d.probe_p99_each}; bursts frames/s: {d.fps_each}")
    if a is not None:
        print(f"  A probes p99 (ms): {a.probe_p99_each}; bursts frames/s: {a.fps_each}; loop hold {a.hold_ms:.0f} ms")
    if results.redis_ceiling_runs:
        print("  redis-benchmark -P 1 runs: " + ", ".join(f"{r:,.0f}" for r in results.redis_ceiling_runs))
    if results.hub:
        print("  hub: " + ", ".join(f"{k} {v:,.0f}" for k, v in sorted(results.hub.items())))
    for cpu_window in (d, a):
        if cpu_window is not None and cpu_window.cpu.others > 25:
            print(
                f"  ! other processes used {cpu_window.cpu.others:.0f}% of a core during {cpu_window.server}'s "
                "median burst: its figures are unreliable; compare ratios and rerun on a quieter machine"
            )
    failed = [c for c in results.checks if not c.ok]
    print(f"\nchecks: {len(results.checks) - len(failed)} passed, {len(failed)} failed")
    for check in failed:
        print(f"  FAIL {check.name}: {check.detail}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fanout", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, default=10_000, help="viewers of the fan-out, storm and burst")
    parser.add_argument("--clients", type=int, default=2, help="client processes holding the viewers")
    parser.add_argument("--probes", type=int, default=3, help="single drops launched through the API")
    parser.add_argument("--frames", type=int, default=20, help="drop frames per burst")
    parser.add_argument("--bursts", type=int, default=3, help="bursts (the median is reported)")
    parser.add_argument("--connect-concurrency", type=int, default=200, help="handshakes in flight per client")
    parser.add_argument("--storm-spread", type=float, default=2.0, help="seconds the reconnect storm spans")
    parser.add_argument("--burst-units", type=int, default=500, help="units of the reservation burst's drop")
    parser.add_argument("--burst-spread", type=float, default=1.0, help="seconds the reservation burst spans")
    parser.add_argument("--reserve-viewers", type=int, default=2000, help="viewers of the sustained test")
    parser.add_argument(
        "--reserve-load",
        default="0.5,1.0",
        help="offered rates of the sustained windows, as fractions of the -P 1 ceiling (default 0.5,1.0)",
    )
    parser.add_argument("--reserve-rate", type=float, default=0.0, help="one window at this many reserves/s instead")
    parser.add_argument("--reserve-seconds", type=float, default=10.0, help="timed window of the sustained test")
    parser.add_argument("--reserve-warmup", type=float, default=2.0, help="untimed seconds before it")
    parser.add_argument(
        "--conn-reserve-rate", type=float, default=100.0, help="the node's per-connection reserve rate and burst"
    )
    parser.add_argument(
        "--node-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment of the node, e.g. LIVEDROP_STOCK_INTERVAL=0.5 (repeatable)",
    )
    parser.add_argument("--ceiling-requests", type=int, default=50_000, help="redis-benchmark -n per run")
    parser.add_argument("--ceiling-runs", type=int, default=3, help="redis-benchmark runs (median)")
    parser.add_argument("--redis-benchmark", help="path of redis-benchmark (default: from PATH)")
    parser.add_argument(
        "--quiet-wait", type=float, default=5.0, help="seconds to wait for a quiet machine before each fan-out window"
    )
    parser.add_argument("--quiet-cpu", type=float, default=30.0, help="quiet: machine busy under this %% of a core")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="hard bound on the whole run")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args(argv)
    if args.viewers < args.burst_units or args.clients < 1 or args.viewers < 1:
        parser.error("--viewers must be at least --burst-units, --clients at least 1")
    if any("=" not in each for each in args.node_env):
        parser.error("--node-env takes NAME=VALUE")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    import uvloop

    return uvloop.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
