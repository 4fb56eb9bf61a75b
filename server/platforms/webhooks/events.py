"""The one shape every platform's order webhook is normalised into.

The stock engine applies a ``PlatformOrderEvent`` without knowing which platform sent it:

* ``created`` / ``paid`` — a sale: each line takes ``qty`` units (confirming ``hold_ref`` when it names
  a live hold). Idempotent by ``(platform, order_id, line_id)``, so ``orders/create`` followed by
  ``orders/paid`` for the same order counts once.
* ``cancelled`` — restock the order. ``lines`` lists what to restock; an empty ``lines`` with
  ``needs_fetch == False`` means *the whole order*: the engine restocks every line it recorded for
  ``(platform, order_id)`` (TikTok Shop and WooCommerce deletions carry no lines, and need none).
* ``refunded`` — restock ``refund_lines`` (per-line quantities). Idempotent by
  ``(platform, order_id, refund_id, line_id)`` because one line can be refunded several times.
  A refund line with ``restock == False`` (the merchant kept no goods back) changes no stock.
* ``other`` — acknowledged and ignored (shipping progress, edits with no stock effect...).

Restocks are capped: the engine gives back at most the units it still counts sold (or oversold) for
``(platform, order_id, line_id)``. Platforms report one merchant action more than once — Shopify sends
``orders/cancelled`` *and* a ``refunds/create`` whose lines restock the same units — and the cap is what
keeps that from restocking twice.

``needs_fetch`` marks a *thin* notification (TikTok Shop, Meta): the platform told us the order changed
but not which lines, so the shell must read the order from the platform's API before the engine can
apply a sale. The event is still recorded first, so nothing is lost while the fetch is pending.
"""

from __future__ import annotations

import enum

import msgspec


class Platform(enum.StrEnum):
    SHOPIFY = "shopify"
    TIKTOK = "tiktok"
    META = "meta"
    WOOCOMMERCE = "woocommerce"
    STANDARD = "standard"


class OrderStatus(enum.StrEnum):
    CREATED = "created"
    PAID = "paid"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    OTHER = "other"

    @property
    def is_sale(self) -> bool:
        return self in (OrderStatus.CREATED, OrderStatus.PAID)

    @property
    def is_restock(self) -> bool:
        return self in (OrderStatus.CANCELLED, OrderStatus.REFUNDED)


class OrderLine(msgspec.Struct, kw_only=True):
    """One line of an order. ``line_id`` is the platform's own line id: the engine's idempotency key."""

    sku: str
    qty: int
    line_id: str
    hold_ref: str | None = None


class RefundLine(msgspec.Struct, kw_only=True):
    """Units of one order line given back by one refund.

    ``restock`` is False when the platform says the goods were not put back (Shopify ``no_restock``):
    the money went back but the units stay sold.
    """

    sku: str
    qty: int
    line_id: str
    restock: bool = True


class PlatformOrderEvent(msgspec.Struct, kw_only=True):
    """A platform order webhook, normalised. See the module docstring for what each status does."""

    platform: Platform
    order_id: str
    status: OrderStatus
    lines: list[OrderLine]
    occurred_at: str | None
    delivery_id: str
    shop: str | None
    refund_id: str | None = None
    refund_lines: list[RefundLine] = msgspec.field(default_factory=list)
    needs_fetch: bool = False
    source_event: str | None = None
    """The platform's own name for what happened (topic, type, state): for logs and reconciliation."""
