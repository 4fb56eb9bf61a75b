"""The stand-in WooCommerce store's front: add-to-cart links, a cart kept in the visitor's session,
and a checkout whose "Place order" creates the order and sends its ``order.created`` webhook.

``GET /?add-to-cart=<id>&quantity=<n>`` is WooCommerce's own add-to-cart link: the product (or
variation) goes into the cart of the visitor's session (a cookie), and the visitor is sent on to
the checkout, as a store set to "redirect to the cart page after successful addition" does.

The store also runs LiveDrop's documented snippet (docs/checkout.md, "WooCommerce"): a
``livedrop_hold`` parameter that matches the snippet's pattern is kept in the session, and "Place
order" writes it on the order as the meta ``livedrop_hold`` (order meta, not line meta: that is
where ``$order->update_meta_data`` puts it), then forgets it. A later link replaces the reference
of an earlier one, as the session keeps one value. The pattern is copied here rather than imported:
the stand-in plays a merchant's site, which knows LiveDrop only through its documentation.

"Place order" checks the session's nonce (WooCommerce's ``woocommerce-process-checkout-nonce``),
refuses an empty cart, and refuses stock the store does not have (409, nothing taken).
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from standins.base import Conflict

SESSION_COOKIE = "wp_woocommerce_session_standin"
NONCE_FIELD = "woocommerce-process-checkout-nonce"
HOLD_PARAM = "livedrop_hold"
HOLD_PATTERN = re.compile(
    r"[A-Za-z0-9_-]{1,64}(~[A-Za-z][A-Za-z0-9_-]{0,31})?\.[0-9]{1,18}\.[0-9a-f]{32}\.[A-Za-z0-9_-]{22}"
)
"""The snippet's ``LIVEDROP_HOLD_PATTERN`` without its anchors (matched whole here)."""
MAX_QUANTITY = 100_000
_DIGITS = re.compile(r"[0-9]{1,18}")
"""ASCII digits only: ``str.isdigit`` also takes "²", which ``int`` then refuses."""
MAX_SESSIONS = 10_000
"""Carts kept at most; the oldest is forgotten first, so a test that opens many never grows the
stand-in without bound."""


class Item(Protocol):
    """What the store reads of one of the site's products or variations."""

    @property
    def id(self) -> int: ...
    @property
    def sku(self) -> str: ...


class Site(Protocol):
    """What the store needs of the WooCommerce stand-in (standins/woocommerce.py), named here so
    the two modules do not import each other."""

    site: str

    @property
    def products(self) -> Any: ...

    def place(self, picked: list[tuple[Any, int]], meta_data: list[dict[str, Any]]) -> Awaitable[dict[str, Any]]: ...


@dataclass
class Session:
    """One visitor's cart (product id → quantity), checkout nonce and kept hold reference."""

    nonce: str = field(default_factory=lambda: secrets.token_hex(5))
    cart: dict[int, int] = field(default_factory=dict)
    hold: str = ""


class Sessions:
    """Visitors' sessions by cookie value."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}

    def find(self, request: Request) -> Session | None:
        return self._by_id.get(request.cookies.get(SESSION_COOKIE, ""))

    def open(self, request: Request) -> tuple[str, Session]:
        """The visitor's session, or a new one (its id then has to be set as the cookie)."""
        sid = request.cookies.get(SESSION_COOKIE, "")
        found = self._by_id.get(sid)
        if found is not None:
            return sid, found
        while len(self._by_id) >= MAX_SESSIONS:
            del self._by_id[next(iter(self._by_id))]
        sid = secrets.token_hex(16)
        self._by_id[sid] = Session()
        return sid, self._by_id[sid]

    def clear(self) -> None:
        self._by_id.clear()


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>",
        status,
    )


def _quantity(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return 1
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_QUANTITY:
        return None
    return int(raw)


def storefront_routes(site: Site, sessions: Sessions) -> list[BaseRoute]:
    async def home(request: Request) -> Response:
        wanted = request.query_params.get("add-to-cart")
        if wanted is None:
            return _page("Shop", '<p><a href="/checkout/">Checkout</a></p>')
        qty = _quantity(request.query_params.get("quantity"))
        product = site.products.get(int(wanted)) if _DIGITS.fullmatch(wanted) else None
        if product is None or qty is None:
            # WooCommerce shows a notice on the page it was asked for, and adds nothing.
            return _page("Shop", '<p class="woocommerce-error">Sorry, this product cannot be purchased.</p>', 404)
        sid, session = sessions.open(request)
        # The snippet (docs/checkout.md) runs on wp_loaded before WooCommerce's own add-to-cart handler,
        # which may redirect and exit: keep a reference that has the documented shape, drop anything else.
        ref = request.query_params.get(HOLD_PARAM, "")
        if HOLD_PATTERN.fullmatch(ref):
            session.hold = ref
        session.cart[product.id] = session.cart.get(product.id, 0) + qty
        response = RedirectResponse("/checkout/", 302)
        response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="lax")
        return response

    async def checkout(request: Request) -> Response:
        session = sessions.find(request)
        if session is None or not session.cart:
            return _page("Checkout", '<p class="woocommerce-info">Your cart is currently empty.</p>')
        rows = "".join(
            f"<li>{html.escape(site.products[pid].sku)} x {qty}</li>"
            for pid, qty in session.cart.items()
            if pid in site.products
        )
        return _page(
            "Checkout",
            f'<ul id="items">{rows}</ul><form method="post" action="/checkout/">'
            f'<input type="hidden" name="{NONCE_FIELD}" value="{session.nonce}">'
            '<button type="submit">Place order</button></form>',
        )

    async def place_order(request: Request) -> Response:
        session = sessions.find(request)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        if session is None or form.get(NONCE_FIELD) != [session.nonce]:
            return _page("Checkout", '<p class="woocommerce-error">We were unable to process your order.</p>', 403)
        picked = [(site.products[pid], qty) for pid, qty in session.cart.items() if pid in site.products]
        if not picked:
            return _page("Checkout", '<p class="woocommerce-info">Your cart is currently empty.</p>', 400)
        meta = [{"key": HOLD_PARAM, "value": session.hold}] if session.hold else []
        try:
            placed = await site.place(picked, meta)
        except Conflict as exc:
            return _page("Checkout", f'<p class="woocommerce-error">{html.escape(str(exc))}</p>', 409)
        session.cart.clear()
        session.hold = ""
        delivered = placed["delivery"].get("status")
        return _page(
            "Order received",
            f'<p>Thank you. Your order has been received.</p><p>Order number: <span id="order">{placed["order_id"]}'
            f'</span></p><p class="muted" id="delivery">webhook answered {html.escape(str(delivered))}</p>',
        )

    return [
        Route("/", home, methods=["GET"]),
        Route("/checkout/", checkout, methods=["GET"]),
        Route("/checkout/", place_order, methods=["POST"]),
    ]
