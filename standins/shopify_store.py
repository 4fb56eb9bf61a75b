"""The stand-in Shopify's storefront: cart permalinks and a checkout that "pays".

``GET /cart/<variant_id>:<qty>(,<variant_id>:<qty>)*?attributes[<name>]=<value>`` is Shopify's
legacy cart permalink (shopify.dev, "Create cart permalinks"): it opens a checkout with those
variants and quantities, and cart attributes given as ``attributes[...]`` query parameters carry
over to the order, whose webhook lists them as ``note_attributes``. Here the checkout is a page
with the items and a "Pay now" button; ``POST`` to the same URL places the order, paid, and sends
a signed ``orders/create`` webhook to the configured target, as Shopify would once the buyer pays.

Nothing is checked beyond what Shopify checks: a variant that does not exist is a 404, a quantity
beyond stock is refused (409), and the attributes are passed through as given.
"""

from __future__ import annotations

import html
import re
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from standins.base import Conflict


class Level(Protocol):
    """What the storefront reads of one of the shop's inventory levels."""

    @property
    def sku(self) -> str: ...
    @property
    def variant_id(self) -> str: ...


class Shop(Protocol):
    """What the storefront needs of the Shopify stand-in (standins/shopify.py), named here so the
    two modules do not import each other."""

    shop: str

    @property
    def levels(self) -> Any: ...

    async def place(self, picked: Any, note_attributes: list[dict[str, Any]]) -> dict[str, Any]: ...


_ITEMS = re.compile(r"^[0-9]{1,20}:[0-9]{1,6}(,[0-9]{1,20}:[0-9]{1,6}){0,24}$")
_ATTRIBUTE = re.compile(r"^attributes\[([^\[\]]{1,100})\]$")
MAX_ATTRIBUTE_VALUE = 1000


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>",
        status,
    )


def storefront_routes(shop: Shop) -> list[BaseRoute]:
    def parse(request: Request) -> tuple[list[tuple[tuple[str, str], Level, int]], list[dict[str, Any]]] | Response:
        items = request.path_params["items"]
        if not _ITEMS.fullmatch(items):
            return _page("Cart not found", "<p>This cart link is not valid.</p>", 404)
        picked = []
        for part in items.split(","):
            variant_id, qty = part.split(":")
            key = next((k for k, level in shop.levels.items() if level.variant_id == variant_id), None)
            if key is None or int(qty) < 1:
                return _page("Cart not found", "<p>This product is no longer available.</p>", 404)
            picked.append((key, shop.levels[key], int(qty)))
        notes = []
        for name, value in request.query_params.multi_items():
            found = _ATTRIBUTE.fullmatch(name)
            if found and len(value) <= MAX_ATTRIBUTE_VALUE:
                notes.append({"name": found.group(1), "value": value})
        return picked, notes

    async def cart(request: Request) -> Response:
        parsed = parse(request)
        if isinstance(parsed, Response):
            return parsed
        picked, _ = parsed
        rows = "".join(f"<li>{html.escape(level.sku)} x {qty}</li>" for _, level, qty in picked)
        action = html.escape(str(request.url.path) + ("?" + request.url.query if request.url.query else ""))
        return _page(
            f"Checkout · {shop.shop}",
            f'<ul id="items">{rows}</ul><form method="post" action="{action}">'
            '<button type="submit">Pay now</button></form>',
        )

    async def pay(request: Request) -> Response:
        parsed = parse(request)
        if isinstance(parsed, Response):
            return parsed
        picked, notes = parsed
        try:
            placed = await shop.place([(key, level, qty, None) for key, level, qty in picked], notes)
        except Conflict as exc:
            return _page("Sold out", f"<p>{html.escape(str(exc))}</p>", 409)
        order_id = placed["order_id"]
        delivered = placed["delivery"].get("status")
        return _page(
            "Thank you for your order",
            f'<p>Order <span id="order">{order_id}</span> is paid.</p>'
            f'<p class="muted" id="delivery">webhook answered {html.escape(str(delivered))}</p>',
        )

    return [Route("/cart/{items}", cart, methods=["GET"]), Route("/cart/{items}", pay, methods=["POST"])]
