"""The TikTok Shop stand-in: its request-signature check pinned to TikTok's official vectors, every
refusal (app key, stale or malformed timestamp, forged sign, token, shop cipher, quantity range,
50-id cap) and every success (inventory update with partial errors, order detail, order search
over an update window), and the signed order notifications it sends."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from standins.base import LeakyBucket
from standins.signing import tiktok_request_sign
from standins.tiktok import TikTokStandIn
from tests.support.standins import Running, serving

APP_KEY, SECRET, TOKEN, CIPHER = "29a39d", "e59af819cc", "tts-token", "ROW_test"
PRODUCT, SKU, WAREHOUSE = "1729592969712207013", "1729592969712272549", "7068517275539719942"
UPDATE = f"/product/202309/products/{PRODUCT}/inventory/update"


def test_the_official_vector_without_a_body() -> None:
    sign = tiktok_request_sign(
        secret=SECRET, path="/authorization/202309/shops", params={"app_key": APP_KEY, "timestamp": "1623812664"}
    )
    assert sign == "b596b73e0cc6de07ac26f036364178ab16b0a907af13d43f0a0cd2345f582dc8"


def test_the_vector_with_a_body_and_that_sign_and_access_token_are_not_signed() -> None:
    body = b'{"skus":[{"id":"1729592969712272549","inventory":[{"warehouse_id":"7068517275539719942","quantity":5}]}]}'
    params = {"app_key": APP_KEY, "timestamp": "1623812664", "shop_cipher": CIPHER}
    expected = "ca033285e1d38c2624cba0f4ee45e71d96177647d8f677ea2d560aabc1cec9ec"
    assert (
        tiktok_request_sign(secret=SECRET, path=UPDATE, params=params, body=body, content_type="application/json")
        == expected
    )
    with_extras = params | {"sign": "anything", "access_token": "anything"}
    assert tiktok_request_sign(secret=SECRET, path=UPDATE, params=with_extras, body=body) == expected
    # multipart bodies are left out of the signature
    assert tiktok_request_sign(
        secret=SECRET, path=UPDATE, params=params, body=body, content_type="multipart/form-data; b=x"
    ) == (tiktok_request_sign(secret=SECRET, path=UPDATE, params=params))


@pytest.fixture(scope="module")
def shop() -> Iterator[Running]:
    with serving(TikTokStandIn(app_key=APP_KEY, app_secret=SECRET, access_token=TOKEN, shop_cipher=CIPHER)) as running:
        yield running


@pytest.fixture
def api(shop: Running) -> Running:
    shop.control("POST", "reset")
    seed = [
        {"product_id": PRODUCT, "sku_id": SKU, "seller_sku": "GLOW", "stock": {WAREHOUSE: 20}},
        {"product_id": PRODUCT, "sku_id": "s2", "seller_sku": "TINT", "stock": {"w1": 5, "w2": 5}},
        {"product_id": PRODUCT, "sku_id": "s3", "seller_sku": "OLD", "stock": {"w1": 5}, "status": "FREEZE"},
    ]
    shop.control("POST", "seed", {"skus": seed})
    return shop


def call(
    shop: Running,
    method: str,
    path: str,
    body: Any = None,
    *,
    params: dict[str, str] | None = None,
    timestamp: int | None = None,
    secret: str = SECRET,
    token: str = TOKEN,
    tamper: bool = False,
) -> httpx.Response:
    """A request signed as TikTok documents it (``tamper`` changes the body after signing)."""
    raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    query = {
        "app_key": APP_KEY,
        "timestamp": str(int(time.time()) if timestamp is None else timestamp),
        "shop_cipher": CIPHER,
    }
    query |= params or {}
    query["sign"] = tiktok_request_sign(
        secret=secret, path=path, params=query, body=raw, content_type="application/json"
    )
    if tamper:
        raw = raw.replace(b"5", b"6")
    headers = {"x-tts-access-token": token, "content-type": "application/json"}
    return httpx.request(method, f"{shop.url}{path}?{urlencode(query)}", content=raw, headers=headers)


def update(shop: Running, *skus: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return call(shop, "POST", UPDATE, {"skus": list(skus)}, **kwargs)


def stock_of(shop: Running, sku_id: str) -> dict[str, int]:
    return next(s["stock"] for s in shop.control("GET", "stock")["skus"] if s["sku_id"] == sku_id)


def test_a_signed_inventory_update_applies_absolute_quantities(api: Running) -> None:
    response = update(api, {"id": SKU, "inventory": [{"warehouse_id": WAREHOUSE, "quantity": 5}]})
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == 0 and body["message"] == "Success" and body["data"] == {} and body["request_id"]
    assert stock_of(api, SKU) == {WAREHOUSE: 5}
    # warehouse_id may be left out when the SKU has exactly one warehouse
    assert update(api, {"id": SKU, "inventory": [{"quantity": 0}]}).json()["code"] == 0
    assert stock_of(api, SKU) == {WAREHOUSE: 0}
    product = call(api, "GET", f"/product/202309/products/{PRODUCT}").json()["data"]
    assert {"id": SKU, "quantity": 0} == {
        "id": product["skus"][0]["id"],
        "quantity": product["skus"][0]["inventory"][0]["quantity"],
    }


def test_forged_stale_and_unauthorised_calls_are_refused_and_change_nothing(api: Running) -> None:
    good = {"id": SKU, "inventory": [{"warehouse_id": WAREHOUSE, "quantity": 5}]}
    cases = {
        "forged sign": update(api, good, secret="not-the-secret"),
        "body changed after signing": update(api, good, tamper=True),
        "stale timestamp": update(api, good, timestamp=int(time.time()) - 301),
        "future timestamp": update(api, good, timestamp=int(time.time()) + 301),
        "millisecond timestamp": update(api, good, timestamp=int(time.time() * 1000)),
        "wrong token": update(api, good, token="stolen"),
        "wrong shop": update(api, good, params={"shop_cipher": "ROW_other"}),
        "wrong app": update(api, good, params={"app_key": "other"}),
    }
    for name, response in cases.items():
        assert response.status_code in (400, 401), name
        body = response.json()
        assert body["code"] != 0 and body["message"] and body["request_id"] and body["data"] == {}, name
    assert cases["stale timestamp"].json()["code"] == cases["future timestamp"].json()["code"]
    assert stock_of(api, SKU) == {WAREHOUSE: 20}
    assert update(api, good, timestamp=int(time.time()) - 290).json()["code"] == 0  # inside the 5 minutes


def test_quantities_outside_the_documented_range_refuse_the_whole_call(api: Running) -> None:
    for bad in (-1, 99999, "5", 2.5, True):
        response = update(
            api,
            {"id": "s2", "inventory": [{"warehouse_id": "w1", "quantity": 1}]},
            {"id": SKU, "inventory": [{"quantity": bad}]},
        )
        assert response.status_code == 400 and response.json()["code"] != 0, bad
    assert stock_of(api, "s2") == {"w1": 5, "w2": 5}
    assert update(api, {"id": SKU, "inventory": [{"quantity": 99998}]}).json()["code"] == 0


def test_skus_that_cannot_be_updated_come_back_in_data_errors_and_the_rest_applies(api: Running) -> None:
    response = update(
        api,
        {"id": "s2", "inventory": [{"quantity": 1}]},  # two warehouses: warehouse_id is required
        {"id": "s3", "inventory": [{"quantity": 1}]},  # not live
        {"id": "nope", "inventory": [{"quantity": 1}]},
        {"id": SKU, "inventory": [{"warehouse_id": WAREHOUSE, "quantity": 3}]},
    )
    body = response.json()
    assert body["code"] == 0
    errors = {e["detail"]["sku_id"]: e for e in body["data"]["errors"]}
    assert set(errors) == {"s2", "s3", "nope"}
    assert errors["s2"]["detail"]["extra_errors"][0]["message"] == "warehouse_id is required"
    assert stock_of(api, SKU) == {WAREHOUSE: 3} and stock_of(api, "s3") == {"w1": 5}


def test_order_detail_takes_at_most_50_ids_and_lists_one_row_per_unit(api: Running) -> None:
    sold = api.control(
        "POST", "sell", {"lines": [{"seller_sku": "GLOW", "quantity": 2}, {"sku_id": "s2", "quantity": 1}]}
    )
    assert stock_of(api, SKU) == {WAREHOUSE: 18}
    ids = [sold["order_id"]] + [str(n) for n in range(49)]
    detail = call(api, "GET", "/order/202309/orders", params={"ids": ",".join(ids)}).json()
    [order] = detail["data"]["orders"]
    assert order["status"] == "AWAITING_SHIPMENT" and order["paid_time"]
    assert [row["sku_id"] for row in order["line_items"]] == [SKU, SKU, "s2"]
    assert all("quantity" not in row for row in order["line_items"])
    too_many = call(api, "GET", "/order/202309/orders", params={"ids": ",".join([*ids, "x"])})
    assert too_many.status_code == 400 and too_many.json()["code"] != 0
    assert call(api, "GET", "/order/202309/orders", params={"ids": ""}).status_code == 400


def test_a_combined_listing_row_takes_its_component_skus(api: Running) -> None:
    line = {"sku_id": SKU, "quantity": 2, "combined": [{"sku_id": "s2", "sku_count": 2}]}
    sold = api.control("POST", "sell", {"lines": [line]})
    order = call(api, "GET", "/order/202309/orders", params={"ids": sold["order_id"]}).json()["data"]["orders"][0]
    assert [r["combined_listing_skus"][0]["sku_count"] for r in order["line_items"]] == [2, 2]
    assert sum(stock_of(api, "s2").values()) == 6 and stock_of(api, SKU) == {WAREHOUSE: 20}


def test_search_pages_orders_by_update_time_window(api: Running) -> None:
    first = api.control("POST", "sell", {"lines": [{"sku_id": SKU, "quantity": 1}]})["order_id"]
    second = api.control("POST", "sell", {"lines": [{"sku_id": SKU, "quantity": 1}], "status": "UNPAID"})["order_id"]
    window = {"update_time_ge": int(time.time()) - 60, "update_time_lt": int(time.time()) + 60}
    page = call(api, "POST", "/order/202309/orders/search", window, params={"page_size": "1"}).json()["data"]
    assert page["total_count"] == 2 and len(page["orders"]) == 1 and page["next_page_token"]
    rest = call(
        api,
        "POST",
        "/order/202309/orders/search",
        window,
        params={"page_size": "1", "page_token": page["next_page_token"]},
    )
    assert rest.json()["data"]["next_page_token"] == ""
    assert {page["orders"][0]["id"], rest.json()["data"]["orders"][0]["id"]} == {first, second}
    none = call(
        api,
        "POST",
        "/order/202309/orders/search",
        {"update_time_ge": int(time.time()) + 60},
        params={"page_size": "10"},
    )
    assert none.json()["data"]["orders"] == []
    unpaid = call(api, "POST", "/order/202309/orders/search", {"order_status": "UNPAID"}, params={"page_size": "10"})
    assert [o["id"] for o in unpaid.json()["data"]["orders"]] == [second]
    assert call(api, "POST", "/order/202309/orders/search", {}, params={"page_size": "101"}).status_code == 400


def test_sales_and_cancels_send_signed_order_status_notifications(api: Running) -> None:
    refused = httpx.post(f"{api.url}/_standin/sell", json={"lines": [{"sku_id": SKU, "quantity": 21}]})
    assert refused.status_code == 409 and stock_of(api, SKU) == {WAREHOUSE: 20}
    sold = api.control("POST", "sell", {"lines": [{"sku_id": SKU, "quantity": 3}]})
    cancelled = api.control("POST", "cancel", {"order_id": sold["order_id"]})
    assert stock_of(api, SKU) == {WAREHOUSE: 20}
    for result, status in ((sold, "AWAITING_SHIPMENT"), (cancelled, "CANCEL")):
        delivery = result["delivery"]
        body = delivery["body"].encode()
        expected = hmac.new(SECRET.encode(), APP_KEY.encode() + body, hashlib.sha256).hexdigest()
        assert delivery["headers"]["Authorization"] == expected
        note = json.loads(body)
        assert note["type"] == 1 and note["tts_notification_id"]
        assert note["data"] == note["data"] | {"order_id": sold["order_id"], "order_status": status}
    order = call(api, "GET", "/order/202309/orders", params={"ids": sold["order_id"]}).json()["data"]["orders"][0]
    assert order["status"] == "CANCELLED" and order["cancel_time"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.recursive(
        st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=6),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(["skus", "id", "inventory", "quantity", "x"]), inner, max_size=3)
        ),
        max_leaves=10,
    )
)
def test_any_signed_body_gets_an_envelope_and_bad_ones_change_nothing(api: Running, body: Any) -> None:
    before = api.control("GET", "stock")
    response = update(api, body) if not isinstance(body, dict) else call(api, "POST", UPDATE, body)
    envelope = response.json()
    assert set(envelope) == {"code", "message", "request_id", "data"}
    if envelope["code"] != 0:
        assert api.control("GET", "stock") == before


def test_an_optional_request_rate_is_enforced_with_429() -> None:
    standin = TikTokStandIn(
        app_key=APP_KEY, app_secret=SECRET, access_token=TOKEN, shop_cipher=CIPHER, requests_per_second=2
    )
    standin.bucket = LeakyBucket(2, 0)  # no refill, so the test cannot depend on speed
    with serving(standin) as shop:
        shop.control("POST", "seed", {"skus": [{"product_id": PRODUCT, "sku_id": SKU, "stock": {WAREHOUSE: 1}}]})
        statuses = [update(shop, {"id": SKU, "inventory": [{"quantity": 2}]}).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert update(shop, {"id": SKU, "inventory": [{"quantity": 2}]}, secret="forged").status_code == 401


def test_bad_sales_are_400_and_take_nothing(api: Running) -> None:
    for body in (
        {"lines": [{"sku_id": SKU, "quantity": 1}], "status": ["AWAITING_SHIPMENT"]},
        {"lines": [{"sku_id": SKU, "quantity": 1}], "status": "CANCELLED"},
        {"lines": [{"sku_id": SKU, "quantity": 10**12}]},
        {"lines": [{"sku_id": SKU, "quantity": 1, "combined": [{"sku_id": "s2", "sku_count": "2"}]}]},
        {"lines": [{"sku_id": SKU, "quantity": 1, "warehouse_id": "elsewhere"}]},
    ):
        response = httpx.post(f"{api.url}/_standin/sell", json=body)
        assert response.status_code == 400, (body, response.text)
    assert stock_of(api, SKU) == {WAREHOUSE: 20} and api.control("GET", "deliveries") == {"deliveries": []}
