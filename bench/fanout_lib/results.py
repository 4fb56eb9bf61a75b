"""What the fan-out bench measured, one dataclass per part (fan-out, reservations, storm), and its checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.fanout_lib import control
from bench.fanout_lib.measure import Cpu

# --- results ---------------------------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class FanOut:
    """One server's fan-out figures (the LiveDrop node or the ceiling A)."""

    server: str
    viewers: int
    connect_s: float = 0.0
    rss_per_conn_kib: float = 0.0
    probe_p50_ms: float = float("nan")
    probe_p99_ms: float = float("nan")
    probe_p99_each: list[float] = field(default_factory=list)
    fps: float = 0.0  # median burst
    fps_best: float = 0.0
    fps_each: list[float] = field(default_factory=list)
    burst_p50_ms: float = float("nan")
    burst_p99_ms: float = float("nan")
    us_per_frame: float = 0.0  # server CPU per delivered frame, median burst
    delivered: int = 0
    expected: int = 0
    out_of_order: int = 0  # drop frames whose seq was not above the viewer's previous one
    bad_frames: int = 0  # text frames that were not JSON objects with a type
    lost: int = 0  # viewer sockets closed during the measurement
    cpu: Cpu = field(default_factory=Cpu)
    hold_ms: float = 0.0

    def tally(self, replies: list[control.JSON]) -> list[float]:
        """Count one collect's frames and faults; return its latencies."""
        lat = [x for r in replies for x in r["lat"]]
        self.delivered += len(lat)
        self.expected += sum(r["expect"] for r in replies)
        self.out_of_order += sum(r["out_of_order"] for r in replies)
        self.bad_frames += sum(r["bad_frames"] for r in replies)
        self.lost = max(self.lost, sum(r["lost"] for r in replies))
        return lat


@dataclass
class Reservations:
    label: str
    viewers: int
    sent: int = 0
    answered: int = 0
    rate: float = 0.0  # answers per second
    offered: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    answers: dict[str, int] = field(default_factory=dict)
    unanswered: int = 0
    skipped: int = 0
    cpu: Cpu = field(default_factory=Cpu)
    seconds: float = 0.0
    stall_p99_ms: float = float("nan")  # node /healthz answer time during the window
    stall_max_ms: float = float("nan")


@dataclass
class Storm:
    viewers: int
    spread: float
    welcomed: int = 0
    failed: int = 0
    retries: int = 0
    all_welcomed_s: float = float("nan")
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    readyz_during: list[int] = field(default_factory=list)
    readyz_after: int = 0
    cpu: Cpu = field(default_factory=Cpu)
    stall_p99_ms: float = float("nan")
    stall_max_ms: float = float("nan")


@dataclass
class Results:
    command: str
    machine: dict[str, str]
    settings: dict[str, Any]
    livedrop: FanOut | None = None
    ceiling_a: FanOut | None = None
    send_path: dict[str, float] = field(default_factory=dict)
    hub: dict[str, float] = field(default_factory=dict)
    redis_ceiling: float | None = None
    redis_ceiling_runs: list[float] = field(default_factory=list)
    burst: Reservations | None = None
    sustained: list[Reservations] = field(default_factory=list)
    storm: Storm | None = None
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        print(f"    [{'ok  ' if ok else 'FAIL'}] {name}: {detail}", flush=True)
        return ok
