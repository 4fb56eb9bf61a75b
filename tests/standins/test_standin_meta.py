"""The Meta stand-in: catalog ``items_batch`` (asynchronous: applied when its handle is polled),
its 5,000-item cap and hourly call budget with the usage header, the Order Management API
(``commerce_orders``, ``acknowledge_order``), tokens, and the signed notifications it sends."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from standins.meta import MetaStandIn
from tests.support.standins import Running, serving

TOKEN, SECRET, CATALOG, CMS = "EAAtest", "app-secret", "880001", "990001"
V = "v21.0"


@pytest.fixture(scope="module")
def graph() -> Iterator[Running]:
    standin = MetaStandIn(access_token=TOKEN, app_secret=SECRET, catalog_id=CATALOG, cms_id=CMS, calls_per_hour=3)
    with serving(standin) as running:
        yield running


@pytest.fixture
def api(graph: Running) -> Running:
    graph.control("POST", "reset")
    graph.control(
        "POST", "seed", {"items": [{"retailer_id": "GLOW", "quantity": 10}, {"retailer_id": "TINT", "quantity": 2}]}
    )
    return graph


def items_batch(graph: Running, requests: Any, token: str = TOKEN, **params: Any) -> httpx.Response:
    form = {"access_token": token, "item_type": "PRODUCT_ITEM", "requests": json.dumps(requests), **params}
    return httpx.post(f"{graph.url}/{V}/{CATALOG}/items_batch", data=form)


def status(graph: Running, handle: str) -> dict[str, Any]:
    response = httpx.get(
        f"{graph.url}/{V}/{CATALOG}/check_batch_request_status", params={"handle": handle, "access_token": TOKEN}
    )
    assert response.status_code == 200
    return dict(response.json()["data"][0])


def quantities(graph: Running) -> dict[str, int]:
    return {i["retailer_id"]: i["quantity"] for i in graph.control("GET", "stock")["items"]}


def update(retailer_id: str, quantity: Any) -> dict[str, Any]:
    return {"method": "UPDATE", "data": {"id": retailer_id, "quantity_to_sell_on_facebook": quantity}}


def test_a_batch_applies_when_processed_and_reports_per_item_errors(api: Running) -> None:
    response = items_batch(api, [update("GLOW", 4), update("NOPE", 1), update("TINT", -1)])
    assert response.status_code == 200
    usage = json.loads(response.headers["X-Business-Use-Case-Usage"])
    [entry] = next(iter(usage.values()))
    assert entry["type"] == "catalog_management" and entry["call_count"] >= 33
    [handle] = response.json()["handles"]
    assert quantities(api)["GLOW"] == 10  # asynchronous: nothing yet
    assert status(api, handle)["status"] == "in_progress"
    done = status(api, handle)
    assert done["status"] == "finished" and done["errors_total_count"] == 2
    assert {e["id"] for e in done["errors"]} == {"NOPE", "TINT"}
    assert quantities(api) == {"GLOW": 4, "TINT": 2}
    # a JSON body works as well as a form, and a Bearer token as well as the parameter
    body = {"item_type": "PRODUCT_ITEM", "requests": [update("TINT", 0)]}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    again = httpx.post(f"{api.url}/{V}/{CATALOG}/items_batch", json=body, headers=headers).json()["handles"][0]
    status(api, again)
    assert status(api, again)["status"] == "finished" and quantities(api)["TINT"] == 0


def test_bad_tokens_versions_shapes_and_oversized_batches_are_refused(api: Running) -> None:
    refused = items_batch(api, [update("GLOW", 1)], token="forged")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == 190
    assert httpx.post(f"{api.url}/latest/{CATALOG}/items_batch", data={"access_token": TOKEN}).status_code == 400
    assert items_batch(api, [update("GLOW", 1)], item_type="PRODUCT_SET").json()["error"]["code"] == 100
    assert items_batch(api, []).status_code == 400
    over = items_batch(api, [update("GLOW", 1)] * 5001)
    assert over.status_code == 400 and "5000" in over.json()["error"]["message"]
    assert quantities(api) == {"GLOW": 10, "TINT": 2}
    bad = httpx.get(
        f"{api.url}/{V}/{CATALOG}/check_batch_request_status", params={"handle": "nope", "access_token": TOKEN}
    )
    assert bad.status_code == 400


def test_the_hourly_batch_budget_throttles_with_the_usage_header(api: Running) -> None:
    for _ in range(3):
        assert items_batch(api, [update("GLOW", 1)]).status_code == 200
    throttled = items_batch(api, [update("GLOW", 2)])
    assert throttled.status_code == 400 and throttled.json()["error"]["code"] == 80014
    [entry] = next(iter(json.loads(throttled.headers["X-Business-Use-Case-Usage"]).values()))
    assert entry["call_count"] >= 99 and entry["estimated_time_to_regain_access"] >= 1


def test_orders_wait_in_created_until_acknowledged_once(api: Running) -> None:
    refused = httpx.post(f"{api.url}/_standin/sell", json={"lines": [{"retailer_id": "TINT", "quantity": 3}]})
    assert refused.status_code == 409 and quantities(api)["TINT"] == 2
    sold = api.control("POST", "sell", {"lines": [{"retailer_id": "GLOW", "quantity": 3}]})
    assert quantities(api)["GLOW"] == 7  # Meta decrements on its own orders
    orders = httpx.get(f"{api.url}/{V}/{CMS}/commerce_orders", params={"access_token": TOKEN}).json()["data"]
    assert [(o["id"], o["order_status"]["state"]) for o in orders] == [(sold["order_id"], "CREATED")]
    assert orders[0]["items"]["data"][0] | {"retailer_id": "GLOW", "quantity": 3} == orders[0]["items"]["data"][0]
    ack = f"{api.url}/{V}/{sold['order_id']}/acknowledge_order"
    assert httpx.post(ack, data={"access_token": TOKEN}).status_code == 400  # idempotency_key is required
    first = httpx.post(ack, data={"access_token": TOKEN, "idempotency_key": "k1"})
    assert first.json() == {"id": sold["order_id"], "state": "IN_PROGRESS"}
    assert httpx.post(ack, data={"access_token": TOKEN, "idempotency_key": "k1"}).status_code == 200  # a retry
    assert httpx.post(ack, data={"access_token": TOKEN, "idempotency_key": "k2"}).status_code == 400  # not CREATED
    created = httpx.get(f"{api.url}/{V}/{CMS}/commerce_orders", params={"access_token": TOKEN}).json()["data"]
    assert created == []
    in_progress = httpx.get(
        f"{api.url}/{V}/{CMS}/commerce_orders", params={"access_token": TOKEN, "state": "IN_PROGRESS"}
    )
    assert [o["id"] for o in in_progress.json()["data"]] == [sold["order_id"]]


def test_notifications_are_escaped_and_signed_as_meta_signs_them(api: Running) -> None:
    sold = api.control("POST", "sell", {"lines": [{"retailer_id": "GLOW", "quantity": 1}]})
    cancelled = api.control("POST", "cancel", {"order_id": sold["order_id"]})
    assert quantities(api)["GLOW"] == 10  # a buyer's cancellation puts the unit back
    for result, event in ((sold, "CREATED"), (cancelled, "CANCELLED")):
        body = result["delivery"]["body"].encode()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert result["delivery"]["headers"]["X-Hub-Signature-256"] == expected
        [change] = json.loads(body)["entry"][0]["changes"]
        assert change == {"field": "commerce_orders", "value": {"order_id": sold["order_id"], "event": event}}
        assert body.isascii()


_values = st.none() | st.booleans() | st.integers(-3, 10**6) | st.text(max_size=5) | st.floats(allow_nan=False)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    requests=st.lists(
        st.fixed_dictionaries(
            {"method": st.sampled_from(["UPDATE", "CREATE", "update"]) | _values},
            optional={
                "data": st.fixed_dictionaries(
                    {},
                    optional={
                        "id": st.sampled_from(["GLOW", "TINT", "X"]) | _values,
                        "quantity_to_sell_on_facebook": _values,
                    },
                )
            },
        )
        | _values,
        max_size=4,
    )
)
def test_any_batch_is_answered_and_only_valid_quantities_land(graph: Running, requests: list[Any]) -> None:
    graph.control("POST", "reset")
    graph.control(
        "POST", "seed", {"items": [{"retailer_id": "GLOW", "quantity": 10}, {"retailer_id": "TINT", "quantity": 2}]}
    )
    response = items_batch(graph, requests)
    if not requests:
        assert response.status_code == 400
        return
    assert response.status_code == 200, response.text
    handle = response.json()["handles"][0]
    status(graph, handle)
    done = status(graph, handle)
    assert done["status"] == "finished"
    assert all(isinstance(q, int) and not isinstance(q, bool) and q >= 0 for q in quantities(graph).values())
    valid = sum(
        1
        for r in requests
        if isinstance(r, dict)
        and r.get("method") == "UPDATE"
        and isinstance(r.get("data"), dict)
        and r["data"].get("id") in ("GLOW", "TINT")
        and (
            r["data"].get("quantity_to_sell_on_facebook") is None
            or (
                type(r["data"]["quantity_to_sell_on_facebook"]) is int
                and r["data"]["quantity_to_sell_on_facebook"] >= 0
            )
        )
    )
    assert done["errors_total_count"] == len(requests) - valid


def test_variants_are_items_grouped_by_item_group_id_each_with_its_own_quantity(api: Running) -> None:
    sizes = [{"retailer_id": f"SNK-4{n}", "quantity": n, "item_group_id": "SNK"} for n in (1, 2)]
    items = api.control("POST", "seed", {"items": sizes})["items"]
    assert {i["retailer_id"]: i.get("item_group_id") for i in items} == {
        "GLOW": None,
        "TINT": None,
        "SNK-41": "SNK",
        "SNK-42": "SNK",
    }
    assert quantities(api) == {"GLOW": 10, "TINT": 2, "SNK-41": 1, "SNK-42": 2}
    with pytest.raises(AssertionError):
        api.control("POST", "seed", {"items": [{"retailer_id": "X", "quantity": 1, "item_group_id": 7}]})
