"""No token, secret or client address in any log line (DESIGN §13): a real node, logging at the
default level, goes through a session that uses every kind of credential — viewer tokens in the URL
(old clients) and in ``Sec-WebSocket-Protocol``, configured and minted host tokens (API and host
channel), Meta's verify-token challenge, signed and forged webhooks of every platform — and then
its whole log is scanned for each of them."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from server.ops.local_redis import LocalRedis
from server.platforms.webhooks.events import Platform
from server.viewers.auth import SUBPROTOCOL
from server.viewers.tokens import mint
from tests.e2e.test_compose import (
    Balancer,
    balancer,  # noqa: F401 - a fixture, requested by name below
    needs_haproxy,
    wait_up,
)
from tests.support.servers import VIEWER_SECRET, Node
from tests.support.util import scaled
from tests.support.viewer_client import Viewer
from tests.support.webhooks import (
    META_SECRET,
    META_TOKEN,
    STANDARD_SECRET,
    TIKTOK_APP_KEY,
    TIKTOK_SECRET,
    WOO_SECRET,
    meta_headers,
    shopify_headers,
    shopify_order,
    standard_headers,
    standard_order,
    tiktok_headers,
    tiktok_note,
    woo_headers,
    woo_order,
)

SHOPIFY_SECRET = "shpss_test_secret"
HOST_TOKEN = "configured-host-token-8d1c"
ENV = {
    "LIVEDROP_HOST_TOKENS": HOST_TOKEN,
    "LIVEDROP_SHOPIFY_SECRETS": SHOPIFY_SECRET,
    "LIVEDROP_TIKTOK_APP_KEY": TIKTOK_APP_KEY,
    "LIVEDROP_TIKTOK_SECRETS": TIKTOK_SECRET,
    "LIVEDROP_META_SECRETS": META_SECRET,
    "LIVEDROP_META_VERIFY_TOKENS": META_TOKEN,
    "LIVEDROP_WOOCOMMERCE_SECRETS": json.dumps([WOO_SECRET]),
    "LIVEDROP_STANDARD_SECRETS": STANDARD_SECRET,
}
# A client's address as uvicorn writes it first on its access and WebSocket lines.
CLIENT_ADDRESS = re.compile(r"127\.0\.0\.1:\d+ - ")


def mint_host_token(redis_url: str) -> str:
    """A host token minted by the CLI (stored hashed in Redis), as an operator would."""
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "token", "host", "--redis-url", redis_url],
        capture_output=True,
        check=True,
        timeout=scaled(30),
    )
    return done.stdout.decode().strip()


async def test_a_full_session_leaves_no_secret_token_or_address_in_the_logs(
    redis_server: LocalRedis, redis: Redis, tmp_path: Path
) -> None:
    node = Node(redis_server.url, tmp_path, ENV, log_level="info").start()
    try:
        minted_host = mint_host_token(redis_server.url)
        secrets_seen = await session(node, minted_host)
    finally:
        node.stop()
    log = node.log_path.read_text()
    # No credential, nor a client address, is in the log...
    configured = [
        VIEWER_SECRET,
        HOST_TOKEN,
        minted_host,
        SHOPIFY_SECRET,
        TIKTOK_SECRET,
        META_SECRET,
        META_TOKEN,
        WOO_SECRET,
        STANDARD_SECRET,
        STANDARD_SECRET.removeprefix("whsec_"),
    ]
    for secret in configured + secrets_seen:
        assert secret not in log, f"a credential is in the log: {secret[:6]}…"
        for part in secret.split("."):  # each half of a viewer token on its own, too
            assert len(part) < 12 or part not in log
    assert not CLIENT_ADDRESS.search(log), CLIENT_ADDRESS.search(log)
    # ... although the session was logged at the default level (the scan was not vacuous).
    assert '"WebSocket /ws/shows/s1?token=redacted"' in log
    assert "GET /webhooks/meta?hub.mode=redacted&hub.verify_token=redacted&hub.challenge=redacted" in log
    assert '"POST /webhooks/shopify HTTP/1.1" 200' in log


async def session(node: Node, minted_host: str) -> list[str]:
    """Drive the node through every credentialed path; returns the tokens minted on the way."""
    used: list[str] = []
    async with httpx.AsyncClient(base_url=node.http, timeout=scaled(10)) as client:
        for token in (HOST_TOKEN, minted_host):
            auth = {"Authorization": f"Bearer {token}"}
            assert (await client.get("/api/shows", headers=auth)).status_code == 200
        auth = {"Authorization": f"Bearer {minted_host}"}
        await client.post("/api/shows", json={"show_id": "s1", "title": "Logs"}, headers=auth)
        drop = {"drop_id": "d1", "sku": "GLOW", "title": "Glow", "total": 10, "hold_seconds": 300}
        assert (await client.post("/api/shows/s1/drops", json=drop, headers=auth)).status_code == 201
        assert (await client.post("/api/drops/d1/launch", json={}, headers=auth)).status_code == 200
        minted = await client.post("/api/shows/s1/tokens", json={"viewer_id": "v-url"}, headers=auth)
        url_token = minted.json()["token"]
        header_token = mint(VIEWER_SECRET.encode(), "s1", "v-header")
        used += [url_token, header_token]
        # Viewers: the old URL form, and the token in Sec-WebSocket-Protocol. Both may reserve.
        old = await Viewer.connect(node.ws("s1", f"token={url_token}"))
        new = await Viewer.connect(node.ws("s1"), token=header_token)
        assert new.conn.subprotocol == SUBPROTOCOL
        for viewer, ref in ((old, "r1"), (new, "r2")):
            assert (await viewer.next())["can_reserve"] is True
            await viewer.send({"type": "reserve", "ref": ref, "drop": "d1", "qty": 1})
            assert (await viewer.until("reserved"))["ref"] == ref
            await viewer.close()
        # A forged token in the URL is refused (401, in the handshake) and must not be logged either.
        forged = mint(b"not-the-secret", "s1", "v-forged")
        used.append(forged)
        with pytest.raises(InvalidStatus):
            await Viewer.connect(node.ws("s1", f"token={forged}"))
        # The host channel with its token in the URL (the form scripts use).
        async with connect(node.ws("s1").replace("/ws/shows/", "/ws/host/shows/") + f"?token={HOST_TOKEN}") as host:
            assert json.loads(await host.recv())["type"] == "welcome"
        # Meta's subscription check: the verify token is in the query string.
        params = {"hub.mode": "subscribe", "hub.verify_token": META_TOKEN, "hub.challenge": "8317"}
        assert (await client.get("/webhooks/meta", params=params)).text == "8317"
        params["hub.verify_token"] = "a-guessed-token"
        assert (await client.get("/webhooks/meta", params=params)).status_code == 403
        # A signed delivery of every platform, and a forged one.
        deliveries = [
            (Platform.SHOPIFY, body := shopify_order(1, [(1, "GLOW", 1)]), shopify_headers(body, "orders/paid")),
            (Platform.TIKTOK, body := tiktok_note("576486316948490001", "AWAITING_SHIPMENT"), tiktok_headers(body)),
            (Platform.META, body := b'{"object": "page", "entry": []}', meta_headers(body)),
            (Platform.WOOCOMMERCE, body := woo_order(7, "processing", [(1, "GLOW", 1)]), woo_headers(body)),
            (Platform.STANDARD, body := standard_order("paid", "o1", []), standard_headers(body)),
        ]
        for platform, body, headers in deliveries:
            response = await client.post(f"/webhooks/{platform.value}", content=body, headers=headers)
            assert response.json() == {"status": "accepted"}, (platform, response.text)
        forged_body = shopify_order(2, [(1, "GLOW", 1)])
        headers = shopify_headers(forged_body, "orders/paid", secret="not-the-secret")
        assert (await client.post("/webhooks/shopify", content=forged_body, headers=headers)).status_code == 401
    return used


async def test_livedrop_watch_sends_its_token_in_the_header(
    redis_server: LocalRedis, redis: Redis, tmp_path: Path
) -> None:
    node = Node(redis_server.url, tmp_path, ENV, log_level="info").start()
    try:
        async with httpx.AsyncClient(base_url=node.http, headers={"Authorization": f"Bearer {HOST_TOKEN}"}) as client:
            await client.post("/api/shows", json={"show_id": "s1", "title": "Watch"})
        token = mint(VIEWER_SECRET.encode(), "s1", "v-watch")
        url = f"ws://127.0.0.1:{node.port}"
        done = subprocess.run(
            [sys.executable, "-m", "server.cli", "watch", "s1", "--url", url, "--token", token, "--count", "1"],
            capture_output=True,
            timeout=scaled(30),
        )
    finally:
        node.stop()
    welcome = json.loads(done.stdout.decode().splitlines()[0])
    assert welcome["type"] == "welcome" and welcome["can_reserve"] is True
    log = node.log_path.read_text()
    assert '"WebSocket /ws/shows/s1" [accepted]' in log and token not in log


@needs_haproxy
async def test_the_balancer_logs_no_query_string_or_client_address(
    balancer: tuple[Balancer, list[Node]],  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    # deploy/haproxy.cfg in front of two nodes: its log must not undo what the nodes redact.
    lb, _ = balancer
    await wait_up(lb, 2)
    token = mint(VIEWER_SECRET.encode(), "s1", "v-balanced")
    async with httpx.AsyncClient(base_url=lb.http) as client:
        params = {"hub.mode": "subscribe", "hub.verify_token": "verify-token-through-the-balancer"}
        assert (await client.get("/webhooks/meta", params=params)).status_code == 404  # not enabled there
    with pytest.raises(InvalidStatus):  # the show is unknown: refused with 404 in the handshake
        await Viewer.connect(lb.ws(f"token={token}"))
    log = tmp_path / "haproxy.log"
    deadline = time.monotonic() + scaled(10)
    while log.read_text().count("/ws/shows/s1") < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    text = log.read_text()
    assert token not in text and "verify-token-through-the-balancer" not in text
    assert "127.0.0.1:" not in text.replace(f"127.0.0.1:{lb.port}", "")  # no client address
    assert '"GET /webhooks/meta HTTP/1.1"' in text and '"GET /ws/shows/s1 HTTP/1.1"' in text, text
