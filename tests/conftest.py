"""Real Redis servers for the tests, started by ``server.ops.local_redis`` (STYLE, Tests).

- ``redis_server`` (session): one private server on a free loopback port, AOF "everysec".
- ``redis`` (function, async): a ``redis.asyncio.Redis`` on it, after FLUSHALL.
- ``fresh_redis_server`` (function): a factory of private servers that a test may kill and
  restart (AOF "always" by default), all stopped at teardown.
- ``redis_cluster`` (session, started only if a test asks) and ``cluster_redis`` (function,
  async): a 3-master cluster and a ``RedisCluster`` client, every master flushed.

These fixtures only ever flush servers they started themselves, never a Redis the machine
runs. They know nothing of the rest of LiveDrop, so any package's tests can use them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from server.ops.local_redis import AppendFsync, LocalCluster, LocalRedis, RedisUnavailable
from tests.support.servers import Node
from tests.support.util import RedisServerFactory, scaled

# Start-up budgets before scaling: a server is up in ~20 ms, a cluster in ~2 s.
_SERVER_START_TIMEOUT = 10.0
_CLUSTER_START_TIMEOUT = 30.0

_CLUSTER_FIXTURES = frozenset({"redis_cluster", "cluster_redis"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that use the cluster fixtures ``cluster``, so ``-m "not cluster"`` skips them."""
    for item in items:
        if isinstance(item, pytest.Function) and _CLUSTER_FIXTURES.intersection(item.fixturenames):
            item.add_marker(pytest.mark.cluster)


def _start(server: LocalRedis | LocalCluster, timeout: float) -> None:
    """Start ``server``, turning a missing binary into one readable setup error."""
    try:
        server.start(scaled(timeout))
    except RedisUnavailable as exc:
        pytest.fail(f"the tests need a local Redis: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    """The session's shared server. Do not kill it: ask ``fresh_redis_server`` for one."""
    server = LocalRedis(tmp_path_factory.mktemp("redis"))
    _start(server, _SERVER_START_TIMEOUT)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="redis")
async def redis_client(redis_server: LocalRedis) -> AsyncIterator[Redis]:
    """A client on the session server, emptied first (FLUSHALL; loaded scripts survive)."""
    if not redis_server.running:
        # A test that stopped the shared server must not fail every test after it.
        _start(redis_server, _SERVER_START_TIMEOUT)
    client = Redis.from_url(redis_server.url)
    try:
        await client.flushall()
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def fresh_redis_server(tmp_path: Path) -> Iterator[RedisServerFactory]:
    """A factory of private servers, each in its own data dir, stopped at teardown."""
    servers: list[LocalRedis] = []

    def factory(*, appendfsync: AppendFsync = "always") -> LocalRedis:
        server = LocalRedis(tmp_path / f"redis-{len(servers)}", appendfsync=appendfsync)
        servers.append(server)
        _start(server, _SERVER_START_TIMEOUT)
        return server

    try:
        yield factory
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A 3-master local cluster, started on the first test that asks for it."""
    cluster = LocalCluster(tmp_path_factory.mktemp("redis-cluster"))
    _start(cluster, _CLUSTER_START_TIMEOUT)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def cluster_redis(redis_cluster: LocalCluster) -> AsyncIterator[RedisCluster]:
    """A cluster client, with every master flushed first."""
    client = RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in redis_cluster.startup_nodes])
    try:
        await client.flushall(target_nodes=RedisCluster.PRIMARIES)
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def nodes(redis: Redis, redis_server: LocalRedis, tmp_path: Path) -> Iterator[Callable[..., Node]]:
    """A factory of real LiveDrop nodes on the session Redis (emptied first, through the
    ``redis`` fixture, so no test sees another's shows), all stopped at teardown."""
    started: list[Node] = []

    def factory(redis_url: str | None = None, env: dict[str, str] | None = None) -> Node:
        node = Node(redis_url or redis_server.url, tmp_path, env)
        started.append(node)
        return node.start()

    try:
        yield factory
    finally:
        for node in started:
            node.stop()
