"""Real LiveDrop nodes for end-to-end tests: ``livedrop serve`` in a child process (uvicorn,
uvloop, websockets-sansio), on a free loopback port, against a Redis the tests started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from server.ops.local_redis import free_port
from tests.support.util import scaled

VIEWER_SECRET = "test-viewer-secret"


class Node:
    def __init__(
        self, redis_url: str, log_dir: Path, env: Mapping[str, str] | None = None, log_level: str = "warning"
    ) -> None:
        self.redis_url = redis_url
        self.log_level = log_level
        self.port = free_port()
        self.log_path = log_dir / f"node-{self.port}.log"
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, show_id: str, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/ws/shows/{show_id}" + (f"?{query}" if query else "")

    def start(self, timeout: float = 20.0) -> Node:
        env = {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "LIVEDROP_VIEWER_SECRET": VIEWER_SECRET,
            "LIVEDROP_SWEEP_INTERVAL": "0.05",
            "LIVEDROP_LOG_LEVEL": self.log_level,
            **self.extra_env,
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv(),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.http + "/readyz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"node not ready: {self.log_path.read_text()[-2000:]}")

    def argv(self) -> list[str]:
        """The node's command line (a subclass may run it another way)."""
        return [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port), "--log-level", self.log_level]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(scaled(timeout))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
