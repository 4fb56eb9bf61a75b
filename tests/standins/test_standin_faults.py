"""What every stand-in shares: injected faults (fail, delay, hang, slow) on platform routes only,
the call log, the control API's own refusals (fuzzed on all four), and the leaky bucket on an
injected clock."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.ops.local_redis import free_port
from standins.base import LeakyBucket
from standins.meta import MetaStandIn
from standins.shopify import ShopifyStandIn
from standins.tiktok import TikTokStandIn
from standins.woocommerce import WooCommerceStandIn
from tests.support.standins import Running, serving
from tests.support.util import scaled

PRODUCT = "/wp-json/wc/v3/products/10"
AUTH = ("ck_standin", "cs_standin")


@pytest.fixture(scope="module")
def site() -> Iterator[Running]:
    with serving(WooCommerceStandIn()) as running:
        yield running


@pytest.fixture
def api(site: Running) -> Running:
    site.control("POST", "reset")
    site.control("POST", "seed", {"products": [{"id": 10, "sku": "GLOW", "stock_quantity": 8}]})
    return site


def get(site: Running, path: str = PRODUCT, timeout: float = 10.0) -> httpx.Response:
    return httpx.get(site.url + path, auth=AUTH, timeout=scaled(timeout))


def test_the_next_calls_fail_with_the_status_asked_then_recover(api: Running) -> None:
    api.control("POST", "faults", {"mode": "fail", "status": 503, "count": 2})
    assert [get(api).status_code for _ in range(3)] == [503, 503, 200]
    assert get(api).json()["stock_quantity"] == 8
    # the control API keeps working while the platform fails
    api.control("POST", "faults", {"mode": "fail", "status": 500, "count": None})
    assert api.control("GET", "stock")["products"][0]["stock_quantity"] == 8
    assert get(api).status_code == 500
    api.control("DELETE", "faults")
    assert get(api).status_code == 200


def test_a_fault_can_target_one_path_prefix(api: Running) -> None:
    api.control("POST", "faults", {"mode": "fail", "status": 429, "path": "/wp-json/wc/v3/products/batch"})
    assert get(api).status_code == 200
    batch = httpx.post(api.url + "/wp-json/wc/v3/products/batch", json={"update": []}, auth=AUTH)
    assert batch.status_code == 429 and batch.json()["data"]["status"] == 429


def test_a_delayed_call_is_answered_late_and_a_hung_one_never(api: Running) -> None:
    api.control("POST", "faults", {"mode": "delay", "seconds": 0.3})
    started = time.monotonic()
    assert get(api).status_code == 200
    assert time.monotonic() - started >= 0.25  # a lower bound only (timer granularity): never a speed assertion
    api.control("POST", "faults", {"mode": "hang", "count": 1})
    with pytest.raises(httpx.ReadTimeout):
        get(api, timeout=0.3)
    assert get(api).status_code == 200
    statuses = [c["status"] for c in api.calls(PRODUCT)]
    assert statuses == [200, -1, 200]  # the hung call is recorded as never answered


def test_slow_delays_every_call_until_cleared(api: Running) -> None:
    api.control("POST", "faults", {"mode": "slow", "seconds": 0.2})
    assert api.control("POST", "faults", {"mode": "fail", "count": 1, "path": "/nowhere"})["faults"][0]["count"] is None
    for _ in range(2):
        started = time.monotonic()
        get(api)
        assert time.monotonic() - started >= 0.15
    api.control("DELETE", "faults")
    assert api.control("POST", "faults", {"mode": "delay", "seconds": 0})["faults"][0]["count"] == 1


def test_every_platform_call_is_recorded_and_reset_forgets_them(api: Running) -> None:
    get(api)
    httpx.put(api.url + PRODUCT, json={"stock_quantity": 3}, auth=AUTH)
    httpx.get(api.url + PRODUCT)  # refused: no credentials
    calls = api.calls()
    assert [(c["method"], c["status"]) for c in calls] == [("GET", 200), ("PUT", 200), ("GET", 401)]
    assert calls[1]["body"] == '{"stock_quantity":3}'
    api.control("POST", "reset")
    assert api.calls() == [] and api.control("GET", "stock") == {"products": []}


@pytest.mark.parametrize(
    ("verb", "body"),
    [
        ("faults", {"mode": "explode"}),
        ("faults", {"mode": "fail", "status": 200}),
        ("faults", {"mode": "delay", "seconds": -1}),
        ("faults", {"mode": "fail", "count": 0}),
        ("faults", []),
        ("seed", {"products": [{"id": "ten", "stock_quantity": 1}]}),
        ("sell", {"lines": []}),
        ("sell", {"lines": [{"sku": "GLOW", "quantity": 0}]}),
        ("sell", {"lines": [{"sku": "MYSTERY", "quantity": 1}]}),
        ("cancel", {"order_id": 404}),
        ("webhook", {"url": 7}),
    ],
)
def test_bad_control_requests_are_400_and_change_nothing(api: Running, verb: str, body: object) -> None:
    method = "PUT" if verb == "webhook" else "POST"
    response = httpx.request(method, f"{api.url}/_standin/{verb}", json=body)
    assert response.status_code == 400 and response.json()["error"]
    assert api.control("GET", "stock")["products"][0]["stock_quantity"] == 8
    assert api.control("GET", "deliveries") == {"deliveries": []}
    not_json = httpx.post(f"{api.url}/_standin/seed", content=b"{")
    assert not_json.status_code == 400


def test_a_sale_with_no_webhook_url_is_kept_with_the_reason(api: Running) -> None:
    sold = api.control("POST", "sell", {"lines": [{"sku": "GLOW", "quantity": 1}]})
    assert sold["delivery"]["error"] == "no webhook URL configured" and sold["delivery"]["status"] is None
    api.control("PUT", "webhook", {"url": f"http://127.0.0.1:{free_port()}/webhooks/woocommerce"})  # nobody listens
    failed = api.control("POST", "sell", {"lines": [{"sku": "GLOW", "quantity": 1}]})["delivery"]
    assert failed["status"] is None and failed["error"].startswith("ConnectError")
    assert len(api.control("GET", "deliveries")["deliveries"]) == 2


def test_the_leaky_bucket_refills_at_its_rate() -> None:
    now = [100.0]
    bucket = LeakyBucket(capacity=10, rate=2, clock=lambda: now[0])
    assert bucket.take(10) and not bucket.take(1)
    assert bucket.seconds_until(4) == 2.0
    now[0] += 1.5
    assert bucket.available() == 3 and bucket.take(3) and not bucket.take(1)
    now[0] += 100
    assert bucket.available() == 10  # never above capacity
    bucket.refund(5)
    assert bucket.available() == 10
    frozen = LeakyBucket(capacity=1, rate=0, clock=lambda: now[0])
    assert frozen.take(1) and frozen.seconds_until(1) == float("inf")


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 30) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "lines",
                    "items",
                    "skus",
                    "products",
                    "sku",
                    "sku_id",
                    "quantity",
                    "id",
                    "order_id",
                    "combined",
                    "status",
                    "topic",
                    "hold",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def everyone() -> Iterator[list[Running]]:
    with (
        serving(ShopifyStandIn()) as shopify,
        serving(TikTokStandIn()) as tiktok,
        serving(MetaStandIn()) as meta,
        serving(WooCommerceStandIn()) as woo,
    ):
        yield [shopify, tiktok, meta, woo]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(verb=st.sampled_from(["seed", "sell", "cancel"]), body=_json)
def test_any_control_body_gets_an_answer_never_a_crash(everyone: list[Running], verb: str, body: object) -> None:
    for running in everyone:
        response = httpx.post(f"{running.url}/_standin/{verb}", json=body)
        assert response.status_code in (200, 400, 409), (running.standin.name, response.text)
        assert httpx.get(f"{running.url}/_standin/stock").status_code == 200
