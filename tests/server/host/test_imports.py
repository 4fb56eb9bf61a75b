"""Run-of-show imports through the host API on a real node: upload or URL, preview with every
refused row, confirm all-or-nothing; hostile files refused with nothing created."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from redis.asyncio import Redis

from stock import StockEngine
from tests.support import paths
from tests.support.invariants import assert_drop_invariants
from tests.support.servers import Node
from tests.support.util import scaled

NodeFactory = Callable[..., Node]
HOST_TOKEN = "host-import-1"
FEEDS = paths.DATA / "feeds"
PLAIN = (
    b"id\ttitle\tprice\tquantity\timage_link\n"
    b"MUG-1\tEnamel mug\t12.00 EUR\t5\thttps://cdn.shop.example/mug.jpg\n"
    b"CAP-1\tBaseball cap\t1500 JPY\t\t\n"
    b"BAD-1\t=cmd|' /C calc'!A0\t1.00 EUR\t1\t\n"
)


@pytest.fixture
async def api(nodes: NodeFactory, redis: Redis) -> AsyncIterator[tuple[httpx.AsyncClient, Node]]:
    node = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN, "LIVEDROP_IMPORT_MAX_BYTES": str(256 * 1024)})
    headers = {"Authorization": f"Bearer {HOST_TOKEN}"}
    async with httpx.AsyncClient(base_url=node.http, headers=headers, timeout=30) as client:
        assert (await client.post("/api/shows", json={"show_id": "s1", "title": "Friday"})).status_code == 201
        yield client, node


async def drop_keys(redis: Redis) -> list[bytes]:
    """Every key of any drop, plus SKU index entries: what an import may create."""
    found = [key async for key in redis.scan_iter(match="ld:{drop:*")]
    return found + [key async for key in redis.scan_iter(match="ld:sku:*")]


async def upload(
    client: httpx.AsyncClient, data: bytes, media: str = "text/tab-separated-values", **query: str
) -> httpx.Response:
    return await client.post("/api/shows/s1/imports", content=data, params=query, headers={"Content-Type": media})


async def test_a_plain_feed_previews_then_creates_its_drops(api: tuple[httpx.AsyncClient, Node], redis: Redis) -> None:
    client, _ = api
    response = await upload(client, PLAIN)
    assert response.status_code == 201, response.text
    preview = response.json()
    assert preview["format"] == "google_tsv" and preview["state"] == "preview"
    assert [(d["drop_id"], d["sku"], d["stock"], d["prices"]) for d in preview["drops"]] == [
        ("MUG-1", "MUG-1", 5, {"EUR": 1200}),
        ("CAP-1", "CAP-1", None, {"JPY": 1500}),
    ]
    assert [(r["line"], r["source_id"], r["reason"]) for r in preview["refused"]] == [(4, "BAD-1", "formula")]
    assert preview["missing_stock"] == 1
    assert await drop_keys(redis) == []  # a preview creates nothing

    import_id = preview["import_id"]
    assert (await client.get(f"/api/shows/s1/imports/{import_id}")).json() == preview
    needs = await client.post(f"/api/shows/s1/imports/{import_id}/confirm", json={})
    assert needs.status_code == 422 and needs.json()["code"] == "stock-required"
    confirmed = await client.post(f"/api/shows/s1/imports/{import_id}/confirm", json={"default_stock": 3})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["state"] == "confirmed" and confirmed.json()["created"] == ["MUG-1", "CAP-1"]
    again = await client.post(f"/api/shows/s1/imports/{import_id}/confirm", json={"default_stock": 3})
    assert again.json() == confirmed.json()  # a retried confirm creates nothing twice
    show = (await client.get("/api/shows/s1")).json()
    assert [(d["info"]["drop_id"], d["stock"]["counters"]["total"]) for d in show["drops"]] == [
        ("MUG-1", 5),
        ("CAP-1", 3),
    ]
    engine = StockEngine(redis)
    for drop_id in ("MUG-1", "CAP-1"):
        await assert_drop_invariants(engine, drop_id)
    # The same feed again: its drops are proposed under new ids, never onto the ones created.
    second = (await upload(client, PLAIN)).json()
    assert [d["drop_id"] for d in second["drops"]] == ["MUG-1-2", "CAP-1-2"]
    journal = (await client.get("/api/shows/s1/journal")).json()["entries"]
    assert [e["action"] for e in journal] == ["import_previewed", "import_confirmed", "import_previewed"]
    assert journal[1]["fields"]["drops"] == "2" and HOST_TOKEN not in str(journal)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<rss xmlns:g="http://base.google.com/ns/1.0"><channel><item><g:id>A</g:id><title>&lol3;</title>
<g:price>1.00 EUR</g:price></item></channel></rss>"""
XXE = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<rss><channel><item><g:id xmlns:g="http://base.google.com/ns/1.0">A</g:id><title>&x;</title></item></channel></rss>"""
MALFORMED = b"""<?xml version="1.0"?>
<rss xmlns:g="http://base.google.com/ns/1.0"><channel>
<item><g:id>A</g:id><title>Tee</title><g:price>1.00 EUR</g:price></item>
<item><g:id>B</g:id><title>Cap</g:title></item>
</channel></rss>"""


@pytest.mark.parametrize(
    ("data", "media", "status", "code", "line"),
    [
        ("id\ttitle\tprice\nA1\tCaf\xe9\t1.00 EUR\n".encode("latin-1"), "text/csv", 422, "feed-bad-encoding", 2),
        (BILLION_LAUGHS, "application/xml", 422, "feed-forbidden-xml", 2),
        (XXE, "application/rss+xml", 422, "feed-forbidden-xml", 1),
        (MALFORMED, "text/xml", 422, "feed-malformed", 4),
        (b"<!doctype html><html><body>Sign in</body></html>", "text/plain", 422, "feed-unknown-format", None),
        (b"", "text/csv", 422, "feed-empty", None),
        (b"id;title;price\nA;B;1.00 EUR\n", "text/csv", 422, "feed-wrong-delimiter", None),
        (b'{"id": "A"}', "application/json", 415, "unsupported-media-type", None),
        (b"id=A", "application/x-www-form-urlencoded", 415, "unsupported-media-type", None),
    ],
)
async def test_hostile_files_are_refused_and_nothing_is_created(
    api: tuple[httpx.AsyncClient, Node], redis: Redis, data: bytes, media: str, status: int, code: str, line: int | None
) -> None:
    client, _ = api
    response = await upload(client, data, media)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    if line is not None:
        assert f"line {line}" in response.json()["detail"]
    assert "root:" not in response.text  # no external entity was read
    assert await drop_keys(redis) == []
    assert (await client.get("/healthz")).status_code == 200


async def test_an_upload_over_the_cap_is_cut_off(api: tuple[httpx.AsyncClient, Node], redis: Redis) -> None:
    client, node = api
    row = b"A1\tTee\t1.00 EUR\n"
    huge = b"id\ttitle\tprice\n" + row * (300 * 1024 // len(row))
    declared = await upload(client, huge)
    assert declared.status_code == 413 and declared.json()["code"] == "too-large"

    # A chunked body with no Content-Length that never ends: the answer must come as soon as
    # the cap is passed, while the client is still sending (a raw socket, to see exactly that).
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    writer.write(
        b"POST /api/shows/s1/imports HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
        + f"Authorization: Bearer {HOST_TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    )
    chunk = b"id\ttitle\tprice\n" + row * 4000  # ~64 KiB
    for _ in range(5):  # 320 KiB sent, over the 256 KiB cap, and no last chunk
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), scaled(10))
    assert status_line.startswith(b"HTTP/1.1 413"), status_line
    writer.close()
    assert await drop_keys(redis) == []


async def test_options_and_ids_are_validated(api: tuple[httpx.AsyncClient, Node]) -> None:
    client, _ = api
    for query in ({"default_stock": "-1"}, {"currency": "euro"}, {"format": "excel"}, {"colour": "red"}):
        response = await upload(client, PLAIN, **query)
        assert response.status_code == 422 and response.json()["code"] == "invalid-request", query
    assert (await client.post("/api/shows/none/imports", content=PLAIN)).status_code == 404
    assert (await client.get("/api/shows/s1/imports/nope")).status_code == 404
    assert (await client.get("/api/shows/s1/imports/..%2F..%2Fx")).status_code == 404
    assert (await client.post("/api/shows/s1/imports/nope/confirm", json={})).status_code == 404
    async with httpx.AsyncClient(base_url=str(client.base_url)) as anonymous:
        assert (await anonymous.post("/api/shows/s1/imports", content=PLAIN)).status_code == 401


# -- feeds by URL -------------------------------------------------------------------------------


class FeedHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/feed.tsv":
            body = PLAIN
            self.send_response(200)
            self.send_header("Content-Type", "text/tab-separated-values")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.end_headers()


@pytest.fixture(scope="module")
def feed_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FeedHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_a_url_inside_is_refused_unless_allowed(
    api: tuple[httpx.AsyncClient, Node], nodes: NodeFactory, feed_server: str, redis: Redis
) -> None:
    client, _ = api
    for url in (f"{feed_server}/feed.tsv", "http://169.254.169.254/latest/meta-data/", "http://[::1]/"):
        refused = await client.post("/api/shows/s1/imports/url", json={"url": url})
        assert refused.status_code == 422 and refused.json()["code"] == "fetch-private-address", refused.text
    bad = await client.post("/api/shows/s1/imports/url", json={"url": "file:///etc/passwd"})
    assert bad.json()["code"] == "fetch-bad-url"
    assert await drop_keys(redis) == []

    allowed = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN, "LIVEDROP_IMPORT_ALLOW_PRIVATE_URLS": "1"})
    headers = {"Authorization": f"Bearer {HOST_TOKEN}"}
    async with httpx.AsyncClient(base_url=allowed.http, headers=headers, timeout=30) as local:
        got = await local.post("/api/shows/s1/imports/url", json={"url": f"{feed_server}/feed.tsv", "default_stock": 2})
        assert got.status_code == 201, got.text
        assert got.json()["source"] == "url" and [d["stock"] for d in got.json()["drops"]] == [5, 2]
        missing = await local.post("/api/shows/s1/imports/url", json={"url": f"{feed_server}/nope"})
        assert missing.json()["code"] == "fetch-http-status"
