"""Fuzzing ``PUT /api/shows/{id}/checkout`` on a real node (DESIGN §13): random JSON and near-valid
settings get a 200 or a 4xx problem, never a 5xx; whatever was accepted only ever yields links on
its own host; the node stays healthy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.servers import Node

NodeFactory = Callable[..., Node]
HOST_TOKEN = "checkout-fuzz-token"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
urls = st.builds(
    lambda scheme, host, rest: scheme + host + rest,
    st.sampled_from(["https://", "http://", "javascript:", "", "https://user:pw@", "HTTPS://"]),
    st.sampled_from(["shop.example", "{drop}.x", "", "127.0.0.1:9", "[::1]"]),
    st.text(alphabet="/?#{}=&refholdqtyvariantdrop%.:", max_size=30),
)
near_valid = st.one_of(
    st.builds(
        lambda url, products: {"platform": "shopify", "store_url": url, "products": products},
        urls,
        st.dictionaries(st.text(max_size=12), st.text(max_size=8), max_size=3),
    ),
    st.builds(lambda url: {"platform": "woocommerce", "store_url": url, "products": {"d1": "1"}}, urls),
    st.builds(lambda url: {"platform": "custom", "url_template": url}, urls),
)


def test_checkout_settings_answer_every_input(nodes: NodeFactory) -> None:
    node = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN})
    with httpx.Client(base_url=node.http, headers={"Authorization": f"Bearer {HOST_TOKEN}"}, timeout=30) as client:
        assert client.post("/api/shows", json={"show_id": "s1", "title": "Fuzz"}).status_code == 201

        @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
        @given(body=st.one_of(near_valid, json_values))
        def put(body: Any) -> None:
            r = client.put("/api/shows/s1/checkout", json=body)
            assert r.status_code in (200, 400, 422), (r.status_code, r.text)
            if r.status_code == 200:
                stored = r.json()["settings"]
                url = stored.get("store_url") or stored["url_template"]
                assert urlsplit(url).scheme == "https" and "{" not in (urlsplit(url).hostname or "{")
            else:
                assert r.headers["content-type"] == "application/problem+json"

        put()
        assert client.get("/readyz").status_code == 200
