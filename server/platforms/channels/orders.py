"""Orders read from TikTok Shop and Meta, normalised into ``PlatformOrderEvent``s with their lines,
so the webhook pipeline's applier takes them exactly like a Shopify order. Pure.

* **TikTok Shop** (Get Order Detail / Search Orders): ``line_items`` has no quantity: one row is one
  unit, so units are counted per ``sku_id``; a combined listing's row stands for ``sku_count`` units
  of each of its ``combined_listing_skus``. One line per ``sku_id`` (``sku-<sku_id>``) keeps a
  re-read order idempotent in the engine.
* **Meta** (``commerce_orders``): ``items.data[] {id, retailer_id, quantity}``; the item id is the line.

SKUs: a channel id mapped to a drop SKU (``mapping``) wins; else TikTok's ``seller_sku`` or Meta's
``retailer_id``, which merchants usually set to the SKU itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from server.platforms.webhooks.events import OrderLine, OrderStatus, Platform, PlatformOrderEvent

TIKTOK_STATUS: Mapping[str, OrderStatus] = {
    "UNPAID": OrderStatus.CREATED,
    "ON_HOLD": OrderStatus.PAID,
    "AWAITING_SHIPMENT": OrderStatus.PAID,
    "PARTIALLY_SHIPPING": OrderStatus.PAID,
    "AWAITING_COLLECTION": OrderStatus.PAID,
    "IN_TRANSIT": OrderStatus.PAID,
    "DELIVERED": OrderStatus.PAID,
    "COMPLETED": OrderStatus.PAID,
    "CANCELLED": OrderStatus.CANCELLED,
}
META_STATE: Mapping[str, OrderStatus] = {
    "FB_PROCESSING": OrderStatus.OTHER,
    "CREATED": OrderStatus.PAID,
    "IN_PROGRESS": OrderStatus.PAID,
    "COMPLETED": OrderStatus.PAID,
    "CANCELLED": OrderStatus.CANCELLED,
}


def _iso(seconds: Any) -> str | None:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return None
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).isoformat().replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):
        return None


def _count(value: Any) -> int:
    """A ``sku_count``: a positive int, else 1 (a combined listing names each component once)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def tiktok_units(order: Mapping[str, Any]) -> dict[str, tuple[int, str]]:
    """sku_id → (units, seller_sku) of an order's rows, combined listings expanded."""
    units: dict[str, tuple[int, str]] = {}
    for row in _list(order.get("line_items")):
        if not isinstance(row, dict):
            continue
        parts = [p for p in _list(row.get("combined_listing_skus")) if isinstance(p, dict)]
        pairs = (
            [(str(p.get("sku_id") or ""), _count(p.get("sku_count")), str(p.get("seller_sku") or "")) for p in parts]
            if parts
            else [(str(row.get("sku_id") or ""), 1, str(row.get("seller_sku") or ""))]
        )
        for sku_id, count, seller_sku in pairs:
            if sku_id:
                before = units.get(sku_id, (0, seller_sku))
                units[sku_id] = (before[0] + count, before[1] or seller_sku)
    return units


def tiktok_event(order: Mapping[str, Any], skus: Mapping[str, str]) -> PlatformOrderEvent:
    """A TikTok order as an event; ``skus`` maps ``sku_id`` to the drop SKU where one is mapped."""
    order_id = str(order.get("id", ""))
    label = str(order.get("status", ""))
    status = TIKTOK_STATUS.get(label, OrderStatus.OTHER)
    lines = []
    if status.is_sale:
        for sku_id, (qty, seller_sku) in sorted(tiktok_units(order).items()):
            lines.append(OrderLine(sku=skus.get(sku_id) or seller_sku or sku_id, qty=qty, line_id=f"sku-{sku_id}"))
    return PlatformOrderEvent(
        platform=Platform.TIKTOK,
        order_id=order_id,
        status=status,
        lines=lines,
        occurred_at=_iso(order.get("update_time")),
        delivery_id=f"pull:tiktok:{order_id}:{order.get('update_time', '')}",
        shop=None,
        source_event=f"order detail: {label}",
    )


def meta_event(order: Mapping[str, Any], skus: Mapping[str, str]) -> PlatformOrderEvent:
    """A Meta commerce order as an event; ``skus`` maps ``retailer_id`` to the drop SKU."""
    order_id = str(order.get("id", ""))
    state = order.get("order_status")
    label = str(state.get("state", "")) if isinstance(state, dict) else ""
    status = META_STATE.get(label, OrderStatus.OTHER)
    lines = []
    if status.is_sale:
        items = order.get("items")
        for item in _list(items.get("data") if isinstance(items, dict) else None):
            if not isinstance(item, dict):
                continue
            retailer_id = str(item.get("retailer_id", ""))
            qty = item.get("quantity")
            lines.append(
                OrderLine(
                    sku=skus.get(retailer_id) or retailer_id,
                    qty=qty if isinstance(qty, int) and not isinstance(qty, bool) else 0,
                    line_id=str(item.get("id", "")) or f"rid-{retailer_id}",
                )
            )
    return PlatformOrderEvent(
        platform=Platform.META,
        order_id=order_id,
        status=status,
        lines=lines,
        occurred_at=str(order.get("last_updated") or "") or None,
        delivery_id=f"pull:meta:{order_id}:{order.get('last_updated', '')}",
        shop=None,
        source_event=f"commerce_orders: {label}",
    )
