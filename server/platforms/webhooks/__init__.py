"""Platform order webhooks: signature checks, de-duplication keys and normalisation (pure, no I/O).

The HTTP shell does, per delivery: ``is_woocommerce_ping`` (WooCommerce only) → ``verify_<platform>``
over the raw body → ``delivery_keys`` (record, then acknowledge; a seen key means a duplicate) →
``normalize`` → hand each ``PlatformOrderEvent`` to the stock engine. docs/webhooks.md has the details.
"""

from __future__ import annotations

from server.platforms.webhooks.errors import (
    BadSignature,
    MalformedPayload,
    MissingHeader,
    StaleTimestamp,
    WebhookRejected,
)
from server.platforms.webhooks.events import OrderLine, OrderStatus, Platform, PlatformOrderEvent, RefundLine
from server.platforms.webhooks.normalize import (
    HOLD_KEY,
    normalize,
    normalize_meta,
    normalize_shopify,
    normalize_standard,
    normalize_tiktok,
    normalize_woocommerce,
)
from server.platforms.webhooks.signatures import (
    STANDARD_TOLERANCE_SECONDS,
    delivery_keys,
    is_woocommerce_ping,
    meta_handshake,
    sign_meta,
    sign_shopify,
    sign_standard,
    sign_tiktok,
    sign_woocommerce,
    verify_meta,
    verify_shopify,
    verify_standard,
    verify_tiktok,
    verify_woocommerce,
)

__all__ = [
    "HOLD_KEY",
    "STANDARD_TOLERANCE_SECONDS",
    "BadSignature",
    "MalformedPayload",
    "MissingHeader",
    "OrderLine",
    "OrderStatus",
    "Platform",
    "PlatformOrderEvent",
    "RefundLine",
    "StaleTimestamp",
    "WebhookRejected",
    "delivery_keys",
    "is_woocommerce_ping",
    "meta_handshake",
    "normalize",
    "normalize_meta",
    "normalize_shopify",
    "normalize_standard",
    "normalize_tiktok",
    "normalize_woocommerce",
    "sign_meta",
    "sign_shopify",
    "sign_standard",
    "sign_tiktok",
    "sign_woocommerce",
    "verify_meta",
    "verify_shopify",
    "verify_standard",
    "verify_tiktok",
    "verify_woocommerce",
]
