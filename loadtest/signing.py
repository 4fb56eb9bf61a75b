"""The sender's side of platform webhooks: signatures, header names, and the secrets to sign with.

Written from each platform's published scheme (docs/webhooks.md), not from the server's code, so
the load test signs what a platform signs and the server's verifiers are checked against an
independent implementation (tests/e2e/test_loadtest.py verifies these signatures with the server's
checks):

* Shopify: base64 HMAC-SHA256 of the raw body in ``X-Shopify-Hmac-Sha256``;
* WooCommerce: the same recipe in ``X-WC-Webhook-Signature``;
* TikTok Shop: lowercase hex HMAC-SHA256 keyed with the app secret over app key + raw body, in
  ``Authorization`` (no ``Bearer``);
* Meta: ``sha256=<hex HMAC-SHA256 of the raw body>`` in ``X-Hub-Signature-256``;
* Standard Webhooks: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` in
  ``webhook-signature``, keyed with the base64-decoded secret after ``whsec_``.

``PlatformSecrets.from_env`` reads the same ``LIVEDROP_*`` variables the server reads
(docs/operations.md), so one environment configures the nodes and the load generator.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass

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

ANY_SHOP = "*"  # the server's key for secrets that match any shop
DEFAULT_SHOP = "livedrop-loadtest.myshopify.com"
DEFAULT_WOO_SITE = "https://loadtest.example.com"


class Platform(enum.StrEnum):
    """The webhook endpoints, ``POST /webhooks/<value>``."""

    SHOPIFY = "shopify"
    TIKTOK = "tiktok"
    META = "meta"
    WOOCOMMERCE = "woocommerce"
    STANDARD = "standard"


def _mac(key: bytes, *parts: bytes) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.digest()


def sign_shopify(body: bytes, secret: str) -> str:
    return base64.b64encode(_mac(secret.encode(), body)).decode("ascii")


def sign_woocommerce(body: bytes, secret: str) -> str:
    return base64.b64encode(_mac(secret.encode(), body)).decode("ascii")


def sign_tiktok(body: bytes, *, app_key: str, secret: str) -> str:
    return _mac(secret.encode(), app_key.encode(), body).hex()


def sign_meta(body: bytes, secret: str) -> str:
    return "sha256=" + _mac(secret.encode(), body).hex()


def sign_standard(body: bytes, *, msg_id: str, timestamp: int, secret: str) -> str:
    encoded = secret.removeprefix("whsec_").rstrip("=")
    key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    return "v1," + base64.b64encode(_mac(key, f"{msg_id}.{timestamp}.".encode(), body)).decode("ascii")


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class PlatformSecrets:
    """The newest secret of each platform a deployment accepts ('' = platform not enabled)."""

    shopify: str = ""
    shopify_shop: str = DEFAULT_SHOP
    tiktok_app_key: str = ""
    tiktok: str = ""
    meta: str = ""
    woocommerce: str = ""
    woocommerce_site: str = DEFAULT_WOO_SITE
    standard: str = ""

    def enabled(self) -> list[Platform]:
        found = []
        for platform, secret in (
            (Platform.SHOPIFY, self.shopify),
            (Platform.TIKTOK, self.tiktok and self.tiktok_app_key),
            (Platform.META, self.meta),
            (Platform.WOOCOMMERCE, self.woocommerce),
            (Platform.STANDARD, self.standard),
        ):
            if secret:
                found.append(platform)
        return found

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PlatformSecrets:
        """The secrets to sign with, from ``LIVEDROP_*_SECRETS`` in the server's formats (a comma
        list, a JSON list, or for Shopify and WooCommerce a JSON object shop → secrets). The last
        secret of a list is used: during a rotation that is the new one. Raises ValueError on a
        value the server would refuse too."""
        shopify, shop = _shop_secret(env.get("LIVEDROP_SHOPIFY_SECRETS"), DEFAULT_SHOP)
        woocommerce, site = _shop_secret(env.get("LIVEDROP_WOOCOMMERCE_SECRETS"), DEFAULT_WOO_SITE)
        return cls(
            shopify=shopify,
            shopify_shop=shop,
            tiktok_app_key=env.get("LIVEDROP_TIKTOK_APP_KEY", "").strip(),
            tiktok=_last(_secret_list(env.get("LIVEDROP_TIKTOK_SECRETS"))),
            meta=_last(_secret_list(env.get("LIVEDROP_META_SECRETS"))),
            woocommerce=woocommerce,
            woocommerce_site=site,
            standard=_last(_secret_list(env.get("LIVEDROP_STANDARD_SECRETS"))),
        )


def _last(secrets: list[str]) -> str:
    return secrets[-1] if secrets else ""


def _secret_list(raw: str | None) -> list[str]:
    value = (raw or "").strip()
    if not value:
        return []
    if value.startswith("["):
        items = json.loads(value)
        if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
            raise ValueError("a JSON secret list must be a list of strings")
        return [s for s in items if s]
    return [s.strip() for s in value.split(",") if s.strip()]


def _shop_secret(raw: str | None, default_shop: str) -> tuple[str, str]:
    """(newest secret, shop to name in the shop header): a named shop's secret when there is one,
    since a per-shop secret only verifies deliveries that name that shop."""
    value = (raw or "").strip()
    if not value.startswith("{"):
        return _last(_secret_list(value)), default_shop
    table = json.loads(value)
    if not isinstance(table, dict):
        raise ValueError("per-shop secrets must be a JSON object")
    shops: dict[str, list[str]] = {}
    for shop, secrets in table.items():
        listed = [secrets] if isinstance(secrets, str) else secrets
        if not isinstance(listed, list) or not all(isinstance(s, str) for s in listed):
            raise ValueError(f"secrets of shop {shop!r} must be a string or a list of strings")
        if any(listed):
            shops[shop] = [s for s in listed if s]
    if not shops:
        return "", default_shop
    shop = next((s for s in shops if s != ANY_SHOP), ANY_SHOP)
    return shops[shop][-1], default_shop if shop == ANY_SHOP else shop.strip().rstrip("/")
