"""Headless load test: a local stack, a bounded flash sale through Locust, and a verdict.

    python -m loadtest.run                       # 60 s, 306 users, 1 node (about 1.5 min)
    python -m loadtest.run --nodes 2 --viewers 600 --show-seconds 120

Steps: start a private Redis (AOF) and ``--nodes`` ``livedrop serve`` processes on free
loopback ports, with a host token, viewer secret and webhook secrets made up for the run;
create the show and its drops through the host API; run ``locust --headless`` on
``loadtest/locustfile.py`` (its shape plays the show and stops by itself; the run is killed if
it overruns by a minute); then judge (loadtest/verdict.py). Locust's HTML report, its CSV
files, what the clients were told, the nodes' logs and ``verdict.json`` go to
``loadtest/reports/<show id>/``. The verdict is printed and is the exit code: 0 pass, 1 fail.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from loadtest.audit import Auditor
from loadtest.hostapi import HostApi
from loadtest.plan import Plan, make_plan
from loadtest.signing import PlatformSecrets
from loadtest.stack import Stack
from loadtest.verdict import Verdict, judge

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "locustfile.py"
OVERRUN_SECONDS = 60.0  # Locust is killed this long after the show should have ended
AUDIT_TIMEOUT = 60.0  # seconds per host API read while judging (a reconciliation report reads every ledger)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtest.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--show-seconds", type=float, default=60.0, help="length of the show (default 60)")
    parser.add_argument("--viewers", type=int, default=240, help="watch-only viewers (default 240)")
    parser.add_argument("--buyers", type=int, default=60, help="viewers who reserve (default 60)")
    parser.add_argument("--platforms", type=int, default=6, help="webhook senders (default 6)")
    parser.add_argument("--drops", type=int, default=3, help="drops launched (default 3)")
    parser.add_argument("--stock", type=int, default=40, help="units per drop (default 40)")
    parser.add_argument("--drop-seconds", type=float, default=15.0, help="how long a drop stays live (default 15)")
    parser.add_argument("--hold-seconds", type=float, default=10.0, help="hold lifetime (default 10)")
    parser.add_argument("--nodes", type=int, default=1, help="livedrop serve processes (default 1)")
    parser.add_argument("--cluster", action="store_true", help="a 3-master Redis Cluster instead of one Redis")
    parser.add_argument("--processes", type=int, default=0, help="Locust worker processes (default: one process)")
    parser.add_argument("--max-failures", type=int, default=0, help="failed client requests allowed (default 0)")
    parser.add_argument("--reports", type=Path, default=HERE / "reports", help="where reports go")
    parser.add_argument("--show-id", default="", help="show id (default: lt-<time>)")
    return parser


def locust_command(args: argparse.Namespace, plan: Plan, targets: list[str], out: Path) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        targets[0],
        "--targets",
        ",".join(targets),
        "--show-id",
        plan.show_id,
        "--show-seconds",
        str(args.show_seconds),
        "--viewers",
        str(args.viewers),
        "--buyers",
        str(args.buyers),
        "--platforms",
        str(args.platforms),
        "--drops",
        str(args.drops),
        "--stock",
        str(args.stock),
        "--drop-seconds",
        str(args.drop_seconds),
        "--hold-seconds",
        str(args.hold_seconds),
        "--record-dir",
        str(out / "records"),
        "--html",
        str(out / "report.html"),
        "--csv",
        str(out / "locust"),
        "--only-summary",
        "--stop-timeout",
        "3",
        "--loglevel",
        "WARNING",
    ]
    if args.processes:
        command += ["--processes", str(args.processes)]
    return command


def _judge(stack: Stack, plan: Plan, out: Path, max_failures: int, platforms: list[str]) -> Verdict:
    """Judge through the first node's host API (every node answers for the whole deployment)."""
    auditor = Auditor(HostApi(stack.urls[0], stack.host_token, timeout=AUDIT_TIMEOUT))
    return judge(
        auditor,
        plan,
        out / "records",
        out / "locust_stats.csv",
        max_failures=max_failures,
        expect_platforms=platforms,
    )


def run(args: argparse.Namespace) -> Verdict:
    show_id = args.show_id or "lt-" + time.strftime("%Y%m%d-%H%M%S")
    plan = make_plan(
        show_id,
        show_seconds=args.show_seconds,
        viewers=args.viewers,
        buyers=args.buyers,
        platforms=args.platforms,
        drops=args.drops,
        stock=args.stock,
        drop_seconds=args.drop_seconds,
        hold_seconds=args.hold_seconds,
    )
    out = Path(args.reports) / show_id
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="livedrop-loadtest-") as workdir:
        stack = Stack(workdir, nodes=args.nodes, cluster=args.cluster)
        print(f"loadtest: starting Redis{' Cluster' if args.cluster else ''} and {args.nodes} node(s)", flush=True)
        with stack:
            HostApi(stack.urls[0], stack.host_token).ensure_show(plan)
            env = {**os.environ, **stack.secrets, "LOADTEST_HOST_TOKEN": stack.host_token}
            platforms = [p.value for p in PlatformSecrets.from_env(env).enabled()]
            command = locust_command(args, plan, stack.urls, out)
            print(
                f"loadtest: show {show_id}: {plan.users} users for {args.show_seconds:g}s on {', '.join(stack.urls)}",
                flush=True,
            )
            started = time.monotonic()
            overran = False
            with (out / "locust.log").open("wb") as log:
                proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=HERE.parent)
                try:
                    proc.wait(args.show_seconds + OVERRUN_SECONDS)
                except subprocess.TimeoutExpired:
                    overran = True
                    proc.kill()
                    proc.wait()
            print(
                f"loadtest: Locust ran {time.monotonic() - started:.1f}s (exit {proc.returncode}); judging", flush=True
            )
            verdict = _judge(stack, plan, out, args.max_failures, platforms)
            if overran:
                verdict.add("bounded run", [f"Locust did not stop within {OVERRUN_SECONDS:g}s of the show's end"])
            for node in stack.nodes:
                (out / f"{node.name}.log").write_text(node.log_tail(200_000))
    (out / "verdict.json").write_text(
        json.dumps(
            {"ok": verdict.ok, "checks": [asdict(c) for c in verdict.checks], "figures": verdict.figures}, indent=2
        )
    )
    print(verdict.render())
    _print_figures(verdict)
    print(f"loadtest: reports in {out}")
    return verdict


def _print_figures(verdict: Verdict) -> None:
    for drop_id, counters in verdict.figures.get("drops", {}).items():
        print(f"  {drop_id}: " + " ".join(f"{k}={v}" for k, v in counters.items()))
    for name, row in sorted(verdict.figures.get("requests", {}).items()):
        print(
            f"  {name:<38} n={row['count']:<7} fail={row['failures']:<4} p50={row['p50_ms']}ms "
            f"p99={row['p99_ms']}ms max={row['max_ms']}ms rate={row['per_s']}/s"
        )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return 0 if run(args).ok else 1


if __name__ == "__main__":
    sys.exit(main())
