"""Webhook settings: the secrets of each platform (and shop), and how ingestion behaves. Pure.

Secrets come from the environment, one variable per platform. A value is either a comma-separated
list (``LIVEDROP_SHOPIFY_SECRETS="old,new"``) or, for secrets that may contain a comma (WooCommerce
generates them with punctuation) or for one secret per shop, JSON: a list (``["a,b", "c"]``) or an
object from shop to secrets (``{"shop-a.myshopify.com": ["s1", "s2"], "*": ["fallback"]}``; ``"*"``
matches any shop). Every platform takes several secrets at once, so a rotation is: add the new
secret, switch the platform over, remove the old one.

A platform with no secret configured is *disabled*: its endpoint answers 404 rather than accept
deliveries it cannot authenticate.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping

import msgspec

from server.platforms.webhooks.errors import BadSignature
from server.platforms.webhooks.events import Platform
from server.platforms.webhooks.headers import header
from server.platforms.webhooks.signatures import SHOPIFY_SHOP, WC_SOURCE

ANY_SHOP = "*"

ShopSecrets = dict[str, tuple[str, ...]]
"""Shop (Shopify shop domain, WooCommerce site URL) → secrets; ``"*"`` is the fallback for any shop."""

# Platforms whose deliveries name a shop in a header, and that header. The shop header is read
# before the signature is checked, but only to choose which secret to check it with: a forger who
# names shop A still needs shop A's secret.
_SHOP_HEADERS: Mapping[Platform, str] = {Platform.SHOPIFY: SHOPIFY_SHOP, Platform.WOOCOMMERCE: WC_SOURCE}

DAY = 24 * 3600


class WebhookSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything configurable about webhooks. ``repr`` never shows a secret."""

    shopify: ShopSecrets = msgspec.field(default_factory=dict)
    tiktok_app_key: str = ""
    tiktok: tuple[str, ...] = ()
    meta: tuple[str, ...] = ()
    meta_verify_tokens: tuple[str, ...] = ()
    woocommerce: ShopSecrets = msgspec.field(default_factory=dict)
    standard: tuple[str, ...] = ()
    # How long a delivery key is remembered. It must outlast the longest retry schedule of any
    # sender, or a late retry would be applied as new: TikTok retries for up to 72 hours, Meta for
    # about 36, Svix-style Standard Webhooks senders for about 28, Shopify for 4 (WooCommerce does
    # not retry). Seven days covers them all with room for a merchant's manual "resend" from a
    # dashboard; the stock engine's own (platform, order, line) records catch anything later.
    dedupe_ttl_seconds: int = 7 * DAY
    # How long applied deliveries stay in the stream, for audit and replay. Entries not yet
    # applied are never trimmed, whatever their age. Bodies hold the platforms' customer data
    # (names, addresses), so they are not kept longer than an audit needs.
    retention_seconds: int = 7 * DAY
    # How long a dead-lettered delivery is kept for an operator to look at (and replay) before it
    # is trimmed: an alert is raised when it dies, and two weeks is time enough to act on it.
    dead_retention_seconds: int = 14 * DAY
    # Platforms send orders of a few KiB; Shopify's largest (hundreds of lines) stay well under
    # this. A bigger body is refused (413) before any work is done on it.
    max_body_bytes: int = 2 * 1024 * 1024
    # Nesting of a body's JSON: platform orders are under 10 levels deep. Deeper is refused
    # (400 too_deep) before any decoding, so no body reaches the decoder's recursion limit.
    max_depth: int = 64
    # False makes this node ingest-only: it records deliveries but another node applies them.
    apply: bool = True
    # Name of this process in the stream's consumer group. It must differ between live processes
    # and stay the same when the same node restarts: a restarted consumer re-reads its *own*
    # pending deliveries at once, while those of a name nobody uses any more wait
    # ``claim_idle_seconds`` for a take-over (stock stale meanwhile). Empty: see ``node_name``.
    consumer_name: str = ""
    # Where this node listens and how many worker processes it runs (the CLI exports both):
    # with the host name they make the default consumer name, stable across restarts.
    listen_port: int = 0
    workers: int = 1
    # A delivery read by a consumer that has not acknowledged it for this long is taken over by
    # another one: the first is presumed dead. Applying is idempotent, so a slow-but-alive first
    # consumer costs a duplicate call, never a duplicate effect.
    claim_idle_seconds: float = 30.0
    # Deliveries a consumer reads and applies at a time. Applying shares the process with the
    # receivers: a batch is a burst of CPU that answers wait behind, so it is kept small (32
    # deliveries is a few ms); throughput hardly depends on it, the group commit does the batching.
    consumer_batch: int = 32
    # The periodic reconciliation (0 turns it off; the on-demand report still works).
    reconcile_interval: float = 60.0
    # A hold confirmed by the checkout is reported "without a platform order" only once this much
    # time has passed since its confirmation: the order webhook normally follows within seconds,
    # but a platform retrying after an outage can take minutes.
    reconcile_grace_seconds: float = 900.0
    # Shows are reconciled while a drop is open, and for this long after the last one closed
    # (late webhooks, refunds).
    reconcile_window_seconds: float = 1 * DAY

    def __repr__(self) -> str:
        enabled = ",".join(p.value for p in Platform if self.enabled(p)) or "none"
        return f"WebhookSettings(enabled={enabled}, apply={self.apply})"

    def enabled(self, platform: Platform) -> bool:
        """Whether deliveries of ``platform`` are accepted at all (a secret is configured)."""
        match platform:
            case Platform.SHOPIFY:
                return any(self.shopify.values())
            case Platform.TIKTOK:
                return bool(self.tiktok and self.tiktok_app_key)
            case Platform.META:
                return bool(self.meta)
            case Platform.WOOCOMMERCE:
                return any(self.woocommerce.values())
            case Platform.STANDARD:
                return bool(self.standard)

    def secrets_for(self, platform: Platform, headers: Mapping[str, str]) -> tuple[str, ...]:
        """The secrets a delivery must be signed with. Raises ``BadSignature`` (code
        ``unknown_shop``) when the platform has per-shop secrets and none for this shop."""
        match platform:
            case Platform.SHOPIFY | Platform.WOOCOMMERCE:
                table = self.shopify if platform is Platform.SHOPIFY else self.woocommerce
                shop = _shop_name(header(headers, _SHOP_HEADERS[platform]) or "")
                found = table.get(shop) if shop else None
                found = found or table.get(ANY_SHOP)
                if not found:
                    raise BadSignature("no secret for this shop", code="unknown_shop")
                return found
            case Platform.TIKTOK:
                return self.tiktok
            case Platform.META:
                return self.meta
            case Platform.STANDARD:
                return self.standard

    def node_name(self, slot: int | None = None) -> str:
        """This process's consumer name: the configured one; else ``<host>:<port>``, and with
        several workers ``<host>:<port>/w<slot>`` (``slot`` is the worker's claimed index, see
        ``service.claim_worker_slot``), the same after a restart of the node; else (no port
        known, as when the app is embedded) host and pid, unique per process but not stable."""
        if self.consumer_name:
            return self.consumer_name
        if self.listen_port and self.workers <= 1:
            return f"{socket.gethostname()}:{self.listen_port}"
        if self.listen_port and slot is not None:
            return f"{socket.gethostname()}:{self.listen_port}/w{slot}"
        return f"{socket.gethostname()}-{os.getpid()}"


def _shop_name(value: str) -> str:
    # WooCommerce sends the site URL with a trailing slash; operators type it either way.
    return value.strip().rstrip("/").lower()


def parse_secrets(raw: str | None) -> tuple[str, ...]:
    """A list of secrets from ``a,b`` or a JSON list. Empty entries are dropped."""
    value = (raw or "").strip()
    if not value:
        return ()
    if value.startswith("["):
        items = json.loads(value)
        if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
            raise ValueError("a JSON secret list must be a list of strings")
        return tuple(s for s in items if s)
    return tuple(s.strip() for s in value.split(",") if s.strip())


def parse_shop_secrets(raw: str | None) -> ShopSecrets:
    """Per-shop secrets from ``a,b``, a JSON list (both: any shop) or a JSON object shop → secrets."""
    value = (raw or "").strip()
    if not value.startswith("{"):
        found = parse_secrets(value)
        return {ANY_SHOP: found} if found else {}
    table = json.loads(value)
    if not isinstance(table, dict):
        raise ValueError("per-shop secrets must be a JSON object")
    result: ShopSecrets = {}
    for shop, secrets in table.items():
        listed = [secrets] if isinstance(secrets, str) else secrets
        if not isinstance(listed, list) or not all(isinstance(s, str) for s in listed):
            raise ValueError(f"secrets of shop {shop!r} must be a string or a list of strings")
        if any(listed):
            name = shop if shop == ANY_SHOP else _shop_name(shop)
            result[name] = tuple(s for s in listed if s)
    return result


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    return default if raw in (None, "") else float(raw)


def webhook_settings_from_env(env: Mapping[str, str]) -> WebhookSettings:
    """``WebhookSettings`` from ``LIVEDROP_*`` variables (docs/webhooks.md lists them)."""
    default = WebhookSettings()
    return WebhookSettings(
        shopify=parse_shop_secrets(env.get("LIVEDROP_SHOPIFY_SECRETS")),
        tiktok_app_key=env.get("LIVEDROP_TIKTOK_APP_KEY", "").strip(),
        tiktok=parse_secrets(env.get("LIVEDROP_TIKTOK_SECRETS")),
        meta=parse_secrets(env.get("LIVEDROP_META_SECRETS")),
        meta_verify_tokens=parse_secrets(env.get("LIVEDROP_META_VERIFY_TOKENS")),
        woocommerce=parse_shop_secrets(env.get("LIVEDROP_WOOCOMMERCE_SECRETS")),
        standard=parse_secrets(env.get("LIVEDROP_STANDARD_SECRETS")),
        dedupe_ttl_seconds=int(_number(env, "LIVEDROP_WEBHOOK_DEDUPE_TTL", default.dedupe_ttl_seconds)),
        retention_seconds=int(_number(env, "LIVEDROP_WEBHOOK_RETENTION", default.retention_seconds)),
        dead_retention_seconds=int(_number(env, "LIVEDROP_WEBHOOK_DEAD_RETENTION", default.dead_retention_seconds)),
        max_body_bytes=int(_number(env, "LIVEDROP_WEBHOOK_MAX_BODY", default.max_body_bytes)),
        max_depth=int(_number(env, "LIVEDROP_WEBHOOK_MAX_DEPTH", default.max_depth)),
        apply=env.get("LIVEDROP_WEBHOOK_APPLY", "1").strip().lower() not in ("0", "false", "no"),
        consumer_name=env.get("LIVEDROP_WEBHOOK_CONSUMER", "").strip(),
        listen_port=int(_number(env, "LIVEDROP_PORT", 0)),
        workers=max(1, int(_number(env, "LIVEDROP_WORKERS", 1))),
        claim_idle_seconds=_number(env, "LIVEDROP_WEBHOOK_CLAIM_IDLE", default.claim_idle_seconds),
        consumer_batch=int(_number(env, "LIVEDROP_WEBHOOK_BATCH", default.consumer_batch)),
        reconcile_interval=_number(env, "LIVEDROP_RECONCILE_INTERVAL", default.reconcile_interval),
        reconcile_grace_seconds=_number(env, "LIVEDROP_RECONCILE_GRACE", default.reconcile_grace_seconds),
        reconcile_window_seconds=_number(env, "LIVEDROP_RECONCILE_WINDOW", default.reconcile_window_seconds),
    )
