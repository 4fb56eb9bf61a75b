"""A local 3-master Redis Cluster made of private servers, created with ``redis-cli --cluster create``."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from redis.exceptions import RedisError

from server.ops.local_redis.binaries import RedisStartError, RedisUnavailable, find_cli_binary
from server.ops.local_redis.ports import LOOPBACK
from server.ops.local_redis.single import AppendFsync, LocalRedis, client_for

_CLUSTER_SLOTS = 16_384

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
            with client_for(node.port) as client:
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
            with client_for(node.port) as client:
                # Distinct config epochs up front spare the nodes the collision-resolution
                # round that would otherwise delay cluster_state:ok.
                client.cluster("SET-CONFIG-EPOCH", i + 1)
                client.cluster("ADDSLOTS", *range(bounds[i], bounds[i + 1]))
        with client_for(self.nodes[0].port) as client:
            for node in self.nodes[1:]:
                client.cluster("MEET", LOOPBACK, node.port)

    def _wait_ok(self, deadline: float) -> None:
        expected = len(self.nodes)
        states: dict[int, str] = {}
        while True:
            for node in self.nodes:
                with client_for(node.port) as client:
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
