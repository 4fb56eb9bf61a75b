"""The subset of each platform's webhook payload that LiveDrop reads, as msgspec Structs.

Decoding goes straight from the raw bytes into these types (``msgspec.json.decode(raw, type=...)``);
every field a platform sends that is not declared here is ignored, so new platform fields never break
us. Only what the normaliser needs is declared, each with the type the platform documents, loosened
where a platform is known to vary (64-bit ids that some senders quote and some do not).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

Id = int | str
"""Platform ids: JSON numbers in Shopify/WooCommerce, strings in TikTok Shop; both are accepted."""


# --- Shopify (REST Admin resources, as serialised into webhook bodies) ------------------------------


class ShopifyNameValue(msgspec.Struct):
    """An entry of an order's ``note_attributes`` or of a line item's ``properties``."""

    name: str = ""
    value: str | int | float | bool | None = None


class ShopifyLineItem(msgspec.Struct):
    id: Id
    quantity: int = 0
    sku: str | None = None
    properties: list[ShopifyNameValue] | None = None


class ShopifyOrder(msgspec.Struct):
    """Body of ``orders/create``, ``orders/paid``, ``orders/updated``, ``orders/cancelled``..."""

    id: Id
    created_at: str | None = None
    updated_at: str | None = None
    cancelled_at: str | None = None
    financial_status: str | None = None
    note_attributes: list[ShopifyNameValue] | None = None
    line_items: list[ShopifyLineItem] | None = None


class ShopifyShape(msgspec.Struct):
    """Which kind of resource a Shopify body is, read before trusting the unsigned topic header:
    orders carry ``line_items`` and no ``order_id``; refunds carry ``order_id`` and
    ``refund_line_items``. Values are not decoded (``Raw``): an empty ``Raw`` means the key is absent."""

    line_items: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    order_id: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    refund_line_items: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    cancelled_at: str | None = None


class ShopifyRefundLineItem(msgspec.Struct):
    line_item_id: Id
    quantity: int = 0
    restock_type: str | None = None
    line_item: ShopifyLineItem | None = None


class ShopifyRefund(msgspec.Struct):
    """Body of ``refunds/create``."""

    id: Id
    order_id: Id
    created_at: str | None = None
    refund_line_items: list[ShopifyRefundLineItem] | None = None


# --- TikTok Shop ----------------------------------------------------------------------------------


class TikTokData(msgspec.Struct):
    """``data`` of types 1 (order status change), 11 (cancellation) and 12 (return status change)."""

    order_id: Id | None = None
    order_status: str | None = None
    update_time: int | None = None
    cancel_status: str | None = None
    cancel_id: Id | None = None
    create_time: int | None = None
    return_status: str | None = None
    return_type: str | None = None
    return_id: Id | None = None


class TikTokNotification(msgspec.Struct):
    type: int
    tts_notification_id: Id | None = None
    shop_id: Id | None = None
    timestamp: int | None = None
    data: TikTokData | None = None


# --- Meta (Graph API webhook envelope) ------------------------------------------------------------


class MetaChange(msgspec.Struct):
    field: str = ""
    value: msgspec.Raw = msgspec.Raw(b"null")


class MetaEntry(msgspec.Struct):
    id: Id | None = None
    time: int | None = None
    changes: list[MetaChange] | None = None


class MetaNotification(msgspec.Struct):
    object: str | None = None
    entry: list[MetaEntry] | None = None


class MetaOrderValue(msgspec.Struct):
    """``changes[].value`` of an order notification: see docs/webhooks.md for why only these two keys."""

    order_id: Id | None = None
    event: str | None = None


# --- WooCommerce (REST API v3 order resource) -----------------------------------------------------


class WooMeta(msgspec.Struct):
    key: str = ""
    value: Any = None


class WooLineItem(msgspec.Struct):
    id: Id
    quantity: int = 0
    sku: str | None = None
    meta_data: list[WooMeta] | None = None


class WooOrder(msgspec.Struct):
    """Body of ``order.created`` / ``order.updated``; ``order.deleted`` carries only ``id``."""

    id: Id
    status: str | None = None
    date_created_gmt: str | None = None
    date_modified_gmt: str | None = None
    meta_data: list[WooMeta] | None = None
    line_items: list[WooLineItem] | None = None


# --- Standard Webhooks: LiveDrop's own order payload (documented in docs/webhooks.md) -------------

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class StandardLine(msgspec.Struct):
    line_id: NonEmpty
    sku: NonEmpty
    qty: PositiveInt
    hold: str | None = None
    restock: bool = True


class StandardOrderData(msgspec.Struct):
    order_id: NonEmpty
    lines: list[StandardLine] = msgspec.field(default_factory=list)
    shop: str | None = None
    refund_id: str | None = None


class StandardEnvelope(msgspec.Struct):
    """Read first, so an event type we do not handle is ignored whatever its ``data`` looks like."""

    type: str


class StandardPayload(msgspec.Struct):
    type: str
    data: StandardOrderData
    timestamp: str | None = None
