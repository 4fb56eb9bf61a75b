"""Fetching a feed URL a host typed (server/host/fetch.py), against real HTTP servers on
loopback: private addresses refused after DNS and on every redirect, size and time caps."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from server.host.fetch import FetchPolicy, FetchRefused, address_allowed, fetch

FEED = b"id\ttitle\tprice\nA1\tTee\t19.00 EUR\n"


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        port = self.server.server_address[1]  # type: ignore[index]
        if self.path == "/feed.tsv":
            self._send(FEED)
        elif self.path.startswith("/hop/"):
            left = int(self.path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", f"/hop/{left - 1}" if left else "/feed.tsv")
            self.end_headers()
        elif self.path == "/to-other-loopback":
            self.send_response(301)
            self.send_header("Location", f"http://127.0.0.2:{port}/feed.tsv")
            self.end_headers()
        elif self.path == "/big-declared":
            self.send_response(200)
            self.send_header("Content-Length", str(10_000_000))
            self.end_headers()
        elif self.path == "/big-chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"x" * 4096
            try:
                for _ in range(1000):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass  # the client stopped reading: what the test wants
        elif self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
        elif self.path == "/missing":
            self._send(b"no", 404)

    def _send(self, body: bytes, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/tab-separated-values")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


OPEN = FetchPolicy(allow_private=True, timeout=10)


def only_127_0_0_1(address: str) -> bool:
    return address == "127.0.0.1"


async def test_a_feed_is_fetched_through_redirects(origin: str) -> None:
    got = await fetch(f"{origin}/hop/3", OPEN)
    assert got.body == FEED and got.url.endswith("/feed.tsv") and got.content_type == "text/tab-separated-values"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/feed.tsv",
        "http://localhost:{port}/feed.tsv",  # a name that resolves to loopback
        "http://[::1]:{port}/feed.tsv",
        "http://[::ffff:127.0.0.1]:{port}/feed.tsv",
        "http://169.254.169.254/latest/meta-data/",  # the cloud metadata address
        "http://10.0.0.1/feed",
        "http://0.0.0.0:{port}/feed.tsv",
        "http://2130706433:{port}/feed.tsv",  # 127.0.0.1 as one number
    ],
)
async def test_private_addresses_are_refused_after_resolution(origin: str, url: str) -> None:
    port = origin.rsplit(":", 1)[1]
    with pytest.raises(FetchRefused) as caught:
        await fetch(url.format(port=port), FetchPolicy(timeout=5))
    assert caught.value.code in ("private_address", "unresolvable")


async def test_a_redirect_is_checked_again(origin: str) -> None:
    # The first hop is allowed; the redirect to another address is refused before connecting.
    with pytest.raises(FetchRefused) as caught:
        await fetch(f"{origin}/to-other-loopback", FetchPolicy(timeout=5), allowed=only_127_0_0_1)
    assert caught.value.code == "private_address"
    assert (await fetch(f"{origin}/feed.tsv", FetchPolicy(timeout=5), allowed=only_127_0_0_1)).body == FEED


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/feed", "gopher://x/", "http://user:pw@example.com/", "feed.tsv"]
)
async def test_only_plain_http_urls(url: str) -> None:
    with pytest.raises(FetchRefused) as caught:
        await fetch(url, OPEN)
    assert caught.value.code == "bad_url"


async def test_caps_on_size_time_redirects_and_status(origin: str) -> None:
    small = FetchPolicy(allow_private=True, max_bytes=64 * 1024, timeout=10)
    for path in ("/big-declared", "/big-chunked"):
        with pytest.raises(FetchRefused) as caught:
            await fetch(origin + path, small)
        assert caught.value.code == "too_large"
    started = time.monotonic()
    with pytest.raises(FetchRefused) as caught:
        await fetch(f"{origin}/slow", FetchPolicy(allow_private=True, timeout=0.5))
    assert caught.value.code == "timeout" and time.monotonic() - started < 5
    with pytest.raises(FetchRefused) as caught:
        await fetch(f"{origin}/hop/9", FetchPolicy(allow_private=True, max_redirects=5))
    assert caught.value.code == "too_many_redirects"
    with pytest.raises(FetchRefused) as caught:
        await fetch(f"{origin}/missing", OPEN)
    assert caught.value.code == "http_status"


def test_address_rule() -> None:
    assert address_allowed("93.184.215.14") and address_allowed("2606:2800:21f:cb07:6820:80da:af6b:8b2c")
    for private in ("127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "::1", "fe80::1%eth0"):
        assert not address_allowed(private), private
    for odd in ("100.64.0.1", "0.0.0.0", "224.0.0.1", "240.0.0.1", "fc00::1", "::ffff:10.0.0.1", "not-an-ip"):
        assert not address_allowed(odd), odd
