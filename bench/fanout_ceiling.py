"""Fan-out ceilings: one encoded frame to N viewer WebSockets, the bare ``websockets`` ceiling against the
hub's candidate send paths (DESIGN §8, STYLE "Fan-out").

    python -m bench.fanout_ceiling --viewers 1000,5000 --frames 20

Every variant runs in a fresh server process; the viewers are held by ``--clients`` other processes
(raw-socket readers by default), all on 127.0.0.1. For each variant and N it measures:

* idle RSS per connection: (server RSS with N viewers - RSS before any) / N;
* latency of one broadcast frame to all N (``--probes`` single frames, apart): send time in the frame,
  receive time in the client, same machine clock; p50 and p99 over every viewer and probe;
* delivered frames/s for ``--frames`` frames broadcast back to back (``--bursts`` per run, ``--rounds``
  runs interleaved; median and best burst), with the p99 latency inside the burst, the server CPU per
  delivered frame and how long one frame's broadcast holds the loop;
* the ratio of each variant to the ceiling A at the same N: of median frames/s, of best bursts, and of
  server CPU per frame (the throughput ratio when the server is CPU-bound, and the figure least moved by
  other processes on a shared machine, whose CPU use is printed too).

Then B, D1, D2 and D3's loops alternated on the same sockets of one process (``--paired``), and a
slow-viewer scenario (``--slow-viewers``): a share of the sockets never read; does one broadcast loop
keep serving the others, are the stalled viewers set aside and evicted?

Variants (see ``bench/fanout_lib/server.py``): A ceiling (``websockets.broadcast``) · B Starlette/uvicorn
awaiting each send · C queue + task per viewer · D1 one loop, pure-ASGI ``send_nowait`` · D2/D3 one loop
through the uvicorn sansio hook (per-viewer framing / one pre-serialised frame) · E ``websockets`` server
for viewers inside the Starlette process, one loop, pre-serialised frame.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.fanout_lib import control
from bench.fanout_lib.control import Child
from bench.fanout_lib.variants import VARIANTS, PairedSendPaths

ROOT = str(Path(__file__).resolve().parent.parent)
MAIN_VARIANTS = [name for name in VARIANTS if name != PairedSendPaths.name]
P99_TARGET_MS = 250.0  # DESIGN §8: a drop reaches 10,000 viewers with p99 under 250 ms
NOISY_OTHERS_PCT = 25.0  # other processes' CPU (% of a core) above which a ceiling run is suspect
RATIO_TARGET = 0.8  # DESIGN §8: delivered frames/s at least 0.8 x the websockets.broadcast ceiling


@dataclass
class Round:
    frames: int = 0
    expected: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    clients_cpu: float = 0.0
    hold_ms: float = 0.0
    stalled: bool = False
    others_cpu_pct: float = 0.0  # CPU of every other process on the machine during the round

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Result:
    variant: str
    viewers: int
    slow: int = 0
    connect_s: float = 0.0
    rss_per_conn_kib: float = 0.0
    probe_p50_ms: float = 0.0
    probe_p99_ms: float = 0.0
    probe_p99_runs: list[float] = field(default_factory=list)
    fps: float = 0.0  # median of every burst of every round
    fps_best: float = 0.0  # best burst: a neighbour's load only ever slows a burst down
    fps_runs: list[float] = field(default_factory=list)
    burst_p50_ms: float = 0.0
    burst_p99_ms: float = 0.0
    delivered: float = 0.0
    server_us_per_frame: float = 0.0
    server_cpu_pct: float = 0.0
    clients_cpu_pct: float = 0.0
    hold_ms: float = 0.0
    others_cpu_pct: float = 0.0
    stalled: bool = False
    set_aside: int = 0
    evicted: int = 0
    ratio: float | None = None  # median frames/s / A's median frames/s, same N
    ratio_best: float | None = None  # best burst / A's best burst
    cpu_ratio: float | None = None  # A's server CPU per frame / this variant's: the ratio if CPU-bound
    error: str | None = None


def machine_busy() -> float:
    """CPU-seconds spent busy by the whole machine, all cores (Linux; 0 elsewhere)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


async def wait_quiet(args: argparse.Namespace) -> float:
    """Wait up to ``--quiet-wait`` seconds for other processes to use under ``--quiet-cpu`` % of a core
    (this machine is shared); return the last one-second reading."""
    deadline = time.perf_counter() + args.quiet_wait
    while True:
        before = machine_busy()
        await asyncio.sleep(1.0)
        busy = 100 * (machine_busy() - before)
        if busy < args.quiet_cpu or time.perf_counter() >= deadline:
            return busy


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class Run:
    """One server process and its client processes for one (variant, N)."""

    def __init__(self, args: argparse.Namespace, variant: str, viewers: int, slow: int, sndbuf: int) -> None:
        self.args = args
        self.variant = variant
        self.viewers = viewers
        self.slow = slow
        self.sndbuf = sndbuf
        self.server: Child | None = None
        self.clients: list[Child] = []
        self.healthy: list[int] = []

    async def __aenter__(self) -> Run:
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Server first: its exit closes every socket at once; the clients then leave on "quit".
        for child in [*([self.server] if self.server else []), *self.clients]:
            await child.stop()

    async def start(self) -> tuple[control.JSON, float]:
        server_args = ["-m", "bench.fanout_lib.server", "--variant", self.variant]
        server_args += ["--sndbuf", str(self.sndbuf), "--slow-after", str(self.args.slow_after)]
        self.server = await Child.start(f"server {self.variant}", server_args, ROOT)
        ready = await self.server.recv(30)
        counts = split(self.viewers, self.args.clients)
        slows = split(self.slow, self.args.clients)
        for index, (count, slow) in enumerate(zip(counts, slows, strict=True)):
            client_args = ["-m", "bench.fanout_lib.client", "--port", str(ready["port"]), "--count", str(count)]
            client_args += ["--slow", str(slow), "--id", str(index), "--kind", self.args.client]
            self.clients.append(await Child.start(f"client {index}", client_args, ROOT))
            self.healthy.append(count - slow)
        started = time.perf_counter()
        replies = await asyncio.gather(*(c.recv(120) for c in self.clients))
        failed = sum(r["failed"] for r in replies)
        if failed:
            raise RuntimeError(f"{failed} viewers failed to connect: {replies[0]['error']}")
        connect_s = time.perf_counter() - started
        async with asyncio.timeout(30):
            while (await self.server.ask({"cmd": "status"}, 30))["viewers"] < self.viewers:
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        return ready, connect_s

    async def status(self) -> control.JSON:
        assert self.server is not None
        return await self.server.ask({"cmd": "status"}, 30)

    async def round(self, frames: int, size: int, deadline: float, mode: str | None = None) -> Round:
        assert self.server is not None
        for client in self.clients:
            await client.ask({"cmd": "mark"}, 10)
        before = await self.server.ask({"cmd": "cpu"}, 30)
        busy_before, wall_before = machine_busy(), time.perf_counter()
        sent = await self.server.ask(
            {
                "cmd": "broadcast",
                "frames": frames,
                "size": size,
                "yield_every": self.args.yield_every,
                "deadline": deadline,
                "mode": mode,
            },
            deadline + 30,
        )
        collect_timeout = deadline if sent["stalled"] else 10 + frames * self.viewers / 20_000
        replies = await asyncio.gather(
            *(
                c.ask({"cmd": "collect", "expect": h * frames, "timeout": collect_timeout}, collect_timeout + 30)
                for c, h in zip(self.clients, self.healthy, strict=True)
            )
        )
        busy, wall = machine_busy() - busy_before, time.perf_counter() - wall_before
        after = await self.server.ask({"cmd": "cpu"}, 30)
        out = Round(
            frames=sum(r["frames"] for r in replies),
            expected=sum(self.healthy) * frames,
            hold_ms=sent["hold_ms"],
            stalled=sent["stalled"],
        )
        last = max(r["last"] for r in replies)
        out.seconds = max(0.0, last - sent["t0"]) if last else 0.0
        for reply in replies:
            out.latencies.extend(reply["lat"])
        out.server_cpu = after["cpu"] - before["cpu"]
        out.clients_cpu = sum(r["cpu"] for r in replies)
        out.others_cpu_pct = max(0.0, 100 * (busy - out.server_cpu - out.clients_cpu) / wall)
        return out


async def measure(args: argparse.Namespace, variant: str, viewers: int) -> Result:
    result = Result(variant=variant, viewers=viewers)
    async with Run(args, variant, viewers, 0, 0) as run:
        ready, result.connect_s = await run.start()
        idle = await run.status()
        result.rss_per_conn_kib = (idle["rss"] - ready["rss"]) / viewers / 1024
        probe_latencies: list[float] = []
        for _ in range(args.probes):
            probe = await run.round(1, args.size, args.deadline)
            probe_latencies.extend(probe.latencies)
            await asyncio.sleep(0.1)
        result.probe_p50_ms = 1000 * percentile(probe_latencies, 0.50)
        result.probe_p99_ms = 1000 * percentile(probe_latencies, 0.99)
        result.probe_p99_runs = [round(result.probe_p99_ms, 1)]
        bursts = [await run.round(args.frames, args.size, args.deadline) for _ in range(args.bursts)]
        summarise(result, bursts)
        final = await run.status()
        result.set_aside, result.evicted = final["set_aside"], final["evicted"]
    return result


def summarise(result: Result, bursts: list[Round]) -> None:
    result.fps_runs = [round(b.fps) for b in bursts]
    result.fps_best = max(result.fps_runs)
    best = sorted(bursts, key=lambda b: b.fps)[len(bursts) // 2]  # the median run, whole
    result.fps = best.fps
    result.burst_p50_ms = 1000 * percentile(best.latencies, 0.50)
    result.burst_p99_ms = 1000 * percentile(best.latencies, 0.99)
    result.delivered = best.frames / best.expected if best.expected else 0.0
    result.server_us_per_frame = 1e6 * best.server_cpu / best.frames if best.frames else 0.0
    result.server_cpu_pct = 100 * best.server_cpu / best.seconds if best.seconds else 0.0
    result.clients_cpu_pct = 100 * best.clients_cpu / best.seconds if best.seconds else 0.0
    result.hold_ms = best.hold_ms
    result.others_cpu_pct = best.others_cpu_pct
    result.stalled = best.stalled


async def measure_slow(args: argparse.Namespace, variant: str) -> Result:
    viewers = args.slow_viewers
    slow = max(1, round(viewers * args.slow_pct / 100))
    result = Result(variant=variant, viewers=viewers, slow=slow)
    async with Run(args, variant, viewers, slow, args.slow_sndbuf) as run:
        _, result.connect_s = await run.start()
        burst = await run.round(args.slow_frames, args.slow_size, args.slow_deadline)
        summarise(result, [burst])
        assert run.server is not None
        settled = await run.server.ask({"cmd": "settle", "timeout": args.slow_after + 2}, args.slow_after + 30)
        result.set_aside, result.evicted = settled["set_aside"], settled["evicted"]
    return result


def merged(runs: list[Result]) -> Result:
    """One row for several rounds: the median round (by frames/s) for its latencies and CPU, with
    frames/s, CPU per frame and 1-frame p99 taken over every round."""
    good = [r for r in runs if not r.error] or runs
    median = sorted(good, key=lambda r: r.fps)[len(good) // 2]
    median.fps_runs = [fps for r in good for fps in r.fps_runs]
    if median.fps_runs:
        median.fps = statistics.median(median.fps_runs)
        median.fps_best = max(median.fps_runs)
    median.probe_p99_runs = [p for r in good for p in r.probe_p99_runs]
    if median.probe_p99_runs:
        median.probe_p99_ms = statistics.median(median.probe_p99_runs)
    median.server_us_per_frame = statistics.median(r.server_us_per_frame for r in good)
    return median


def compare(results: Sequence[Result]) -> None:
    """Ratios of each row to the ceiling A at the same N."""
    ceilings = {r.viewers: r for r in results if r.variant == "A" and not r.error}
    for r in results:
        ceiling = ceilings.get(r.viewers)
        if r.error or ceiling is None:
            continue
        r.ratio = r.fps / ceiling.fps if ceiling.fps else None
        r.ratio_best = r.fps_best / ceiling.fps_best if ceiling.fps_best else None
        if r.server_us_per_frame:
            r.cpu_ratio = ceiling.server_us_per_frame / r.server_us_per_frame


@dataclass
class PairedRow:
    mode: str
    viewers: int
    server_us_per_frame: float
    hold_ms: float
    fps: float


async def measure_paired(args: argparse.Namespace) -> list[PairedRow]:
    """B, D1, D2, D3 loops alternated over the same sockets in one server process."""
    modes = PairedSendPaths.modes
    rounds: dict[str, list[Round]] = {mode: [] for mode in modes}
    async with Run(args, PairedSendPaths.name, args.paired, 0, 0) as run:
        await run.start()
        for _ in range(args.paired_reps):
            for mode in modes:
                rounds[mode].append(await run.round(args.frames, args.size, args.deadline, mode=mode))
    return [
        PairedRow(
            mode=mode,
            viewers=args.paired,
            server_us_per_frame=statistics.median(1e6 * r.server_cpu / max(1, r.frames) for r in runs),
            hold_ms=statistics.median(r.hold_ms for r in runs),
            fps=statistics.median(r.fps for r in runs),
        )
        for mode, runs in rounds.items()
    ]


def paired_table(rows: Sequence[PairedRow]) -> list[str]:
    base = next((r for r in rows if r.mode == "B"), None)
    lines = [
        "| send loop | viewers | server us/frame | vs B | loop hold ms/frame | frames/s |",
        "|" + "|".join(["---"] * 6) + "|",
    ]
    for r in rows:
        versus = f"{r.server_us_per_frame / base.server_us_per_frame:.2f}" if base else "-"
        lines.append(
            f"| {r.mode} | {r.viewers} | {r.server_us_per_frame:.1f} | {versus} | {r.hold_ms:.1f} | {r.fps:,.0f} |"
        )
    return lines


def table(results: Sequence[Result]) -> list[str]:
    head = (
        "| variant | viewers | idle RSS/conn KiB | 1-frame p50 / p99 ms | frames/s median / best "
        "| ratio to A median / best | server CPU us/frame | CPU ratio to A | burst p99 ms "
        "| CPU % server / clients / others | loop hold ms/frame |"
    )
    lines = [head, "|" + "|".join(["---"] * 11) + "|"]

    def fmt(x: float | None) -> str:
        return f"{x:.2f}" if x is not None else "-"

    for r in results:
        if r.error:
            lines.append(f"| {r.variant} | {r.viewers} | error: {r.error} |" + " |" * 9)
            continue
        lines.append(
            f"| {r.variant} | {r.viewers} | {r.rss_per_conn_kib:.1f} | {r.probe_p50_ms:.0f} / {r.probe_p99_ms:.0f} "
            f"| {r.fps:,.0f} / {r.fps_best:,.0f} | {fmt(r.ratio)} / {fmt(r.ratio_best)} "
            f"| {r.server_us_per_frame:.1f} | {fmt(r.cpu_ratio)} | {r.burst_p99_ms:.0f} "
            f"| {r.server_cpu_pct:.0f} / {r.clients_cpu_pct:.0f} / {r.others_cpu_pct:.0f} | {r.hold_ms:.1f} |"
        )
    return lines


def slow_table(results: Sequence[Result]) -> list[str]:
    lines = [
        "| variant | viewers | stalled viewers | broadcast stalled | healthy delivered | healthy frames/s "
        "| healthy p99 ms | set aside | evicted |",
        "|" + "|".join(["---"] * 9) + "|",
    ]
    for r in results:
        if r.error:
            lines.append(f"| {r.variant} | {r.viewers} | error: {r.error} |" + " |" * 6)
            continue
        lines.append(
            f"| {r.variant} | {r.viewers} | {r.slow} | {'yes' if r.stalled else 'no'} | {100 * r.delivered:.1f}% "
            f"| {r.fps:,.0f} | {r.burst_p99_ms:.0f} | {r.set_aside} | {r.evicted} |"
        )
    return lines


async def guarded(label: str, coro: Awaitable[Result], fallback: Result) -> Result:
    try:
        return await coro
    except Exception as exc:
        fallback.error = f"{type(exc).__name__}: {exc}"[:300]
        print(f"  {label}: {fallback.error}", file=sys.stderr)
        return fallback


async def main_async(args: argparse.Namespace) -> int:
    control.raise_nofile(4096)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    viewers = [int(v) for v in args.viewers.split(",") if v.strip()]
    results: list[Result] = []
    slow_results: list[Result] = []
    paired: list[PairedRow] = []
    started = time.perf_counter()
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    async with asyncio.timeout(args.max_seconds):
        # Rounds interleave the variants so that a neighbour's load hits them alike.
        rounds: dict[tuple[str, int], list[Result]] = {}
        for round_index in range(args.rounds):
            for n in viewers:
                current: list[Result] = []
                for variant in variants:
                    label = f"round {round_index + 1}: {variant} x {n}"
                    if args.quiet_wait:
                        busy = await wait_quiet(args)
                        label += f" (machine busy {busy:.0f}% of a core before)"
                    print(f"... {label}", file=sys.stderr, flush=True)
                    current.append(await guarded(label, measure(args, variant, n), Result(variant, n)))
                for r in current:
                    rounds.setdefault((r.variant, n), []).append(r)
        results = [merged(runs) for runs in rounds.values()]
        compare(results)
        if args.paired:
            print(f"... paired send loops x {args.paired}", file=sys.stderr, flush=True)
            try:
                paired = await measure_paired(args)
            except Exception as exc:
                print(f"  paired: {type(exc).__name__}: {exc}", file=sys.stderr)
        if args.slow_viewers:
            for variant in [v.strip() for v in args.slow_variants.split(",") if v.strip()]:
                print(f"... slow viewers: {variant} x {args.slow_viewers}", file=sys.stderr, flush=True)
                slow_results.append(
                    await guarded(variant, measure_slow(args, variant), Result(variant, args.slow_viewers))
                )
    elapsed = time.perf_counter() - started
    command = "python -m bench.fanout_ceiling " + " ".join(sys.argv[1:])
    print(
        f"\n{command}\n({elapsed:.0f} s; clients: {args.clients} x {args.client}; frame {args.size} B; "
        f"{args.probes} probes; median of {args.bursts} bursts of {args.frames} frames; "
        f"{args.rounds} round(s); load average before: {load_before})\n"
    )
    print("\n".join(table(results)))
    for r in results:
        if r.variant != "A" and not r.error and r.ratio is not None:
            ok = r.ratio >= RATIO_TARGET and r.probe_p99_ms < P99_TARGET_MS
            cpu = f", CPU ratio {r.cpu_ratio:.2f}" if r.cpu_ratio is not None else ""
            cpu += f", best-burst ratio {r.ratio_best:.2f}" if r.ratio_best is not None else ""
            print(
                f"  {r.variant} x {r.viewers}: ratio {r.ratio:.2f}{cpu}, 1-frame p99 {r.probe_p99_ms:.0f} ms "
                f"-> {'meets' if ok else 'misses'} DESIGN §8 (>= {RATIO_TARGET} x A, p99 < {P99_TARGET_MS:.0f} ms)"
            )
    for r in results:
        if r.variant == "A" and not r.error and r.others_cpu_pct > NOISY_OTHERS_PCT:
            print(
                f"  ! other processes used {r.others_cpu_pct:.0f}% of a core during the ceiling run at "
                f"{r.viewers} viewers: its ratios are unreliable; rerun with --rounds 3 --quiet-wait 30"
            )
    if paired:
        print(
            "\nSame process, same sockets, send loops alternated (server CPU per delivered frame, "
            f"median of {args.paired_reps}):\n"
        )
        print("\n".join(paired_table(paired)))
    if slow_results:
        print(
            f"\nSlow viewers: {args.slow_pct}% of sockets never read (4 KiB receive buffer); "
            f"{args.slow_frames} frames of {args.slow_size} B; server SO_SNDBUF {args.slow_sndbuf}; "
            f"broadcast deadline {args.slow_deadline} s; eviction after {args.slow_after} s paused\n"
        )
        print("\n".join(slow_table(slow_results)))
    if args.json:
        payload = {
            "command": command,
            "results": [asdict(r) for r in results],
            "slow": [asdict(r) for r in slow_results],
            "paired": [asdict(r) for r in paired],
        }
        Path(args.json).write_text(json.dumps(payload, indent=1))
    return 1 if any(r.error for r in results) else 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", default="1000,5000", help="comma-separated N (default 1000,5000)")
    parser.add_argument("--frames", type=int, default=20, help="frames per back-to-back burst")
    parser.add_argument("--size", type=int, default=256, help="frame payload bytes")
    parser.add_argument("--variants", default=",".join(MAIN_VARIANTS), help="subset of " + ",".join(VARIANTS))
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--client", choices=("raw", "websockets"), default="raw", help="client implementation")
    parser.add_argument("--probes", type=int, default=3, help="single-frame latency probes")
    parser.add_argument("--bursts", type=int, default=3, help="bursts per run (the median is reported)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved repetitions of every variant")
    parser.add_argument("--yield-every", type=int, default=256, help="sends between yields to the loop")
    parser.add_argument("--deadline", type=float, default=60.0, help="seconds a broadcast may take")
    parser.add_argument("--paired", type=int, default=2000, help="N of the same-process comparison (0: skip)")
    parser.add_argument("--paired-reps", type=int, default=3)
    parser.add_argument("--slow-viewers", type=int, default=1000, help="N of the slow scenario (0: skip)")
    parser.add_argument("--slow-pct", type=float, default=1.0, help="percent of stalled viewers")
    parser.add_argument("--slow-frames", type=int, default=100)
    parser.add_argument("--slow-size", type=int, default=2048)
    parser.add_argument("--slow-sndbuf", type=int, default=32768, help="server SO_SNDBUF in the slow scenario")
    parser.add_argument("--slow-deadline", type=float, default=4.0, help="broadcast deadline, slow scenario")
    parser.add_argument("--slow-after", type=float, default=1.0, help="seconds paused before eviction")
    parser.add_argument("--slow-variants", default="A,B,D1,D3,E")
    parser.add_argument("--quiet-wait", type=float, default=0.0, help="seconds to wait for a quiet machine")
    parser.add_argument("--quiet-cpu", type=float, default=30.0, help="quiet: machine busy under this %% of a core")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="hard bound on the whole run")
    parser.add_argument("--json", help="also write the raw figures to this file")
    args = parser.parse_args(argv)
    unknown = {v.strip() for v in (args.variants + "," + args.slow_variants).split(",") if v.strip()} - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {sorted(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
