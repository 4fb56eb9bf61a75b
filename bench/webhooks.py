"""Webhook benchmark: signed deliveries accepted per second and answer latency, with duplicates,
against the HTTP ceiling of the same server measured in the same run (DESIGN §8: 2,000/s accepted
with p99 under 50 ms, every effect applied exactly once).

    python -m bench.webhooks                      # private Redis and server, about 40 s
    python -m bench.webhooks --rate 3000 --duration 5 --json results.json

Set-up: a private Redis (AOF, appendfsync everysec) started with ``livedrop redis``, and the real
server, ``livedrop serve`` (uvicorn, uvloop, ``--workers`` processes, default 2: one per core as
DESIGN §9 advises) in a child process with a secret for every platform, each worker receiving
webhooks and running a consumer that applies them. A show with one drop per platform (a large
stock, so nothing sells out), made through the host API. The load
generator runs in separate processes (``--generators``), each with its own HTTP/1.1 keep-alive
connections over raw asyncio streams, on uvloop.

Phases:

1. **Ceiling**: ``GET /healthz`` as fast as the same client can go (closed loop, the same
   connections): what the HTTP stack of this server alone answers on this machine.
2. **Target**: signed webhooks at ``--rate`` per second for ``--duration`` s, open loop (each
   request is due at a fixed time; latency counts from that time, so a server that falls behind
   is charged for the queue it causes). Platforms are mixed (Shopify 30 %, WooCommerce 25 %,
   Standard Webhooks 25 %, TikTok Shop 10 %, Meta 10 %) and ``--duplicates`` of the requests
   resend an earlier delivery byte for byte, as a platform's retry does.
3. **Max**: new deliveries of the same mix, closed loop, as fast as they are answered: the headroom.

Then the checks, read through the host API as an operator would (no Redis access): every
acknowledged delivery is in the stream once, every new Shopify, WooCommerce
and Standard order sold its units exactly once (the drop's counters and one ``order`` ledger entry
per line), every TikTok and Meta order is recorded once as needing a fetch, and every duplicate was
answered ``duplicate``. CPU is reported per part in % of one core (server with all its workers, Redis,
generators, and the rest of the machine: read that last column before comparing runs on a shared
machine). Exit status 1 if a check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.stock import children_cpu_seconds, machine_busy_seconds, percentile
from loadtest.audit import Auditor
from loadtest.hostapi import HostApi
from loadtest.signing import sign_meta, sign_shopify, sign_standard, sign_tiktok, sign_woocommerce
from loadtest.stack import LOOPBACK, RedisProcess, free_port

SHOP = "bench.myshopify.com"
HOST_TOKEN = "bench-host-token"  # the set-up and the checks go through the host API
SECRETS = {
    "LIVEDROP_SHOPIFY_SECRETS": "shpss_bench",
    "LIVEDROP_TIKTOK_APP_KEY": "bench-app",
    "LIVEDROP_TIKTOK_SECRETS": "tiktok-bench",
    "LIVEDROP_META_SECRETS": "meta-bench",
    "LIVEDROP_WOOCOMMERCE_SECRETS": "woo-bench",
    "LIVEDROP_STANDARD_SECRETS": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}
MIX = (("shopify", 30), ("woocommerce", 25), ("standard", 25), ("tiktok", 10), ("meta", 10))
SELLING = ("shopify", "woocommerce", "standard")  # the others are thin notifications (needs fetch)
STOCK = 10**9


# --- deliveries ------------------------------------------------------------------------------------


@dataclass
class Delivery:
    platform: str
    order: str  # order id as the platform names it
    qty: int  # units sold (0: a notification without lines)
    request: bytes  # the whole HTTP request
    duplicate: bool = False


def _http(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: bench", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def make_delivery(platform: str, generator: int, n: int) -> Delivery:
    """A new, signed delivery of ``platform``: one order of one line (or a thin notification)."""
    numeric = (generator + 1) * 10**9 + n
    qty = 1 + n % 3
    if platform == "shopify":
        body = json.dumps(
            {"id": numeric, "line_items": [{"id": 1, "sku": "SKU-shopify", "quantity": qty, "properties": []}]}
        ).encode()
        headers = {
            "X-Shopify-Hmac-Sha256": sign_shopify(body, SECRETS["LIVEDROP_SHOPIFY_SECRETS"]),
            "X-Shopify-Topic": "orders/paid",
            "X-Shopify-Shop-Domain": SHOP,
            "X-Shopify-Webhook-Id": f"wh-{numeric}",
            "X-Shopify-Event-Id": f"ev-{numeric}",
        }
        return Delivery(platform, str(numeric), qty, _http("/webhooks/shopify", body, headers))
    if platform == "woocommerce":
        body = json.dumps(
            {
                "id": numeric,
                "status": "processing",
                "line_items": [{"id": 1, "sku": "SKU-woocommerce", "quantity": qty}],
            }
        ).encode()
        headers = {
            "X-WC-Webhook-Signature": sign_woocommerce(body, SECRETS["LIVEDROP_WOOCOMMERCE_SECRETS"]),
            "X-WC-Webhook-Topic": "order.updated",
            "X-WC-Webhook-ID": "7",
            "X-WC-Webhook-Delivery-ID": f"d{numeric}",
            "X-WC-Webhook-Source": "https://bench.example/",
        }
        return Delivery(platform, str(numeric), qty, _http("/webhooks/woocommerce", body, headers))
    if platform == "standard":
        order = f"std-{numeric}"
        body = json.dumps(
            {
                "type": "order.paid",
                "data": {"order_id": order, "lines": [{"line_id": "1", "sku": "SKU-standard", "qty": qty}]},
            }
        ).encode()
        msg_id, stamp = f"msg_{numeric}", int(time.time())
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign_standard(
                body, msg_id=msg_id, timestamp=stamp, secret=SECRETS["LIVEDROP_STANDARD_SECRETS"]
            ),
        }
        return Delivery(platform, order, qty, _http("/webhooks/standard", body, headers))
    if platform == "tiktok":
        order = f"tt{numeric}"
        body = json.dumps(
            {
                "type": 1,
                "tts_notification_id": f"n{numeric}",
                "shop_id": "1",
                "timestamp": int(time.time()),
                "data": {"order_id": order, "order_status": "AWAITING_SHIPMENT", "update_time": int(time.time())},
            }
        ).encode()
        signature = sign_tiktok(
            body, app_key=SECRETS["LIVEDROP_TIKTOK_APP_KEY"], secret=SECRETS["LIVEDROP_TIKTOK_SECRETS"]
        )
        return Delivery(platform, order, 0, _http("/webhooks/tiktok", body, {"Authorization": signature}))
    order = f"m{numeric}"
    body = json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": "1",
                    "time": int(time.time()),
                    "changes": [{"field": "commerce_orders", "value": {"order_id": order, "event": "CREATED"}}],
                }
            ],
        }
    ).encode()
    signature = sign_meta(body, SECRETS["LIVEDROP_META_SECRETS"])
    return Delivery(platform, order, 0, _http("/webhooks/meta", body, {"X-Hub-Signature-256": signature}))


def plan(generator: int, count: int, duplicates: float, seed: int, start: int) -> list[Delivery]:
    """``count`` requests: new deliveries in the platform mix, and a share resending earlier ones."""
    rng = random.Random(seed * 1000 + generator)
    names = [name for name, weight in MIX for _ in range(weight)]
    sent: list[Delivery] = []
    result: list[Delivery] = []
    for n in range(start, start + count):
        if sent and rng.random() < duplicates:
            first = rng.choice(sent)
            result.append(Delivery(first.platform, first.order, first.qty, first.request, duplicate=True))
        else:
            delivery = make_delivery(rng.choice(names), generator, n)
            sent.append(delivery)
            result.append(delivery)
    return result


# --- the load generator (runs in its own process) ------------------------------------------------------


class Connection:
    """One HTTP/1.1 keep-alive connection: a request, then its whole response, in turn."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length) if length else b""
        return status, body


async def _connect(port: int, n: int) -> list[Connection]:
    pairs = [await asyncio.open_connection(LOOPBACK, port) for _ in range(n)]
    return [Connection(r, w) for r, w in pairs]


async def _close(connections: list[Connection]) -> None:
    for c in connections:
        c.writer.close()
    for c in connections:
        try:
            await c.writer.wait_closed()
        except OSError:
            pass


async def closed_loop(
    port: int, requests: list[bytes], connections: int, duration: float, *, cycle: bool = False
) -> dict[str, Any]:
    """Send ``requests`` in turn (over and over with ``cycle``) as fast as answered, for ``duration`` s."""
    conns = await _connect(port, connections)
    statuses: Counter[int] = Counter()
    bodies: Counter[str] = Counter()
    latencies: list[float] = []
    deadline = time.perf_counter() + duration
    index = 0

    async def worker(conn: Connection) -> None:
        nonlocal index
        while time.perf_counter() < deadline and (cycle or index < len(requests)):
            request = requests[index % len(requests)]
            index += 1
            started = time.perf_counter()
            status, body = await conn.send(request)
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1
            bodies[body.decode()[:40]] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - started
    await _close(conns)
    return {"sent": index, "seconds": elapsed, "latencies": latencies, "statuses": statuses, "bodies": bodies}


async def open_loop(port: int, requests: list[bytes], connections: int, rate: float) -> dict[str, Any]:
    """Request i is due at start + i / rate; a free connection sends it. Latency counts from the
    due time, so time spent waiting for a connection (a server falling behind) is counted."""
    conns = await _connect(port, connections)
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    answers: list[tuple[int, int, bytes, float]] = []  # index, status, body, latency

    async def worker(conn: Connection) -> None:
        while (job := await queue.get()) is not None:
            i, due = job
            status, body = await conn.send(requests[i])
            answers.append((i, status, body, time.perf_counter() - due))

    workers = [asyncio.create_task(worker(c)) for c in conns]
    start = time.perf_counter() + 0.05
    for i in range(len(requests)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, due))
    for _ in conns:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    await _close(conns)
    return {"answers": answers, "seconds": elapsed}


def worker_main(path: Path) -> int:
    """``python -m bench.webhooks --worker JOB.json``: runs one phase, writes ``JOB.json.out``."""
    import uvloop

    job = json.loads(path.read_text())
    port, connections = job["port"], job["connections"]
    if job["phase"] == "ceiling":
        request = b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n"
        result = uvloop.run(closed_loop(port, [request], connections, job["duration"], cycle=True))
        out = {
            "sent": result["sent"],
            "seconds": result["seconds"],
            "latencies": result["latencies"],
            "statuses": dict(result["statuses"]),
        }
    else:
        deliveries = plan(job["generator"], job["count"], job["duplicates"], job["seed"], job["start"])
        requests = [d.request for d in deliveries]
        if job["phase"] == "max":
            result = uvloop.run(closed_loop(port, requests, connections, job["duration"]))
            sent = deliveries[: result["sent"]]
            # closed_loop keeps no per-request answers; every answer's status and body are counted
            out = {
                "sent": result["sent"],
                "seconds": result["seconds"],
                "latencies": result["latencies"],
                "statuses": dict(result["statuses"]),
                "bodies": dict(result["bodies"]),
                "deliveries": [[d.platform, d.order, d.qty, d.duplicate, None] for d in sent],
            }
        else:
            result = uvloop.run(open_loop(port, requests, connections, job["rate"]))
            answers = sorted(result["answers"])
            out = {
                "sent": len(answers),
                "seconds": result["seconds"],
                "latencies": [a[3] for a in answers],
                "statuses": dict(Counter(a[1] for a in answers)),
                "bodies": dict(Counter(a[2].decode()[:40] for a in answers)),
                "deliveries": [
                    [d.platform, d.order, d.qty, d.duplicate, json.loads(a[2]).get("status") if a[1] == 200 else None]
                    for d, a in zip(deliveries, answers, strict=True)
                ],
            }
    Path(f"{path}.out").write_text(json.dumps(out))
    return 0


# --- the parent: server, phases, checks ----------------------------------------------------------------


@dataclass
class Row:
    phase: str
    requests: int
    seconds: float
    rate: float  # answered 2xx per second
    p50_ms: float
    p99_ms: float
    cpu: dict[str, float]
    new: int = 0  # deliveries accepted as new
    duplicates: int = 0  # answered "duplicate"
    errors: int = 0  # anything but 200
    ratio: float | None = None  # rate / ceiling rate


@dataclass
class Report:
    command: str
    settings: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append((name, ok, detail))
        print(f"    [{'ok  ' if ok else 'FAIL'}] {name}: {detail}", flush=True)


def process_cpu_seconds(pid: int) -> float:
    """CPU-seconds a running process and its live descendants have used (Linux /proc; 0.0
    elsewhere): ``serve --workers N`` runs its workers as children of a supervisor."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        children: list[int] = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as listed:
                children += [int(c) for c in listed.read().split()]
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return own + sum(process_cpu_seconds(child) for child in children)


class CpuMeter:
    """CPU of the server, Redis, the generators and the rest of the machine, in % of one core."""

    def __init__(self, server_pid: int, redis_pid: int) -> None:
        self.server_pid = server_pid
        self.redis_pid = redis_pid
        self._start: tuple[float, float, float, float, float | None] = (0.0, 0.0, 0.0, 0.0, None)

    def _sample(self) -> tuple[float, float, float, float, float | None]:
        return (
            time.perf_counter(),
            process_cpu_seconds(self.server_pid),
            process_cpu_seconds(self.redis_pid),
            children_cpu_seconds(),  # generators, once they have exited and been waited for
            machine_busy_seconds(),
        )

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> dict[str, float]:
        end = self._sample()
        wall = end[0] - self._start[0]
        server = (end[1] - self._start[1]) / wall * 100
        redis_ = (end[2] - self._start[2]) / wall * 100
        generators = (end[3] - self._start[3]) / wall * 100
        other = float("nan")
        if end[4] is not None and self._start[4] is not None:
            other = max(0.0, (end[4] - self._start[4]) / wall * 100 - server - redis_ - generators)
        return {"server": server, "redis": redis_, "generators": generators, "other": other}


def run_generators(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run one generator process per job, all at once; returns their results (each written to a
    file of its own, so nothing else a process prints can get mixed into them)."""
    with tempfile.TemporaryDirectory(prefix="livedrop-bench-gen-") as tmp:
        processes = []
        for i, job in enumerate(jobs):
            path = Path(tmp) / f"job-{i}.json"
            path.write_text(json.dumps(job))
            processes.append(subprocess.Popen([sys.executable, "-m", "bench.webhooks", "--worker", str(path)]))
        for process in processes:
            if process.wait() != 0:
                raise RuntimeError("a load generator failed")
        return [json.loads((Path(tmp) / f"job-{i}.json.out").read_text()) for i in range(len(jobs))]


def wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server not ready: {log.read_text()[-2000:]}")


def setup_catalog(api: HostApi) -> None:
    """The show and one live drop per selling platform, through the host API."""
    api.call("POST", "/api/shows", {"show_id": "bench", "title": "Webhook bench"})
    for platform in SELLING:
        drop = {"drop_id": f"wh-{platform}", "sku": f"SKU-{platform}", "title": platform, "total": STOCK}
        api.call("POST", "/api/shows/bench/drops", drop)
        api.call("POST", f"/api/drops/wh-{platform}/launch", {})


def wait_applied(auditor: Auditor, timeout: float) -> float:
    """Seconds until the appliers have applied everything recorded (``GET /api/webhooks/intake``)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if auditor.intake()["caught_up"]:
            return time.perf_counter() - started
        time.sleep(0.05)
    return float("nan")


def verify(auditor: Auditor, accepted: dict[tuple[str, str], int], report: Report) -> None:
    """Every accepted delivery recorded once and applied exactly once, read through the host API."""
    recorded = int(auditor.intake()["recorded"])
    report.check("stream", recorded == len(accepted), f"{recorded} entries for {len(accepted)} accepted deliveries")
    for platform in SELLING:
        drop = f"wh-{platform}"
        expected = sum(qty for (p, _), qty in accepted.items() if p == platform)
        orders = sum(1 for (p, _) in accepted if p == platform)
        counters = auditor.drop(drop)["counters"]
        lines: Counter[str] = Counter(e.fields["line"] for e in auditor.ledger(drop) if e.op == "order")
        once = all(n == 1 for n in lines.values())
        ok = counters["sold"] == expected and counters["oversold"] == 0 and len(lines) == orders and once
        report.check(
            f"{platform} applied once",
            ok,
            f"sold {counters['sold']} of {expected} expected units, {len(lines)} ledger lines for {orders} orders",
        )
    issues: Counter[str] = Counter(n["platform"] for n in auditor.reconciliation("bench")["needs_fetch"])
    for platform in ("tiktok", "meta"):
        expected = sum(1 for (p, _) in accepted if p == platform)
        report.check(
            f"{platform} recorded once",
            issues[platform] == expected,
            f"{issues[platform]} needs-fetch records for {expected} orders",
        )


def summarize(phase: str, outputs: list[dict[str, Any]], cpu: dict[str, float], ceiling: float | None) -> Row:
    latencies = [x for o in outputs for x in o["latencies"]]
    statuses: Counter[str] = Counter()
    bodies: Counter[str] = Counter()
    for o in outputs:
        statuses.update(o["statuses"])
        bodies.update(o.get("bodies", {}))
    seconds = max(o["seconds"] for o in outputs)
    ok = statuses.get("200", 0)
    rate = ok / seconds
    return Row(
        phase=phase,
        requests=sum(o["sent"] for o in outputs),
        seconds=seconds,
        rate=rate,
        p50_ms=percentile(latencies, 0.5) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        cpu=cpu,
        new=sum(n for b, n in bodies.items() if "accepted" in b),
        duplicates=sum(n for b, n in bodies.items() if "duplicate" in b),
        errors=sum(n for s, n in statuses.items() if s != "200"),
        ratio=None if ceiling is None else rate / ceiling,
    )


def print_table(rows: list[Row]) -> None:
    print()
    head = ("phase", "requests", "2xx/s", "new", "dup", "errors", "p50 ms", "p99 ms", "x ceiling")
    widths = (36, 8, 7, 6, 5, 6, 6, 7, 9)
    cells = [f"{h:<{w}}" if i == 0 else f"{h:>{w}}" for i, (h, w) in enumerate(zip(head, widths, strict=True))]
    print("| " + " | ".join(cells) + " | CPU server/redis/gen/other % |")
    print(
        "|"
        + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths))
        + "|"
        + "-" * 30
        + "|"
    )
    for r in rows:
        cpu = "/".join(f"{r.cpu[k]:.0f}" for k in ("server", "redis", "generators", "other"))
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        print(
            f"| {r.phase:<36} | {r.requests:>8,} | {r.rate:>7,.0f} | {r.new:>6,} | {r.duplicates:>5,} "
            f"| {r.errors:>6,} | {r.p50_ms:>6.2f} | {r.p99_ms:>7.2f} | {ratio:>9} | {cpu:<28} |"
        )
    print()


def run(args: argparse.Namespace) -> Report:
    report = Report(command="python -m bench.webhooks " + " ".join(sys.argv[1:]), settings=vars(args).copy())
    report.settings.pop("json", None)
    with tempfile.TemporaryDirectory(prefix="livedrop-bench-wh-") as tmp:
        redis_server = RedisProcess(Path(tmp) / "redis")  # `livedrop redis`, as an operator runs it
        redis_server.start()
        port = free_port()
        log = Path(tmp) / "server.log"
        env = {**os.environ, **SECRETS, "REDIS_URL": redis_server.url, "LIVEDROP_LOG_LEVEL": "warning"}
        env["LIVEDROP_HOST_TOKENS"] = HOST_TOKEN
        env["LIVEDROP_RECONCILE_INTERVAL"] = "0"
        with log.open("wb") as out:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "server.cli",
                    "serve",
                    "--port",
                    str(port),
                    "--workers",
                    str(args.workers),
                    "--log-level",
                    "warning",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_ready(port, server, log)
            auditor = Auditor(HostApi(f"http://{LOOPBACK}:{port}", HOST_TOKEN, timeout=120.0))
            setup_catalog(auditor.api)
            assert redis_server.proc is not None
            meter = CpuMeter(server.pid, redis_server.proc.pid)  # the command and its redis-server child
            per_gen = max(1, args.connections // args.generators)

            print(
                f"1. ceiling: GET /healthz, closed loop, {args.generators}x{per_gen} connections, "
                f"{args.ceiling_duration} s",
                flush=True,
            )
            meter.start()
            outputs = run_generators(
                [
                    {"phase": "ceiling", "port": port, "connections": per_gen, "duration": args.ceiling_duration}
                    for _ in range(args.generators)
                ]
            )
            ceiling = summarize("GET /healthz, closed loop (ceiling)", outputs, meter.stop(), None)
            ceiling.ratio = 1.0
            report.rows.append(ceiling)

            count = int(args.rate * args.duration / args.generators)
            print(
                f"2. target: {args.rate:,.0f} webhooks/s open loop for {args.duration} s, "
                f"{args.duplicates:.0%} duplicates",
                flush=True,
            )
            meter.start()
            outputs = run_generators(
                [
                    {
                        "phase": "target",
                        "port": port,
                        "connections": per_gen,
                        "rate": args.rate / args.generators,
                        "generator": g,
                        "count": count,
                        "duplicates": args.duplicates,
                        "seed": args.seed,
                        "start": 0,
                    }
                    for g in range(args.generators)
                ]
            )
            target = summarize(f"webhooks at {args.rate:,.0f}/s, open loop", outputs, meter.stop(), ceiling.rate)
            report.rows.append(target)
            deliveries = [d for o in outputs for d in o["deliveries"]]

            print(f"3. max: new deliveries of the same mix, closed loop, {args.max_duration} s", flush=True)
            meter.start()
            max_count = int(args.max_duration * max(args.rate, ceiling.rate) / args.generators) + 1
            outputs = run_generators(
                [
                    {
                        "phase": "max",
                        "port": port,
                        "connections": per_gen,
                        "duration": args.max_duration,
                        "generator": g,
                        "count": max_count,
                        "duplicates": args.duplicates,
                        "seed": args.seed + 1,
                        "start": count,
                    }
                    for g in range(args.generators)
                ]
            )
            report.rows.append(summarize("webhooks, closed loop (max)", outputs, meter.stop(), ceiling.rate))
            max_deliveries = [d for o in outputs for d in o["deliveries"]]

            lag = wait_applied(auditor, 60)
            print(f"    all deliveries applied {lag:.2f} s after the last answer", flush=True)
            report.settings["apply_lag_seconds"] = lag

            print("checks:", flush=True)
            # The target phase knows each answer; the max phase answered every request 200 or the
            # error check fails, so each of its new deliveries counts as accepted.
            accepted: dict[tuple[str, str], int] = {}
            answers: dict[tuple[str, str], list[str]] = {}
            for platform, order, qty, _, status in deliveries:
                answers.setdefault((platform, order), []).append(str(status))
                if status in ("accepted", "duplicate"):
                    accepted[(platform, order)] = qty
            report.check(
                "target answers", target.errors == 0, f"{target.errors} errors of {target.requests:,} requests"
            )
            # A resend may overtake its original: of the copies of one delivery, whichever Redis
            # saw first is "accepted" and every other one "duplicate".
            once = sum(1 for a in answers.values() if sorted(a) == ["accepted"] + ["duplicate"] * (len(a) - 1))
            report.check(
                "each delivery accepted once",
                once == len(answers),
                f"{len(answers):,} deliveries sent {len(deliveries):,} times: {once:,} accepted exactly once, "
                f"{target.duplicates:,} answers duplicate",
            )
            max_row = report.rows[-1]
            report.check(
                "max answers", max_row.errors == 0, f"{max_row.errors} errors of {max_row.requests:,} requests"
            )
            for platform, order, qty, _, _ in max_deliveries:
                accepted[(platform, order)] = qty
            verify(auditor, accepted, report)
            report.check(
                "DESIGN §8 target",
                target.rate >= 0.98 * args.rate and target.p99_ms < 50,
                f"{target.rate:,.0f} accepted/s (target {args.rate:,.0f}), p99 {target.p99_ms:.1f} ms (target < 50)",
            )
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            redis_server.stop()
    print_table(report.rows)
    return report


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.webhooks", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument("--rate", type=float, default=2000.0, help="target webhooks per second (default 2000)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds at the target rate (default 10)")
    parser.add_argument(
        "--duplicates", type=float, default=0.10, help="share of requests that resend a delivery (0.10)"
    )
    parser.add_argument("--connections", type=int, default=64, help="HTTP connections in all (default 64)")
    parser.add_argument("--generators", type=int, default=1, help="load generator processes (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes (default 2)")
    parser.add_argument(
        "--ceiling-duration", type=float, default=5.0, help="seconds of the /healthz ceiling (default 5)"
    )
    parser.add_argument("--max-duration", type=float, default=5.0, help="seconds of the closed-loop phase (default 5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    report = run(args)
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2))
    failed = [name for name, ok, _ in report.checks if not ok]
    print(
        f"{len(report.checks) - len(failed)}/{len(report.checks)} checks passed"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
