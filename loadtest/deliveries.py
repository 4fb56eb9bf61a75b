"""Signed order webhooks of every platform, as the platforms send them, with what each should do.

Pure (no I/O): the Platform users send what this builds and record, for each acknowledged
delivery, its de-duplication key and its expected effects, which the verdict then looks for
through the host API. Signatures come from the sender-side signers of ``loadtest.signing``
(the platforms' published schemes), and the key is the one docs/webhooks.md documents for each
platform (the first of the delivery's de-duplication keys), so the verdict can find each
delivery in the list of recorded deliveries (``GET /api/webhooks/deliveries``).

Each order goes through a small lifecycle of deliveries sent one after another, each once
acknowledged before the next: Shopify ``orders/create`` then ``orders/paid`` (the same line
twice: the engine must count it once) and sometimes ``orders/cancelled``; WooCommerce
``processing`` then sometimes ``cancelled``; Standard Webhooks ``order.paid`` then sometimes
``order.refunded``; TikTok Shop and Meta thin notifications (recorded, and reported as needing a
fetch, never applied to stock by themselves).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from loadtest.signing import (
    META_SIGNATURE,
    SHOPIFY_EVENT_ID,
    SHOPIFY_HMAC,
    SHOPIFY_SHOP,
    SHOPIFY_TOPIC,
    SHOPIFY_WEBHOOK_ID,
    SW_ID,
    SW_SIGNATURE,
    SW_TIMESTAMP,
    TIKTOK_SIGNATURE,
    WC_DELIVERY_ID,
    WC_SIGNATURE,
    WC_SOURCE,
    WC_TOPIC,
    WC_WEBHOOK_ID,
    Platform,
    PlatformSecrets,
    body_digest,
    sign_meta,
    sign_shopify,
    sign_standard,
    sign_tiktok,
    sign_woocommerce,
)

EffectKind = Literal["sale", "cancel", "notify"]


@dataclass(frozen=True)
class Effect:
    """What an applied delivery must leave in Redis.

    ``sale``: one ledger entry ``order`` (or ``order_ignored`` if its cancel was applied first)
    for ``line``, of ``qty`` units. ``cancel``: one ledger entry ``cancel`` (or ``cancel_first``)
    for ``line`` and ``event``. ``notify``: one ``needs_fetch`` issue for ``order``/``status``.
    """

    kind: EffectKind
    line: str = ""
    qty: int = 0
    event: str = ""
    platform: str = ""
    order: str = ""
    status: str = ""


@dataclass(frozen=True)
class Delivery:
    platform: Platform
    label: str  # the platform's own event name, for Locust's statistics
    body: bytes
    headers: dict[str, str]
    key: str  # its first de-duplication key, as docs/webhooks.md documents it per platform
    effects: tuple[Effect, ...]


def line_key(platform: Platform, order_id: str, line_id: str) -> str:
    """The stock engine's idempotency key of an order line, as its ledger records it."""
    return f"{platform.value}|{order_id}|{line_id}"


class Deliveries:
    """Builds deliveries with ids unique to this builder: ``base`` must differ between builders
    (the Platform users draw it at random from 2**40, so runs against one Redis never collide)."""

    def __init__(self, secrets: PlatformSecrets, base: int) -> None:
        self.secrets = secrets
        self._ids = itertools.count(base * 1000 + 1)

    def next_id(self) -> int:
        return next(self._ids)

    # -- one delivery per platform ------------------------------------------------------------

    def shopify(self, topic: str, order_id: int, lines: Sequence[tuple[int, str, int]]) -> Delivery:
        body = _json(
            {
                "id": order_id,
                "created_at": _iso_now(),
                "financial_status": "paid",
                "cancelled_at": _iso_now() if topic == "orders/cancelled" else None,
                "note_attributes": [],
                "line_items": [
                    {"id": line_id, "sku": sku, "quantity": qty, "properties": []} for line_id, sku, qty in lines
                ],
            }
        )
        headers = {
            SHOPIFY_HMAC: sign_shopify(body, self.secrets.shopify),
            SHOPIFY_TOPIC: topic,
            SHOPIFY_SHOP: self.secrets.shopify_shop,
            SHOPIFY_WEBHOOK_ID: (webhook_id := f"lt-{self.next_id()}"),
            SHOPIFY_EVENT_ID: str(self.next_id()),
            "Content-Type": "application/json",
        }
        order = str(order_id)
        if topic == "orders/cancelled":
            effects = tuple(
                Effect("cancel", line_key(Platform.SHOPIFY, order, str(i)), event="cancel") for i, _, _ in lines
            )
        else:
            effects = tuple(Effect("sale", line_key(Platform.SHOPIFY, order, str(i)), q) for i, _, q in lines)
        return Delivery(Platform.SHOPIFY, topic, body, headers, f"shopify:webhook:{webhook_id}", effects)

    def woocommerce(self, status: str, order_id: int, lines: Sequence[tuple[int, str, int]]) -> Delivery:
        topic = "order.created" if status == "processing" else "order.updated"
        body = _json(
            {
                "id": order_id,
                "status": status,
                "date_modified_gmt": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
                "meta_data": [],
                "line_items": [
                    {"id": line_id, "sku": sku, "quantity": qty, "meta_data": []} for line_id, sku, qty in lines
                ],
            }
        )
        headers = {
            WC_SIGNATURE: sign_woocommerce(body, self.secrets.woocommerce),
            WC_TOPIC: topic,
            WC_WEBHOOK_ID: "7",
            WC_DELIVERY_ID: (delivery_id := f"{self.next_id():x}"),
            WC_SOURCE: self.secrets.woocommerce_site + "/",
            "Content-Type": "application/json",
        }
        order = str(order_id)
        if status == "cancelled":
            effects = tuple(
                Effect("cancel", line_key(Platform.WOOCOMMERCE, order, str(i)), event="cancel") for i, _, _ in lines
            )
        else:
            effects = tuple(Effect("sale", line_key(Platform.WOOCOMMERCE, order, str(i)), q) for i, _, q in lines)
        # WooCommerce's delivery id is per second, so the documented key adds the body's digest.
        key = f"woocommerce:delivery:{headers[WC_WEBHOOK_ID]}:{delivery_id}:{body_digest(body)[:32]}"
        return Delivery(Platform.WOOCOMMERCE, f"order {status}", body, headers, key, effects)

    def standard(
        self, kind: str, order_id: str, lines: Sequence[tuple[str, str, int]], refund_id: str | None = None
    ) -> Delivery:
        data: dict[str, object] = {
            "order_id": order_id,
            "shop": "loadtest",
            "lines": [{"line_id": line_id, "sku": sku, "qty": qty} for line_id, sku, qty in lines],
        }
        if refund_id is not None:
            data["refund_id"] = refund_id
        body = _json({"type": f"order.{kind}", "timestamp": _iso_now(), "data": data})
        msg_id = f"msg_lt{self.next_id()}"
        now = int(time.time())
        headers = {
            SW_ID: msg_id,
            SW_TIMESTAMP: str(now),
            SW_SIGNATURE: sign_standard(body, msg_id=msg_id, timestamp=now, secret=self.secrets.standard),
            "Content-Type": "application/json",
        }
        if kind == "refunded":
            event = f"refund:{refund_id}"
            effects = tuple(
                Effect("cancel", line_key(Platform.STANDARD, order_id, i), event=event) for i, _, _ in lines
            )
        else:
            effects = tuple(Effect("sale", line_key(Platform.STANDARD, order_id, i), q) for i, _, q in lines)
        return Delivery(Platform.STANDARD, f"order.{kind}", body, headers, f"standard:{msg_id}", effects)

    def tiktok(self, order_id: str, status: str = "AWAITING_SHIPMENT") -> Delivery:
        body = _json(
            {
                "type": 1,
                "tts_notification_id": (notification_id := str(self.next_id())),
                "shop_id": "7494049642642441621",
                "timestamp": int(time.time()),
                "data": {"order_id": order_id, "order_status": status, "update_time": int(time.time())},
            }
        )
        headers = {
            TIKTOK_SIGNATURE: sign_tiktok(body, app_key=self.secrets.tiktok_app_key, secret=self.secrets.tiktok),
            "Content-Type": "application/json",
        }
        effect = Effect("notify", platform=Platform.TIKTOK.value, order=order_id, status="paid")
        key = f"tiktok:notification:{notification_id}"
        return Delivery(Platform.TIKTOK, f"order {status}", body, headers, key, (effect,))

    def meta(self, order_id: str, event: str = "CREATED") -> Delivery:
        # Meta signs the escaped-unicode bytes it sends: json.dumps escapes non-ASCII the same way.
        body = _json(
            {
                "object": "page",
                "entry": [
                    {
                        "id": "112233445566778",
                        "time": int(time.time()),
                        "changes": [{"field": "commerce_orders", "value": {"order_id": order_id, "event": event}}],
                    }
                ],
            }
        )
        headers = {META_SIGNATURE: sign_meta(body, self.secrets.meta), "Content-Type": "application/json"}
        effect = Effect("notify", platform=Platform.META.value, order=order_id, status="paid")
        # Meta sends no delivery id: the key is the digest of the bytes it signed.
        key = f"meta:body:{body_digest(body)}"
        return Delivery(Platform.META, f"commerce_orders {event}", body, headers, key, (effect,))

    # -- an order's lifecycle -------------------------------------------------------------------

    def order_flow(self, platform: Platform, sku: str, qty: int, *, cancel: bool) -> list[Delivery]:
        """The deliveries of one order of ``qty`` units of ``sku``, in the order a platform sends
        them. ``cancel``: the order is later cancelled (refunded on Standard Webhooks)."""
        order = self.next_id()
        line = self.next_id()
        lines = [(line, sku, qty)]
        match platform:
            case Platform.SHOPIFY:
                flow = [self.shopify("orders/create", order, lines), self.shopify("orders/paid", order, lines)]
                if cancel:
                    flow.append(self.shopify("orders/cancelled", order, lines))
            case Platform.WOOCOMMERCE:
                flow = [self.woocommerce("processing", order, lines)]
                if cancel:
                    flow.append(self.woocommerce("cancelled", order, lines))
            case Platform.STANDARD:
                order_id, text_lines = f"LT-{order}", [(str(line), sku, qty)]
                flow = [self.standard("paid", order_id, text_lines)]
                if cancel:
                    flow.append(self.standard("refunded", order_id, text_lines, refund_id=f"rf{self.next_id()}"))
            case Platform.TIKTOK:
                flow = [self.tiktok(str(order))]
            case Platform.META:
                flow = [self.meta(str(order))]
        return flow


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
