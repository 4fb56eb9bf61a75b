"""Checkout links and settings, pure: every value lands in the link percent-encoded, so nothing a
reference or an id contains can add a parameter or change the host; settings LiveDrop cannot
build safe links from are refused. Property-based, with hypothesis."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.checkout.config import (
    CheckoutInvalid,
    CheckoutSettings,
    CustomCheckout,
    ShopifyCheckout,
    WooCommerceCheckout,
    validate,
)
from server.checkout.links import checkout_url

texts = st.text(min_size=1, max_size=40)
drop_ids = st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)
variants = st.one_of(st.just(""), st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,10}", fullmatch=True))


@given(drop=drop_ids, variant=variants, qty=st.integers(1, 999), hold=texts, ref=texts)
def test_values_never_escape_their_parameter(drop: str, variant: str, qty: int, hold: str, ref: str) -> None:
    unit = f"{drop}~{variant}" if variant else drop
    shopify = ShopifyCheckout(store_url="https://acme.myshopify.com", products={unit: "123"})
    link = urlsplit(checkout_url(shopify, drop, variant, qty, hold, ref))
    assert (link.netloc, link.path) == ("acme.myshopify.com", f"/cart/123:{qty}")
    assert parse_qs(link.query, keep_blank_values=True) == {"attributes[livedrop_hold]": [ref]}

    woo = WooCommerceCheckout(store_url="https://shop.example/store", products={unit: "77"})
    link = urlsplit(checkout_url(woo, drop, variant, qty, hold, ref))
    assert (link.netloc, link.path) == ("shop.example", "/store/")
    assert parse_qs(link.query, keep_blank_values=True) == {
        "add-to-cart": ["77"],
        "quantity": [str(qty)],
        "livedrop_hold": [ref],
    }

    custom = CustomCheckout(url_template="https://pay.example/h/{hold}/{variant}?r={ref}&d={drop}&q={qty}")
    link = urlsplit(checkout_url(custom, drop, variant, qty, hold, ref))
    assert link.netloc == "pay.example"
    assert [unquote(p) for p in link.path.split("/")[3:]] == [variant] and unquote(link.path.split("/")[2]) == hold
    assert parse_qs(link.query, keep_blank_values=True) == {"r": [ref], "d": [drop], "q": [str(qty)]}


def test_no_link_without_a_product_id_or_a_reference() -> None:
    shopify = ShopifyCheckout(store_url="https://acme.myshopify.com", products={"d1": "1"})
    assert checkout_url(shopify, "d2", "", 1, "d2.1", "ref") == ""
    assert checkout_url(shopify, "d1", "S", 1, "d1~S.1", "ref") == ""  # the variant is not mapped
    assert checkout_url(shopify, "d1", "", 1, "d1.1", "") == ""


@pytest.mark.parametrize(
    "settings",
    [
        ShopifyCheckout(store_url="http://acme.myshopify.com", products={}),
        WooCommerceCheckout(store_url="http://shop.example/", products={}),
        CustomCheckout(url_template="http://pay.example/?r={ref}"),
    ],
)
def test_http_only_when_allowed(settings: CheckoutSettings) -> None:
    with pytest.raises(CheckoutInvalid, match="https"):
        validate(settings, allow_http=False)
    assert validate(settings, allow_http=True) is settings


@given(template=st.text(max_size=80))
def test_any_template_is_refused_or_keeps_its_host(template: str) -> None:
    try:
        validate(CustomCheckout(url_template=template), allow_http=False)
    except CheckoutInvalid:
        return
    host = urlsplit(template).hostname
    link = checkout_url(CustomCheckout(url_template=template), "d1", "v-1", 2, "d1.1", "a/b?c=d&e#f{ref}")
    assert urlsplit(link).scheme == "https" and urlsplit(link).hostname == host


@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_decoding_settings_raises_only_validation_errors(raw: bytes) -> None:
    try:
        settings = msgspec.json.decode(raw, type=CheckoutSettings)
    except msgspec.DecodeError:
        return
    try:
        validate(settings, allow_http=False)
    except CheckoutInvalid:
        pass
