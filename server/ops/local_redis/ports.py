"""Loopback ports for private servers: ones the OS reports free, never the default Redis ports a
machine may already use, leaving room for a cluster node's bus port."""

from __future__ import annotations

import socket

from server.ops.local_redis.binaries import RedisUnavailable

LOOPBACK = "127.0.0.1"

# Default ports of a Redis (and of its cluster bus) that the machine may already run. The OS
# does not hand them out for port 0, but a caller could ask for one: refuse rather than
# risk starting a second server there or reaching the machine's own.
RESERVED_PORTS = frozenset({6379, 6380, 16379, 16380})
# Redis Cluster listens for its node-to-node bus on port + 10000 (the only choice before
# Redis 7's cluster-port), so a node's port must leave room for that.
_CLUSTER_BUS_OFFSET = 10_000

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
        if port not in RESERVED_PORTS:
            return port
    raise RedisUnavailable(f"could not find a free TCP port on {host}")


def free_cluster_port(host: str = LOOPBACK) -> int:
    """A free port whose cluster-bus companion (port + 10000) is valid and free too."""
    for _ in range(200):
        port = free_port(host)
        bus = port + _CLUSTER_BUS_OFFSET
        if bus <= 65_535 and bus not in RESERVED_PORTS and _port_is_free(bus, host):
            return port
    raise RedisUnavailable(f"could not find a free port pair (port, port + 10000) on {host}")
