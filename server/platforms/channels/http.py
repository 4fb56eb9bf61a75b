"""The one HTTP client every connector uses, and the errors a push loop branches on.

Every call has a timeout (connect, read, write and pool: a platform that hangs must not hold a push
loop). A ``Retry-After`` header is turned into the time to wait, in seconds. Connectors raise the
errors below, never an httpx exception, so the push loop does not need to know the transport.
"""

from __future__ import annotations

import email.utils
import random
import time
from typing import Any

import httpx


class ChannelError(Exception):
    """A call to a channel failed. ``retry`` says whether trying again can help, ``wait`` how long
    the platform asked us to wait (0: our own backoff decides), ``code`` names the failure for the
    status page and alerts (never a secret, never a customer)."""

    def __init__(self, code: str, message: str, *, retry: bool, wait: float = 0.0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry = retry
        self.wait = wait


class AuthFailed(ChannelError):
    """Wrong credentials or signature: retrying the same call cannot help until an operator fixes
    the settings, so the loop backs off long and raises ``channel_failing``."""

    def __init__(self, message: str) -> None:
        super().__init__("auth", message, retry=True, wait=30.0)


class Throttled(ChannelError):
    """The platform's rate limit: wait ``wait`` seconds, then retry."""

    def __init__(self, message: str, wait: float) -> None:
        super().__init__("throttled", message, retry=True, wait=wait)


def retry_after(value: str | None, now: float | None = None) -> float:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110 §10.2.3).
    0 when absent or unreadable; never negative; capped at an hour (a wrong header must not park a
    channel for days)."""
    if not value:
        return 0.0
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return 0.0
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return 0.0
    return min(3600.0, max(0.0, seconds))


class Backoff:
    """Jittered exponential backoff ("full jitter"): a delay drawn from [base·2ⁿ/2, base·2ⁿ], capped.
    Jitter keeps nodes and channels that failed together from retrying together."""

    def __init__(self, base: float = 0.25, cap: float = 30.0, rng: random.Random | None = None) -> None:
        self.base, self.cap = base, cap
        self.failures = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        high = min(self.cap, self.base * (2**self.failures))
        self.failures += 1
        return self._rng.uniform(high / 2, high)

    def reset(self) -> None:
        self.failures = 0


def client(timeout: float = 10.0) -> httpx.AsyncClient:
    """The shared client: one connection pool for every channel of a node."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        follow_redirects=False,
    )


async def send(http: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request; transport failures become a retryable ``ChannelError`` (no URL in the message:
    some platforms take tokens in the query string)."""
    try:
        response = await http.request(method, url, **kwargs)
    except httpx.TimeoutException:
        raise ChannelError("timeout", "the platform did not answer in time", retry=True) from None
    except httpx.HTTPError as exc:
        raise ChannelError("network", f"could not reach the platform ({type(exc).__name__})", retry=True) from None
    if response.status_code == 429:
        raise Throttled("HTTP 429", retry_after(response.headers.get("retry-after")) or 1.0)
    if response.status_code >= 500:
        wait = retry_after(response.headers.get("retry-after"))
        raise ChannelError("server_error", f"HTTP {response.status_code}", retry=True, wait=wait)
    return response


def json_of(response: httpx.Response) -> Any:
    """The body as JSON; a body that is not JSON is a retryable error (a proxy's error page)."""
    try:
        return response.json()
    except ValueError:
        raise ChannelError(
            "bad_response", f"HTTP {response.status_code} with a body that is not JSON", retry=True
        ) from None
