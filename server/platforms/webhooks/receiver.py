"""HTTP endpoints of platform webhooks: ``POST /webhooks/{shopify,tiktok,meta,woocommerce,standard}``
and Meta's ``GET /webhooks/meta`` subscription handshake.

Per delivery, in this order: the platform must be enabled (a secret configured, else 404); the body is
read raw, capped at ``max_body_bytes``; WooCommerce's unsigned creation ping is answered 200; the
signature is verified over the raw bytes; the body's nesting is checked against ``max_depth``; the
de-duplication keys are computed and the payload is normalised once (which also checks that the
unsigned topic header agrees with the signed body) and its shape bounded, so an authentic but
unreadable, contradictory or absurd delivery is refused (400) while the platform can still show the
merchant the error; then the delivery is recorded in Redis, and only then answered
200 (``accepted`` or ``duplicate``). Nothing is applied to stock here: the consumer group does that,
so the answer stays fast whatever the stock engine is doing.

Refusals are RFC 9457 problem documents with a machine ``code``. They are counted and logged by
platform and code only: no body, header value or client address reaches a log.
"""

from __future__ import annotations

import http
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

import msgspec
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from server.ops.metrics import Metrics
from server.platforms.webhooks.errors import BadSignature, MalformedPayload, MissingHeader, WebhookRejected
from server.platforms.webhooks.events import Platform, PlatformOrderEvent
from server.platforms.webhooks.normalize import normalize
from server.platforms.webhooks.service import WebhookService
from server.platforms.webhooks.signatures import (
    META_SIGNATURE,
    SHOPIFY_HMAC,
    SW_SIGNATURE,
    TIKTOK_SIGNATURE,
    WC_SIGNATURE,
    delivery_keys,
    is_woocommerce_ping,
    meta_handshake,
    verify_meta,
    verify_shopify,
    verify_standard,
    verify_tiktok,
    verify_woocommerce,
)
from server.viewers.limits import TooDeep, check_depth

logger = logging.getLogger("livedrop.webhooks")

PROBLEM_JSON = "application/problem+json"
# Without a signature there is nothing to check: that is an authentication failure (401), not a
# malformed request, whichever header the scheme uses.
_SIGNATURE_HEADERS = frozenset(
    h.lower() for h in (SHOPIFY_HMAC, TIKTOK_SIGNATURE, META_SIGNATURE, WC_SIGNATURE, SW_SIGNATURE)
)
_ACCEPTED = b'{"status":"accepted"}'
_DUPLICATE = b'{"status":"duplicate"}'
_PING = b'{"status":"ping"}'
_problem_encoder = msgspec.json.Encoder()


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """RFC 9457 problem details. ``type`` is ``about:blank``, so ``title`` is the status phrase
    and ``code`` (an extension member) is what a program should match on."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str


def problem(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    """An ``application/problem+json`` response."""
    body = Problem(title=http.HTTPStatus(status).phrase, status=status, detail=detail, code=code)
    return Response(_problem_encoder.encode(body), status, headers=headers, media_type=PROBLEM_JSON)


def rejection_status(exc: WebhookRejected) -> int:
    """401 for a missing or wrong signature, 403 for a wrong Meta verify token, 400 otherwise
    (stale timestamp, missing delivery header, unreadable payload)."""
    if exc.code == "bad_verify_token":
        return 403
    if isinstance(exc, BadSignature):
        return 401
    if isinstance(exc, MissingHeader) and exc.header.lower() in _SIGNATURE_HEADERS:
        return 401
    return 400


def _verify(service: WebhookService, platform: Platform, body: bytes, headers: Mapping[str, str]) -> None:
    settings = service.settings
    secrets = settings.secrets_for(platform, headers)
    match platform:
        case Platform.SHOPIFY:
            verify_shopify(body, headers, secrets)
        case Platform.TIKTOK:
            verify_tiktok(body, headers, app_key=settings.tiktok_app_key, secrets=secrets)
        case Platform.META:
            verify_meta(body, headers, secrets)
        case Platform.WOOCOMMERCE:
            verify_woocommerce(body, headers, secrets)
        case Platform.STANDARD:
            verify_standard(body, headers, secrets)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The raw body, or None when it is larger than ``limit`` (read no further than that)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def receive(request: Request, platform: Platform) -> Response:
    """Verify, record, acknowledge one delivery (see the module docstring for the order)."""
    started = time.perf_counter()
    service: WebhookService = request.state.webhooks
    metrics: Metrics = request.state.metrics
    outcome, response = await _receive(request, platform, service)
    metrics.webhooks.labels(platform.value, outcome).inc()
    metrics.webhook_seconds.labels(platform.value).observe(time.perf_counter() - started)
    return response


async def _receive(request: Request, platform: Platform, service: WebhookService) -> tuple[str, Response]:
    if not service.settings.enabled(platform):
        return "disabled", problem(404, "not_enabled", f"{platform.value} webhooks are not enabled on this server")
    body = await _read_body(request, service.settings.max_body_bytes)
    if body is None:
        return _rejected(platform, 413, "too_large", "the body is larger than this server accepts")
    if platform is Platform.WOOCOMMERCE and is_woocommerce_ping(body):
        # Unsigned by WooCommerce's design; a body of this shape can never be an order.
        return "ping", Response(_PING, 200, media_type="application/json")
    # One plain dict of lower-cased names, first value wins: the header lookups below (a dozen per
    # delivery) are then dictionary hits instead of scans of the raw header list.
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        headers.setdefault(name, value)
    try:
        try:
            _verify(service, platform, body, headers)
        except ValueError:
            # A secret that cannot be used (not base64 after whsec_...): our fault, so answer
            # 500 and let the platform retry once the configuration is fixed.
            logger.error("webhook secret of %s is misconfigured", platform.value)
            return "misconfigured", problem(500, "misconfigured", "the server's webhook configuration is invalid")
        try:
            check_depth(body, service.settings.max_depth)
        except TooDeep as exc:
            raise MalformedPayload(str(exc), code="too_deep") from None
        keys = delivery_keys(platform, body, headers)
        check_shape(normalize(platform, body, headers))  # refuse now what could never be applied
    except WebhookRejected as exc:
        return _rejected(platform, rejection_status(exc), exc.code, exc.detail)
    try:
        _, duplicate = await service.log.record(platform, body, headers, keys)
    except (RedisError, OSError):
        service.metrics.redis_errors.labels("webhooks").inc()
        logger.warning("webhook of %s not recorded: Redis unreachable", platform.value)
        return "unavailable", problem(503, "unavailable", "try again later", {"Retry-After": "5"})
    if duplicate:
        return "duplicate", Response(_DUPLICATE, 200, media_type="application/json")
    return "accepted", Response(_ACCEPTED, 200, media_type="application/json")


MAX_EVENTS = 1000
"""Orders one delivery may change (Meta batches several; platforms send a handful at most)."""
MAX_LINES = 2000
"""Lines of one order or refund (Shopify's checkout stops well below)."""
MAX_ID = 256
"""Characters of an order, line, refund id or SKU: they become Redis keys and ledger fields."""


def check_shape(events: list[PlatformOrderEvent]) -> None:
    """Refuse (``MalformedPayload``, code ``bad_shape``) a signed body whose orders could never be
    applied sensibly: more orders or lines than any platform sends, ids or SKUs of kilobytes."""
    if len(events) > MAX_EVENTS:
        raise MalformedPayload(f"more than {MAX_EVENTS} orders in one delivery", code="bad_shape")
    for event in events:
        if len(event.lines) + len(event.refund_lines) > MAX_LINES:
            raise MalformedPayload(f"order has more than {MAX_LINES} lines", code="bad_shape")
        ids = [event.order_id, event.refund_id or ""]
        ids += [text for line in event.lines for text in (line.sku, line.line_id, line.hold_ref or "")]
        ids += [text for line in event.refund_lines for text in (line.sku, line.line_id)]
        if any(len(text) > MAX_ID for text in ids):
            raise MalformedPayload(f"an id or SKU is longer than {MAX_ID} characters", code="bad_shape")


def _rejected(platform: Platform, status: int, code: str, detail: str) -> tuple[str, Response]:
    logger.info("webhook rejected: platform=%s code=%s status=%d", platform.value, code, status)
    headers = {"WWW-Authenticate": 'HMAC realm="livedrop-webhooks"'} if status == 401 else None
    return code, problem(status, code, detail, headers)


async def meta_subscribe(request: Request) -> Response:
    """Meta's ``GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…``: echo the challenge
    when the token is ours."""
    service: WebhookService = request.state.webhooks
    metrics: Metrics = request.state.metrics
    tokens = service.settings.meta_verify_tokens
    if not tokens:
        metrics.webhooks.labels(Platform.META.value, "disabled").inc()
        return problem(404, "not_enabled", "meta webhooks are not enabled on this server")
    try:
        challenge = meta_handshake(request.query_params, tokens)
    except WebhookRejected as exc:
        outcome, response = _rejected(Platform.META, rejection_status(exc), exc.code, exc.detail)
        metrics.webhooks.labels(Platform.META.value, outcome).inc()
        return response
    metrics.webhooks.labels(Platform.META.value, "handshake").inc()
    # text/plain and nosniff: the challenge is sender-chosen text echoed back.
    return PlainTextResponse(challenge, headers={"X-Content-Type-Options": "nosniff"})


def _endpoint(platform: Platform) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await receive(request, platform)

    endpoint.__name__ = f"webhook_{platform.value}"
    return endpoint


def webhook_routes() -> list[Route]:
    """The routes to add to the app."""
    routes = [Route(f"/webhooks/{p.value}", _endpoint(p), methods=["POST"]) for p in Platform]
    routes.append(Route("/webhooks/meta", meta_subscribe, methods=["GET"]))
    return routes
