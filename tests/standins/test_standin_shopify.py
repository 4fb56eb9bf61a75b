"""The Shopify stand-in over real HTTP: what it accepts and everything it refuses (token, version,
``@idempotent``, ``changeFromQuantity``, stale compare values, 250-item inputs, query cost,
throttling), with nothing half-applied, and the order webhooks it signs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from graphql import parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from standins.shopify import ShopifyStandIn
from standins.shopify_schema import query_cost, schema_for
from tests.support.standins import Running, serving

TOKEN = "shpat_test"
ITEM = "gid://shopify/InventoryItem/1"
LOCATION = "gid://shopify/Location/9"
SET = """
mutation Set($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { reason changes(quantityNames: ["available"]) { name delta quantityAfterChange } }
    userErrors { code field message }
  }
}"""
SET_UNKEYED = SET.replace("@idempotent(key: $key) ", "").replace(", $key: String!", "")
READ = """
query Read($item: ID!, $location: ID!) {
  inventoryItem(id: $item) {
    sku
    inventoryLevel(locationId: $location) { quantities(names: ["available", "on_hand"]) { name quantity } }
  }
}"""


@pytest.fixture(scope="module")
def shop() -> Iterator[Running]:
    with serving(ShopifyStandIn(access_token=TOKEN, webhook_secret="hook-secret")) as running:
        yield running


@pytest.fixture
def api(shop: Running) -> Running:
    shop.control("POST", "reset")
    shop.control(
        "POST", "seed", {"items": [{"inventory_item_id": 1, "location_id": 9, "sku": "GLOW", "available": 10}]}
    )
    return shop


def post(
    shop: Running, query: str, variables: dict[str, Any] | None = None, *, version: str = "2026-04", token: str = TOKEN
) -> httpx.Response:
    return httpx.post(
        f"{shop.url}/admin/api/{version}/graphql.json",
        json={"query": query, "variables": variables or {}},
        headers={"X-Shopify-Access-Token": token},
    )


def quantity(qty: int, **extra: Any) -> dict[str, Any]:
    return {"inventoryItemId": ITEM, "locationId": LOCATION, "quantity": qty, **extra}


def set_vars(*quantities: dict[str, Any], key: str = "k1", **input_extra: Any) -> dict[str, Any]:
    return {
        "input": {"name": "available", "reason": "correction", "quantities": list(quantities), **input_extra},
        "key": key,
    }


def available(shop: Running) -> int:
    data = post(shop, READ, {"item": ITEM, "location": LOCATION}).json()["data"]
    quantities = data["inventoryItem"]["inventoryLevel"]["quantities"]
    return int(next(q["quantity"] for q in quantities if q["name"] == "available"))


def user_errors(response: httpx.Response) -> list[str]:
    return [e["code"] for e in response.json()["data"]["inventorySetQuantities"]["userErrors"]]


def test_a_compare_and_swap_set_applies_and_reports_its_cost(api: Running) -> None:
    response = post(api, SET, set_vars(quantity(7, changeFromQuantity=10)))
    assert response.status_code == 200
    body = response.json()
    assert body["data"]["inventorySetQuantities"] == {
        "inventoryAdjustmentGroup": {
            "reason": "correction",
            "changes": [{"name": "available", "delta": -3, "quantityAfterChange": 7}],
        },
        "userErrors": [],
    }
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == cost["actualQueryCost"] == 13  # mutation 10 + three objects
    assert cost["throttleStatus"]["maximumAvailable"] == 1000.0 and cost["throttleStatus"]["restoreRate"] == 100.0
    assert available(api) == 7


def test_a_stale_change_from_quantity_is_a_user_error_and_changes_nothing(api: Running) -> None:
    response = post(api, SET, set_vars(quantity(7, changeFromQuantity=9)))
    assert response.json()["data"]["inventorySetQuantities"]["userErrors"] == [
        {
            "code": "CHANGE_FROM_QUANTITY_STALE",
            "field": ["input", "quantities", "0", "changeFromQuantity"],
            "message": "The changeFromQuantity value does not match persisted value.",
        }
    ]
    assert available(api) == 10


def test_one_bad_quantity_leaves_the_others_unapplied(api: Running) -> None:
    api.control("POST", "seed", {"items": [{"inventory_item_id": 2, "location_id": 9, "sku": "TINT", "available": 4}]})
    other = {
        "inventoryItemId": "gid://shopify/InventoryItem/2",
        "locationId": LOCATION,
        "quantity": 1,
        "changeFromQuantity": 3,
    }
    response = post(api, SET, set_vars(quantity(5, changeFromQuantity=10), other))
    assert user_errors(response) == ["CHANGE_FROM_QUANTITY_STALE"]
    assert available(api) == 10


def test_null_change_from_quantity_opts_out_of_the_check(api: Running) -> None:
    assert user_errors(post(api, SET, set_vars(quantity(3, changeFromQuantity=None)))) == []
    assert available(api) == 3


def test_a_missing_change_from_quantity_is_refused_from_2026_04(api: Running) -> None:
    body = post(api, SET, set_vars(quantity(3))).json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "changeFromQuantity" in body["errors"][0]["message"]
    assert available(api) == 10


def test_a_mutation_without_idempotent_is_refused_from_2026_04(api: Running) -> None:
    variables = set_vars(quantity(3, changeFromQuantity=10))
    del variables["key"]
    body = post(api, SET_UNKEYED, variables).json()
    assert body["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_KEY_REQUIRED"
    assert body["data"] == {"inventorySetQuantities": None}
    assert available(api) == 10
    # 2026-01 takes it without a key (optional there), with the old compare pair.
    old = post(api, SET_UNKEYED, {"input": set_vars(quantity(3, compareQuantity=10))["input"]}, version="2026-01")
    assert user_errors(old) == [] and available(api) == 3


def test_a_repeated_idempotency_key_returns_the_first_answer_without_applying_again(api: Running) -> None:
    first = post(api, SET, set_vars(quantity(7, changeFromQuantity=10), key="same"))
    api.control("POST", "sell", {"lines": [{"sku": "GLOW", "quantity": 2}]})  # 7 -> 5 on the platform
    again = post(api, SET, set_vars(quantity(7, changeFromQuantity=10), key="same"))
    assert again.json()["data"] == first.json()["data"]
    assert available(api) == 5
    other = post(api, SET, set_vars(quantity(1, changeFromQuantity=5), key="same"))
    assert user_errors(other) == ["IDEMPOTENCY_KEY_PARAMETER_MISMATCH"] and available(api) == 5


def test_the_old_compare_fields_are_gone_from_2026_04(api: Running) -> None:
    body = post(api, SET, set_vars(quantity(3, changeFromQuantity=10, compareQuantity=10))).json()
    assert "compareQuantity" in body["errors"][0]["message"] and "data" not in body
    old = post(api, SET, set_vars(quantity(3)), version="2026-01")
    assert user_errors(old) == ["COMPARE_QUANTITY_REQUIRED"]
    stale = post(api, SET, set_vars(quantity(3, compareQuantity=4), key="k2"), version="2026-01")
    assert user_errors(stale) == ["COMPARE_QUANTITY_STALE"] and available(api) == 10


def test_wrong_token_and_unknown_version_are_refused(api: Running) -> None:
    refused = post(api, READ, {"item": ITEM, "location": LOCATION}, token="shpat_forged")
    assert refused.status_code == 401 and "Invalid API key or access token" in refused.json()["errors"]
    assert post(api, READ, {"item": ITEM, "location": LOCATION}, token="").status_code == 401
    assert post(api, READ, {"item": ITEM, "location": LOCATION}, version="2025-13").status_code == 404
    assert post(api, READ, {"item": ITEM, "location": LOCATION}, version="2025-10").status_code == 404


def test_more_than_250_quantities_are_refused(api: Running) -> None:
    many = [
        quantity(1, changeFromQuantity=None) | {"inventoryItemId": f"gid://shopify/InventoryItem/{i}"}
        for i in range(251)
    ]
    body = post(api, SET, set_vars(*many)).json()
    assert body["errors"][0]["extensions"]["code"] == "MAX_INPUT_SIZE_EXCEEDED"
    assert "251" in body["errors"][0]["message"] and available(api) == 10


def test_unknown_items_names_reasons_and_negative_quantities_are_user_errors(api: Running) -> None:
    unknown = quantity(1, changeFromQuantity=None) | {"inventoryItemId": "gid://shopify/InventoryItem/404"}
    assert user_errors(post(api, SET, set_vars(unknown))) == ["INVALID_INVENTORY_ITEM"]
    nowhere = quantity(1, changeFromQuantity=None) | {"locationId": "gid://shopify/Location/404"}
    assert user_errors(post(api, SET, set_vars(nowhere, key="k2"))) == ["INVALID_LOCATION"]
    negative = post(api, SET, set_vars(quantity(-1, changeFromQuantity=None), key="k3"))
    assert user_errors(negative) == ["INVALID_QUANTITY_NEGATIVE"]
    bad = post(api, SET, set_vars(quantity(1, changeFromQuantity=None), key="k4", name="incoming", reason="whim"))
    assert user_errors(bad) == ["INVALID_NAME", "INVALID_REASON"]
    shopify_uri = post(
        api, SET, set_vars(quantity(1, changeFromQuantity=None), key="k5", referenceDocumentUri="gid://shopify/Order/1")
    )
    assert user_errors(shopify_uri) == ["INVALID_REFERENCE_DOCUMENT"]
    assert available(api) == 10


def test_graphql_syntax_and_schema_errors_are_graphql_errors(api: Running) -> None:
    assert post(api, "mutation { inventorySetQuantities(").json()["errors"][0]["message"].startswith("Syntax Error")
    body = post(api, "{ shop { name } }").json()
    assert "Cannot query field 'shop'" in body["errors"][0]["message"]
    not_json = httpx.post(
        f"{api.url}/admin/api/2026-04/graphql.json", content=b"nope", headers={"X-Shopify-Access-Token": TOKEN}
    )
    assert not_json.status_code == 400


def test_the_cost_of_a_query_over_1000_points_is_refused() -> None:
    schema = schema_for(True)
    # Shopify's rule: each object field costs 1, so 1,001 aliased object fields cost 1,001.
    aliases = " ".join(f'a{i}: location(id: "x") {{ id }}' for i in range(1001))
    assert query_cost(schema, parse(f"{{ {aliases} }}")) == 1001
    with serving(ShopifyStandIn(access_token=TOKEN)) as shop:
        body = post(shop, f"{{ {aliases} }}").json()
        assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
        assert body["extensions"]["cost"]["actualQueryCost"] is None


def test_an_empty_bucket_throttles_until_it_refills() -> None:
    with serving(ShopifyStandIn(access_token=TOKEN, bucket_size=30, restore_rate=0.0)) as shop:
        shop.control(
            "POST", "seed", {"items": [{"inventory_item_id": 1, "location_id": 9, "sku": "GLOW", "available": 10}]}
        )
        statuses = []
        for i in range(3):
            body = post(shop, SET, set_vars(quantity(i, changeFromQuantity=None), key=f"t{i}")).json()
            statuses.append(body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"])
        assert statuses == [17, 4, 4]
        assert body["errors"] == [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]
        assert body["extensions"]["cost"]["actualQueryCost"] is None and "data" not in body
        assert available(shop) == 1  # the third set was never applied (reading costs 3 of the 4 left)
    with serving(ShopifyStandIn(access_token=TOKEN, bucket_size=5, restore_rate=0.0, throttled_status=429)) as shop:
        assert post(shop, SET, set_vars(quantity(1, changeFromQuantity=None))).status_code == 429


def test_a_sale_decrements_stock_refuses_beyond_it_and_signs_its_webhook(api: Running) -> None:
    refused = httpx.post(f"{api.url}/_standin/sell", json={"lines": [{"sku": "GLOW", "quantity": 11}]})
    assert refused.status_code == 409 and available(api) == 10
    sold = api.control(
        "POST", "sell", {"lines": [{"sku": "GLOW", "quantity": 4, "hold": "d1.7"}], "topic": "orders/paid"}
    )
    assert available(api) == 6
    delivery = sold["delivery"]
    body = delivery["body"].encode()
    expected = base64.b64encode(hmac.new(b"hook-secret", body, hashlib.sha256).digest()).decode()
    assert delivery["headers"]["X-Shopify-Hmac-Sha256"] == expected
    assert delivery["headers"]["X-Shopify-Topic"] == "orders/paid"
    assert {"X-Shopify-Webhook-Id", "X-Shopify-Event-Id", "X-Shopify-Shop-Domain"} <= set(delivery["headers"])
    line = json.loads(body)["line_items"][0]
    assert line["sku"] == "GLOW" and line["quantity"] == 4
    assert line["properties"] == [{"name": "livedrop_hold", "value": "d1.7"}]
    oversold = api.control("POST", "sell", {"lines": [{"sku": "GLOW", "quantity": 9}], "oversell": True})
    assert oversold["stock"][0]["available"] == -3  # "continue selling when out of stock"
    api.control("POST", "cancel", {"order_id": sold["order_id"]})
    assert available(api) == 1


def test_calls_are_recorded_for_the_tests_that_count_them(api: Running) -> None:
    post(api, SET, set_vars(quantity(7, changeFromQuantity=10)))
    post(api, READ, {"item": ITEM, "location": LOCATION}, token="bad")
    calls = api.calls("/admin/api/")
    assert [c["status"] for c in calls] == [200, 401]
    assert "inventorySetQuantities" in calls[0]["body"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    variables=st.dictionaries(
        st.sampled_from(["input", "key", "other"]),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
            max_leaves=8,
        ),
    )
)
def test_any_variables_get_an_answer_and_never_a_partial_change(api: Running, variables: dict[str, Any]) -> None:
    response = post(api, SET, variables)
    assert response.status_code == 200
    assert response.json()["errors"]  # random variables never make a valid input...
    assert available(api) == 10  # ...and a refused call changes nothing
