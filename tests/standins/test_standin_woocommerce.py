"""The WooCommerce stand-in: Basic (or query-string) consumer-key auth, absolute stock on products
and variations, the 100-item batch cap answered 413, per-item batch errors, backorders, and the
``wp_json_encode``-shaped order webhooks it signs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from standins.woocommerce import WooCommerceStandIn
from standins.woocommerce_store import HOLD_PATTERN
from tests.support.paths import ROOT
from tests.support.standins import Running, serving

KEY, SECRET, HOOK = "ck_test", "cs_test", "woo,secret; with punctuation"
API = "/wp-json/wc/v3"


@pytest.fixture(scope="module")
def site() -> Iterator[Running]:
    with serving(WooCommerceStandIn(consumer_key=KEY, consumer_secret=SECRET, webhook_secret=HOOK)) as running:
        yield running


@pytest.fixture
def api(site: Running) -> Running:
    site.control("POST", "reset")
    products = [
        {"id": 10, "sku": "GLOW", "stock_quantity": 8},
        {"id": 20, "sku": "", "stock_quantity": 0},
        {"id": 21, "parent_id": 20, "sku": "TINT-RED", "stock_quantity": 3},
        {"id": 30, "sku": "PRE", "stock_quantity": 0, "backorders": "notify"},
    ]
    site.control("POST", "seed", {"products": products})
    return site


def client(site: Running, key: str = KEY, secret: str = SECRET) -> httpx.Client:
    return httpx.Client(base_url=site.url + API, auth=(key, secret))


def stock(site: Running) -> dict[int, int]:
    return {p["id"]: p["stock_quantity"] for p in site.control("GET", "stock")["products"]}


def test_products_and_variations_take_an_absolute_stock_quantity(api: Running) -> None:
    with client(api) as woo:
        product = woo.put("/products/10", json={"manage_stock": True, "stock_quantity": 5})
        assert product.status_code == 200 and product.json()["stock_quantity"] == 5
        variation = woo.put("/products/20/variations/21", json={"stock_quantity": 0})
        assert variation.json() | {"stock_status": "outofstock", "type": "variation"} == variation.json()
        assert woo.get("/products/21").status_code == 404  # a variation lives under its parent
        assert woo.get("/products/20/variations/10").status_code == 404
        assert (
            woo.put("/products/99", json={"stock_quantity": 1}).json()["code"] == "woocommerce_rest_product_invalid_id"
        )
        bad = woo.put("/products/10", json={"stock_quantity": "5"})
        assert bad.status_code == 400 and bad.json()["code"] == "rest_invalid_param"
    assert stock(api) == {10: 5, 20: 0, 21: 0, 30: 0}


def test_wrong_or_missing_credentials_are_refused(api: Running) -> None:
    with client(api, secret="cs_forged") as woo:
        refused = woo.put("/products/10", json={"stock_quantity": 1})
        assert refused.status_code == 401
        assert refused.json() == {
            "code": "woocommerce_rest_authentication_error",
            "message": "Consumer secret is invalid.",
            "data": {"status": 401},
        }
    with client(api, key="ck_other") as woo:
        assert woo.get("/products/10").json()["message"] == "Consumer key is invalid."
    anonymous = httpx.get(f"{api.url}{API}/products/10")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "woocommerce_rest_cannot_view"
    by_query = httpx.get(f"{api.url}{API}/products/10", params={"consumer_key": KEY, "consumer_secret": SECRET})
    assert by_query.status_code == 200
    assert stock(api)[10] == 8


def test_a_batch_over_100_items_is_refused_with_413_and_nothing_applied(api: Running) -> None:
    with client(api) as woo:
        updates = [{"id": 10, "stock_quantity": n} for n in range(100)]
        over = woo.post("/products/batch", json={"update": updates, "delete": [99]})
        assert over.status_code == 413
        assert over.json()["code"] == "woocommerce_rest_request_entity_too_large"
        assert stock(api)[10] == 8
        ok = woo.post("/products/batch", json={"update": updates})
        assert ok.status_code == 200 and len(ok.json()["update"]) == 100
    assert stock(api)[10] == 99


def test_batch_items_fail_one_by_one(api: Running) -> None:
    with client(api) as woo:
        body = {
            "update": [
                {"id": 10, "stock_quantity": 1},
                {"id": 404, "stock_quantity": 1},
                {"id": 21, "stock_quantity": 2},
            ]
        }
        answer = woo.post("/products/batch", json=body).json()["update"]
        assert answer[0]["stock_quantity"] == 1
        assert answer[1]["error"]["code"] == "woocommerce_rest_product_invalid_id"
        assert answer[2]["error"]["code"] == "woocommerce_rest_product_invalid_id"  # a variation: use its own batch
        variations = woo.post("/products/20/variations/batch", json={"update": [{"id": 21, "stock_quantity": 2}]})
        assert variations.json()["update"][0]["stock_quantity"] == 2
    assert stock(api) == {10: 1, 20: 0, 21: 2, 30: 0}


def test_sales_respect_stock_or_backorders_and_send_signed_webhooks(api: Running) -> None:
    refused = httpx.post(f"{api.url}/_standin/sell", json={"lines": [{"sku": "TINT-RED", "quantity": 4}]})
    assert refused.status_code == 409 and stock(api)[21] == 3
    backorder = api.control("POST", "sell", {"lines": [{"sku": "PRE", "quantity": 2}]})
    assert stock(api)[30] == -2
    sold = api.control("POST", "sell", {"lines": [{"sku": "TINT-RED", "quantity": 2, "hold": "d1.3"}]})
    assert stock(api)[21] == 1
    cancelled = api.control("POST", "cancel", {"order_id": sold["order_id"]})
    assert stock(api)[21] == 3
    for result, topic, status in ((sold, "order.created", "processing"), (cancelled, "order.updated", "cancelled")):
        delivery = result["delivery"]
        raw = delivery["body"].encode()
        expected = base64.b64encode(hmac.new(HOOK.encode(), raw, hashlib.sha256).digest()).decode()
        assert delivery["headers"]["X-WC-Webhook-Signature"] == expected
        assert delivery["headers"]["X-WC-Webhook-Topic"] == topic
        order = json.loads(raw)
        assert order["status"] == status
        [line] = order["line_items"]
        assert (line["product_id"], line["variation_id"], line["sku"], line["quantity"]) == (20, 21, "TINT-RED", 2)
        assert line["meta_data"][0]["key"] == "livedrop_hold"
    assert json.loads(backorder["delivery"]["body"])["line_items"][0]["variation_id"] == 0


def test_webhook_bodies_escape_slashes_and_non_ascii_like_wp_json_encode(api: Running) -> None:
    api.control("POST", "seed", {"products": [{"id": 40, "sku": "CAFÉ/1", "stock_quantity": 1}]})
    raw = api.control("POST", "sell", {"lines": [{"product_id": 40, "quantity": 1}]})["delivery"]["body"]
    assert '"CAF\\u00c9\\/1"' in raw
    assert json.loads(raw)["line_items"][0]["sku"] == "CAFÉ/1"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.dictionaries(
        st.sampled_from(["create", "update", "delete", "x"]),
        st.lists(
            st.none()
            | st.integers(-5, 50)
            | st.dictionaries(
                st.sampled_from(["id", "stock_quantity", "manage_stock"]),
                st.none() | st.integers(-3, 30) | st.text(max_size=3),
            ),
            max_size=4,
        )
        | st.text(max_size=3),
    )
)
def test_any_batch_body_gets_a_woocommerce_answer(api: Running, body: dict[str, Any]) -> None:
    with client(api) as woo:
        response = woo.post("/products/batch", json=body)
    assert response.status_code in (200, 400)
    answer = response.json()
    if response.status_code == 400:
        assert set(answer) == {"code", "message", "data"}
    else:
        assert set(answer) <= {"create", "update", "delete"}


REF = "d1~s42.7." + "0f" * 16 + "." + "A" * 22


def place_order(browser: httpx.Client) -> httpx.Response:
    """Press "Place order" on the checkout page the browser is on, with the page's own nonce."""
    page = browser.get("/checkout/")
    nonce = re.search(r'name="woocommerce-process-checkout-nonce" value="([0-9a-f]+)"', page.text)
    assert nonce is not None, page.text
    return browser.post("/checkout/", data={"woocommerce-process-checkout-nonce": nonce.group(1)})


def test_the_storefront_keeps_the_hold_of_an_add_to_cart_link_in_the_session_and_writes_it_on_the_order(
    api: Running,
) -> None:
    with httpx.Client(base_url=api.url, follow_redirects=True) as browser:
        added = browser.get("/", params={"add-to-cart": 21, "quantity": 2, "livedrop_hold": REF})
        assert added.url.path == "/checkout/" and "TINT-RED x 2" in added.text and "Place order" in added.text
        forged = browser.post("/checkout/", data={"woocommerce-process-checkout-nonce": "0"})
        assert forged.status_code == 403 and stock(api)[21] == 3
        placed = place_order(browser)
        assert placed.status_code == 200 and "Your order has been received" in placed.text
        assert "Your cart is currently empty" in browser.get("/checkout/").text
    [delivery] = api.control("GET", "deliveries")["deliveries"]
    order = json.loads(delivery["body"])
    # Order meta, where the documented snippet's $order->update_meta_data() puts it.
    assert [(m["key"], m["value"]) for m in order["meta_data"]] == [("livedrop_hold", REF)]
    [line] = order["line_items"]
    assert (line["product_id"], line["variation_id"], line["quantity"], line["meta_data"]) == (20, 21, 2, [])
    assert stock(api)[21] == 1

    # A value that is not a reference is dropped by the snippet; the order carries no meta.
    with httpx.Client(base_url=api.url, follow_redirects=True) as browser:
        browser.get("/", params={"add-to-cart": 10, "livedrop_hold": REF + "<script>"})
        assert place_order(browser).status_code == 200
    assert json.loads(api.control("GET", "deliveries")["deliveries"][-1]["body"])["meta_data"] == []


def test_the_storefront_refuses_unknown_products_bad_quantities_and_stock_it_lacks(api: Running) -> None:
    with httpx.Client(base_url=api.url, follow_redirects=True) as browser:
        refusals: list[dict[str, str | int]] = [
            {"add-to-cart": 99},
            {"add-to-cart": "x"},
            {"add-to-cart": 10, "quantity": "0"},
        ]
        for params in refusals:
            refused = browser.get("/", params=params)
            assert refused.status_code == 404 and "cannot be purchased" in refused.text
        assert "Your cart is currently empty" in browser.get("/checkout/").text
        browser.get("/", params={"add-to-cart": 21, "quantity": 4})
        short = place_order(browser)
        assert short.status_code == 409 and "not enough stock" in short.text
    assert stock(api)[21] == 3 and api.control("GET", "deliveries")["deliveries"] == []


def test_the_storefront_pattern_is_the_documented_snippets() -> None:
    """The stand-in plays a store running docs/checkout.md's snippet: both must read references alike."""
    doc = (ROOT / "docs" / "checkout.md").read_text(encoding="utf-8")
    found = re.search(r"const LIVEDROP_HOLD_PATTERN = '/\^(.+)\$/';", doc)
    assert found is not None and found.group(1) == HOLD_PATTERN.pattern


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    params=st.dictionaries(
        st.sampled_from(["add-to-cart", "quantity", "livedrop_hold", "x"]),
        st.text(max_size=30) | st.integers(-5, 10**20).map(str),
        max_size=4,
    ),
    form=st.binary(max_size=60),
    cookie=st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=';,\\"'), max_size=40),
)
@example(params={"add-to-cart": "²"}, form=b"", cookie="")
@example(params={"add-to-cart": "10", "quantity": "²"}, form=b"\xff=%", cookie="x")
def test_the_storefront_answers_any_link_form_or_cookie_without_a_server_error(
    api: Running, params: dict[str, str], form: bytes, cookie: str
) -> None:
    cookies = {"wp_woocommerce_session_standin": cookie} if cookie else {}
    with httpx.Client(base_url=api.url, cookies=cookies) as browser:
        added = browser.get("/", params=params)
        assert added.status_code in (200, 302, 404), added.text
        placed = browser.post("/checkout/", content=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert placed.status_code in (200, 400, 403, 409), placed.text
        assert browser.get("/checkout/").status_code == 200
