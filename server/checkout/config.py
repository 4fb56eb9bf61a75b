"""A show's checkout settings, as the host API takes them (``PUT /api/shows/{id}/checkout``).

One of three, told apart by ``platform``:

* ``shopify`` — ``store_url`` (the shop's domain, ``https://acme.myshopify.com``) and ``products``:
  unit → Shopify **variant** id (what a cart permalink names);
* ``woocommerce`` — ``store_url`` (the WordPress site, a path allowed) and ``products``: unit →
  WooCommerce product or variation id;
* ``custom`` — ``url_template``, the merchant's own checkout URL with placeholders ``{ref}``
  (required), ``{hold}``, ``{drop}``, ``{variant}``, ``{qty}``; that checkout then confirms the hold
  with ``POST /api/holds/{ref}/confirm``.

A *unit* is what stock is kept for: a drop (``d1``) or one of its variants (``shoe~s42``). URLs are
https; ``LIVEDROP_CHECKOUT_ALLOW_HTTP`` allows http for a store on the local machine (the stand-in).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec

Unit = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}(~[A-Za-z][A-Za-z0-9_-]{0,31})?$")]
PlatformId = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,20}$")]
Products = Annotated[dict[Unit, PlatformId], msgspec.Meta(max_length=10_000)]
StoreUrl = Annotated[str, msgspec.Meta(min_length=8, max_length=500)]
PLACEHOLDERS = frozenset({"ref", "hold", "drop", "variant", "qty"})
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# Scheme and host written out before any placeholder: a placeholder can never choose the host.
_HOST = re.compile(r"[A-Za-z0-9.:-]{1,253}")  # a DNS name or an IP address (IPv6 without its brackets)
_FIXED_ORIGIN = re.compile(r"^https?://[^/?#{}@\s]+[/?#]")


class ShopifyCheckout(msgspec.Struct, tag="shopify", tag_field="platform", forbid_unknown_fields=True, frozen=True):
    store_url: StoreUrl
    products: Products


class WooCommerceCheckout(
    msgspec.Struct, tag="woocommerce", tag_field="platform", forbid_unknown_fields=True, frozen=True
):
    store_url: StoreUrl
    products: Products


class CustomCheckout(msgspec.Struct, tag="custom", tag_field="platform", forbid_unknown_fields=True, frozen=True):
    url_template: Annotated[str, msgspec.Meta(min_length=10, max_length=2000)]


CheckoutSettings = ShopifyCheckout | WooCommerceCheckout | CustomCheckout
Platform = Literal["shopify", "woocommerce", "custom"]


class CheckoutInvalid(ValueError):
    """Settings msgspec accepts but LiveDrop does not (an http URL, a placeholder in the host…)."""


def _check_url(url: str, allow_http: bool, what: str) -> None:
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise CheckoutInvalid(f"{what} must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        raise CheckoutInvalid(f"{what} is not a URL") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise CheckoutInvalid(
            f"{what} must be an https URL" + ("" if allow_http else " (http is for local stores only)")
        )
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise CheckoutInvalid(f"{what} must name a host, without a user name or password")
    if not _HOST.fullmatch(parts.hostname):
        raise CheckoutInvalid(f"{what} has a host name with characters no host name has")


def validate(settings: CheckoutSettings, allow_http: bool) -> CheckoutSettings:
    """``settings`` if LiveDrop can build links from them, else ``CheckoutInvalid`` saying why."""
    match settings:
        case ShopifyCheckout(store_url=url) | WooCommerceCheckout(store_url=url):
            _check_url(url, allow_http, "store_url")
            parts = urlsplit(url)
            if parts.query or parts.fragment:
                raise CheckoutInvalid("store_url must have no query or fragment")
            if isinstance(settings, ShopifyCheckout) and parts.path not in ("", "/"):
                raise CheckoutInvalid("store_url of a Shopify store is the shop's address, with no path")
        case CustomCheckout(url_template=template):
            names = _PLACEHOLDER.findall(template)
            unknown = sorted(set(names) - PLACEHOLDERS)
            if unknown:
                raise CheckoutInvalid(f"unknown placeholder(s) {unknown}; known: {sorted(PLACEHOLDERS)}")
            if "ref" not in names:
                raise CheckoutInvalid("url_template must carry {ref}: the checkout confirms the hold by it")
            if "{" in _PLACEHOLDER.sub("", template) or "}" in _PLACEHOLDER.sub("", template):
                raise CheckoutInvalid("url_template has an unmatched brace")
            if not _FIXED_ORIGIN.match(template):
                raise CheckoutInvalid("url_template must start with a fixed scheme and host, then a / or ?")
            _check_url(_PLACEHOLDER.sub("x", template), allow_http, "url_template")
    return settings
