"""Measuring the fan-out bench's processes: percentiles, CPU and RSS of a process tree, CPU windows."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

# --- measurements --------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def machine_busy() -> float:
    """CPU-seconds the whole machine spent busy, all cores (Linux /proc/stat; 0 elsewhere)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU-seconds (user + system) of another process (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss(pid: int) -> int:
    """Resident set size of another process in bytes (Linux /proc)."""
    with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants: a node run with ``--workers`` is a supervisor and its
    worker processes, and their CPU and memory all count (Linux /proc; [pid] elsewhere)."""
    parents: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return [pid]
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree


def tree_cpu(pid: int) -> float:
    return sum(proc_cpu(each) for each in process_tree(pid))


def tree_rss(pid: int) -> int:
    total = 0
    for each in process_tree(pid):
        with contextlib.suppress(OSError):
            total += proc_rss(each)
    return total


@dataclass
class Cpu:
    """CPU in % of one core over a window: the server under test, the clients, Redis, everything else."""

    server: float = 0.0
    clients: float = 0.0
    redis: float = 0.0
    others: float = 0.0

    def text(self) -> str:
        return f"{self.server:.0f}/{self.clients:.0f}/{self.redis:.0f}/{self.others:.0f}"


class CpuWindow:
    def __init__(self, admin: Redis, server_cpu: Callable[[], Awaitable[float]]) -> None:
        self.admin = admin
        self.server_cpu = server_cpu
        self.start: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)

    async def _redis_cpu(self) -> float:
        info: dict[str, Any] = await self.admin.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    async def _sample(self) -> tuple[float, float, float, float, float]:
        return (
            time.perf_counter(),
            machine_busy(),
            await self.server_cpu(),
            await self._redis_cpu(),
            time.process_time(),
        )

    async def begin(self) -> None:
        self.start = await self._sample()

    async def end(self, clients_cpu: float) -> tuple[Cpu, float]:
        """The shares, and the server's CPU-seconds over the window."""
        end = await self._sample()
        wall = max(1e-9, end[0] - self.start[0])
        busy, server, redis_cpu, own = (end[i] - self.start[i] for i in range(1, 5))
        others = max(0.0, busy - server - redis_cpu - clients_cpu - own)
        return Cpu(100 * server / wall, 100 * clients_cpu / wall, 100 * redis_cpu / wall, 100 * others / wall), server
