"""A whole LiveDrop deployment on this machine, for load tests and the scale-out benchmark: a
private Redis (or a 3-master Redis Cluster) and one or more ``livedrop serve`` processes, each
on a free loopback port, sharing a host token, a viewer secret and webhook secrets made up
for the run.

Each node is a separate process, as behind a real load balancer, so killing one with SIGKILL
is a real node loss. Everything is stopped when the ``with`` block ends.
"""

from __future__ import annotations

import base64
import os
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

LOOPBACK = "127.0.0.1"
CLUSTER_MASTERS = 3


def free_port() -> int:
    """A TCP port free on the loopback interface right now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """A private Redis (or Redis Cluster) run by the public ``livedrop redis`` command, which
    prints its URL(s) once it answers and stops it on SIGTERM. Going through the command keeps
    the load test on the same path an operator takes; its output goes to ``log_path``."""

    def __init__(self, data_dir: Path, *, cluster: bool = False) -> None:
        self.data_dir = data_dir
        self.cluster = cluster
        self.log_path = data_dir.with_name(data_dir.name + ".log")
        self.urls: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if not self.urls:
            raise RuntimeError("Redis is not started")
        return self.urls[0]

    def start(self, timeout: float = 60.0) -> None:
        """Start it and wait for its URL line; raises RuntimeError with its log otherwise."""
        command = [sys.executable, "-m", "server.cli", "redis", "--data-dir", str(self.data_dir)]
        command += ["--timeout", str(timeout)]
        if self.cluster:
            command += ["--cluster", str(CLUSTER_MASTERS)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
        assert self.proc.stdout is not None
        line = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n") and time.monotonic() < deadline:
                if selector.select(max(0.0, deadline - time.monotonic())):
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    if not chunk:
                        break  # exited before printing its URL
                    line += chunk
        self.urls = line.decode().split()
        if not self.urls:
            self.stop()
            raise RuntimeError(f"livedrop redis did not start:\n{self.log_path.read_text(errors='replace')[-3000:]}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (it stops its Redis cleanly), SIGKILL after ``timeout``."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def stack_secrets() -> dict[str, str]:
    """Fresh credentials for one run, in the variables the nodes read (server/settings.py and
    server/platforms/webhooks/config.py); the load generator reads the same ones."""
    return {
        "LIVEDROP_HOST_TOKENS": "lt-host-" + secrets.token_urlsafe(16),
        "LIVEDROP_VIEWER_SECRET": secrets.token_urlsafe(32),
        "LIVEDROP_SHOPIFY_SECRETS": "shpss_" + secrets.token_hex(16),
        "LIVEDROP_TIKTOK_APP_KEY": "lt" + secrets.token_hex(4),
        "LIVEDROP_TIKTOK_SECRETS": secrets.token_hex(16),
        "LIVEDROP_META_SECRETS": secrets.token_hex(16),
        "LIVEDROP_META_VERIFY_TOKENS": secrets.token_hex(8),
        "LIVEDROP_WOOCOMMERCE_SECRETS": "wc_" + secrets.token_hex(16),
        "LIVEDROP_STANDARD_SECRETS": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
    }


class NodeProcess:
    """One ``livedrop serve`` child process; its output goes to ``log_path``."""

    def __init__(self, name: str, env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.env = dict(env)
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port), "--log-level", "warning"],
                env={**os.environ, **self.env, **self._consumer_name()},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _consumer_name(self) -> dict[str, str]:
        """Name the node's webhook consumer after it, so its log and Redis agree, unless it runs
        several workers: they need one name each, and ``serve`` picks them (host and pid)."""
        workers = self.env.get("LIVEDROP_WORKERS", os.environ.get("LIVEDROP_WORKERS", "1"))
        return {"LIVEDROP_WEBHOOK_CONSUMER": self.name} if int(workers) <= 1 else {}

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until ``/readyz`` answers 200; raises RuntimeError with the log tail otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"node {self.name} exited:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"node {self.name} was not ready in {timeout:g}s:\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Signal the node and reap it (SIGKILL after ``timeout``). Returns its exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL, as a crashed machine: no close frame reaches its viewers."""
        self.stop(signal.SIGKILL)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


class Stack:
    """Redis (standalone or Cluster) and ``nodes`` LiveDrop processes, in ``workdir``."""

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        nodes: int = 1,
        cluster: bool = False,
        redis_url: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError("a stack needs at least one node")
        self.workdir = Path(workdir)
        self.cluster = cluster
        self.secrets = stack_secrets()
        self.extra_env = dict(env or {})
        self._external_url = redis_url
        self._redis: RedisProcess | None = None
        self.node_count = nodes
        self.nodes: list[NodeProcess] = []

    @property
    def host_token(self) -> str:
        return self.secrets["LIVEDROP_HOST_TOKENS"]

    @property
    def redis_url(self) -> str:
        if self._external_url:
            return self._external_url
        if self._redis is None:
            raise RuntimeError("the stack is not started")
        return self._redis.url

    @property
    def redis_urls(self) -> list[str]:
        """Every Redis node's URL (one per master of a cluster)."""
        if self._redis is not None:
            return self._redis.urls
        return [self.redis_url]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def node_env(self, index: int) -> dict[str, str]:
        # Cluster nodes are each told a different master: any one of them is enough for the
        # client to discover the others, and spreading them checks that it does.
        urls = self.redis_urls
        env = {
            **self.secrets,
            "REDIS_URL": urls[index % len(urls)],
            "LIVEDROP_LOG_LEVEL": "warning",
            **self.extra_env,
        }
        if self.cluster:
            env["LIVEDROP_REDIS_CLUSTER"] = "1"
        return env

    def start(self, timeout: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            if self._external_url is None:
                name = "redis-cluster" if self.cluster else "redis"
                self._redis = RedisProcess(self.workdir / name, cluster=self.cluster)
                self._redis.start(timeout)
            for _ in range(self.node_count):
                self.add_node().start()
            for node in self.nodes:
                node.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def add_node(self) -> NodeProcess:
        """A new node process (not started) with this stack's settings."""
        node = NodeProcess(f"node-{len(self.nodes) + 1}", self.node_env(len(self.nodes)), self.workdir)
        self.nodes.append(node)
        return node

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self._redis is not None:
            self._redis.stop()
            self._redis = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
