"""Stock engine benchmark: reservations per second and answer latency, against the Redis ceiling
measured in the same run (DESIGN §8).

    python -m bench.stock                       # private Redis (AOF, appendfsync everysec), ~1.5 min
    python -m bench.stock --duration 3 --json results.json
    python -m bench.stock --redis-url redis://127.0.0.1:6390/0

Phases, each on a drop of its own (deleted when the phase ends):

1. **Ceiling**: ``redis-benchmark`` runs EVALSHA of the real ``reserve`` script (the text that
   ``stock.scripts.source("reserve")`` gives, loaded with SCRIPT LOAD), one reservation per call,
   50 clients, without pipelining (``-P 1``) and pipelined 16 deep (``-P 16``). Request and
   customer ids carry ``__rand_int__`` (``-r 100000000``), so every call is a new request and not
   an idempotent replay; the run checks afterwards that the placeholder was substituted and that
   the drop's ``holds_created`` counter moved by (nearly) one per call. Optionally a third run
   sends batches of ``--ceiling-batch`` reservations per call: the Redis-side ceiling of the
   batched path. Beside them, the same runs of a **reference** script (``bench/reserve_ref.lua``:
   clock, conditional decrement, hold record, expiry entry, nothing else): the least a
   reservation with a hold costs Redis. Every figure is also printed as a ratio to its ``-P 1``
   rate (``x ref``), and every row with Redis' CPU per reservation (``Redis µs/res``).
2. **One EVALSHA per request**: ``StockEngine.reserve`` from ``--levels`` concurrent asyncio tasks
   (one process), each awaiting its answer before sending the next request. Every in-flight call
   holds a connection, so the client's pool is a plain ``ConnectionPool`` sized to the highest
   level (redis-py's default of 100 would raise ``MaxConnectionsError``).
3. **Batched**: the same levels through ``ReserveBatcher`` (group commit), with its average batch
   size (requests / script calls) during the timed window.
4. **Burst**: ``--burst`` reservations (distinct customers, qty 1) fired at once at a drop of
   ``--burst-units`` units, through the batcher and one EVALSHA per request (there behind a FIFO
   ``asyncio.Semaphore`` as wide as the pool, so the burst queues instead of failing). Checks
   exactly ``--burst-units`` holds from the answers, the counters, the hold hash and the drop's
   tallies; latency counts from the moment the burst is fired. Then the same with arrivals spread
   evenly over ``--burst-spread`` seconds (DESIGN §8: "10,000 viewers reserving within one
   second"), latency counted from each request's own due time.

Each timed window also records CPU use, in % of one core: this process, the Redis server, the
``redis-benchmark`` child, and the rest of the machine (other work on the same cores distorts
every figure: read that column before comparing runs). Exit status 1 if a check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.asyncio import ConnectionPool, Redis

from bench.stock_ref import SOURCE as REF_SOURCE
from bench.stock_ref import ref_command, ref_keys
from loadtest.stack import LOOPBACK, RedisProcess
from stock import DropConfig, RejectReason, ReserveBatcher, ReserveResult, StockEngine, keys
from stock.scripts import source

ReserveFn = Callable[[str, str, int, str], Awaitable[ReserveResult]]

HUGE_TOTAL = 10**12  # the engine's MAX_TOTAL: a drop that never sells out during a run
HOLD_SECONDS = 3600.0  # no hold expires during a run, so expiry never mixes into the figures
BENCH_CLIENTS = 50
RAND_KEYSPACE = 100_000_000
_RAND_DIGITS = re.compile(r"[0-9]{12}")


# --- measurements --------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of unsorted values; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def machine_busy_seconds() -> float | None:
    """CPU-seconds the whole machine spent busy, all cores (Linux /proc/stat), else None."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuShare:
    """CPU used during a timed window, in % of one core (100 = one core busy all the time)."""

    bench: float = 0.0
    redis: float = 0.0
    child: float = 0.0  # redis-benchmark
    other: float | None = None  # the rest of the machine: other people's work on the same cores


class CpuMeter:
    """Samples CPU counters of this process, its children, the Redis server and the machine."""

    def __init__(self, admin: Redis) -> None:
        self.admin = admin
        self._start: tuple[float, float, float, float, float | None] | None = None

    async def _redis_cpu(self) -> float:
        info: dict[str, Any] = await self.admin.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    async def _sample(self) -> tuple[float, float, float, float, float | None]:
        redis_cpu = await self._redis_cpu()
        return time.perf_counter(), time.process_time(), children_cpu_seconds(), redis_cpu, machine_busy_seconds()

    async def start(self) -> None:
        self._start = await self._sample()

    async def stop(self) -> CpuShare:
        assert self._start is not None, "start() first"
        end = await self._sample()
        wall = max(end[0] - self._start[0], 1e-9)
        bench = (end[1] - self._start[1]) / wall * 100
        child = (end[2] - self._start[2]) / wall * 100
        redis_pct = (end[3] - self._start[3]) / wall * 100
        other: float | None = None
        if end[4] is not None and self._start[4] is not None:
            other = max(0.0, (end[4] - self._start[4]) / wall * 100 - bench - child - redis_pct)
        return CpuShare(bench=bench, redis=redis_pct, child=child, other=other)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Row:
    """One line of the results table."""

    phase: str  # ceiling | per-request | batched | burst
    label: str
    concurrency: int
    requests: int  # reservations answered in the timed window
    seconds: float
    rate: float  # reservations per second
    p50_ms: float
    p99_ms: float
    cpu: CpuShare
    calls_per_s: float | None = None  # script calls per second, when it differs from rate
    avg_batch: float | None = None
    runs: list[float] = field(default_factory=list)  # each ceiling run's rate
    holds: int | None = None  # bursts: holds granted
    ratio_p1: float | None = None
    ratio_p16: float | None = None
    ratio_ref: float | None = None  # to the reference script's -P 1 rate
    note: str = ""

    @property
    def redis_us(self) -> float | None:
        """Redis CPU per reservation in µs (its share of a core over the rate)."""
        return self.cpu.redis / 100 * 1e6 / self.rate if self.rate > 0 else None


@dataclass
class Report:
    command: str
    machine: dict[str, str]
    settings: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))
        mark = "ok  " if ok else "FAIL"
        print(f"    [{mark}] {name}: {detail}", flush=True)


# --- Redis helpers -------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def meta_int(admin: Redis, drop_id: str, name: str) -> int:
    value = await admin.hget(keys.drop_keys(drop_id).meta, name)
    return int(value or 0)


async def new_drop(engine: StockEngine, drop_id: str, total: int) -> None:
    await engine.define(DropConfig(drop_id=drop_id, show_id="bench", total=total, hold_seconds=HOLD_SECONDS))
    await engine.open(drop_id)


async def drop_phase_keys(admin: Redis, drop_id: str, *, private: bool) -> None:
    """Delete a finished phase's drop, so that memory and the AOF stay small across phases.

    On the private server the AOF is also rewritten here, between timed windows."""
    await admin.unlink(*keys.drop_keys(drop_id))
    if private:
        await admin.bgrewriteaof()
        for _ in range(600):
            info: dict[str, Any] = await admin.info("persistence")
            if not int(info.get("aof_rewrite_in_progress", 0)) and not int(info.get("aof_rewrite_scheduled", 0)):
                break
            await asyncio.sleep(0.05)


# --- 1. the ceiling: redis-benchmark -------------------------------------------------------------


@dataclass
class BenchOutput:
    rps: float
    p50_ms: float
    p99_ms: float


def parse_redis_benchmark_csv(text: str) -> BenchOutput:
    """The figures of the last test in ``redis-benchmark --csv`` output (Redis ≥ 6 columns:
    test, rps, avg, min, p50, p95, p99, max latency in ms)."""
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if len(rows) < 2 or rows[0][:2] != ["test", "rps"]:
        raise ValueError(f"unexpected redis-benchmark output: {text[-500:]!r}")
    column = dict(zip(rows[0], rows[-1], strict=False))
    return BenchOutput(
        rps=float(column["rps"]),
        p50_ms=float(column.get("p50_latency_ms", "nan")),
        p99_ms=float(column.get("p99_latency_ms", "nan")),
    )


def redis_benchmark_command(
    binary: str, port: int, sha: str, drop_id: str, *, requests: int, pipeline: int, batch: int, tag: str
) -> list[str]:
    """EVALSHA of the reserve script: KEYS = the drop's keys, ARGV = n, the rejections' window in
    ms, then n quadruples of (request id, customer, qty, nonce), ids randomised by ``__rand_int__``
    on every call, and so is the nonce (32 digits, 12 of them random: enough for a benchmark, where
    nobody mints a reference; the engine draws 128 random bits)."""
    quads: list[str] = []
    for j in range(batch):
        quads += [f"{tag}.{j}.__rand_int__", f"c.{tag}.{j}.__rand_int__", "1", f"{j:020d}__rand_int__"]
    drop_keys = keys.drop_keys(drop_id)
    return [
        binary,
        "-h",
        LOOPBACK,
        "-p",
        str(port),
        "-n",
        str(requests),
        "-c",
        str(BENCH_CLIENTS),
        "-P",
        str(pipeline),
        "-r",
        str(RAND_KEYSPACE),
        "--csv",
        "EVALSHA",
        sha,
        str(len(drop_keys)),
        *drop_keys,
        str(batch),
        str(keys.REJECT_TTL_SECONDS * 1000),
        *quads,
    ]


async def ceiling(
    report: Report,
    args: argparse.Namespace,
    binary: str,
    port: int,
    admin: Redis,
    engine: StockEngine,
    sha: str,
    *,
    pipeline: int,
    batch: int,
) -> Row:
    label = f"redis-benchmark EVALSHA -P {pipeline}" + (f", {batch} per call" if batch > 1 else "")
    calls = args.ceiling_requests if batch == 1 else max(200, args.ceiling_requests // batch)
    print(f"  {label}: {args.ceiling_runs} x {calls} calls, {BENCH_CLIENTS} clients", flush=True)
    runs: list[tuple[BenchOutput, CpuShare, float]] = []
    for run in range(args.ceiling_runs):
        drop_id = f"{args.run_id}-ceil-p{pipeline}-b{batch}-{run}"
        await new_drop(engine, drop_id, HUGE_TOTAL)
        tag = f"rb{run}"
        command = redis_benchmark_command(
            binary, port, sha, drop_id, requests=calls, pipeline=pipeline, batch=batch, tag=tag
        )
        meter = CpuMeter(admin)
        await meter.start()
        started = time.perf_counter()
        proc = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=args.ceiling_timeout, check=False
        )
        seconds = time.perf_counter() - started
        cpu = await meter.stop()
        if proc.returncode != 0:
            raise RuntimeError(f"redis-benchmark failed ({proc.returncode}): {proc.stderr[-500:]}")
        output = parse_redis_benchmark_csv(proc.stdout)
        # The placeholder must have been substituted in ARGV, and holds really created: an
        # idempotent replay of one request id would be far cheaper than a reservation.
        created = await meta_int(admin, drop_id, "holds_created")
        held = (await engine.counters(drop_id)).held
        expected = calls * batch
        literal = await admin.hexists(keys.drop_keys(drop_id).requests, f"{tag}.0.__rand_int__")
        sample = [_text(f) for f in (await admin.hrandfield(keys.drop_keys(drop_id).requests, 3) or [])]
        substituted = not literal and bool(sample) and all(_RAND_DIGITS.search(s) for s in sample)
        report.check(
            f"{label} run {run + 1}: ids randomised",
            substituted,
            f"request ids like {sample[:1]}, literal placeholder stored: {bool(literal)}",
        )
        # Random ids collide now and then (birthday paradox over 10^8): those calls are replays.
        # With -P, redis-benchmark stops counting at -n but requests already in its clients'
        # pipelines still run: up to clients x pipeline more calls.
        overshoot = BENCH_CLIENTS * pipeline * batch if pipeline > 1 else 0
        report.check(
            f"{label} run {run + 1}: holds created",
            created == held and 0.99 * expected <= created <= expected + overshoot,
            f"{created} holds for {expected} reservations counted by redis-benchmark"
            + (f" (up to {overshoot} more were in its pipelines)" if overshoot else "")
            + f", {held} held",
        )
        print(
            f"    run {run + 1}: {output.rps:,.0f} calls/s, p50 {output.p50_ms:.2f} ms, p99 {output.p99_ms:.2f} ms "
            f"({seconds:.1f} s)",
            flush=True,
        )
        runs.append((output, cpu, seconds))
        await drop_phase_keys(admin, drop_id, private=args.private)
    runs.sort(key=lambda r: r[0].rps)
    median, cpu, seconds = runs[len(runs) // 2]
    return Row(
        phase="ceiling",
        label=label,
        concurrency=BENCH_CLIENTS,
        requests=calls * batch,
        seconds=seconds,
        rate=median.rps * batch,
        calls_per_s=median.rps if batch > 1 else None,
        p50_ms=median.p50_ms,
        p99_ms=median.p99_ms,
        cpu=cpu,
        avg_batch=float(batch) if batch > 1 else None,
        runs=[r[0].rps * batch for r in sorted(runs, key=lambda r: r[0].rps)],
        note=f"median of {len(runs)}",
    )


async def reference(
    report: Report, args: argparse.Namespace, binary: str, port: int, admin: Redis, sha: str, *, batch: int
) -> Row:
    """The reference script (bench/reserve_ref.lua) through redis-benchmark -P 1: the least a
    reservation with a hold can cost Redis, measured like the ceiling of the real script."""
    label = "reference script -P 1" + (f", {batch} per call" if batch > 1 else "")
    calls = args.ceiling_requests if batch == 1 else max(200, args.ceiling_requests // batch)
    print(f"  {label}: {args.ceiling_runs} x {calls} calls, {BENCH_CLIENTS} clients", flush=True)
    runs: list[tuple[BenchOutput, CpuShare, float]] = []
    for run in range(args.ceiling_runs):
        name = f"{args.run_id}-ref-b{batch}-{run}"
        stock_key, holds_key, expiry_key = ref_keys(name)
        await admin.hset(stock_key, "available", HUGE_TOTAL)
        command = ref_command(
            binary,
            port,
            sha,
            name,
            requests=calls,
            clients=BENCH_CLIENTS,
            pipeline=1,
            batch=batch,
            rand_keyspace=RAND_KEYSPACE,
            hold_ms=round(HOLD_SECONDS * 1000),
        )
        meter = CpuMeter(admin)
        await meter.start()
        started = time.perf_counter()
        proc = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=args.ceiling_timeout, check=False
        )
        seconds = time.perf_counter() - started
        cpu = await meter.stop()
        if proc.returncode != 0:
            raise RuntimeError(f"redis-benchmark failed ({proc.returncode}): {proc.stderr[-500:]}")
        output = parse_redis_benchmark_csv(proc.stdout)
        # Random hold ids collide now and then (a collision overwrites a hold, the stock was taken twice).
        holds = int(await admin.hlen(holds_key))
        taken = HUGE_TOTAL - int(await admin.hget(stock_key, "available") or 0)
        expected = calls * batch
        report.check(
            f"{label} run {run + 1}: holds created",
            taken == expected and holds >= 0.99 * expected,
            f"{taken} units taken, {holds} distinct holds for {expected} reservations",
        )
        print(f"    run {run + 1}: {output.rps:,.0f} calls/s, p99 {output.p99_ms:.2f} ms ({seconds:.1f} s)", flush=True)
        runs.append((output, cpu, seconds))
        await admin.delete(stock_key, holds_key, expiry_key)
    runs.sort(key=lambda r: r[0].rps)
    median, cpu, seconds = runs[len(runs) // 2]
    return Row(
        phase="reference",
        label=label,
        concurrency=BENCH_CLIENTS,
        requests=calls * batch,
        seconds=seconds,
        rate=median.rps * batch,
        calls_per_s=median.rps if batch > 1 else None,
        p50_ms=median.p50_ms,
        p99_ms=median.p99_ms,
        cpu=cpu,
        avg_batch=float(batch) if batch > 1 else None,
        runs=[r[0].rps * batch for r in runs],
        note=f"median of {len(runs)}; not the engine: no guarantees",
    )


# --- 2, 3. steady load from N tasks --------------------------------------------------------------


@dataclass
class _Window:
    measuring: bool = False
    stop: bool = False
    done: int = 0  # answers inside the timed window
    ok_total: int = 0  # holds granted, whole level
    rejected: int = 0
    errors: int = 0
    first_error: str = ""
    latencies: list[float] = field(default_factory=list)


async def steady(
    report: Report,
    args: argparse.Namespace,
    admin: Redis,
    engine: StockEngine,
    reserve: ReserveFn,
    phase: str,
    concurrency: int,
    batcher: ReserveBatcher | None = None,
) -> Row:
    drop_id = f"{args.run_id}-{phase}-{concurrency}"
    await new_drop(engine, drop_id, HUGE_TOTAL)
    window = _Window()

    async def worker(w: int) -> None:
        i = 0
        clock = time.perf_counter
        while not window.stop:
            request = f"{w}.{i}"
            i += 1
            t0 = clock()
            try:
                result = await reserve(drop_id, f"v{request}", 1, request)
            except Exception as exc:  # counted and shown: a benchmark that hides errors lies
                window.errors += 1
                window.first_error = window.first_error or repr(exc)
                await asyncio.sleep(0.01)
                continue
            if result.ok:
                window.ok_total += 1
            else:
                window.rejected += 1
            if window.measuring:
                window.done += 1
                window.latencies.append(clock() - t0)

    tasks = [asyncio.create_task(worker(w)) for w in range(concurrency)]
    try:
        await asyncio.sleep(args.warmup)
        meter = CpuMeter(admin)
        await meter.start()
        calls0, requests0 = (batcher.calls, batcher.requests) if batcher else (0, 0)
        window.measuring = True
        started = time.perf_counter()
        await asyncio.sleep(args.duration)
        window.measuring = False
        seconds = time.perf_counter() - started
        calls1, requests1 = (batcher.calls, batcher.requests) if batcher else (0, 0)
        cpu = await meter.stop()
        window.stop = True
        await asyncio.gather(*tasks)
    finally:
        window.stop = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    created = await meta_int(admin, drop_id, "holds_created")
    held = (await engine.counters(drop_id)).held
    name = f"{phase} c={concurrency}"
    report.check(
        f"{name}: every answer a hold",
        window.errors == 0 and window.rejected == 0 and created == held == window.ok_total,
        f"{window.ok_total} holds answered, {created} created, {held} held, {window.rejected} rejected, "
        f"{window.errors} errors {window.first_error}".rstrip(),
    )
    await drop_phase_keys(admin, drop_id, private=args.private)
    avg_batch = (requests1 - requests0) / (calls1 - calls0) if batcher and calls1 > calls0 else None
    row = Row(
        phase=phase,
        label="engine.reserve, 1 EVALSHA/request" if batcher is None else "ReserveBatcher",
        concurrency=concurrency,
        requests=window.done,
        seconds=seconds,
        rate=window.done / seconds,
        p50_ms=percentile(window.latencies, 0.50) * 1000,
        p99_ms=percentile(window.latencies, 0.99) * 1000,
        cpu=cpu,
        calls_per_s=(calls1 - calls0) / seconds if batcher else None,
        avg_batch=avg_batch,
    )
    batch_text = f", avg batch {avg_batch:.1f}" if avg_batch is not None else ""
    print(
        f"  {name}: {row.rate:,.0f}/s, p50 {row.p50_ms:.2f} ms, p99 {row.p99_ms:.2f} ms{batch_text} "
        f"(cpu: bench {cpu.bench:.0f}%, redis {cpu.redis:.0f}%, other {_pct(cpu.other)})",
        flush=True,
    )
    return row


# --- 4. burst ------------------------------------------------------------------------------------


async def burst(
    report: Report,
    args: argparse.Namespace,
    admin: Redis,
    engine: StockEngine,
    reserve: ReserveFn,
    phase: str,
    label: str,
    *,
    spread: float,
    fifo_expected: bool,
    batcher: ReserveBatcher | None = None,
) -> Row:
    """``spread`` 0: every request fired at once; else request i is due at ``i * spread / count``
    seconds (DESIGN §8: 10,000 viewers within one second) and its latency counts from then."""
    drop_id = f"{args.run_id}-burst-{phase}-{round(spread * 1000)}"
    units, count = args.burst_units, args.burst
    await new_drop(engine, drop_id, units)
    calls0 = batcher.calls if batcher else 0
    meter = CpuMeter(admin)
    await meter.start()
    clock = time.perf_counter
    fired = clock()
    finished: list[float] = [0.0] * count

    async def one(i: int, due: float) -> tuple[int, ReserveResult | BaseException, float]:
        try:
            result: ReserveResult | BaseException = await reserve(drop_id, f"b{i}", 1, f"burst.{i}")
        except Exception as exc:
            result = exc
        finished[i] = clock()
        return i, result, finished[i] - due

    if spread <= 0:
        answers = await asyncio.gather(*(one(i, fired) for i in range(count)))
    else:
        tasks: list[asyncio.Task[tuple[int, ReserveResult | BaseException, float]]] = []
        while len(tasks) < count:
            due_now = min(count, int((clock() - fired) / spread * count) + 1)
            tasks.extend(asyncio.create_task(one(i, fired + i * spread / count)) for i in range(len(tasks), due_now))
            await asyncio.sleep(0.001)
        answers = await asyncio.gather(*tasks)
    seconds = max(finished) - fired
    cpu = await meter.stop()
    calls = (batcher.calls - calls0) if batcher else count

    winners = sorted(i for i, result, _ in answers if isinstance(result, ReserveResult) and result.ok)
    sold_out = sum(1 for _, r, _ in answers if isinstance(r, ReserveResult) and r.reason == RejectReason.SOLD_OUT)
    errors = [r for _, r, _ in answers if isinstance(r, BaseException)]
    counters = await engine.counters(drop_id)
    drop_keys = keys.drop_keys(drop_id)
    hold_records = await admin.hlen(drop_keys.holds)
    created = await meta_int(admin, drop_id, "holds_created")
    rejected = await meta_int(admin, drop_id, "rejected_sold_out")
    when = "at once" if spread <= 0 else f"over {spread:g} s"
    name = f"burst {count:,} {when} on {units} units, {phase}"
    report.check(
        f"{name}: exactly {units} holds",
        len(winners) == units
        and sold_out == count - units
        and not errors
        and counters.held == units
        and counters.available == 0
        and counters.total == units
        and hold_records == created == units
        and rejected == count - units,
        f"answers: {len(winners)} held, {sold_out} sold_out, {len(errors)} errors"
        f"{' ' + repr(errors[0]) if errors else ''}; counters: {counters.held} held, {counters.available} available; "
        f"{hold_records} hold records, holds_created {created}, rejected_sold_out {rejected}",
    )
    in_first = sum(1 for i in winners if i < units)
    if fifo_expected:
        report.check(f"{name}: FIFO", in_first == units, f"{in_first} of the first {units} fired got the holds")
    note = f"{in_first}/{units} holds to the first {units} fired"
    if spread > 0:
        note += f"; rate set by arrivals ({count:,} over {spread:g} s)"
    await drop_phase_keys(admin, drop_id, private=args.private)
    latencies = [latency for _, _, latency in answers]
    row = Row(
        phase="burst",
        label=label,
        concurrency=count,
        requests=count,
        seconds=seconds,
        rate=count / seconds,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        cpu=cpu,
        calls_per_s=calls / seconds if batcher else None,
        avg_batch=count / calls if batcher and calls else None,
        holds=len(winners),
        note=note,
    )
    print(
        f"  {name}: last answer {seconds * 1000:.0f} ms after the first request, "
        f"p50 {row.p50_ms:.0f} ms, p99 {row.p99_ms:.0f} ms, {calls} script calls; {note}",
        flush=True,
    )
    return row


# --- output --------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}%"


def _num(value: float | None, fmt: str) -> str:
    return "" if value is None or value != value else format(value, fmt)


def table(rows: Sequence[Row]) -> str:
    """The results as a Markdown table (readable as plain text too)."""
    header = [
        "path",
        "conc./burst",
        "reserves/s",
        "p50 ms",
        "p99 ms",
        "avg batch",
        "x P1",
        "x P16",
        "x ref",
        "Redis µs/res",
        "CPU bench/redis/rb/other %",
        "note",
    ]
    lines = [header]
    for row in rows:
        cpu = row.cpu
        lines.append(
            [
                row.label,
                f"{row.concurrency:,}",
                f"{row.rate:,.0f}",
                _num(row.p50_ms, ".2f"),
                _num(row.p99_ms, ".2f"),
                _num(row.avg_batch, ".1f"),
                _num(row.ratio_p1, ".2f"),
                _num(row.ratio_p16, ".2f"),
                _num(row.ratio_ref, ".2f"),
                _num(row.redis_us, ".1f"),
                f"{cpu.bench:.0f}/{cpu.redis:.0f}/{cpu.child:.0f}/{_pct(cpu.other).rstrip('%')}",
                row.note,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    numeric = {1, 2, 3, 4, 5, 6, 7, 8, 9}

    def fmt(line: list[str]) -> str:
        cells = [c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        return "| " + " | ".join(cells) + " |"

    rule = (
        "|" + "|".join(("-" * (w + 1) + ":") if i in numeric else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    )
    return "\n".join([fmt(lines[0]), rule, *(fmt(line) for line in lines[1:])])


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


# --- main ----------------------------------------------------------------------------------------


def _levels(text: str) -> list[int]:
    levels = [int(x) for x in text.split(",") if x.strip()]
    if not levels or any(n < 1 for n in levels):
        raise argparse.ArgumentTypeError("levels are positive integers, comma-separated")
    return levels


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stock",
        description="Stock engine reservations/s and latency against the redis-benchmark EVALSHA ceiling.",
    )
    parser.add_argument("--redis-url", help="use this Redis (loopback) instead of starting a private one")
    parser.add_argument("--levels", type=_levels, default=[1, 64, 512], help="concurrency levels (default 1,64,512)")
    parser.add_argument("--duration", type=float, default=5.0, help="timed seconds per level (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="untimed seconds before each level (default 1)")
    parser.add_argument(
        "--pool-size", type=int, default=0, help="connections of the per-request client (default: max level)"
    )
    parser.add_argument("--burst", type=int, default=10_000, help="reservations fired at once (default 10000)")
    parser.add_argument("--burst-units", type=int, default=500, help="units of the burst's drop (default 500)")
    parser.add_argument(
        "--burst-spread",
        type=float,
        default=1.0,
        help="also a burst with arrivals spread over this many seconds (0: skip)",
    )
    parser.add_argument("--ceiling-requests", type=int, default=100_000, help="redis-benchmark -n (default 100000)")
    parser.add_argument(
        "--ceiling-runs", type=int, default=3, help="redis-benchmark runs per setting; median (default 3)"
    )
    parser.add_argument(
        "--ceiling-batch",
        type=int,
        default=64,
        help="also a redis-benchmark run with this many reservations per call (0: skip)",
    )
    parser.add_argument(
        "--ceiling-timeout", type=float, default=60.0, help="seconds before a redis-benchmark run is killed"
    )
    parser.add_argument("--redis-benchmark", help="path of redis-benchmark (default: from PATH)")
    parser.add_argument(
        "--loop", choices=("uvloop", "asyncio"), default="uvloop", help="event loop (default uvloop, as the server)"
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    if args.pool_size <= 0:
        args.pool_size = max(args.levels)
    return args


async def run(args: argparse.Namespace, url: str, port: int, private: bool) -> Report:
    args.private = private
    args.run_id = f"b{int(time.time()) % 100_000}"
    admin = Redis.from_url(url, decode_responses=False)
    info: dict[str, Any] = await admin.info("server")
    persistence: dict[str, Any] = await admin.info("persistence")
    fsync_conf: dict[Any, Any] = await admin.config_get("appendfsync")
    appendfsync = _text(fsync_conf.get("appendfsync", fsync_conf.get(b"appendfsync", "?")))
    aof = "on" if int(persistence.get("aof_enabled", 0)) else "off"
    if private:
        # Rewrites would fork mid-window on these 2 cores; they run between phases instead.
        await admin.config_set("auto-aof-rewrite-percentage", 0)
    binary = args.redis_benchmark or shutil.which("redis-benchmark") or shutil.which("valkey-benchmark")
    redis_name = "valkey" if "valkey_version" in info else "redis"
    redis_version = _text(info.get("valkey_version") or info.get("redis_version"))
    report = Report(
        command="python -m bench.stock " + " ".join(sys.argv[1:]),
        machine={
            "cpus": str(os.cpu_count()),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "server": f"{redis_name} {redis_version}",
            "redis-py": _version("redis"),
            "resp parser": "hiredis" if redis.utils.HIREDIS_AVAILABLE else "pure Python (hiredis not installed)",
            "loop": args.loop,
            "redis-benchmark": binary or "MISSING",
        },
        settings={
            "aof": aof,
            "appendfsync": appendfsync,
            "private_server": private,
            "levels": args.levels,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "pool": f"ConnectionPool(max_connections={args.pool_size})",
            "burst": args.burst,
            "burst_units": args.burst_units,
            "burst_spread_s": args.burst_spread,
            "ceiling_requests": args.ceiling_requests,
            "ceiling_runs": args.ceiling_runs,
            "ceiling_clients": BENCH_CLIENTS,
        },
    )
    print(
        f"{redis_name} {redis_version} on {LOOPBACK}:{port} ({'private, ' if private else ''}AOF {aof}, "
        f"appendfsync {appendfsync}); {os.cpu_count()} cores; Python {platform.python_version()} on {args.loop}; "
        f"redis-py {_version('redis')}, parser {report.machine['resp parser']}",
        flush=True,
    )
    print(
        f"per-request client: ConnectionPool(max_connections={args.pool_size}) (one connection per in-flight "
        "EVALSHA); burst: FIFO semaphore of the same width in front of it; batcher: its own client",
        flush=True,
    )

    engine = StockEngine(admin)
    pool: ConnectionPool = ConnectionPool.from_url(url, max_connections=args.pool_size)
    per_request_client = Redis(connection_pool=pool)
    batch_client = Redis.from_url(url)
    per_request = StockEngine(per_request_client)
    batched_engine = StockEngine(batch_client)
    batcher = ReserveBatcher(batched_engine)
    try:
        ceilings: dict[str, Row] = {}
        print("\n[1] ceiling: redis-benchmark, EVALSHA of the real reserve script", flush=True)
        if binary is None:
            print(
                "  redis-benchmark NOT FOUND on PATH (it ships with redis-server, e.g. Debian's redis-tools): "
                "no ceiling measured, ratios left empty. Pass --redis-benchmark PATH.",
                flush=True,
            )
            report.check("redis-benchmark available", False, "not found: ceiling and ratios missing")
        else:
            loaded = await admin.script_load(source("reserve"))
            sha = _text(loaded)
            for pipeline, batch in ((1, 1), (16, 1), (1, args.ceiling_batch)):
                if batch < 1 or (batch > 1 and pipeline != 1):
                    continue
                row = await ceiling(report, args, binary, port, admin, engine, sha, pipeline=pipeline, batch=batch)
                ceilings[f"P{pipeline}" if batch == 1 else "batch"] = row
                report.rows.append(row)
            ref_sha = _text(await admin.script_load(REF_SOURCE))
            for batch in (1, args.ceiling_batch):
                if batch >= 1:
                    row = await reference(report, args, binary, port, admin, ref_sha, batch=batch)
                    ceilings.setdefault("ref", row)
                    report.rows.append(row)

        print("\n[2] engine.reserve: one EVALSHA per request", flush=True)
        for level in args.levels:
            report.rows.append(await steady(report, args, admin, engine, per_request.reserve, "per-request", level))

        print("\n[3] ReserveBatcher: group commit", flush=True)
        for level in args.levels:
            report.rows.append(
                await steady(report, args, admin, engine, batcher.reserve, "batched", level, batcher=batcher)
            )

        print(f"\n[4] burst: {args.burst:,} reservations at once on {args.burst_units} units", flush=True)
        gate = asyncio.Semaphore(args.pool_size)

        async def gated(drop_id: str, customer: str, qty: int, request_id: str) -> ReserveResult:
            async with gate:
                return await per_request.reserve(drop_id, customer, qty, request_id)

        for spread in sorted({0.0, max(0.0, args.burst_spread)}):
            when = "at once" if spread <= 0 else f"over {spread:g} s"
            report.rows.append(
                await burst(
                    report,
                    args,
                    admin,
                    engine,
                    batcher.reserve,
                    "batched",
                    f"burst {when}, ReserveBatcher",
                    spread=spread,
                    fifo_expected=True,
                    batcher=batcher,
                )
            )
            report.rows.append(
                await burst(
                    report,
                    args,
                    admin,
                    engine,
                    gated,
                    "per-request",
                    f"burst {when}, 1 EVALSHA/request",
                    spread=spread,
                    fifo_expected=False,
                )
            )

        p1, p16, ref = ceilings.get("P1"), ceilings.get("P16"), ceilings.get("ref")
        for row in report.rows:
            row.ratio_p1 = row.rate / p1.rate if p1 else None
            row.ratio_p16 = row.rate / p16.rate if p16 else None
            row.ratio_ref = row.rate / ref.rate if ref else None
    finally:
        await batcher.aclose()
        await batch_client.aclose()
        await per_request_client.aclose()
        await pool.disconnect()
        await admin.aclose()
    return report


def print_report(report: Report) -> None:
    print("\n" + table(report.rows))
    print(
        "\nreserves/s: reservations answered per second (ceiling: calls/s times reservations per call, median run); "
        "p50/p99: answer latency (bursts: from each request's due time, the fire time when all go at once); "
        "x P1 / x P16: ratio to the "
        "redis-benchmark EVALSHA rate without / with 16-deep pipelining; x ref: ratio to the reference script "
        "(bench/reserve_ref.lua) at -P 1; Redis µs/res: Redis CPU per reservation; CPU in % of one core: this process, "
        "Redis, redis-benchmark, everything else on the machine."
    )
    for row in report.rows:
        if row.phase in ("ceiling", "reference"):
            runs = ", ".join(f"{r:,.0f}" for r in row.runs)
            print(f"  {row.label}: runs {runs} reserves/s")
    failed = [c for c in report.checks if not c.ok]
    print(f"\nchecks: {len(report.checks) - len(failed)} passed, {len(failed)} failed")
    for check in failed:
        print(f"  FAIL {check.name}: {check.detail}")


@contextlib.contextmanager
def private_redis() -> Iterator[RedisProcess]:
    """A private Redis (AOF ``everysec``) started with ``livedrop redis``, as an operator would."""
    with tempfile.TemporaryDirectory(prefix="livedrop-bench-") as tmp:
        server = RedisProcess(Path(tmp) / "redis")
        server.start()
        try:
            yield server
        finally:
            server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    runner: Callable[[Coroutine[Any, Any, Report]], Report]
    if args.loop == "uvloop":
        import uvloop

        runner = uvloop.run
    else:
        runner = asyncio.run
    started = time.monotonic()
    if args.redis_url:
        parsed = urlsplit(args.redis_url)
        host, port = parsed.hostname or LOOPBACK, parsed.port or 6379
        if host not in (LOOPBACK, "localhost", "::1"):
            print(f"refusing {host}: this benchmark runs on loopback only", file=sys.stderr)
            return 2
        report = runner(run(args, args.redis_url, port, private=False))
    else:
        with private_redis() as server:
            report = runner(run(args, server.url, urlsplit(server.url).port or 6379, private=True))
    report.settings["total_seconds"] = round(time.monotonic() - started, 1)
    print_report(report)
    print(f"total {report.settings['total_seconds']} s")
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
        print(f"results written to {args.json}")
    return 0 if all(c.ok for c in report.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
