"""Every signature the stand-ins check or make, written from each platform's documentation.

Deliberately independent of LiveDrop's own signing code: when LiveDrop's client is accepted by a
stand-in, two separate readings of the documented algorithm agree, and the TikTok Shop official
vectors (tests/standins/test_standin_tiktok.py) pin this reading to the platform's published examples.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

TIKTOK_UNSIGNED_PARAMS = frozenset({"sign", "access_token"})


def hmac_sha256(key: str, message: bytes) -> bytes:
    return hmac.new(key.encode(), message, hashlib.sha256).digest()


def tiktok_request_sign(
    *, secret: str, path: str, params: Mapping[str, str], body: bytes = b"", content_type: str = ""
) -> str:
    """TikTok Shop's request ``sign`` ("Sign your API request", contracts §1.2 [T-sign]).

    1. every query parameter except ``sign`` and ``access_token``, sorted by key;
    2. concatenated as ``{key}{value}``; 3. the request path in front;
    4. the raw body appended unless the content type is ``multipart/form-data``;
    5. wrapped as ``secret + s + secret``; 6. HMAC-SHA256 keyed by the secret, lowercase hex.
    """
    joined = "".join(f"{key}{params[key]}" for key in sorted(params) if key not in TIKTOK_UNSIGNED_PARAMS)
    message = path.encode() + joined.encode()
    if not content_type.lower().startswith("multipart/form-data"):
        message += body
    wrapped = secret.encode() + message + secret.encode()
    return hmac.new(secret.encode(), wrapped, hashlib.sha256).hexdigest()


def tiktok_webhook_signature(body: bytes, *, app_key: str, secret: str) -> str:
    """TikTok Shop webhook ``Authorization``: hex HMAC-SHA256(app secret, app key + raw body)."""
    return hmac_sha256(secret, app_key.encode() + body).hex()


def shopify_webhook_hmac(body: bytes, secret: str) -> str:
    """``X-Shopify-Hmac-Sha256``: base64 HMAC-SHA256 of the raw body, keyed by the client secret."""
    return base64.b64encode(hmac_sha256(secret, body)).decode()


def meta_signature(body: bytes, secret: str) -> str:
    """``X-Hub-Signature-256``: ``sha256=`` and the hex HMAC-SHA256 of the raw body (app secret)."""
    return "sha256=" + hmac_sha256(secret, body).hex()


def woocommerce_signature(body: bytes, secret: str) -> str:
    """``X-WC-Webhook-Signature``: base64 HMAC-SHA256 of the raw body, keyed by the webhook secret."""
    return base64.b64encode(hmac_sha256(secret, body)).decode()


def same(a: str, b: str) -> bool:
    """Constant-time string comparison (a stand-in should not leak what it compares against)."""
    return hmac.compare_digest(a.encode(), b.encode())
