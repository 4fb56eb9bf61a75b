"""Channel sync benchmark: a drop of 500 units pushed to four stand-in channels while 10,000
reservations arrive over 1 s and the stand-in platforms sell at the same time.

    python -m bench.channels                     # about 1 min: 3 runs on a private Redis and node
    python -m bench.channels --runs 5 --json results.json

Set-up, all real processes: a private Redis (``livedrop redis``), the four stand-ins
(``python -m standins all``, their documented default limits: Shopify's 1,000-point bucket at
100 points/s, Meta's 100 batch calls an hour) and one ``livedrop serve`` node configured with their
credentials and webhook secrets (default buffers and flush interval). Each run makes a fresh drop
through the host API, maps its SKU on every channel, and waits until every channel holds
``500 - buffer``. Then, at once:

* 10,000 single-unit reservations (10,000 customers) spread evenly over 1 s, sent by this process
  straight to the stock engine in batches every 10 ms (the engine's own benchmark covers the
  WebSocket path; here only the stock changes matter);
* each stand-in's buyers order one unit every ``--sale-interval`` s (jittered) until it shows none,
  its webhook going back to the node (TikTok Shop and Meta orders are then pulled).

A poller reads every stand-in's stock every 10 ms. After the burst and the sales, once nothing has
changed for 2 s, the figures are:

* **calls**: stock-push calls each stand-in received during the run, next to the drop's stock
  changes (ledger entries): the coalescing ratio;
* **sold-out lag**: from the ledger entry where available reached 0 to the stand-in holding 0;
* **convergence lag**: from the drop's last stock change to the stand-in holding its final value
  (0 when it already did);
* **push lag p50/p99**: the node's own ``livedrop_channel_lag_seconds`` histogram (change →
  acknowledgement, every push), interpolated in its buckets;
* **oversold** units (the drop's counter) and the final value on every channel against
  ``max(0, available - buffer)``.

The ceilings beside them, measured in the same run: for a sell-out, one watch interval (25 ms, the
most a sell-out waits to be seen) plus the median round trip of a call to the stand-in; for any other
push, one flush interval (250 ms) plus that round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.stock import machine_busy_seconds, percentile
from loadtest.stack import NodeProcess, RedisProcess, free_port
from stock import StockEngine
from stock.ledger import decode_entries
from stock.types import ReserveRequest

HOST_TOKEN = "bench-channels-token"
WATCH_MS = 25.0  # the push loop's watch interval (server.platforms.channels.push.WATCH_INTERVAL)
CHANNELS = ("shopify", "tiktok", "meta", "woocommerce")
BUFFERS: dict[str, int] = {}  # read from the node's GET /api/channels (its defaults)
PUSH_PATHS = {
    "shopify": "/admin/api/",
    "tiktok": "/inventory/update",
    "meta": "/items_batch",
    "woocommerce": "/batch",
}
SALE_LINES: dict[str, dict[str, Any]] = {
    "shopify": {"sku": "BENCH"},
    "tiktok": {"sku_id": "s1"},
    "meta": {"retailer_id": "BENCH"},
    "woocommerce": {"product_id": 10},
}
MAPPING = {
    "shopify": {"inventory_item_id": "1", "location_id": "1"},
    "tiktok": {"product_id": "p1", "sku_id": "s1"},
    "meta": {"retailer_id": "BENCH"},
    "woocommerce": {"product_id": "10"},
}


@dataclass
class ChannelRun:
    calls: int
    sold_out_lag_ms: float | None
    convergence_lag_ms: float
    final: int
    expected: int
    platform_units_sold: int


@dataclass
class Run:
    total: int
    reservations: int
    held: int
    stock_changes: int
    oversold: int
    available: int
    channels: dict[str, ChannelRun] = field(default_factory=dict)


@dataclass
class Report:
    runs: list[Run]
    rtt_ms: dict[str, float]
    push_lag_ms: dict[str, dict[str, float]]
    flush_interval_ms: float
    machine_busy_pct: float | None
    sale_interval: float = 0.0


def four_free_ports() -> int:
    """A port P with P..P+3 free (the stand-in command serves on four consecutive ports)."""
    for _ in range(50):
        first = free_port()
        ok = True
        for port in range(first, first + 4):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return first
    raise RuntimeError("no four consecutive free ports")


class Stack:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.redis = RedisProcess(workdir / "redis")
        self.first_port = four_free_ports()
        self.urls = {name: f"http://127.0.0.1:{self.first_port + i}" for i, name in enumerate(CHANNELS)}
        self.standins: subprocess.Popen[str] | None = None
        self.node: NodeProcess | None = None

    def start(self) -> None:
        self.redis.start()
        node_port = free_port()
        livedrop = f"http://127.0.0.1:{node_port}"
        log = (self.workdir / "standins.log").open("ab")
        # The stand-in command prints the LIVEDROP_* variables a node needs to accept their webhooks
        # and push to them (docs/standins.md): the bench configures the node from that output.
        standins = subprocess.Popen(
            [sys.executable, "-u", "-m", "standins", "all", "--port", str(self.first_port), "--livedrop", livedrop],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        self.standins = standins
        assert standins.stdout is not None
        env = {"REDIS_URL": self.redis.url, "LIVEDROP_HOST_TOKENS": HOST_TOKEN}
        for line in standins.stdout:
            key, _, value = line.strip().partition("=")
            env[key] = value.strip("'")
            if key == "LIVEDROP_WOOCOMMERCE_CONSUMER_SECRET":
                break
        self.node = NodeProcess("node", env, self.workdir)
        self.node.port = node_port
        self.node.start()
        self.node.wait_ready()
        for url in self.urls.values():
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/_standin", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"stand-in {url} did not start")
                time.sleep(0.05)
        status = httpx.get(f"{self.node.url}/api/channels", headers={"Authorization": f"Bearer {HOST_TOKEN}"}).json()
        BUFFERS.update({c["channel"]: int(c["buffer"]) for c in status["channels"]})
        if set(BUFFERS) != set(CHANNELS):
            raise RuntimeError(f"the node pushes to {sorted(BUFFERS)}, not to the four stand-ins")

    def stop(self) -> None:
        if self.node is not None:
            self.node.stop()
        if self.standins is not None:
            self.standins.terminate()
            self.standins.wait(10)
        if self.redis.proc is not None:
            self.redis.proc.terminate()
            self.redis.proc.wait(10)


async def held_by(client: httpx.AsyncClient, urls: dict[str, str]) -> dict[str, int]:
    async def one(name: str) -> int:
        body = (await client.get(f"{urls[name]}/_standin/stock")).json()
        match name:
            case "shopify":
                return int(body["items"][0]["available"]) if body["items"] else -1
            case "tiktok":
                return sum(body["skus"][0]["stock"].values()) if body["skus"] else -1
            case "meta":
                return int(body["items"][0]["quantity"]) if body["items"] else -1
        return int(body["products"][0]["stock_quantity"]) if body["products"] else -1

    values = await asyncio.gather(*(one(n) for n in CHANNELS))
    return dict(zip(CHANNELS, values, strict=True))


async def seed(client: httpx.AsyncClient, urls: dict[str, str]) -> None:
    bodies = {
        "shopify": {"items": [{"inventory_item_id": 1, "location_id": 1, "sku": "BENCH", "available": 0}]},
        "tiktok": {"skus": [{"product_id": "p1", "sku_id": "s1", "seller_sku": "BENCH", "stock": {"w1": 0}}]},
        "meta": {"items": [{"retailer_id": "BENCH", "quantity": 0}]},
        "woocommerce": {"products": [{"id": 10, "sku": "BENCH", "stock_quantity": 0}]},
    }
    for name in CHANNELS:
        # Stock, orders and calls go; Meta's hourly budget and Shopify's bucket stay as they are.
        await client.post(f"{urls[name]}/_standin/seed", json=bodies[name])


async def rtt(client: httpx.AsyncClient, urls: dict[str, str]) -> dict[str, float]:
    """Median round trip of a cheap call to each stand-in: the floor under any push's lag."""
    out = {}
    for name in CHANNELS:
        times = []
        for _ in range(20):
            start = time.perf_counter()
            await client.get(f"{urls[name]}/_standin")
            times.append((time.perf_counter() - start) * 1000)
        out[name] = percentile(times, 0.5)
    return out


async def sell(client: httpx.AsyncClient, url: str, line: dict[str, Any], interval: float, stop: asyncio.Event) -> int:
    sold = 0
    while not stop.is_set():
        response = await client.post(f"{url}/_standin/sell", json={"lines": [{**line, "quantity": 1}]})
        if response.status_code == 200:
            sold += 1
        await asyncio.sleep(interval * random.uniform(0.5, 1.5))
    return sold


async def one_run(n: int, args: argparse.Namespace, stack: Stack, engine: StockEngine, redis: Any) -> Run:
    assert stack.node is not None
    headers = {"Authorization": f"Bearer {HOST_TOKEN}"}
    async with (
        httpx.AsyncClient(base_url=stack.node.url, headers=headers, timeout=30) as api,
        httpx.AsyncClient(timeout=30) as client,
    ):
        show, drop = f"bench{n}", f"bench{n}d"
        # A fresh drop selling the SKU (the SKU follows the newest drop), stand-ins at 0.
        await seed(client, stack.urls)
        if n == 0:
            await api.post("/api/shows", json={"show_id": "bench", "title": "Channels bench"})
        body = {"drop_id": drop, "sku": "BENCH", "title": show, "total": args.units, "hold_seconds": 600}
        assert (await api.post("/api/shows/bench/drops", json=body)).status_code == 201
        assert (await api.post(f"/api/drops/{drop}/launch", json={"duration_seconds": 600})).status_code == 200
        assert (await api.put("/api/channels/mappings/BENCH", json=MAPPING)).status_code == 200
        expected = {c: max(0, args.units - BUFFERS[c]) for c in CHANNELS}
        deadline = time.monotonic() + 60
        while await held_by(client, stack.urls) != expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"channels never reached {expected}: {await held_by(client, stack.urls)}")
            await asyncio.sleep(0.05)
        calls_before = {c: len((await client.get(f"{stack.urls[c]}/_standin/calls")).json()["calls"]) for c in CHANNELS}

        samples: list[tuple[float, dict[str, int]]] = []
        done = asyncio.Event()

        async def poll() -> None:
            while not done.is_set():
                samples.append((time.time() * 1000, await held_by(client, stack.urls)))
                await asyncio.sleep(0.02)

        stop = asyncio.Event()
        sellers = {
            c: asyncio.create_task(sell(client, stack.urls[c], SALE_LINES[c], args.sale_interval, stop))
            for c in CHANNELS
        }
        poller = asyncio.create_task(poll())
        held = 0
        batches = 100
        per = args.reservations // batches
        start = time.monotonic()
        pending = []
        for b in range(batches):
            due = start + b * (args.burst_seconds / batches)
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            requests = [ReserveRequest(f"{drop}-r{b}.{i}", f"c{b}.{i}", 1) for i in range(per)]
            pending.append(asyncio.create_task(engine.reserve_many(drop, requests)))
        for results in await asyncio.gather(*pending):
            held += sum(1 for r in results if r.ok)
        await asyncio.sleep(args.sale_tail)
        stop.set()
        sold = {c: await t for c, t in sellers.items()}

        # Quiet: no new ledger entry for 2 s and every channel at its expected value.
        ledger = f"ld:{{drop:{drop}}}:ledger"
        last_id = ""
        quiet_since = time.monotonic()
        while True:
            top = await redis.xrevrange(ledger, count=1)
            top_id = top[0][0].decode()
            if top_id != last_id:
                last_id, quiet_since = top_id, time.monotonic()
            counters = (await api.get(f"/api/drops/{drop}")).json()["stock"]["counters"]
            want = {c: max(0, counters["available"] - BUFFERS[c]) for c in CHANNELS}
            if time.monotonic() - quiet_since > 2.0 and samples and samples[-1][1] == want:
                break
            if time.monotonic() - start > 120:
                raise RuntimeError(f"never settled: {samples[-1][1] if samples else None} vs {want}")
            await asyncio.sleep(0.05)
        done.set()
        await poller

        entries = await redis.xrange(ledger, min="-", max="+")
        # One change per hold, sale or cancel (a packed entry stands for the reservations of a batch).
        changes = [
            (change.at_ms, {b"op": change.op.encode(), b"a": str(change.after.available).encode()})
            for entry_id, raw in entries
            for change in decode_entries(entry_id, raw)
        ]
        launched = next(i for i, (_, f) in enumerate(changes) if f.get(b"op") == b"open") if changes else 0
        burst_changes = changes[launched + 1 :]
        last_change_ms = burst_changes[-1][0] if burst_changes else 0
        sold_out_ms = next((t for t, f in burst_changes if f.get(b"a") == b"0"), None)
        run = Run(
            total=args.units,
            reservations=per * batches,
            held=held,
            stock_changes=len(burst_changes),
            oversold=int(counters["oversold"]),
            available=int(counters["available"]),
        )
        for c in CHANNELS:
            calls = (await client.get(f"{stack.urls[c]}/_standin/calls")).json()["calls"][calls_before[c] :]
            pushes = sum(1 for call in calls if PUSH_PATHS[c] in call["path"])
            final = samples[-1][1][c]
            holding_since = samples[-1][0]
            for at, values in reversed(samples):
                if values[c] != final:
                    break
                holding_since = at
            zero_at = next((at for at, values in samples if sold_out_ms and at >= sold_out_ms and values[c] == 0), None)
            run.channels[c] = ChannelRun(
                calls=pushes,
                sold_out_lag_ms=None if sold_out_ms is None or zero_at is None else max(0.0, zero_at - sold_out_ms),
                convergence_lag_ms=max(0.0, holding_since - last_change_ms),
                final=final,
                expected=want[c],
                platform_units_sold=sold[c],
            )
        return run


def histogram_quantiles(text: str, q: float) -> dict[str, float]:
    """Per channel, the ``q`` quantile of ``livedrop_channel_lag_seconds`` (ms), interpolated."""
    buckets: dict[str, list[tuple[float, float]]] = {}
    for match in re.finditer(r'livedrop_channel_lag_seconds_bucket\{channel="(\w+)",le="([^"]+)"\} ([0-9.e+]+)', text):
        le = float("inf") if match.group(2) == "+Inf" else float(match.group(2))
        buckets.setdefault(match.group(1), []).append((le, float(match.group(3))))
    out = {}
    for channel, rows in buckets.items():
        rows.sort()
        total = rows[-1][1]
        if not total:
            continue
        target = q * total
        prev_le, prev_count = 0.0, 0.0
        for le, count in rows:
            if count >= target:
                if le == float("inf"):
                    out[channel] = prev_le * 1000
                else:
                    share = (target - prev_count) / (count - prev_count) if count > prev_count else 1.0
                    out[channel] = (prev_le + share * (le - prev_le)) * 1000
                break
            prev_le, prev_count = le, count
    return out


async def run_all(args: argparse.Namespace, stack: Stack) -> Report:
    from redis.asyncio import Redis

    redis = Redis.from_url(stack.redis.url)
    engine = StockEngine(redis)
    busy_before, wall_before = machine_busy_seconds(), time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            rtts = await rtt(client, stack.urls)
        runs = [await one_run(n, args, stack, engine, redis) for n in range(args.runs)]
        assert stack.node is not None
        scrape = httpx.get(f"{stack.node.url}/metrics", timeout=10).text
    finally:
        await redis.aclose()
    busy_after = machine_busy_seconds()
    busy = None
    if busy_before is not None and busy_after is not None:
        busy = 100 * (busy_after - busy_before) / (time.monotonic() - wall_before)
    return Report(
        runs=runs,
        rtt_ms=rtts,
        push_lag_ms={"p50": histogram_quantiles(scrape, 0.5), "p99": histogram_quantiles(scrape, 0.99)},
        flush_interval_ms=250.0,
        machine_busy_pct=busy,
        sale_interval=args.sale_interval,
    )


def render(report: Report) -> str:
    lines = []
    runs = report.runs
    first = runs[0]
    lines.append(
        f"{len(runs)} runs: {first.total} units, {first.reservations:,} reservations over 1 s, each stand-in selling "
        f"a unit every {report.sale_interval:g} s; "
        f"machine busy {report.machine_busy_pct:.0f}% of one core"
        if report.machine_busy_pct is not None
        else ""
    )
    lines.append(
        "| channel | buffer | push calls / run (median) | stock changes / run | coalescing | sold-out lag p50 / max ms "
        "| convergence lag p50 / max ms | push lag p50 / p99 ms | ceiling sold-out / push ms | final = expected "
        "| units sold there |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    changes = percentile([r.stock_changes for r in runs], 0.5)
    for c in CHANNELS:
        calls = [r.channels[c].calls for r in runs]
        sold_out = [lag for r in runs if (lag := r.channels[c].sold_out_lag_ms) is not None]
        conv = [r.channels[c].convergence_lag_ms for r in runs]
        p50 = report.push_lag_ms["p50"].get(c, float("nan"))
        p99 = report.push_lag_ms["p99"].get(c, float("nan"))
        ceiling = f"{WATCH_MS + report.rtt_ms[c]:.0f} / {report.flush_interval_ms + report.rtt_ms[c]:.0f}"
        finals = all(r.channels[c].final == r.channels[c].expected for r in runs)
        sold = sum(r.channels[c].platform_units_sold for r in runs)
        median_calls = percentile(calls, 0.5)
        lines.append(
            f"| {c} | {BUFFERS[c]} | {median_calls:.0f} | {changes:.0f} | {changes / max(1, median_calls):.0f}:1 "
            f"| {percentile(sold_out, 0.5):.0f} / {max(sold_out, default=float('nan')):.0f} "
            f"| {percentile(conv, 0.5):.0f} / {max(conv):.0f} | {p50:.0f} / {p99:.0f} | {ceiling} "
            f"| {'yes' if finals else 'NO'} | {sold} |"
        )
    lines.append(
        f"oversold units (all runs): {sum(r.oversold for r in runs)}; held by viewers per run: "
        f"{', '.join(str(r.held) for r in runs)}; final available per run: {', '.join(str(r.available) for r in runs)}"
    )
    return "\n".join(line for line in lines if line)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.channels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--units", type=int, default=500)
    parser.add_argument("--reservations", type=int, default=10_000)
    parser.add_argument("--burst-seconds", type=float, default=1.0)
    parser.add_argument("--sale-interval", type=float, default=0.5, help="seconds between one stand-in's sales")
    parser.add_argument(
        "--sale-tail", type=float, default=1.0, help="seconds the stand-ins keep selling after the burst"
    )
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="livedrop-bench-channels-") as tmp:
        stack = Stack(Path(tmp))
        try:
            stack.start()
            report = asyncio.run(run_all(args, stack))
        finally:
            stack.stop()
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2))
    bad = any(r.oversold for r in report.runs) or any(
        ch.final != ch.expected for r in report.runs for ch in r.channels.values()
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
