"""Scale-out benchmark: two LiveDrop nodes on a local 3-master Redis Cluster, against one node on
one Redis measured in the same run (DESIGN §8: every figure beside its baseline, and the ratio).

    python -m bench.scaleout                    # ~1 min: 1,000 viewers, 1,000 buyers, 200 units
    python -m bench.scaleout --viewers 2000 --json results.json

Each setup is a fresh stack of separate processes (loadtest/stack.py): ``baseline`` is one
``livedrop serve`` on one Redis; ``cluster`` is two, each given a different master of the cluster
as REDIS_URL with LIVEDROP_REDIS_CLUSTER=1. Clients are asyncio WebSockets in this process,
spread evenly over the nodes. Phases:

1. **Fan-out**: ``--viewers`` watch; a drop is launched through the host API. Latency of each
   viewer's ``drop`` frame counts from the moment Redis opened the drop (``ends_at`` - duration,
   Redis' clock). Checks that every viewer got it with the same seq.
2. **Node lost** (cluster only): half of those viewers are on the node killed with SIGKILL; a
   drop is launched through the other at once; each orphan reconnects there with
   ``resume_from`` and ``epoch``. Figure: time from the kill until every orphan holds the new
   drop. Checks no gap in anybody's seqs and no ``reset`` welcome. The node is then restarted.
3. **Burst**: the watchers leave; ``--buyers`` viewers with tokens, spread over the nodes,
   reserve one unit each of a ``--units`` drop, their requests spread evenly over ``--spread``
   seconds. Latency counts from each request's send. Checks exactly ``--units`` holds granted
   and no error frame.

The machine is shared by Redis, the nodes and this client (2 cores here): compare ratios within
one run. Exit status 1 if a check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from loadtest.hostapi import HostApi
from loadtest.plan import DropSpec
from loadtest.stack import Stack

SHOW = "bench"
DURATION_S = 300.0  # drops' length: long enough to outlive every phase
_SKIPPED = ('{"type":"stock"', '{"type":"viewers"')


@dataclass
class Row:
    setup: str
    phase: str
    clients: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    rate: float  # frames or answers per second, or 0
    note: str
    ok: bool = True


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class Client:
    """One viewer socket, its frames kept with their arrival time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.frames: list[tuple[float, dict[str, Any]]] = []
        self.closed = asyncio.Event()
        self.event = asyncio.Event()  # set on every frame
        self.conn: ClientConnection | None = None
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.conn = await connect(self.url, compression=None, open_timeout=30, max_size=2**20)
        self.closed.clear()
        self.task = asyncio.create_task(self._read(self.conn))

    async def _read(self, conn: ClientConnection) -> None:
        try:
            async for raw in conn:
                # Conflated stock and viewer counts are most of the traffic and no phase reads
                # them: skipping their decoding keeps this client from starving for CPU.
                if isinstance(raw, str) and raw.startswith(_SKIPPED):
                    continue
                self.frames.append((time.time(), json.loads(raw)))
                self.event.set()
        except ConnectionClosed:
            pass
        self.closed.set()

    async def wait_for(self, kind: str, timeout: float, **match: Any) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for arrived, frame in self.frames[seen:]:
                if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
                    return arrived, frame
            seen = len(self.frames)
            self.event.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {kind} frame in {timeout:g}s")
            await asyncio.wait_for(self.event.wait(), left)

    def seqs(self) -> list[int]:
        return [f["seq"] for _, f in self.frames if "seq" in f and f["type"] != "welcome"]

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
        if self.task is not None:
            await self.task


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))], 1) if ordered else 0.0


async def open_all(urls: Sequence[str], limit: int = 100) -> list[Client]:
    gate = asyncio.Semaphore(limit)
    clients = [Client(u) for u in urls]

    async def one(c: Client) -> None:
        async with gate:
            await c.open()
            await c.wait_for("welcome", 30)

    await asyncio.gather(*(one(c) for c in clients))
    return clients


def ws(node_url: str, query: str = "") -> str:
    return node_url.replace("http://", "ws://") + f"/ws/shows/{SHOW}" + (f"?{query}" if query else "")


async def host(api: HostApi, method: str, *args: Any) -> Any:
    # The host API client blocks: run it in a thread so the clients keep reading meanwhile.
    return await asyncio.to_thread(getattr(api, method), *args)


def drop(drop_id: str, units: int) -> DropSpec:
    return DropSpec(drop_id, f"SKU-{drop_id}", drop_id, units, 300.0, DURATION_S, 0)


async def fanout(setup: str, stack: Stack, api: HostApi, args: argparse.Namespace, out: Results) -> list[Client]:
    urls = stack.urls
    viewers = await open_all([ws(urls[i % len(urls)]) for i in range(args.viewers)])
    api.add_drop(SHOW, drop("d1", 10))
    await host(api, "launch", "d1")
    latencies, seqs = [], set()
    for v in viewers:
        arrived, frame = await v.wait_for("drop", 30)
        opened = frame["drop"]["ends_at"] - DURATION_S * 1000
        latencies.append(arrived * 1000 - opened)
        seqs.add(frame["seq"])
    span = max(latencies) / 1000 or 1e-9
    ok = len(seqs) == 1 and len(latencies) == len(viewers)
    note = f"{len(latencies)}/{len(viewers)} got the drop, seqs {sorted(seqs)}, {len(urls)} node(s)"
    out.rows.append(
        Row(setup, "fan-out drop", len(viewers), percentile(latencies, 0.5), percentile(latencies, 0.99),
            round(max(latencies), 1), round(len(latencies) / span), note, ok)
    )  # fmt: skip
    if not ok:
        out.failures.append(f"{setup} fan-out: {note}")
    return viewers


async def burst(setup: str, stack: Stack, api: HostApi, args: argparse.Namespace, out: Results) -> None:
    urls = stack.urls
    # Minted by the host API, as an integrator's backend gets them (before the timed burst).
    tokens = await asyncio.to_thread(lambda: [api.viewer_token(SHOW, f"b{i}") for i in range(args.buyers)])
    buyers = await open_all([ws(urls[i % len(urls)], "token=" + token) for i, token in enumerate(tokens)])
    api.add_drop(SHOW, drop("d2", args.units))
    await host(api, "launch", "d2")
    for b in buyers:
        await b.wait_for("drop", 30)
    sent: list[float] = []
    started = time.monotonic()
    for i, b in enumerate(buyers):
        due = started + args.spread * i / len(buyers)
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        sent.append(time.time())
        assert b.conn is not None
        await b.conn.send(json.dumps({"type": "reserve", "ref": "r1", "drop": "d2"}))
    answers = [await answer(b) for b in buyers]
    latencies = [(a - s) * 1000 for (a, _), s in zip(answers, sent, strict=True)]
    kinds = [k["type"] for _, k in answers]
    elapsed = max(a for a, _ in answers) - min(sent)
    ok = kinds.count("reserved") == args.units and "error" not in kinds
    note = (
        f"{kinds.count('reserved')} holds for {args.units} units, {kinds.count('error')} errors, "
        f"sent over {max(sent) - min(sent):.2f}s, {len(urls)} node(s)"
    )
    out.rows.append(
        Row(setup, f"burst over {args.spread:g}s", len(buyers), percentile(latencies, 0.5),
            percentile(latencies, 0.99), round(max(latencies), 1), round(len(answers) / elapsed), note, ok)
    )  # fmt: skip
    if not ok:
        out.failures.append(f"{setup} burst: {note}")
    await asyncio.gather(*(b.close() for b in buyers))


async def answer(b: Client) -> tuple[float, dict[str, Any]]:
    """The answer to the buyer's reserve (ref r1): reserved, rejected or error."""
    deadline = time.monotonic() + 30
    while True:
        for arrived, frame in b.frames:
            if frame.get("ref") == "r1" and frame["type"] in ("reserved", "rejected", "error"):
                return arrived, frame
        b.event.clear()
        await asyncio.wait_for(b.event.wait(), max(0.01, deadline - time.monotonic()))


async def node_lost(stack: Stack, api_b: HostApi, viewers: list[Client], out: Results) -> None:
    a, b = stack.nodes[0], stack.nodes[1]
    orphans = [v for v in viewers if v.url.startswith(ws(a.url).split("/ws/")[0])]
    last = {id(v): v.seqs()[-1] for v in orphans}
    epoch = next(f["epoch"] for _, f in viewers[0].frames if f["type"] == "welcome")
    api_b.add_drop(SHOW, drop("d3", 10))
    killed = time.time()
    a.kill()
    await asyncio.gather(*(v.closed.wait() for v in orphans))
    launched = asyncio.create_task(host(api_b, "launch", "d3"))

    async def come_back(v: Client) -> float:
        v.url = ws(b.url, f"resume_from={last[id(v)]}&epoch={epoch}")
        await v.open()
        arrived, _ = await _wait_drop(v, "d3")
        return arrived

    times = await asyncio.gather(*(come_back(v) for v in orphans))
    await launched
    for v in viewers:
        await _wait_drop(v, "d3")
    gaps = [v for v in viewers if v.seqs() != list(range(v.seqs()[0], v.seqs()[0] + len(v.seqs())))]
    resets = [v for v in viewers if any(f["type"] == "welcome" and f.get("reset") for _, f in v.frames)]
    recovery = [(t - killed) * 1000 for t in times]
    ok = not gaps and not resets
    note = f"{len(orphans)} orphans resumed on the other node; {len(gaps)} with a seq gap, {len(resets)} reset"
    out.rows.append(
        Row("cluster", "node killed → resumed", len(orphans), percentile(recovery, 0.5),
            percentile(recovery, 0.99), round(max(recovery), 1), 0.0, note, ok)
    )  # fmt: skip
    if not ok:
        out.failures.append(f"node lost: {note}")


async def _wait_drop(v: Client, drop_id: str) -> tuple[float, dict[str, Any]]:
    deadline = time.monotonic() + 30
    seen = 0
    while True:
        for arrived, frame in v.frames[seen:]:
            if frame["type"] == "drop" and frame["drop"]["id"] == drop_id:
                return arrived, frame
        seen = len(v.frames)
        v.event.clear()
        await asyncio.wait_for(v.event.wait(), max(0.01, deadline - time.monotonic()))


async def run_setup(setup: str, args: argparse.Namespace, out: Results) -> None:
    with tempfile.TemporaryDirectory(prefix=f"livedrop-bench-{setup}-") as workdir:
        cluster = setup == "cluster"
        stack = Stack(workdir, nodes=2 if cluster else 1, cluster=cluster)
        t0 = time.monotonic()
        with stack:
            print(f"{setup}: stack up in {time.monotonic() - t0:.1f}s ({', '.join(stack.redis_urls)})", flush=True)
            api = HostApi(stack.urls[0], stack.host_token)
            api.call("POST", "/api/shows", {"show_id": SHOW, "title": "Bench"})
            viewers = await fanout(setup, stack, api, args, out)
            if cluster:
                await node_lost(stack, HostApi(stack.urls[1], stack.host_token), viewers, out)
                stack.nodes[0].start()  # back, as an orchestrator would restart it
                stack.nodes[0].wait_ready()
            # The watchers leave before the burst: this client process has two cores to share
            # with Redis and the nodes, and reading their stock frames would slow its own sends.
            await asyncio.gather(*(v.close() for v in viewers))
            await burst(setup, stack, api, args, out)


def render(out: Results) -> str:
    header = f"{'setup':<9}{'phase':<24}{'clients':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'per s':>9}  note"
    lines = [header, "-" * len(header)]
    for r in out.rows:
        lines.append(
            f"{r.setup:<9}{r.phase:<24}{r.clients:>8}{r.p50_ms:>9}{r.p99_ms:>9}{r.max_ms:>9}{r.rate:>9.0f}  "
            f"{'' if r.ok else 'FAILED: '}{r.note}"
        )
    base = {r.phase: r for r in out.rows if r.setup == "baseline"}
    for r in out.rows:
        if r.setup == "cluster" and r.phase in base and base[r.phase].p99_ms:
            lines.append(
                f"ratio cluster/baseline, {r.phase}: p99 x{r.p99_ms / base[r.phase].p99_ms:.2f}, "
                f"rate x{(r.rate / base[r.phase].rate) if base[r.phase].rate else 0:.2f}"
            )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=1000, help="viewers in the fan-out (default 1000)")
    parser.add_argument("--buyers", type=int, default=1000, help="buyers in the burst (default 1000)")
    parser.add_argument("--units", type=int, default=200, help="units of the burst's drop (default 200)")
    parser.add_argument("--spread", type=float, default=1.0, help="seconds the burst is spread over (default 1)")
    parser.add_argument("--json", help="write the rows to this file")
    return parser.parse_args(argv)


async def amain(args: argparse.Namespace) -> Results:
    out = Results()
    for setup in ("baseline", "cluster"):
        await run_setup(setup, args, out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = asyncio.run(amain(args))
    print(render(out))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"rows": [asdict(r) for r in out.rows], "failures": out.failures}, handle, indent=2)
    for failure in out.failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if out.failures else 0


if __name__ == "__main__":
    sys.exit(main())
