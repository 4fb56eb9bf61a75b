"""Reservations over real WebSockets against the minimal-script ceiling measured in the same run
(issue 17).

    python -m bench.reserve_ws                  # quick sizes, one node process then two workers, ~1.5 min
    python -m bench.reserve_ws --full           # issue 17's sizes: 100,000 in 1 s on 5,000 units, 50,000 storm
    python -m bench.reserve_ws --workers 1      # one setup only; --json results.json keeps every figure

One private Redis (AOF, ``appendfsync everysec``, from ``livedrop redis``) for the whole run. First the
ceiling: ``redis-benchmark -P 1`` of the reference script (``bench/reserve_ref.lua``: clock, conditional
decrement, hold record, expiry entry, nothing else; ``bench.stock.reference``). Then, for each
``--workers`` setting, a fresh ``livedrop serve`` on that Redis and a separate load process (or
``--clients`` of them: ``bench.fanout_lib.live_viewers``, raw RFC 6455 clients) that run:

1. **Sustained**: ``--viewers`` viewers send ``reserve`` frames at the ceiling's rate in total, at most one
   unanswered each, on a drop that never sells out: answers per second in the timed window, as a ratio
   to the ceiling.
2. **Burst**: ``--burst`` reserves spread evenly over ``--burst-spread`` s on a drop of ``--burst-units``
   units just launched, ``--burst-viewers`` viewers sending their share each. Checks exactly that many
   holds, and FIFO: which of the requests fired first got them.
3. **Sold-out storm**: ``--storm`` reserves over ``--storm-spread`` s on that drop, now sold out: p99, and
   the Redis calls made meanwhile (``INFO commandstats`` deltas: EVALSHA and all commands).

Every row has CPU in % of one core: the node (its whole process tree), the load processes, Redis and the
rest of the machine, and the machine's load averages before the setup. Exit status 1 if a check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.fanout_lib import control
from bench.fanout_lib.control import Child
from bench.fanout_lib.measure import Cpu, CpuWindow, percentile, split, tree_cpu
from bench.stock import Report, meta_int, reference
from bench.stock_ref import SOURCE as REF_SOURCE
from loadtest.hostapi import HostApi
from loadtest.stack import RedisProcess, Stack, free_port
from stock import StockEngine

ROOT = str(Path(__file__).resolve().parent.parent)
SHOW = "ws-res"
QUICK = {"viewers": 1000, "burst": 20_000, "burst_units": 1000, "burst_viewers": 1000, "storm": 10_000}
# How much later than the first refused request the last granted one may have been fired: sockets read in
# one loop turn are handed over in the kernel's order, not the order they were written (see the FIFO check).
FIFO_WINDOW_MS = 50.0
FULL = {"viewers": 2000, "burst": 100_000, "burst_units": 5000, "burst_viewers": 5000, "storm": 50_000}


@dataclass
class Row:
    setup: str
    phase: str
    requests: int
    rate: float  # answers per second
    p50_ms: float
    p99_ms: float
    cpu: Cpu
    ratio: float | None = None  # to the reference script's -P 1 rate
    load: str = ""  # load averages before the setup
    note: str = ""

    node_cpu_s: float = 0.0  # the node's CPU-seconds over the phase's window

    @property
    def node_us(self) -> float:
        """The node's CPU per answer, in µs: what the figures cost it, whatever else loads the machine."""
        return self.node_cpu_s * 1e6 / self.requests if self.requests else float("nan")


@dataclass
class Results:
    command: str
    ceiling: float = 0.0
    ceiling_runs: list[float] = field(default_factory=list)
    echo: float = 0.0  # the bare Starlette endpoint's answers/s (EchoSetup)
    rows: list[Row] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append((name, ok, detail))
        print(f"    [{'ok  ' if ok else 'FAIL'}] {name}: {detail}", flush=True)
        return ok


def load_averages() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


async def command_calls(admin: Redis) -> tuple[int, int]:
    """(EVALSHA calls, all calls) since Redis started, from INFO commandstats."""
    stats: dict[str, Any] = await admin.info("commandstats")
    total = sum(int(v["calls"]) for v in stats.values())
    evalsha = int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
    return evalsha, total


class Setup:
    """One node (``workers`` processes) on the shared Redis, and the load processes."""

    def __init__(self, args: argparse.Namespace, results: Results, redis_url: str, workers: int) -> None:
        self.args, self.results, self.redis_url, self.workers = args, results, redis_url, workers
        self.name = "1 process" if workers == 1 else f"--workers {workers}"
        self.clients: list[Child] = []
        self.stack: Stack | None = None
        self.admin = Redis.from_url(redis_url)
        self.node_pid = 0
        self.port = 0
        self.load = ""
        self.echo = False

    async def start(self, workdir: str) -> None:
        env = {
            # Several reserves a second per viewer: lift the per-connection limiter (5/s by default)
            # so that the node is measured, not the limiter.
            "LIVEDROP_RESERVE_RATE": "1000",
            "LIVEDROP_RESERVE_BURST": "1000",
            "LIVEDROP_WORKERS": str(self.workers),
        }
        self.stack = Stack(workdir, nodes=1, redis_url=self.redis_url, env=env)
        await asyncio.to_thread(self.stack.start, 60.0)
        node = self.stack.nodes[0]
        assert node.proc is not None
        self.node_pid, self.port = node.proc.pid, node.port
        self.api = HostApi(node.url, self.stack.host_token)
        os.environ["LIVEDROP_VIEWER_SECRET"] = self.stack.secrets["LIVEDROP_VIEWER_SECRET"]  # the clients mint
        for index in range(self.args.clients):
            child = await Child.start(
                f"load {index}", ["-m", "bench.fanout_lib.live_viewers", "--id", str(index)], ROOT
            )
            await child.recv(30)
            self.clients.append(child)
        tag = f"w{self.workers}"
        await self.call("POST", "/api/shows", {"show_id": f"{SHOW}-{tag}", "title": "WebSocket reservations"})
        await self.call("POST", f"/api/shows/{SHOW}-{tag}/start")
        await self.drop(f"steady-{tag}", 1_000_000_000)
        await self.call("POST", f"/api/drops/steady-{tag}/launch", {})
        await self.drop(f"burst-{tag}", self.args.burst_units)

    async def stop(self) -> None:
        for child in self.clients:
            await child.stop()
        await self.admin.aclose()
        if self.stack is not None:
            await asyncio.to_thread(self.stack.stop)

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        return await asyncio.to_thread(self.api.call, method, path, body)

    async def drop(self, drop_id: str, total: int) -> None:
        body = {"drop_id": drop_id, "sku": f"SKU-{drop_id}", "title": drop_id, "total": total, "hold_seconds": 3600}
        await self.call("POST", f"/api/shows/{SHOW}-w{self.workers}/drops", {**body, "prices": {"EUR": 1900}})

    async def node_cpu(self) -> float:
        return tree_cpu(self.node_pid)

    async def ask_each(self, make: Any, timeout: float) -> list[control.JSON]:
        n = len(self.clients)
        return list(await asyncio.gather(*(c.ask(make(i, n), timeout) for i, c in enumerate(self.clients))))

    async def connect(self, group: str, count: int) -> bool:
        replies = await self.ask_each(
            lambda i, n: {
                "cmd": "connect",
                "group": group,
                "show": f"{SHOW}-w{self.workers}",
                "port": self.port,
                "count": split(count, n)[i],
                "first": i,
                "clients": n,
                "total": count,
                "prefix": f"{group}-",
                "token": True,
                "concurrency": 200,
                "timeout": 60,
            },
            300,
        )
        failed = sum(r["failed"] for r in replies)
        return self.results.check(
            f"{self.name}: {group}: every viewer connected", failed == 0, f"{count - failed:,}/{count:,}"
        )

    def row(
        self, phase: str, requests: int, rate: float, lat: list[float], cpu: Cpu, node_s: float, note: str = ""
    ) -> Row:
        ceiling = self.results.ceiling
        row = Row(
            self.name,
            phase,
            requests,
            rate,
            1000 * percentile(lat, 0.5),
            1000 * percentile(lat, 0.99),
            cpu,
            rate / ceiling if ceiling and phase == "sustained" else None,
            self.load,
            note,
            node_s,
        )
        self.results.rows.append(row)
        print(
            f"  {phase}: {requests:,} answered, {rate:,.0f}/s"
            + (f" ({row.ratio:.2f} x ceiling)" if row.ratio is not None else "")
            + f", p50 {row.p50_ms:.1f} ms, p99 {row.p99_ms:.1f} ms; node {row.node_us:.0f} µs/answer; "
            + f"CPU % node/load/redis/others {cpu.text()}"
            + (f"; {note}" if note else ""),
            flush=True,
        )
        return row

    # -- 1. sustained -----------------------------------------------------------------------------

    async def sustained(self) -> None:
        args = self.args
        if not await self.connect("steady", args.viewers):
            return
        rate = args.rate or self.results.ceiling
        drop = f"steady-w{self.workers}"
        before = None if self.echo else await StockEngine(self.admin).counters(drop)
        await self.ask_each(lambda i, n: {"cmd": "mark"}, 30)
        start_at = time.time() + 0.5
        window = CpuWindow(self.admin, self.node_cpu)

        async def open_window() -> None:
            await asyncio.sleep(max(0.0, start_at + args.warmup - time.time()))
            await window.begin()

        opener = asyncio.create_task(open_window())
        pending = asyncio.create_task(
            self.ask_each(
                lambda i, n: {
                    "cmd": "reserve_steady",
                    "group": "steady",
                    "drop": drop,
                    "rate": rate / n,
                    "start_at": start_at,
                    "warmup": args.warmup,
                    "duration": args.seconds,
                    "ref": "s",
                    "timeout": 30,
                },
                args.warmup + args.seconds + 90,
            )
        )
        await opener
        await asyncio.sleep(max(0.0, start_at + args.warmup + args.seconds - time.time()))
        cpu, node_s = await window.end(0.0)
        replies = await pending
        cpu.clients = 100 * sum(r["cpu_window"] for r in replies) / args.seconds
        cpu.others = max(0.0, cpu.others - cpu.clients)
        answered = sum(r["answered_window"] for r in replies)
        lat = [x for r in replies for x in r["lat"]]
        answers: dict[str, int] = {}
        for r in replies:
            for k, v in r["answers"].items():
                answers[k] = answers.get(k, 0) + v
        sent = sum(r["sent"] for r in replies)
        row = self.row("sustained", answered, answered / args.seconds, lat, cpu, node_s, f"offered {rate:,.0f}/s")
        reserved = answers.get("reserved", 0)
        if before is None:
            self.results.echo = row.rate
            self.results.check(f"{self.name}: every frame answered", reserved == sent, f"{reserved:,} of {sent:,}")
        else:
            after = await StockEngine(self.admin).counters(drop)
            self.results.check(
                f"{self.name}: sustained: every request answered with a hold, held in Redis matches",
                reserved == sent and after.held - before.held == reserved,
                f"{reserved:,} reserved of {sent:,} sent, held +{after.held - before.held:,}, answers {answers}",
            )
        await self.ask_each(lambda i, n: {"cmd": "abort", "group": "steady"}, 60)

    # -- 2, 3. burst, then the sold-out storm -----------------------------------------------------------

    async def fire(
        self, drop: str, ref: str, requests: int, spread: float
    ) -> tuple[list[control.JSON], Cpu, float, float]:
        """The load processes' replies, CPU shares, the node's CPU-seconds and the seconds from the first
        request due to the last answer."""
        viewers = self.args.burst_viewers
        await self.ask_each(lambda i, n: {"cmd": "mark"}, 30)
        window = CpuWindow(self.admin, self.node_cpu)
        await window.begin()
        start_at = time.time() + 0.3
        replies = await self.ask_each(
            lambda i, n: {
                "cmd": "reserve_burst",
                "group": "burst",
                "drop": drop,
                "start_at": start_at,
                "spread": spread,
                "total": viewers,
                "per_viewer": max(1, requests // viewers),
                "first": i,
                "clients": n,
                "ref": ref,
                "timeout": 60,
            },
            spread + 120,
        )
        elapsed = time.time() - start_at
        cpu, node_s = await window.end(sum(r["cpu"] for r in replies))
        return replies, cpu, node_s, elapsed

    async def burst_and_storm(self) -> None:
        args, results = self.args, self.results
        drop = f"burst-w{self.workers}"
        units = args.burst_units
        if not await self.connect("burst", args.burst_viewers):
            return
        await self.call("POST", f"/api/drops/{drop}/launch", {})
        requests = args.burst_viewers * max(1, args.burst // args.burst_viewers)
        replies, cpu, node_s, elapsed = await self.fire(drop, "b", requests, args.burst_spread)
        answers = _sum_answers(replies)
        span = _span(replies)
        granted = sorted(int(ref.rsplit(".", 1)[1]) for r in replies for ref in r["granted"])
        first = sum(1 for g in granted if g < units)
        last_rank = (granted[-1] + 1) if granted else 0
        late_ms = max(0.0, (last_rank - units) * args.burst_spread / requests * 1000)
        self.row(
            f"burst {requests:,} over {args.burst_spread:g} s on {units:,}",
            sum(answers.values()),
            sum(answers.values()) / elapsed,
            [x for r in replies for x in r["lat"]],
            cpu,
            node_s,
            f"sent over {span:.2f} s; {first:,} of the {len(granted):,} holds to the first {units:,} fired; "
            f"last hold fired {late_ms:.1f} ms after the first {units:,}",
        )
        counters = await StockEngine(self.admin).counters(drop)
        results.check(
            f"{self.name}: burst: exactly {units:,} holds, the rest sold_out, every request answered",
            answers.get("reserved", 0) == units
            and answers.get("rejected:sold_out", 0) == requests - units
            and counters.held == units
            and counters.available == 0,
            f"answers {answers}, held {counters.held}, available {counters.available}",
        )
        # Requests on different sockets are not ordered by the network: the node reads the sockets that
        # one loop turn finds readable in the kernel's order, not in the order they were written. FIFO
        # holds in the order the node reads them (the batcher's queue); against firing order it holds up
        # to that window, which the note above measures and this check bounds.
        results.check(
            f"{self.name}: burst: FIFO, the holds went to the first {units:,} fired, within {FIFO_WINDOW_MS:g} ms",
            late_ms <= FIFO_WINDOW_MS,
            f"{first:,}/{units:,} to the first {units:,}; the last hold went to request #{last_rank:,}, "
            f"fired {late_ms:.1f} ms after request #{units:,}",
        )
        storm = args.storm
        before = await command_calls(self.admin)
        redis_before = await meta_int(self.admin, drop, "rejected_sold_out")
        replies, cpu, node_s, elapsed = await self.fire(drop, "x", storm, args.storm_spread)
        after = await command_calls(self.admin)
        by_redis = await meta_int(self.admin, drop, "rejected_sold_out") - redis_before
        answers = _sum_answers(replies)
        evalsha, calls = after[0] - before[0], after[1] - before[1]
        n = sum(answers.values())
        storm_requests = args.burst_viewers * max(1, storm // args.burst_viewers)
        self.row(
            f"sold-out storm {storm_requests:,} over {args.storm_spread:g} s",
            n,
            n / elapsed,
            [x for r in replies for x in r["lat"]],
            cpu,
            node_s,
            f"sent over {_span(replies):.2f} s; {by_redis:,} answered by Redis (the drop's sold_out tally); "
            f"Redis calls meanwhile: {evalsha:,} EVALSHA (the node's sweeps and presence included), {calls:,} in all",
        )
        results.check(
            f"{self.name}: storm: every request answered sold_out",
            answers.get("rejected:sold_out", 0) == storm_requests,
            f"answers {answers}",
        )


def _span(replies: Sequence[control.JSON]) -> float:
    """Seconds from the first request sent to the last, over every load process (the load itself may
    not keep to the spread it was asked for: then the offered rate was lower)."""
    spans = [r["sent_span"] for r in replies if r.get("sent_span") and r["sent_span"][0]]
    return max(s[1] for s in spans) - min(s[0] for s in spans) if spans else float("nan")


def _sum_answers(replies: Sequence[control.JSON]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in replies:
        for k, v in r["answers"].items():
            out[k] = out.get(k, 0) + v
        if r["unanswered"]:
            out["unanswered"] = out.get("unanswered", 0) + r["unanswered"]
    return out


class EchoSetup(Setup):
    """The bare Starlette endpoint of ``bench.echo_server`` under the same load: the WebSocket ceiling."""

    def __init__(self, args: argparse.Namespace, results: Results, redis_url: str) -> None:
        super().__init__(args, results, redis_url, 1)
        self.name = "bare Starlette endpoint (ceiling)"
        self.echo = True
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, workdir: str) -> None:
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": ROOT}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.echo_server", "--port", str(self.port), cwd=ROOT, env=env
        )
        self.node_pid = self.proc.pid
        deadline = time.monotonic() + 30
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        os.environ.setdefault("LIVEDROP_VIEWER_SECRET", "echo")  # the clients mint tokens it ignores
        for index in range(self.args.clients):
            child = await Child.start(
                f"load {index}", ["-m", "bench.fanout_lib.live_viewers", "--id", str(index)], ROOT
            )
            await child.recv(30)
            self.clients.append(child)

    async def stop(self) -> None:
        for child in self.clients:
            await child.stop()
        await self.admin.aclose()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()


async def measure_ceiling(args: argparse.Namespace, results: Results, url: str) -> None:
    binary = shutil.which("redis-benchmark") or shutil.which("valkey-benchmark")
    if binary is None:
        results.check("ceiling: redis-benchmark found", False, "not on PATH")
        return
    admin = Redis.from_url(url)
    try:
        await admin.config_set("auto-aof-rewrite-percentage", 0)  # no rewrite fork inside a window
        sha = await admin.script_load(REF_SOURCE)
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        ns = argparse.Namespace(
            ceiling_requests=args.ceiling_requests, ceiling_runs=3, ceiling_timeout=120, run_id=f"ws{os.getpid()}"
        )
        report = Report(command="", machine={}, settings={})
        print(f"\n[ceiling] reference script, redis-benchmark -P 1 (load {load_averages()})", flush=True)
        row = await reference(report, ns, binary, port, admin, sha, batch=1)
        results.ceiling, results.ceiling_runs = row.rate, row.runs
        for check in report.checks:
            results.checks.append((check.name, check.ok, check.detail))
        print(f"  ceiling {row.rate:,.0f} reservations/s (runs {', '.join(f'{r:,.0f}' for r in row.runs)})", flush=True)
    finally:
        await admin.aclose()


def print_table(results: Results) -> None:
    print(f"\nceiling: reference script -P 1, {results.ceiling:,.0f}/s (median of {len(results.ceiling_runs)})")
    if results.echo:
        print(f"WebSocket ceiling: bare Starlette endpoint, {results.echo:,.0f} answers/s")
        for r in results.rows:
            if r.phase == "sustained" and not r.setup.startswith("bare"):
                print(f"  {r.setup}: {r.rate / results.echo:.2f} x the bare endpoint")
    print(
        "| setup | phase | answered | per s | x ceiling | p50 ms | p99 ms | node µs/answer "
        "| CPU node/load/redis/others % | load avg | note |"
    )
    print("|---|---|--:|--:|--:|--:|--:|--:|---|---|---|")
    for r in results.rows:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else ""
        print(
            f"| {r.setup} | {r.phase} | {r.requests:,} | {r.rate:,.0f} | {ratio} | {r.p50_ms:.1f} | {r.p99_ms:.1f} "
            f"| {r.node_us:.0f} "
            f"| {r.cpu.text()} | {r.load} | {r.note} |"
        )
    failed = [c for c in results.checks if not c[1]]
    print(f"\n{len(results.checks) - len(failed)}/{len(results.checks)} checks passed")


async def main_async(args: argparse.Namespace) -> int:
    results = Results(command="python -m bench.reserve_ws " + " ".join(sys.argv[1:]))
    with tempfile.TemporaryDirectory(prefix="reserve-ws-") as workdir:
        redis = RedisProcess(Path(workdir) / "redis")
        await asyncio.to_thread(redis.start, 60.0)
        try:
            await measure_ceiling(args, results, redis.url)
            if not args.skip_echo and not args.skip_sustained:
                echo = EchoSetup(args, results, redis.url)
                echo.load = load_averages()
                print(f"\n[{echo.name}] load averages before: {echo.load}", flush=True)
                try:
                    await echo.start(workdir)
                    await echo.sustained()
                except Exception as exc:
                    results.check(f"{echo.name}: ran", False, f"{type(exc).__name__}: {exc}"[:400])
                finally:
                    await echo.stop()
            for workers in args.workers:
                setup = Setup(args, results, redis.url, workers)
                setup.load = load_averages()
                print(f"\n[{setup.name}] load averages before: {setup.load}", flush=True)
                try:
                    await setup.start(str(Path(workdir) / f"w{workers}"))
                    if not args.skip_sustained:
                        await setup.sustained()
                    await setup.burst_and_storm()
                except Exception as exc:
                    results.check(f"{setup.name}: ran", False, f"{type(exc).__name__}: {exc}"[:400])
                finally:
                    await setup.stop()
        finally:
            await asyncio.to_thread(redis.stop)
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(results), indent=2), encoding="utf-8")
    return 0 if all(c[1] for c in results.checks) else 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="issue 17's sizes (see the module doc)")
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument("--clients", type=int, default=1, help="load processes")
    parser.add_argument("--viewers", type=int, help="viewers of the sustained phase")
    parser.add_argument("--rate", type=float, default=0.0, help="offered reserves/s (default: the ceiling)")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed window of the sustained phase")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--skip-sustained", action="store_true")
    parser.add_argument("--skip-echo", action="store_true", help="no bare Starlette ceiling")
    parser.add_argument("--burst", type=int, help="reserves in the burst")
    parser.add_argument("--burst-units", type=int)
    parser.add_argument("--burst-viewers", type=int)
    parser.add_argument("--burst-spread", type=float, default=1.0)
    parser.add_argument("--storm", type=int, help="reserves in the sold-out storm")
    parser.add_argument("--storm-spread", type=float, default=1.0)
    parser.add_argument("--ceiling-requests", type=int, default=100_000)
    parser.add_argument("--json", help="write every figure here")
    args = parser.parse_args(argv)
    for name, value in (FULL if args.full else QUICK).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
