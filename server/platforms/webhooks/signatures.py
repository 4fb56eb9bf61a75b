"""Signature checks and de-duplication keys for platform order webhooks: pure functions, no I/O.

Every verifier takes the **raw** request body exactly as received. Never hand one a body that went
through a JSON parser: Meta signs the escaped-unicode bytes it sends (``\\u00e9``), WooCommerce signs
PHP's ``json_encode`` output (``\\/``), and any re-serialisation changes the bytes and breaks the HMAC.

Every verifier takes a *sequence* of secrets and accepts a delivery signed by any of them, so an operator
rotates a secret by configuring old and new together, switching the platform, then dropping the old one.
Passing a bare ``str`` is refused (it would be iterated character by character), and an empty sequence
raises ``ValueError``: a missing secret is a configuration bug, not a forged delivery, and surfacing it as
a server error makes the platform retry instead of losing the webhook.

Comparisons are always ``hmac.compare_digest`` over the decoded digest bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence

import msgspec

from server.platforms.webhooks.errors import BadSignature, MalformedPayload, MissingHeader, StaleTimestamp
from server.platforms.webhooks.events import Platform
from server.platforms.webhooks.headers import header, require_header
from server.platforms.webhooks.payloads import TikTokNotification

# Header names, as each platform documents them (lookups are case-insensitive).
SHOPIFY_HMAC = "X-Shopify-Hmac-Sha256"
SHOPIFY_WEBHOOK_ID = "X-Shopify-Webhook-Id"
SHOPIFY_EVENT_ID = "X-Shopify-Event-Id"
SHOPIFY_TOPIC = "X-Shopify-Topic"
SHOPIFY_SHOP = "X-Shopify-Shop-Domain"
TIKTOK_SIGNATURE = "Authorization"
META_SIGNATURE = "X-Hub-Signature-256"
WC_SIGNATURE = "X-WC-Webhook-Signature"
WC_TOPIC = "X-WC-Webhook-Topic"
WC_DELIVERY_ID = "X-WC-Webhook-Delivery-ID"
WC_WEBHOOK_ID = "X-WC-Webhook-ID"
WC_SOURCE = "X-WC-Webhook-Source"
SW_ID = "webhook-id"
SW_TIMESTAMP = "webhook-timestamp"
SW_SIGNATURE = "webhook-signature"

STANDARD_TOLERANCE_SECONDS = 300.0
"""Standard Webhooks' replay window, applied both ways (a clock 5 minutes ahead is as suspect as behind)."""

_STANDARD_SECRET_PREFIX = "whsec_"
_WOO_PING = re.compile(rb"webhook_id=\d+")


def _secrets(secrets: Sequence[str]) -> Sequence[str]:
    if isinstance(secrets, str | bytes):
        raise TypeError("secrets must be a sequence of secrets, not a single string")
    if not secrets or not all(secrets):
        raise ValueError("no webhook secret configured (or an empty one)")
    return secrets


def _hmac_sha256(key: bytes, *parts: bytes) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.digest()


def _b64decode(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _hexdecode(value: str) -> bytes | None:
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def _body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


# --- Shopify ----------------------------------------------------------------------------------------


def sign_shopify(body: bytes, secret: str) -> str:
    """``X-Shopify-Hmac-Sha256`` for ``body``: base64 of HMAC-SHA256 keyed by the app's client secret."""
    return base64.b64encode(_hmac_sha256(secret.encode(), body)).decode("ascii")


def verify_shopify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    """Raise unless ``X-Shopify-Hmac-Sha256`` is the HMAC of ``body`` under one of ``secrets``.

    Shopify retries with the *original* payload for hours, so there is deliberately no staleness check:
    a late retry is genuine and de-duplication makes it harmless.
    """
    given = _b64decode(require_header(headers, SHOPIFY_HMAC))
    if given is None or not any(hmac.compare_digest(_hmac_sha256(s.encode(), body), given) for s in _secrets(secrets)):
        raise BadSignature("Shopify HMAC does not match")


# --- TikTok Shop ------------------------------------------------------------------------------------


def sign_tiktok(body: bytes, *, app_key: str, secret: str) -> str:
    """``Authorization`` for ``body``: lowercase hex HMAC-SHA256(key=app_secret, msg=app_key + body)."""
    return _hmac_sha256(secret.encode(), app_key.encode(), body).hex()


def verify_tiktok(body: bytes, headers: Mapping[str, str], *, app_key: str, secrets: Sequence[str]) -> None:
    """Raise unless ``Authorization`` is the TikTok Shop signature of ``body``.

    The signature covers no timestamp, so a captured delivery can be replayed forever: the caller must
    de-duplicate on ``tts_notification_id`` (``delivery_keys``) and keep the keys long enough.
    """
    if not app_key:
        raise ValueError("no TikTok Shop app key configured")
    given = _hexdecode(require_header(headers, TIKTOK_SIGNATURE))
    if given is None or not any(
        hmac.compare_digest(_hmac_sha256(s.encode(), app_key.encode(), body), given) for s in _secrets(secrets)
    ):
        raise BadSignature("TikTok Shop signature does not match")


# --- Meta -------------------------------------------------------------------------------------------


def sign_meta(body: bytes, secret: str) -> str:
    """``X-Hub-Signature-256`` for ``body``: ``sha256=`` + hex HMAC-SHA256 keyed by the app secret."""
    return "sha256=" + _hmac_sha256(secret.encode(), body).hex()


def verify_meta(body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    """Raise unless ``X-Hub-Signature-256`` is ``sha256=<hex HMAC of the raw body>``.

    Meta computes the HMAC over the bytes it sends, in which non-ASCII text is escaped (``\\u00e9``);
    that is why only the raw body verifies and a decoded-then-re-encoded one does not.
    """
    value = require_header(headers, META_SIGNATURE)
    scheme, _, hexdigest = value.partition("=")
    given = _hexdecode(hexdigest) if scheme.strip().lower() == "sha256" else None
    if given is None or not any(hmac.compare_digest(_hmac_sha256(s.encode(), body), given) for s in _secrets(secrets)):
        raise BadSignature("Meta X-Hub-Signature-256 does not match")


def meta_handshake(query: Mapping[str, str], verify_tokens: Sequence[str]) -> str:
    """Answer Meta's ``GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`` subscription check.

    Returns the challenge, which the caller sends back as the whole response body (200, text/plain).
    Raises ``BadSignature`` (code ``bad_verify_token``) when the token is not one of ``verify_tokens``, so
    nobody can subscribe our endpoint to their own app, and ``MalformedPayload`` for any other request.
    """
    tokens = _secrets(verify_tokens)
    if query.get("hub.mode") != "subscribe":
        raise MalformedPayload("hub.mode must be subscribe", code="bad_handshake")
    challenge = query.get("hub.challenge")
    if not challenge:
        raise MissingHeader("hub.challenge", code="bad_handshake")
    token = query.get("hub.verify_token", "").encode()
    if not any(hmac.compare_digest(t.encode(), token) for t in tokens):
        raise BadSignature("hub.verify_token does not match", code="bad_verify_token")
    return challenge


# --- WooCommerce ------------------------------------------------------------------------------------


def sign_woocommerce(body: bytes, secret: str) -> str:
    """``X-WC-Webhook-Signature`` for ``body``: base64 of HMAC-SHA256 keyed by the webhook's secret."""
    return base64.b64encode(_hmac_sha256(secret.encode(), body)).decode("ascii")


def verify_woocommerce(body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    """Raise unless ``X-WC-Webhook-Signature`` is the HMAC of ``body`` under one of ``secrets``.

    Check ``is_woocommerce_ping`` first: the creation ping is sent unsigned.
    """
    given = _b64decode(require_header(headers, WC_SIGNATURE))
    if given is None or not any(hmac.compare_digest(_hmac_sha256(s.encode(), body), given) for s in _secrets(secrets)):
        raise BadSignature("WooCommerce signature does not match")


def is_woocommerce_ping(body: bytes) -> bool:
    """True for the ``webhook_id=<n>`` form post WooCommerce sends once when a webhook is saved.

    WooCommerce shows the merchant an error unless the ping gets a 200, and sends it with no signature
    and no ``X-WC-Webhook-*`` headers, so the caller answers 200 *before* verifying and applies nothing.
    A body of that exact shape can never be an order, so a forged ping achieves nothing.
    """
    return _WOO_PING.fullmatch(body.strip()) is not None


# --- Standard Webhooks ------------------------------------------------------------------------------


def standard_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 after ``whsec_`` (prefix optional)."""
    encoded = secret.removeprefix(_STANDARD_SECRET_PREFIX).rstrip("=")
    try:
        # Senders sometimes drop the padding, so it is restored rather than required.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("Standard Webhooks secret is not base64 after whsec_") from None
    if not key:
        raise ValueError("empty Standard Webhooks secret")
    return key


def sign_standard(body: bytes, *, msg_id: str, timestamp: int, secret: str) -> str:
    """One ``webhook-signature`` entry: ``v1,`` + base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}``."""
    mac = _hmac_sha256(standard_key(secret), f"{msg_id}.{timestamp}.".encode(), body)
    return "v1," + base64.b64encode(mac).decode("ascii")


def _standard_timestamp(value: str) -> int:
    # Signed as the decimal text it arrived in, so anything but plain ASCII digits is refused outright.
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise MalformedPayload("webhook-timestamp is not integer seconds", code="bad_timestamp")
    return int(value)


def verify_standard(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    *,
    now: float | None = None,
    tolerance: float = STANDARD_TOLERANCE_SECONDS,
) -> None:
    """Raise unless the delivery carries a valid ``v1`` signature and a fresh timestamp.

    ``webhook-signature`` is a space-separated list (the sender signs with old and new keys during its
    own rotation); entries of other versions (``v1a`` asymmetric...) or unreadable ones are skipped, and
    one matching ``v1`` entry suffices. The timestamp is checked before the signature and rejected when
    more than ``tolerance`` seconds from ``now`` in either direction; ``now`` defaults to the wall clock
    and is injectable for tests.
    """
    keys = [standard_key(s) for s in _secrets(secrets)]
    msg_id = require_header(headers, SW_ID)
    raw_timestamp = require_header(headers, SW_TIMESTAMP)
    signatures = require_header(headers, SW_SIGNATURE)
    timestamp = _standard_timestamp(raw_timestamp)
    clock = time.time() if now is None else now
    if abs(clock - timestamp) > tolerance:
        raise StaleTimestamp(f"webhook-timestamp is {clock - timestamp:+.0f}s from now")
    given: list[bytes] = []
    for entry in signatures.split(" "):
        version, _, encoded = entry.partition(",")
        if version == "v1" and (decoded := _b64decode(encoded)) is not None:
            given.append(decoded)
    signed_prefix = f"{msg_id}.{raw_timestamp}.".encode()
    for key in keys:
        expected = _hmac_sha256(key, signed_prefix, body)
        if any(hmac.compare_digest(expected, g) for g in given):
            return
    raise BadSignature("no v1 signature matches")


# --- De-duplication ---------------------------------------------------------------------------------


def _tiktok_notification_key(body: bytes) -> str:
    try:
        note = msgspec.json.decode(body, type=TikTokNotification)
    except msgspec.DecodeError as exc:
        raise MalformedPayload(f"TikTok Shop body: {exc}") from None
    except RecursionError:
        raise MalformedPayload("TikTok Shop body is nested too deeply", code="too_deep") from None
    if note.tts_notification_id in (None, ""):
        # The overview page's body table omits the field although every example carries it.
        return f"tiktok:body:{_body_digest(body)}"
    return f"tiktok:notification:{note.tts_notification_id}"


def delivery_keys(platform: Platform, body: bytes, headers: Mapping[str, str]) -> tuple[str, ...]:
    """The de-duplication keys of a verified delivery, namespaced by platform; the first is its id.

    The caller treats a delivery as a duplicate when **any** of its keys was seen before, and records
    **all** of them. Per platform:

    * Shopify: ``X-Shopify-Webhook-Id`` (one delivery and its retries) and ``X-Shopify-Event-Id`` scoped
      by topic (the same merchant action delivered again, e.g. to a second subscription). Event ids are
      shared across *topics* of one action, so an unscoped event id would drop ``orders/paid`` as a
      duplicate of ``orders/create``.
    * TikTok Shop: ``tts_notification_id`` from the body (there is no delivery header).
    * Meta: the SHA-256 of the raw body (Meta sends no delivery id; a retry resends the same bytes).
    * WooCommerce: webhook id + ``X-WC-Webhook-Delivery-ID`` + body digest, because the delivery id is
      a hash of the webhook id and the current *second*, so two deliveries in one second share it.
    * Standard Webhooks: ``webhook-id``, which the spec keeps stable across retries.
    """
    match platform:
        case Platform.SHOPIFY:
            keys = [f"shopify:webhook:{require_header(headers, SHOPIFY_WEBHOOK_ID)}"]
            event_id = header(headers, SHOPIFY_EVENT_ID)
            if event_id is not None:
                keys.append(f"shopify:event:{header(headers, SHOPIFY_TOPIC) or ''}:{event_id}")
            return tuple(keys)
        case Platform.TIKTOK:
            return (_tiktok_notification_key(body),)
        case Platform.META:
            return (f"meta:body:{_body_digest(body)}",)
        case Platform.WOOCOMMERCE:
            delivery = header(headers, WC_DELIVERY_ID)
            digest = _body_digest(body)
            if delivery is None:
                return (f"woocommerce:body:{digest}",)
            webhook = header(headers, WC_WEBHOOK_ID) or ""
            return (f"woocommerce:delivery:{webhook}:{delivery}:{digest[:32]}",)
        case Platform.STANDARD:
            return (f"standard:{require_header(headers, SW_ID)}",)
