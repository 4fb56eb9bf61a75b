"""Fetch a product feed from a URL a host typed, without letting that URL reach inside.

A feed URL is chosen by whoever holds a host token, and the server fetches it: the textbook
server-side request forgery. What this module refuses, and where:

* **Private, loopback, link-local, multicast and reserved addresses**, checked on every address
  the name resolves to, *at connect time*, by the network backend that opens the socket. The
  socket is then opened to the address that was checked, so a name that resolves to a public
  address for the check and to ``127.0.0.1`` for the connection (DNS rebinding) cannot slip
  through. TLS still verifies the certificate against the URL's host name.
* **Redirects** are followed by hand, at most ``max_redirects``, and each hop goes through the
  same scheme check and the same connect-time address check.
* **Size**: the body is read in chunks and the fetch stops as soon as it passes ``max_bytes``
  (a ``Content-Length`` over it is refused before any body is read).
* **Time**: one deadline for the whole fetch, redirects included, plus the per-read timeouts.

Only ``http`` and ``https`` are fetched, with no proxy from the environment and no cookies.
``allow_private`` lifts the address check: for tests and for a feed server on the host's own
network (``LIVEDROP_IMPORT_ALLOW_PRIVATE_URLS``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urljoin

import httpcore
import httpx
import msgspec

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_USER_AGENT = "LiveDrop-feed-import/1"


class FetchRefused(Exception):
    """The URL was not fetched, or not completely. ``code`` is machine-readable; ``str()`` says
    why in words a host can act on (no address is named: it could tell an attacker what is inside)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class FetchPolicy(msgspec.Struct, frozen=True, kw_only=True):
    max_bytes: int = 20 * 1024 * 1024
    timeout: float = 20.0
    max_redirects: int = 5
    allow_private: bool = False


class Fetched(msgspec.Struct, frozen=True):
    body: bytes
    content_type: str
    url: str


def address_allowed(address: str) -> bool:
    """Whether ``address`` is a public unicast address (IPv4-mapped IPv6 judged as its IPv4)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_loopback)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's default backend, with a check of every resolved address before connecting,
    and the connection made to that checked address (not to the name again)."""

    def __init__(self, allowed: Callable[[str], bool]) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allowed = allowed

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
        except (OSError, TimeoutError) as exc:
            raise FetchRefused("unresolvable", f"the host name {host!r:.100} does not resolve") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise FetchRefused("unresolvable", f"the host name {host!r:.100} does not resolve")
        if not all(self._allowed(a) for a in addresses):
            # All of them, not just the first: the resolver's order is not ours to trust.
            raise FetchRefused("private_address", "the URL leads to a private, loopback or link-local address")
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        raise FetchRefused("unreachable", "the feed's server could not be reached") from last

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _checked(url: str) -> str:
    """``url`` in plain ASCII (IDNA host, percent-encoded path), if it is one to fetch."""
    try:
        parsed = httpx.URL(url)
        text = str(parsed)
        text.encode("ascii")
    except (httpx.InvalidURL, UnicodeError, ValueError, TypeError):
        raise FetchRefused("bad_url", "the URL is malformed") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise FetchRefused("bad_url", "only absolute http and https URLs are fetched")
    if parsed.userinfo:
        raise FetchRefused("bad_url", "a URL with a user name or password is not fetched")
    return text


async def fetch(url: str, policy: FetchPolicy, allowed: Callable[[str], bool] | None = None) -> Fetched:
    """The body at ``url``, following redirects, within the policy's size, time and address
    rules. ``allowed`` replaces the address rule (tests use it to tell two loopback addresses
    apart). Raises ``FetchRefused`` and nothing else."""
    if allowed is None:
        allowed = (lambda _: True) if policy.allow_private else address_allowed
    try:
        async with asyncio.timeout(policy.timeout):
            async with httpcore.AsyncConnectionPool(
                network_backend=GuardedBackend(allowed), max_connections=2, retries=0
            ) as pool:
                return await _follow(pool, url, policy)
    except FetchRefused:
        raise
    except TimeoutError:
        raise FetchRefused("timeout", f"the feed did not arrive within {policy.timeout:g} s") from None
    except httpcore.TimeoutException as exc:
        raise FetchRefused("timeout", "the feed's server stopped answering") from exc
    except (httpcore.ProtocolError, httpcore.NetworkError, httpcore.UnsupportedProtocol, ValueError, TypeError) as exc:
        raise FetchRefused("unreachable", f"the feed could not be fetched ({type(exc).__name__})") from exc


async def _follow(pool: httpcore.AsyncConnectionPool, url: str, policy: FetchPolicy) -> Fetched:
    for _ in range(policy.max_redirects + 1):
        url = _checked(url)
        headers = [(b"User-Agent", _USER_AGENT.encode()), (b"Accept", b"*/*")]
        step = min(policy.timeout, 10.0)
        extensions = {"timeout": {"connect": step, "read": step, "write": step, "pool": step}}
        async with pool.stream("GET", url, headers=headers, extensions=extensions) as response:
            fields = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
            if response.status in _REDIRECTS and "location" in fields:
                url = urljoin(url, fields["location"])
                continue
            if response.status != 200:
                raise FetchRefused("http_status", f"the feed's server answered HTTP {response.status}")
            length = fields.get("content-length", "")
            if length.isdigit() and int(length) > policy.max_bytes:
                raise FetchRefused("too_large", f"the feed is {int(length):,} bytes, more than {policy.max_bytes:,}")
            body = bytearray()
            async for chunk in response.aiter_stream():
                body += chunk
                if len(body) > policy.max_bytes:
                    raise FetchRefused("too_large", f"the feed is more than {policy.max_bytes:,} bytes")
            return Fetched(bytes(body), fields.get("content-type", ""), url)
    raise FetchRefused("too_many_redirects", f"more than {policy.max_redirects} redirects")
