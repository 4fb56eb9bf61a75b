"""One private Redis server as a child process: started on a free loopback port, checked by process
id before use, restartable and crashable for fault tests, its data kept on disk for the demo."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from server.ops.local_redis.binaries import RedisStartError, RedisUnavailable, find_server_binary
from server.ops.local_redis.ports import LOOPBACK, RESERVED_PORTS, free_cluster_port, free_port

AppendFsync = Literal["always", "everysec", "no"]

_LOG_NAME = "redis.log"
_CONSOLE_NAME = "redis.console.log"
_CONFIG_NAME = "redis.conf"
_LOCK_NAME = "livedrop-redis.lock"

# --- helpers -----------------------------------------------------------------------------------


def client_for(port: int, timeout: float = 2.0) -> redis.Redis:
    """A blocking client for probes and admin commands on one of our servers.

    Retries are off: a probe that fails is repeated by its own polling loop, and redis-py's
    default backoff would only slow start-up down.
    """
    return redis.Redis(
        host=LOOPBACK,
        port=port,
        socket_connect_timeout=min(timeout, 0.5),
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def _tail(path: Path, offset: int = 0, lines: int = 20) -> str:
    """The last ``lines`` lines of ``path`` written after byte ``offset`` ("" if none)."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _quote(value: str) -> str:
    """Quote a config value the way redis.conf parses it (paths may hold spaces)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def default_data_dir() -> Path:
    """Where the CLI keeps its local Redis data between runs.

    ``$LIVEDROP_DATA_DIR`` if set, else ``./var/redis`` under the current directory. The
    path is absolute so that a later ``chdir`` cannot move it.
    """
    configured = os.environ.get("LIVEDROP_DATA_DIR", "").strip()
    if configured:
        return Path(configured).expanduser().absolute()
    return Path.cwd() / "var" / "redis"


# --- one server --------------------------------------------------------------------------------


class _PortTaken(Exception):
    """Our server exited because another process bound its port first."""


class LocalRedis:
    """A private Redis server: a child process on a free 127.0.0.1 port, data in ``data_dir``.

    AOF is on (``appendfsync`` "everysec" by default; "always" makes every acknowledged write
    survive ``kill()``) and RDB snapshots are off, so ``restart()`` brings the data back from
    the AOF alone. The port chosen on the first start is kept for every restart, so URLs
    handed out stay valid. The caller must call ``stop()`` (or use ``with``): the server runs
    in its own session so that a Ctrl-C to the parent does not kill it before the parent has
    closed its own connections, and nothing else stops it.

    While a server runs, ``data_dir`` is locked (the child inherits the lock), so a second
    server can never append to the same AOF, even if this process died and left the first
    one running. Unix only.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        appendfsync: AppendFsync = "everysec",
        cluster_enabled: bool = False,
        cluster_node_timeout_ms: int = 5000,
        binary: str | os.PathLike[str] | None = None,
    ) -> None:
        if port is not None and (port in RESERVED_PORTS or not 0 < port <= 65_535):
            raise ValueError(f"port {port} is reserved or invalid: leave it unset to get a free one")
        self.data_dir = Path(data_dir).absolute()
        self.appendfsync: AppendFsync = appendfsync
        self.cluster_enabled = cluster_enabled
        self.cluster_node_timeout_ms = cluster_node_timeout_ms
        self._binary = Path(binary) if binary is not None else None
        self._port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<LocalRedis {LOOPBACK}:{self._port} {state} dir={self.data_dir}>"

    # --- properties ---

    @property
    def binary(self) -> Path:
        """The server binary, looked up on first use (see ``find_server_binary``)."""
        if self._binary is None:
            self._binary = find_server_binary()
        return self._binary

    @property
    def port(self) -> int:
        """The TCP port; fixed after the first successful ``start()``."""
        if self._port is None:
            raise RuntimeError("the server has no port yet: call start() first")
        return self._port

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``, for ``redis.asyncio.Redis.from_url``."""
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs, else None."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the child process is alive (it may still be loading its AOF)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        """The server's own log, kept across restarts."""
        return self.data_dir / _LOG_NAME

    # --- lifecycle ---

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and return once it answers as this process (AOF loaded).

        Raises ``RedisUnavailable`` when there is no binary or the data dir is in use, and
        ``RedisStartError`` (with the log tail) when the server exits or is not ready within
        ``timeout`` seconds. Does nothing if the server already runs.
        """
        if self.running:
            return
        self._reap()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        binary = self.binary
        self._lock_data_dir()
        deadline = time.monotonic() + timeout
        # An auto-picked port can be taken between free_port() and the server's bind(); only
        # then is a new port tried. A port already handed out (restart) is never changed.
        attempts = 1 if self._port is not None else 5
        try:
            for attempt in range(attempts):
                port = self._port if self._port is not None else self._pick_port()
                try:
                    self._spawn(binary, port, deadline)
                except _PortTaken:
                    if attempt == attempts - 1:
                        raise RedisStartError(
                            f"{binary.name} could not bind {LOOPBACK}:{port}: the port is in use"
                        ) from None
                    continue
                self._port = port
                return
        except BaseException:
            self._release_lock()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down (SIGTERM: Redis flushes the AOF and exits) and wait for it.

        Escalates to SIGKILL after ``timeout`` seconds. Safe to call when not running.
        """
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self._proc = None
        self._release_lock()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would, and reap it. ``restart()`` brings it back.

        Only what the AOF had on disk survives: with "everysec" up to a second of writes may
        be lost, with "always" nothing that was acknowledged.
        """
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            self._proc = None

    def restart(self, timeout: float = 10.0) -> None:
        """Stop the server if it runs, then start it on the same port and data dir."""
        if self.running:
            self.stop()
        self.start(timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- internals ---

    def _pick_port(self) -> int:
        return free_cluster_port() if self.cluster_enabled else free_port()

    def _reap(self) -> None:
        """Forget a child that died on its own (it is reaped, so no zombie is left)."""
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None

    def _config(self, port: int) -> str:
        settings: list[tuple[str, str]] = [
            ("bind", LOOPBACK),
            ("port", str(port)),
            ("daemonize", "no"),
            ("dir", str(self.data_dir)),
            ("logfile", str(self.log_path)),
            ("appendonly", "yes"),
            ("appendfsync", self.appendfsync),
            # No RDB snapshots: the AOF is the only persistence, so restarts test exactly it.
            ("save", ""),
        ]
        if self.cluster_enabled:
            settings += [
                ("cluster-enabled", "yes"),
                ("cluster-config-file", "nodes.conf"),
                ("cluster-node-timeout", str(self.cluster_node_timeout_ms)),
            ]
        lines = [f"{key} {_quote(value)}" for key, value in settings]
        return "# Written by LiveDrop on each start; edits are overwritten.\n" + "\n".join(lines) + "\n"

    def _spawn(self, binary: Path, port: int, deadline: float) -> None:
        """Run the server on ``port`` and wait until it answers; raises ``_PortTaken``."""
        config_path = self.data_dir / _CONFIG_NAME
        config_path.write_text(self._config(port), encoding="utf-8")
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        console_path = self.data_dir / _CONSOLE_NAME
        assert self._lock_fd is not None
        # Errors before the log file opens (a bad config line) go to stdout/stderr.
        with console_path.open("wb") as console:
            proc = subprocess.Popen(
                [str(binary), str(config_path)],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
                # The child keeps the data-dir lock for as long as it lives.
                pass_fds=(self._lock_fd,),
            )
        self._proc = proc
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, f"{proc.pid}\n".encode(), 0)
        try:
            self._wait_ready(proc, port, deadline, log_offset)
        except BaseException:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            self._proc = None
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int, deadline: float, log_offset: int) -> None:
        # The answer must come from *our* process: if another server holds the port, ours
        # fails to bind and exits, and that other server must not be mistaken for it.
        with client_for(port, timeout=1.0) as probe:
            while True:
                code = proc.poll()
                if code is not None:
                    self._raise_died(code, port, log_offset)
                try:
                    info = probe.info("server")
                except RedisError:  # refused, or LOADING while the AOF is replayed
                    pass
                else:
                    if int(info.get("process_id", -1)) == proc.pid:
                        return
                if time.monotonic() > deadline:
                    raise RedisStartError(
                        f"{self.binary.name} on {LOOPBACK}:{port} was not ready in time "
                        f"(pid {proc.pid}). Log {self.log_path}:\n{self._log_tails(log_offset)}"
                    )
                time.sleep(0.01)

    def _raise_died(self, code: int, port: int, log_offset: int) -> None:
        tails = self._log_tails(log_offset)
        if "already in use" in tails and self._port is None:
            raise _PortTaken(port)
        raise RedisStartError(
            f"{self.binary.name} exited with code {code} while starting on {LOOPBACK}:{port}. "
            f"Log {self.log_path}:\n{tails}"
        )

    def _log_tails(self, log_offset: int) -> str:
        console = _tail(self.data_dir / _CONSOLE_NAME)
        log = _tail(self.log_path, log_offset)
        return "\n".join(part for part in (console, log) if part) or "(the log is empty)"

    def _lock_data_dir(self) -> None:
        if self._lock_fd is not None:
            return
        import fcntl  # Unix only, like the servers this module runs

        lock_path = self.data_dir / _LOCK_NAME
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RedisUnavailable(
                f"{self.data_dir} is in use by another Redis server (pid {holder}). Stop it, or "
                "use another data directory (LIVEDROP_DATA_DIR)."
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
