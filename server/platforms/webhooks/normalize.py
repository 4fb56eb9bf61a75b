"""Turn a verified delivery of any platform into ``PlatformOrderEvent``s the stock engine applies.

Each normaliser takes the raw body and the request headers (topic, shop and delivery id travel in
headers on some platforms) and returns a list: empty when the delivery is not about an order's stock
(a product topic, an unknown TikTok type), several when one delivery carries several changes (Meta
batches). Call them only after the signature check. Bodies that are not the documented JSON raise
``MalformedPayload``.

Hold references (which LiveDrop hold a platform order confirms) are looked up where each platform lets
an integrator attach data at checkout; see docs/webhooks.md for the per-platform choice.

Why one module of ~470 lines: it is pure code, five sections of 50-100 lines (one per platform) that
share the decoding and hold-reference helpers at the top and the dispatcher at the bottom; reading
one platform's rules next to the others' is how a difference between them is noticed. The payload
types are in ``payloads.py``. A sixth platform, or a section past ~150 lines, is the moment to
split it per platform.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import TypeVar

import msgspec

from server.platforms.webhooks.errors import MalformedPayload, TopicMismatch
from server.platforms.webhooks.events import OrderLine, OrderStatus, Platform, PlatformOrderEvent, RefundLine
from server.platforms.webhooks.headers import header
from server.platforms.webhooks.payloads import (
    MetaNotification,
    MetaOrderValue,
    ShopifyLineItem,
    ShopifyNameValue,
    ShopifyOrder,
    ShopifyRefund,
    ShopifyShape,
    StandardEnvelope,
    StandardPayload,
    TikTokNotification,
    WooLineItem,
    WooMeta,
    WooOrder,
)
from server.platforms.webhooks.signatures import (
    SHOPIFY_SHOP,
    SHOPIFY_TOPIC,
    WC_SOURCE,
    WC_TOPIC,
    delivery_keys,
)

HOLD_KEY = "livedrop_hold"
"""Name of the order attribute / line property / meta key that carries a LiveDrop hold reference
(the ``hold_ref`` of the viewer's ``reserved`` frame; the stock engine verifies it)."""


T = TypeVar("T")


def _decode(body: bytes, kind: type[T], platform: Platform) -> T:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.DecodeError as exc:
        raise MalformedPayload(f"{platform.value} body: {exc}") from None
    except RecursionError:
        # The receiver refuses deep bodies first (server.viewers.limits); this is the backstop for
        # callers that did not, such as a replay tool.
        raise MalformedPayload(f"{platform.value} body is nested too deeply", code="too_deep") from None


def _hold_value(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text or None


def _unix_to_iso(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    try:
        moment = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None  # a signed but absurd time (year 300000) is no reason to refuse the order
    return moment.isoformat().replace("+00:00", "Z")


# --- Shopify ----------------------------------------------------------------------------------------

_SHOPIFY_ORDER_TOPICS: dict[str, OrderStatus] = {
    "orders/create": OrderStatus.CREATED,
    "orders/paid": OrderStatus.PAID,
    "orders/cancelled": OrderStatus.CANCELLED,
    # Updated/fulfilled orders change no stock unless the order was cancelled (checked below);
    # deleting an order's record is bookkeeping, not a cancellation, so it is not a restock.
    # (orders/edited is not here: its body is an ``order_edit``, not an order, so it yields nothing.)
    "orders/updated": OrderStatus.OTHER,
    "orders/fulfilled": OrderStatus.OTHER,
    "orders/partially_fulfilled": OrderStatus.OTHER,
    "orders/delete": OrderStatus.OTHER,
}


def check_shopify_topic(topic: str, body: bytes) -> None:
    """Refuse a body that is not what ``X-Shopify-Topic`` says it is (``TopicMismatch``).

    Shopify signs the body only; the topic header is not signed. Without this check a captured
    ``orders/create`` sent again under ``orders/cancelled`` (with fresh delivery ids, which are
    unsigned too) would restock units that were sold. So the body has to prove the topic: a
    cancellation carries ``cancelled_at``, a refund is a refund object (``order_id`` and
    ``refund_line_items``), a sale is an order (``line_items``, none of a refund's fields).
    Topics that change no stock need no proof: whatever they claim, nothing is applied.
    """
    status = _SHOPIFY_ORDER_TOPICS.get(topic)
    if status is None and topic != "refunds/create":
        return
    shape = _decode(body, ShopifyShape, Platform.SHOPIFY)
    is_refund = len(shape.order_id) > 0 and len(shape.refund_line_items) > 0
    is_order = len(shape.line_items) > 0 and not is_refund
    if topic == "refunds/create":
        if not is_refund:
            raise TopicMismatch("refunds/create needs a refund body (order_id and refund_line_items)")
    elif status is OrderStatus.CANCELLED and not (is_order and shape.cancelled_at):
        raise TopicMismatch("orders/cancelled needs an order body with cancelled_at set")
    elif status is not None and status.is_sale and not is_order:
        raise TopicMismatch(f"{topic} needs an order body (line_items, not a refund)")


def _shopify_hold(entries: list[ShopifyNameValue] | None) -> str | None:
    for entry in entries or ():
        if entry.name == HOLD_KEY:
            return _hold_value(entry.value)
    return None


def _shopify_lines(items: list[ShopifyLineItem] | None, order_hold: str | None) -> list[OrderLine]:
    # Lines without a SKU cannot be LiveDrop products (every drop has one), so they are left out.
    # A quantity ≤ 0 is kept: the applier records it as a `bad_qty` issue instead of losing it.
    return [
        OrderLine(
            sku=item.sku,
            qty=item.quantity,
            line_id=str(item.id),
            hold_ref=_shopify_hold(item.properties) or order_hold,
        )
        for item in items or ()
        if item.sku
    ]


def normalize_shopify(body: bytes, headers: Mapping[str, str]) -> list[PlatformOrderEvent]:
    """``orders/*`` and ``refunds/create`` topics (``X-Shopify-Topic``); any other topic yields nothing.

    The hold reference is the line item property ``livedrop_hold``, else the order's note attribute
    ``livedrop_hold`` (the per-line value wins).
    """
    topic = header(headers, SHOPIFY_TOPIC) or ""
    status = _SHOPIFY_ORDER_TOPICS.get(topic)
    if status is None and topic != "refunds/create":
        return []
    check_shopify_topic(topic, body)
    delivery_id = delivery_keys(Platform.SHOPIFY, body, headers)[0]
    shop = header(headers, SHOPIFY_SHOP)
    if status is None:
        refund = _decode(body, ShopifyRefund, Platform.SHOPIFY)
        refund_lines = [
            RefundLine(
                sku=(item.line_item.sku or "") if item.line_item else "",
                qty=item.quantity,
                line_id=str(item.line_item_id),
                restock=item.restock_type != "no_restock",
            )
            for item in refund.refund_line_items or ()
            if item.quantity > 0
        ]
        return [
            PlatformOrderEvent(
                platform=Platform.SHOPIFY,
                order_id=str(refund.order_id),
                status=OrderStatus.REFUNDED,
                lines=[],
                occurred_at=refund.created_at,
                delivery_id=delivery_id,
                shop=shop,
                refund_id=str(refund.id),
                refund_lines=refund_lines,
                source_event=topic,
            )
        ]
    order = _decode(body, ShopifyOrder, Platform.SHOPIFY)
    if status is OrderStatus.OTHER and order.cancelled_at and topic == "orders/updated":
        status = OrderStatus.CANCELLED
    occurred = order.cancelled_at if status is OrderStatus.CANCELLED else None
    if occurred is None:
        occurred = order.created_at if status is OrderStatus.CREATED else order.updated_at or order.created_at
    return [
        PlatformOrderEvent(
            platform=Platform.SHOPIFY,
            order_id=str(order.id),
            status=status,
            lines=_shopify_lines(order.line_items, _shopify_hold(order.note_attributes)),
            occurred_at=occurred,
            delivery_id=delivery_id,
            shop=shop,
            source_event=topic,
        )
    ]


# --- TikTok Shop ------------------------------------------------------------------------------------

TIKTOK_ORDER_STATUS_CHANGE = 1
TIKTOK_CANCELLATION_STATUS_CHANGE = 11
TIKTOK_RETURN_STATUS_CHANGE = 12

_TIKTOK_ORDER_STATUS: dict[str, OrderStatus] = {
    "UNPAID": OrderStatus.CREATED,
    # ON_HOLD is paid but still in the buyer's cancellation window. Later states map to paid as well:
    # TikTok warns its webhooks can be lost, and a sale is idempotent, so any post-payment state
    # repairs a missed AWAITING_SHIPMENT instead of being ignored.
    "ON_HOLD": OrderStatus.PAID,
    "AWAITING_SHIPMENT": OrderStatus.PAID,
    "PARTIALLY_SHIPPING": OrderStatus.PAID,
    "AWAITING_COLLECTION": OrderStatus.PAID,
    "IN_TRANSIT": OrderStatus.PAID,
    "DELIVERED": OrderStatus.PAID,
    "COMPLETED": OrderStatus.PAID,
    # The webhook page lists CANCEL; the order API's enum says CANCELLED. Both mean the whole order.
    "CANCEL": OrderStatus.CANCELLED,
    "CANCELLED": OrderStatus.CANCELLED,
}
_TIKTOK_CANCEL_DONE = frozenset({"CANCELLATION_REQUEST_SUCCESS", "CANCELLATION_REQUEST_COMPLETE"})


def normalize_tiktok(body: bytes, headers: Mapping[str, str]) -> list[PlatformOrderEvent]:
    """TikTok Shop types 1 (order status), 11 (cancellation) and 12 (return); other types yield nothing.

    TikTok's order notifications carry the order id and a status, never the lines. A sale therefore
    comes out with empty ``lines`` and ``needs_fetch=True``: the shell reads the order (Get Order
    Detail) for its line items before the engine takes stock. A whole-order ``CANCEL`` needs no fetch
    (the engine restocks what it recorded); a cancellation request (type 11) or a completed return
    with goods sent back (type 12) may cover part of the order, so they need the fetch too. TikTok's
    checkout has no field LiveDrop can fill, so TikTok orders carry no hold reference.
    """
    note = _decode(body, TikTokNotification, Platform.TIKTOK)
    data = note.data
    if data is None or data.order_id in (None, ""):
        return []
    delivery_id = delivery_keys(Platform.TIKTOK, body, headers)[0]
    shop = None if note.shop_id is None else str(note.shop_id)
    refund_id: str | None = None
    needs_fetch = True
    if note.type == TIKTOK_ORDER_STATUS_CHANGE:
        label = data.order_status or ""
        status = _TIKTOK_ORDER_STATUS.get(label, OrderStatus.OTHER)
        needs_fetch = status.is_sale
        occurred = data.update_time
    elif note.type == TIKTOK_CANCELLATION_STATUS_CHANGE:
        label = data.cancel_status or ""
        status = OrderStatus.CANCELLED if label in _TIKTOK_CANCEL_DONE else OrderStatus.OTHER
        occurred = data.create_time
    elif note.type == TIKTOK_RETURN_STATUS_CHANGE:
        label = data.return_status or ""
        # A refund without a return (REFUND) or a replacement brings no units back to stock.
        goods_back = data.return_type == "RETURN_AND_REFUND"
        done = label == "RETURN_OR_REFUND_REQUEST_COMPLETE"
        status = OrderStatus.REFUNDED if done and goods_back else OrderStatus.OTHER
        refund_id = None if data.return_id is None else str(data.return_id)
        occurred = data.update_time or data.create_time
    else:
        return []
    if status is OrderStatus.OTHER:
        needs_fetch = False
    return [
        PlatformOrderEvent(
            platform=Platform.TIKTOK,
            order_id=str(data.order_id),
            status=status,
            lines=[],
            occurred_at=_unix_to_iso(occurred or note.timestamp),
            delivery_id=delivery_id,
            shop=shop,
            refund_id=refund_id if status is OrderStatus.REFUNDED else None,
            needs_fetch=needs_fetch,
            source_event=f"type {note.type}: {label}",
        )
    ]


# --- Meta -------------------------------------------------------------------------------------------

_META_ORDER_STATE: dict[str, OrderStatus] = {
    # Meta's Order Lifecycle states. FB_PROCESSING orders "may not advance to CREATED" and the buyer can
    # still cancel, so they are not a sale yet; CREATED onwards is final and prepaid.
    "FB_PROCESSING": OrderStatus.OTHER,
    "CREATED": OrderStatus.PAID,
    "IN_PROGRESS": OrderStatus.PAID,
    "COMPLETED": OrderStatus.PAID,
}


def normalize_meta(body: bytes, headers: Mapping[str, str]) -> list[PlatformOrderEvent]:
    """Every ``entry[].changes[]`` whose ``value`` names an ``order_id`` becomes one event.

    All Meta events are thin: ``needs_fetch=True`` and no lines. The shell reads the order's items
    (``retailer_id`` is the SKU) and, for anything but the lifecycle states above, its cancellations and
    refunds from the Order Management API before anything touches stock. Meta checkout offers no field
    LiveDrop can fill, so Meta orders carry no hold reference.
    """
    note = _decode(body, MetaNotification, Platform.META)
    delivery_id = delivery_keys(Platform.META, body, headers)[0]
    events: list[PlatformOrderEvent] = []
    for entry in note.entry or ():
        for change in entry.changes or ():
            try:
                value = msgspec.json.decode(change.value, type=MetaOrderValue)
            except msgspec.DecodeError:
                continue  # some other field's change (not an object of this shape): not an order
            except RecursionError:
                raise MalformedPayload("meta change value is nested too deeply", code="too_deep") from None
            if value.order_id in (None, ""):
                continue
            label = value.event or ""
            events.append(
                PlatformOrderEvent(
                    platform=Platform.META,
                    order_id=str(value.order_id),
                    status=_META_ORDER_STATE.get(label, OrderStatus.OTHER),
                    lines=[],
                    occurred_at=_unix_to_iso(entry.time),
                    delivery_id=delivery_id,
                    shop=None if entry.id is None else str(entry.id),
                    needs_fetch=True,
                    source_event=f"{change.field}: {label}",
                )
            )
    return events


# --- WooCommerce ------------------------------------------------------------------------------------

_WOO_STATUS: dict[str, OrderStatus] = {
    "pending": OrderStatus.CREATED,  # awaiting payment
    "on-hold": OrderStatus.CREATED,  # awaiting a manual payment (bank transfer, cheque)
    "processing": OrderStatus.PAID,
    "completed": OrderStatus.PAID,
    "cancelled": OrderStatus.CANCELLED,
    "failed": OrderStatus.CANCELLED,  # payment failed: the units it took go back on sale
    "refunded": OrderStatus.REFUNDED,  # fully refunded (partial refunds keep the order's status)
}


def _woo_hold(entries: list[WooMeta] | None) -> str | None:
    for entry in entries or ():
        if entry.key == HOLD_KEY:
            return _hold_value(entry.value)
    return None


def _woo_lines(items: list[WooLineItem] | None, order_hold: str | None) -> list[OrderLine]:
    # As for Shopify: a quantity ≤ 0 is kept for the applier to report (`bad_qty`).
    return [
        OrderLine(
            sku=item.sku,
            qty=item.quantity,
            line_id=str(item.id),
            hold_ref=_woo_hold(item.meta_data) or order_hold,
        )
        for item in items or ()
        if item.sku
    ]


def normalize_woocommerce(body: bytes, headers: Mapping[str, str]) -> list[PlatformOrderEvent]:
    """``order.*`` topics (``X-WC-Webhook-Topic``); the order's ``status`` decides, not the topic.

    The hold reference is the line item meta ``livedrop_hold``, else the order meta ``livedrop_hold``.
    A ``refunded`` order is a full refund: every line comes back (refund id ``full``). Partial refunds
    leave the status unchanged and list no lines in the order resource, so they change no stock here.
    ``order.deleted`` (trash or delete) is bookkeeping, not a cancellation.
    """
    topic = header(headers, WC_TOPIC) or ""
    if not topic.startswith("order."):
        return []
    order = _decode(body, WooOrder, Platform.WOOCOMMERCE)
    if topic != "order.deleted" and (not order.status or order.line_items is None):
        # The topic header is unsigned; only an order resource may be applied as an order.
        raise TopicMismatch(f"{topic} needs an order body (status and line_items)")
    status = OrderStatus.OTHER if topic == "order.deleted" else _WOO_STATUS.get(order.status or "")
    lines = _woo_lines(order.line_items, _woo_hold(order.meta_data))
    refund_lines: list[RefundLine] = []
    if status is OrderStatus.REFUNDED:
        refund_lines = [RefundLine(sku=x.sku, qty=x.qty, line_id=x.line_id) for x in lines]
    modified = order.date_modified_gmt or order.date_created_gmt
    return [
        PlatformOrderEvent(
            platform=Platform.WOOCOMMERCE,
            order_id=str(order.id),
            status=status or OrderStatus.OTHER,
            lines=lines,
            occurred_at=f"{modified}Z" if modified and modified[-1].isdigit() else modified,
            delivery_id=delivery_keys(Platform.WOOCOMMERCE, body, headers)[0],
            shop=header(headers, WC_SOURCE),
            refund_id="full" if status is OrderStatus.REFUNDED else None,
            refund_lines=refund_lines,
            source_event=f"{topic}: {order.status or ''}",
        )
    ]


# --- Standard Webhooks (LiveDrop's own schema) ------------------------------------------------------

_STANDARD_TYPES: dict[str, OrderStatus] = {
    "order.created": OrderStatus.CREATED,
    "order.paid": OrderStatus.PAID,
    "order.cancelled": OrderStatus.CANCELLED,
    "order.refunded": OrderStatus.REFUNDED,
}


def normalize_standard(body: bytes, headers: Mapping[str, str]) -> list[PlatformOrderEvent]:
    """LiveDrop's documented order payload (docs/webhooks.md); unknown ``type`` values yield nothing."""
    envelope = _decode(body, StandardEnvelope, Platform.STANDARD)
    status = _STANDARD_TYPES.get(envelope.type)
    if status is None:
        return []
    payload = _decode(body, StandardPayload, Platform.STANDARD)
    data = payload.data
    refund_lines: list[RefundLine] = []
    lines: list[OrderLine] = []
    if status is OrderStatus.REFUNDED:
        if not data.refund_id:
            raise MalformedPayload("order.refunded needs data.refund_id", code="missing_refund_id")
        refund_lines = [RefundLine(sku=x.sku, qty=x.qty, line_id=x.line_id, restock=x.restock) for x in data.lines]
    else:
        lines = [OrderLine(sku=x.sku, qty=x.qty, line_id=x.line_id, hold_ref=x.hold or None) for x in data.lines]
    return [
        PlatformOrderEvent(
            platform=Platform.STANDARD,
            order_id=data.order_id,
            status=status,
            lines=lines,
            occurred_at=payload.timestamp,
            delivery_id=delivery_keys(Platform.STANDARD, body, headers)[0],
            shop=data.shop,
            refund_id=data.refund_id if status is OrderStatus.REFUNDED else None,
            refund_lines=refund_lines,
            source_event=envelope.type,
        )
    ]


NORMALIZERS: Mapping[Platform, Callable[[bytes, Mapping[str, str]], list[PlatformOrderEvent]]] = {
    Platform.SHOPIFY: normalize_shopify,
    Platform.TIKTOK: normalize_tiktok,
    Platform.META: normalize_meta,
    Platform.WOOCOMMERCE: normalize_woocommerce,
    Platform.STANDARD: normalize_standard,
}


def normalize(platform: Platform, body: bytes, headers: Mapping[str, str]) -> list[PlatformOrderEvent]:
    """Dispatch to the platform's normaliser. Call only after the delivery's signature was verified."""
    return NORMALIZERS[platform](body, headers)


__all__ = [
    "HOLD_KEY",
    "NORMALIZERS",
    "normalize",
    "normalize_meta",
    "normalize_shopify",
    "normalize_standard",
    "normalize_tiktok",
    "normalize_woocommerce",
]
