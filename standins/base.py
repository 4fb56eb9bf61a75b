"""What every stand-in platform shares: the call log, injected faults, a leaky bucket, the webhook
emitter and the ``/_standin/...`` control API.

A stand-in plays an *external* platform, so this package imports nothing from LiveDrop: every
signature it checks or makes is re-implemented here from the platform's documentation, and a
LiveDrop client that talks to it is therefore checked against the documented algorithm, not
against LiveDrop's own reading of it.

The control API lives under ``/_standin/`` so a test can never mistake it for a platform route.
Faults and the call log apply to platform routes only: the control API must keep working while a
test makes the platform fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTROL_PREFIX = "/_standin"
MAX_HANG_SECONDS = 600.0
"""A hung call is answered with nothing until the client gives up, or this long at most, so a test
that forgets to time out does not keep the server's shutdown waiting for ever."""


class ControlError(Exception):
    """A bad control request: answered 400 with ``{"error": message}``."""

    status = 400


class Conflict(ControlError):
    """A control request the platform itself would refuse (selling beyond stock): 409."""

    status = 409


@dataclass
class Call:
    """One platform call as received, kept for tests that count calls or inspect what was sent."""

    method: str
    path: str
    query: str
    body: str
    status: int
    at: float

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "body": self.body,
            "status": self.status,
            "at": self.at,
        }


@dataclass
class Fault:
    """What to do to the next platform calls: ``fail`` (answer ``status``), ``delay`` (answer
    ``seconds`` late), ``hang`` (never answer; the client must time out). ``count`` calls are
    affected, or every call until cleared when it is ``None`` (``slow`` is a ``delay`` for ever)."""

    mode: str
    status: int = 503
    seconds: float = 0.0
    count: int | None = 1
    path: str = ""

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Fault:
        mode = raw.get("mode")
        if mode not in ("fail", "delay", "hang", "slow"):
            raise ControlError("mode must be one of fail, delay, hang, slow")
        status = raw.get("status", 503)
        seconds = raw.get("seconds", 0.0)
        count = raw.get("count", None if mode == "slow" else 1)
        path = raw.get("path", "")
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ControlError("status must be an integer from 400 to 599")
        if not isinstance(seconds, int | float) or not 0 <= seconds <= MAX_HANG_SECONDS:
            raise ControlError(f"seconds must be a number from 0 to {MAX_HANG_SECONDS:g}")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise ControlError("count must be a positive integer or null (every call)")
        if not isinstance(path, str):
            raise ControlError("path must be a string (a prefix of the paths to affect)")
        return cls("delay" if mode == "slow" else mode, status, float(seconds), count, path)

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "status": self.status,
            "seconds": self.seconds,
            "count": self.count,
            "path": self.path,
        }


class Faults:
    """Injected faults, applied in the order they were added; each is used up by ``count`` calls."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()

    def take(self, path: str) -> Fault | None:
        """The fault that applies to a call of ``path``, one use of it spent."""
        for fault in self._faults:
            if path.startswith(fault.path):
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                return fault
        return None

    def as_json(self) -> list[dict[str, Any]]:
        return [f.as_json() for f in self._faults]


class LeakyBucket:
    """A bucket of ``capacity`` points refilled at ``rate`` points a second (Shopify's calculated
    query cost; Meta's hourly call budget as ``capacity`` calls refilled over an hour).

    The clock is injectable so the bucket itself is tested without sleeping.
    """

    def __init__(self, capacity: float, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.rate = rate
        self._clock = clock
        self._level = capacity
        self._at = clock()

    def available(self) -> float:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._at) * self.rate)
        self._at = now
        return self._level

    def take(self, cost: float) -> bool:
        """Spend ``cost`` points if the bucket holds them; False (nothing spent) otherwise."""
        if self.available() < cost:
            return False
        self._level -= cost
        return True

    def refund(self, points: float) -> None:
        self._level = min(self.capacity, self.available() + points)

    def seconds_until(self, cost: float) -> float:
        """How long until ``cost`` points are there (for ``Retry-After``)."""
        missing = cost - self.available()
        return 0.0 if missing <= 0 else (math.inf if self.rate <= 0 else missing / self.rate)

    def reset(self) -> None:
        self._level = self.capacity
        self._at = self._clock()


@dataclass
class Delivery:
    """One webhook the stand-in sent to LiveDrop, and what came back."""

    topic: str
    url: str
    body: str
    headers: dict[str, str]
    status: int | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "url": self.url,
            "body": self.body,
            "headers": self.headers,
            "status": self.status,
            "error": self.error,
        }


@dataclass
class WebhookTarget:
    """Where order webhooks go and the secret they are signed with (set by CLI or control API)."""

    url: str = ""
    secret: str = ""


@dataclass
class Emitter:
    """Sends signed webhooks to LiveDrop with httpx and keeps every delivery for the control API.

    A sale's webhook is sent before the control call returns, so a test that "sells" then reads
    LiveDrop sees a recorded delivery, deterministically; ``timeout`` bounds the wait.
    """

    target: WebhookTarget = field(default_factory=WebhookTarget)
    timeout: float = 10.0
    deliveries: list[Delivery] = field(default_factory=list)
    client: httpx.AsyncClient | None = None

    async def send(self, topic: str, body: bytes, headers: dict[str, str], url: str | None = None) -> Delivery:
        delivery = Delivery(topic, url or self.target.url, body.decode(), headers)
        self.deliveries.append(delivery)
        if not delivery.url:
            delivery.error = "no webhook URL configured"
            return delivery
        client = self.client or httpx.AsyncClient()
        try:
            response = await client.post(delivery.url, content=body, headers=headers, timeout=self.timeout)
            delivery.status = response.status_code
        except httpx.HTTPError as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"
        finally:
            if client is not self.client:
                await client.aclose()
        return delivery


def json_body(raw: bytes) -> Any:
    """The JSON of a control request, or ``ControlError``."""
    try:
        return json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ControlError(f"body is not JSON: {exc}") from None


def order_id_of(body: Any) -> str:
    """The ``order_id`` of a cancel request, as text (platform ids are numbers or strings)."""
    value = body.get("order_id") if isinstance(body, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise ControlError('expected {"order_id": <an order id>}')
    return str(value)


MAX_CONTROL_QUANTITY = 100_000
"""The largest quantity a control request may sell: more than any platform lets one order take, and
small enough that a TikTok order (one row per unit) stays small."""


def positive_int(value: Any, what: str = "quantity") -> int:
    """``value`` if it is an integer from 1 to ``MAX_CONTROL_QUANTITY`` (not a bool), else ``ControlError``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONTROL_QUANTITY:
        raise ControlError(f"{what} must be an integer from 1 to {MAX_CONTROL_QUANTITY}")
    return value


def compact(value: Any) -> bytes:
    """JSON the way platforms send it: no spaces, UTF-8 kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class StandIn:
    """A platform's Starlette app: its own routes, plus the shared control API and middleware.

    Subclasses implement ``platform_routes``, ``fault_response`` (the platform's own error shape
    for an injected failure), and the control verbs ``seed``/``stock``/``sell``/``cancel``/``reset``.
    """

    name = "standin"

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.faults = Faults()
        self.emitter = Emitter()
        self.app = self._build()

    # -- to implement ------------------------------------------------------------------------

    def platform_routes(self) -> list[BaseRoute]:
        raise NotImplementedError

    def fault_response(self, status: int) -> Response:
        return JSONResponse({"error": "injected fault"}, status)

    def seed(self, body: Any) -> Any:
        raise NotImplementedError

    def stock(self) -> Any:
        raise NotImplementedError

    async def sell(self, body: Any) -> Any:
        raise NotImplementedError

    async def cancel(self, body: Any) -> Any:
        raise NotImplementedError

    def reset_state(self) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What a client needs to talk to this stand-in (ids, credentials): ``GET /_standin``."""
        return {"platform": self.name}

    # -- the app -----------------------------------------------------------------------------

    def _build(self) -> ASGIApp:
        def control(handler: Callable[[Any], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                try:
                    body = json_body(await request.body()) if request.method != "GET" else None
                    return JSONResponse(await handler(body))
                except ControlError as exc:
                    return JSONResponse({"error": str(exc)}, exc.status)

            return endpoint

        async def sync(fn: Callable[[Any], Any], body: Any) -> Any:
            return fn(body)

        async def describe(_: Any) -> Any:
            return self.describe()

        async def seed(body: Any) -> Any:
            return await sync(self.seed, body)

        async def stock(_: Any) -> Any:
            return self.stock()

        async def calls(_: Any) -> Any:
            return {"calls": [c.as_json() for c in self.calls]}

        async def deliveries(_: Any) -> Any:
            return {"deliveries": [d.as_json() for d in self.emitter.deliveries]}

        async def add_fault(body: Any) -> Any:
            if not isinstance(body, dict):
                raise ControlError("a fault is a JSON object")
            self.faults.add(Fault.parse(body))
            return {"faults": self.faults.as_json()}

        async def clear_faults(_: Any) -> Any:
            self.faults.clear()
            return {"faults": []}

        async def webhook(body: Any) -> Any:
            if not isinstance(body, dict) or not all(isinstance(body.get(k, ""), str) for k in ("url", "secret")):
                raise ControlError('expected {"url": "...", "secret": "..."}')
            self.emitter.target.url = body.get("url", self.emitter.target.url)
            self.emitter.target.secret = body.get("secret", self.emitter.target.secret)
            return {"url": self.emitter.target.url}

        async def reset(_: Any) -> Any:
            self.calls.clear()
            self.faults.clear()
            self.emitter.deliveries.clear()
            self.reset_state()
            return {"reset": True}

        p = CONTROL_PREFIX
        routes: list[BaseRoute] = [
            Route(p, control(describe), methods=["GET"]),
            Route(f"{p}/seed", control(seed), methods=["POST"]),
            Route(f"{p}/stock", control(stock), methods=["GET"]),
            Route(f"{p}/sell", control(self.sell), methods=["POST"]),
            Route(f"{p}/cancel", control(self.cancel), methods=["POST"]),
            Route(f"{p}/calls", control(calls), methods=["GET"]),
            Route(f"{p}/deliveries", control(deliveries), methods=["GET"]),
            Route(f"{p}/faults", control(add_fault), methods=["POST"]),
            Route(f"{p}/faults", control(clear_faults), methods=["DELETE"]),
            Route(f"{p}/webhook", control(webhook), methods=["PUT"]),
            Route(f"{p}/reset", control(reset), methods=["POST"]),
            *self.platform_routes(),
        ]

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            async with httpx.AsyncClient() as client:
                self.emitter.client = client
                try:
                    yield
                finally:
                    self.emitter.client = None

        return self._middleware(Starlette(routes=routes, lifespan=lifespan))

    def _middleware(self, inner: ASGIApp) -> ASGIApp:
        """Record every platform call and apply injected faults before the platform sees it."""

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
                await inner(scope, receive, send)
                return
            chunks: list[bytes] = []
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            body = b"".join(chunks)
            query = scope["query_string"].decode("latin-1")
            call = Call(scope["method"], scope["path"], query, body.decode("utf-8", "replace"), 0, time.time())
            self.calls.append(call)

            pending = [body]

            async def replay() -> Message:
                if pending:
                    return {"type": "http.request", "body": pending.pop(), "more_body": False}
                return await receive()

            async def recording_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    call.status = int(message["status"])
                await send(message)

            fault = self.faults.take(scope["path"])
            if fault is not None:
                if fault.mode == "hang":
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(fault.seconds or MAX_HANG_SECONDS):
                            while (await receive())["type"] != "http.disconnect":
                                pass
                    call.status = -1  # never answered
                    return
                if fault.mode == "fail":
                    await self.fault_response(fault.status)(scope, replay, recording_send)
                    return
                await asyncio.sleep(fault.seconds)
            await inner(scope, replay, recording_send)

        return app
