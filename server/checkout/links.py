"""Checkout links, from a show's settings and one hold: pure string building.

Values go into URLs percent-encoded (``quote(..., safe="")``), so nothing a unit, a hold or a
reference contains can end a parameter or start another. A unit with no product id configured
gets no link (""): the viewer page then shows no checkout button, and the host sees the gap in
``GET /api/shows/{id}/checkout``.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlencode

from server.checkout.config import CheckoutSettings, CustomCheckout, ShopifyCheckout, WooCommerceCheckout
from stock.keys import unit_id

HOLD_PARAM = "livedrop_hold"
"""What the platforms' webhooks carry the reference under (server/platforms/webhooks/normalize.py)."""
_PLACEHOLDER = re.compile(r"\{(ref|hold|drop|variant|qty)\}")


def checkout_url(settings: CheckoutSettings, drop_id: str, variant: str, qty: int, hold_id: str, hold_ref: str) -> str:
    """The link that takes the holder of ``hold_ref`` to pay for it, or "" when there is none."""
    if not hold_ref:
        return ""
    unit = unit_id(drop_id, variant)
    match settings:
        case ShopifyCheckout(store_url=store, products=products):
            product = products.get(unit)
            if product is None:
                return ""
            # A cart permalink: the cart attribute reaches the order, and its webhook, as a note attribute.
            query = urlencode({f"attributes[{HOLD_PARAM}]": hold_ref})
            return f"{store.rstrip('/')}/cart/{product}:{qty}?{query}"
        case WooCommerceCheckout(store_url=store, products=products):
            product = products.get(unit)
            if product is None:
                return ""
            base = store if store.endswith("/") else store + "/"
            return base + "?" + urlencode({"add-to-cart": product, "quantity": qty, HOLD_PARAM: hold_ref})
        case CustomCheckout(url_template=template):
            values = {"ref": hold_ref, "hold": hold_id, "drop": drop_id, "variant": variant, "qty": str(qty)}
            return _PLACEHOLDER.sub(lambda m: quote(values[m.group(1)], safe=""), template)
    return ""
