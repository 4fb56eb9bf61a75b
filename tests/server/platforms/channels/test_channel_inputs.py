"""The channel feature's input surfaces, fuzzed: mapping bodies from hosts, and order bodies read
from platforms (which LiveDrop does not control). Neither may crash or invent units."""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.platforms.channels.config import channel_settings_from_env
from server.platforms.channels.http import retry_after
from server.platforms.channels.mapping import BadMapping, decode_mapping
from server.platforms.channels.orders import meta_event, tiktok_event, tiktok_units

ID = re.compile(r"[A-Za-z0-9_.:/+=-]{1,128}")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
channel_names = st.sampled_from(["shopify", "tiktok", "meta", "woocommerce", "other"])
id_fields = st.sampled_from(
    ["inventory_item_id", "location_id", "product_id", "sku_id", "warehouse_id", "retailer_id", "variation_id", "x"]
)


@given(st.dictionaries(channel_names, st.dictionaries(id_fields, json_values, max_size=4) | json_values, max_size=4))
def test_a_mapping_body_is_valid_or_refused_with_a_reason(body: dict[str, Any]) -> None:
    try:
        mapping = decode_mapping(json.dumps(body).encode())
    except BadMapping as exc:
        assert str(exc)
        return
    for channel in mapping.channels():
        for value in (mapping.ids(channel) or {}).values():
            assert ID.fullmatch(value)


@pytest.mark.parametrize(
    "raw", [b"", b"[]", b"{", b'{"shopify": {"inventory_item_id": "a b", "location_id": "1"}}', b"1" * 10]
)
def test_bad_mapping_bodies_are_refused(raw: bytes) -> None:
    with pytest.raises(BadMapping):
        decode_mapping(raw)


def test_a_good_mapping_round_trips() -> None:
    raw = (
        b'{"shopify": {"inventory_item_id": "gid://shopify/InventoryItem/1", "location_id": "9"},'
        b' "meta": {"retailer_id": "GLOW"}}'
    )
    mapping = decode_mapping(raw)
    assert msgspec.json.decode(msgspec.json.encode(mapping)) == json.loads(raw)


@given(json_values, json_values)
def test_any_tiktok_order_body_normalises_without_inventing_units(rows: Any, status: Any) -> None:
    order = {"id": "o", "status": status if isinstance(status, str) else "AWAITING_SHIPMENT", "line_items": rows}
    event = tiktok_event(order, {})
    units = sum(line.qty for line in event.lines)
    rows_given = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
    most = 0
    for row in rows_given:
        parts = row.get("combined_listing_skus")
        counts = [p.get("sku_count") for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []
        most += sum(c if isinstance(c, int) and not isinstance(c, bool) and c > 0 else 1 for c in counts) or 1
    assert 0 <= units <= most


def test_tiktok_rows_are_counted_per_sku_and_combined_listings_expanded() -> None:
    order = {
        "id": "o1",
        "status": "AWAITING_SHIPMENT",
        "update_time": 1700000000,
        "line_items": [
            {"id": "1", "sku_id": "s1", "seller_sku": "GLOW"},
            {"id": "2", "sku_id": "s1", "seller_sku": "GLOW"},
            {
                "id": "3",
                "sku_id": "bundle",
                "combined_listing_skus": [
                    {"sku_id": "s1", "sku_count": 2},
                    {"sku_id": "s2", "sku_count": 1, "seller_sku": "TINT"},
                ],
            },
        ],
    }
    assert tiktok_units(order) == {"s1": (4, "GLOW"), "s2": (1, "TINT")}
    event = tiktok_event(order, {"s2": "TINT-DROP"})
    assert [(line.sku, line.qty, line.line_id) for line in event.lines] == [
        ("GLOW", 4, "sku-s1"),
        ("TINT-DROP", 1, "sku-s2"),
    ]
    assert event.status.value == "paid" and not event.needs_fetch
    assert tiktok_event({**order, "status": "CANCELLED"}, {}).lines == []


def test_meta_orders_normalise_by_state() -> None:
    order = {
        "id": "m1",
        "order_status": {"state": "CREATED"},
        "items": {"data": [{"id": "i1", "retailer_id": "GLOW", "quantity": 2}]},
    }
    event = meta_event(order, {})
    assert event.status.value == "paid" and [(line.sku, line.qty) for line in event.lines] == [("GLOW", 2)]
    assert meta_event({**order, "order_status": {"state": "FB_PROCESSING"}}, {}).lines == []


@given(json_values)
def test_any_meta_order_body_normalises(order: Any) -> None:
    if isinstance(order, dict):
        meta_event(order, {})


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, 0.0), ("", 0.0), ("3", 3.0), ("-5", 0.0), ("soon", 0.0), ("1e9", 3600.0), ("nan", 0.0)],
)
def test_retry_after(header: str | None, seconds: float) -> None:
    assert retry_after(header) == seconds


def test_retry_after_takes_an_http_date() -> None:
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


def test_settings_keep_secrets_out_of_their_repr() -> None:
    settings = channel_settings_from_env(
        {
            "LIVEDROP_SHOPIFY_URL": "https://s.example",
            "LIVEDROP_SHOPIFY_ACCESS_TOKEN": "shpat_SECRET",
            "LIVEDROP_TIKTOK_APP_SECRET": "tt_SECRET",
            "LIVEDROP_TIKTOK_ACCESS_TOKEN": "tt_TOKEN",
            "LIVEDROP_WOOCOMMERCE_URL": "https://w.example",
            "LIVEDROP_WOOCOMMERCE_CONSUMER_KEY": "ck_x",
            "LIVEDROP_WOOCOMMERCE_CONSUMER_SECRET": "cs_SECRET",
            "LIVEDROP_META_BUFFER": "7",
        }
    )
    text = repr(settings) + str(settings)
    assert "SECRET" not in text and "TOKEN" not in text
    assert [c.name.value for c in settings.channels] == ["shopify", "tiktok", "woocommerce"]
    with pytest.raises(ValueError):
        channel_settings_from_env(
            {"LIVEDROP_SHOPIFY_BUFFER": "-1", "LIVEDROP_SHOPIFY_URL": "u", "LIVEDROP_SHOPIFY_ACCESS_TOKEN": "t"}
        )
