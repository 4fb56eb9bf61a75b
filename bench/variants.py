"""Reservations on a drop with sizes against the same load on a single-SKU drop, beside the ceiling.

A drop with variants batches per variant (``ReserveBatcher``: one script call in flight per
variant, FIFO within it), so a burst spread over six sizes is cut into six queues: smaller batches,
more script calls per reservation. This measures what that costs, with what bounds it measured in
the same run:

1. **Ceiling**: ``redis-benchmark`` runs EVALSHA of the real ``reserve`` script with 64 reservations
   per call (the Redis-side ceiling of the batched path, as in ``bench.stock``), 50 clients, -P 1.
2. **Single SKU**: ``--workers`` concurrent reservations through one ``ReserveBatcher`` on one drop,
   for ``--seconds``.
3. **Sizes**: the same, each reservation on one of ``--sizes`` sizes of one drop, picked at random.

It prints reservations/s, p50/p99 of one reservation, the average batch and the ratio to the
ceiling, with the CPU share of the benchmark process and of Redis (a shared machine: read those
before comparing runs), then checks every invariant of both drops. Run: ``python -m bench.variants``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence

from redis.asyncio import Redis

from bench.stock import (
    BENCH_CLIENTS,
    HOLD_SECONDS,
    HUGE_TOTAL,
    CpuMeter,
    CpuShare,
    parse_redis_benchmark_csv,
    percentile,
    private_redis,
    redis_benchmark_command,
)
from stock import DropConfig, ReserveBatcher, StockEngine
from stock.ledger import check_invariants, replay
from stock.scripts import source
from stock.types import VariantConfig

CEILING_BATCH = 64


async def ceiling(binary: str, port: int, admin: Redis, engine: StockEngine, calls: int) -> tuple[float, CpuShare]:
    loaded = await admin.script_load(source("reserve"))
    sha = loaded.decode() if isinstance(loaded, bytes) else str(loaded)
    await engine.define(DropConfig("ceil", "bench", HUGE_TOTAL, hold_seconds=HOLD_SECONDS))
    await engine.open("ceil")
    command = redis_benchmark_command(
        binary, port, sha, "ceil", requests=calls, pipeline=1, batch=CEILING_BATCH, tag="rb"
    )
    meter = CpuMeter(admin)
    await meter.start()
    proc = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=300, check=False)
    cpu = await meter.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {proc.stderr[-500:]}")
    return parse_redis_benchmark_csv(proc.stdout).rps * CEILING_BATCH, cpu


async def load(
    engine: StockEngine, admin: Redis, drop_id: str, sizes: list[str], workers: int, seconds: float
) -> tuple[int, list[float], float, CpuShare]:
    """Reservations answered in ``seconds`` by ``workers`` concurrent callers, their latencies, the
    average batch and the CPU shares."""
    batcher = ReserveBatcher(engine)
    latencies: list[float] = []
    rng = random.Random(7)
    stop = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        i = 0
        while time.perf_counter() < stop:
            i += 1
            size = rng.choice(sizes) if sizes else ""
            started = time.perf_counter()
            result = await batcher.reserve(drop_id, f"c{w}-{i}", 1, f"r{w}-{i}", size)
            latencies.append(time.perf_counter() - started)
            assert result.ok, result

    meter = CpuMeter(admin)
    await meter.start()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    cpu = await meter.stop()
    return len(latencies), latencies, batcher.requests / max(1, batcher.calls), cpu


async def check(engine: StockEngine, drop_id: str, sizes: list[str]) -> str:
    for unit in sizes or [""]:
        counters = await engine.counters(drop_id, unit)
        check_invariants(counters)
        entries = [e async for e in engine.iter_ledger(drop_id, variant=unit)]
        assert replay(entries) == counters, (drop_id, unit)
    whole = await engine.counters(drop_id)
    check_invariants(whole)
    return f"{drop_id}: {whole.held} held, invariants and ledger replay hold" + (
        f" in each of {len(sizes)} sizes" if sizes else ""
    )


async def run(args: argparse.Namespace, url: str, port: int, binary: str) -> None:
    admin = Redis.from_url(url)
    engine = StockEngine(Redis.from_url(url, max_connections=200))
    try:
        top, top_cpu = await ceiling(binary, port, admin, engine, args.ceiling_calls)
        sizes = [f"s{40 + i}" for i in range(args.sizes)]
        await engine.define(DropConfig("one", "bench", HUGE_TOTAL, hold_seconds=HOLD_SECONDS))
        per_size = HUGE_TOTAL // (10 * args.sizes)
        variants = tuple(VariantConfig(s, sku=f"SKU-{s}", total=per_size) for s in sizes)
        await engine.define(DropConfig("sized", "bench", 0, hold_seconds=HOLD_SECONDS, variants=variants))
        for drop_id in ("one", "sized"):
            await engine.open(drop_id)
        print(f"ceiling: redis-benchmark EVALSHA, {CEILING_BATCH} per call, {BENCH_CLIENTS} clients, -P 1")
        print(f"  {top:12,.0f} reservations/s    CPU bench {top_cpu.bench:.0f}% redis {top_cpu.redis:.0f}%")
        for label, drop_id, units in (("single SKU", "one", []), (f"{args.sizes} sizes", "sized", sizes)):
            n, latencies, batch, cpu = await load(engine, admin, drop_id, units, args.workers, args.seconds)
            rate = n / args.seconds
            print(
                f"{label:>11}: {rate:12,.0f} reservations/s  x ceiling {rate / top:.2f}  "
                f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms  p99 {percentile(latencies, 0.99) * 1000:.1f} ms  "
                f"avg batch {batch:.1f}  CPU bench {cpu.bench:.0f}% redis {cpu.redis:.0f}% other "
                f"{cpu.other if cpu.other is not None else float('nan'):.0f}%"
            )
        for drop_id, units in (("one", []), ("sized", sizes)):
            print("check:", await check(engine, drop_id, units))
    finally:
        await admin.aclose()
        await engine.redis.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=500, help="concurrent reservations in flight")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each timed load")
    parser.add_argument("--sizes", type=int, default=6, help="variants of the drop with sizes")
    parser.add_argument("--ceiling-calls", type=int, default=3000, help="redis-benchmark calls (x64 reservations)")
    args = parser.parse_args(argv)
    binary = shutil.which("redis-benchmark") or shutil.which("valkey-benchmark")
    if binary is None:
        print("redis-benchmark is needed for the ceiling (apt-get install redis-tools)", file=sys.stderr)
        return 2
    with private_redis() as server:
        port = int(server.url.rsplit(":", 1)[1].split("/", 1)[0])
        asyncio.run(run(args, server.url, port, binary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
