"""JSON-lines control channel between the orchestrator and its server/client processes, and process limits.

A child reads one command object per line on stdin and writes one reply object per line on stdout;
lines on stdout that are not JSON objects (a library printing something) are skipped by the reader.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import resource
import sys
from collections.abc import Sequence
from typing import Any

JSON = dict[str, Any]


def raise_nofile(wanted: int) -> int:
    """Raise RLIMIT_NOFILE to at least ``wanted`` if allowed (root may raise the hard limit); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    target = wanted if hard == resource.RLIM_INFINITY else max(wanted, hard)
    for new_hard in (target, hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, new_hard), new_hard))
            break
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reply(obj: JSON) -> None:
    """Child side: write one reply line."""
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def commands() -> asyncio.StreamReader:
    """Child side: a reader of stdin on the running loop."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def next_command(reader: asyncio.StreamReader) -> JSON:
    line = await reader.readline()
    if not line:
        return {"cmd": "quit"}
    parsed: JSON = json.loads(line)
    return parsed


class Child:
    """Orchestrator side: one child process driven over its stdin/stdout."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._stderr_task = asyncio.create_task(self._drain_stderr())

    @classmethod
    async def start(cls, name: str, args: Sequence[str], cwd: str) -> Child:
        env = dict(os.environ)
        env["PYTHONPATH"] = cwd + os.pathsep + env.get("PYTHONPATH", "")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=1 << 26,
        )
        return cls(name, proc)

    async def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.stderr_tail.append(line.decode(errors="replace").rstrip())

    def send(self, obj: JSON) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj).encode() + b"\n")

    async def recv(self, timeout: float) -> JSON:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"{self.name} exited: " + " | ".join(self.stderr_tail))
                if line.startswith(b"{"):
                    parsed: JSON = json.loads(line)
                    return parsed

    async def ask(self, obj: JSON, timeout: float) -> JSON:
        self.send(obj)
        return await self.recv(timeout)

    async def stop(self) -> None:
        """Ask politely, then kill this child (only this one, by its own handle)."""
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                self.send({"cmd": "quit"})
            try:
                await asyncio.wait_for(self.proc.wait(), 3.0)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._stderr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr_task
