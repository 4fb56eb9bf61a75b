"""Normalisation of each platform's order webhook into ``PlatformOrderEvent`` (no network, no Redis).

Samples live in tests/data/webhooks/; docs/webhooks.md says where each comes from.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from server.platforms.webhooks import (
    MalformedPayload,
    OrderLine,
    OrderStatus,
    Platform,
    PlatformOrderEvent,
    RefundLine,
    normalize,
    normalize_meta,
    normalize_shopify,
    normalize_standard,
    normalize_tiktok,
    normalize_woocommerce,
)
from tests.support import paths

DATA = paths.DATA / "webhooks"


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def edited(name: str, **changes: Any) -> bytes:
    document = json.loads(sample(name))
    document.update(changes)
    return json.dumps(document).encode()


def only(events: list[PlatformOrderEvent]) -> PlatformOrderEvent:
    assert len(events) == 1, events
    return events[0]


# --- Shopify ------------------------------------------------------------------------------------------

SHOPIFY = {
    "X-Shopify-Topic": "orders/create",
    "X-Shopify-Shop-Domain": "livedrop-demo.myshopify.com",
    "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
}


def test_shopify_orders_create() -> None:
    event = only(normalize_shopify(sample("shopify_orders_create.json"), SHOPIFY))
    assert event == PlatformOrderEvent(
        platform=Platform.SHOPIFY,
        order_id="5940139491234",
        status=OrderStatus.CREATED,
        lines=[
            # The line property wins over the order's note attribute...
            OrderLine(sku="GLOW-SERUM-30", qty=2, line_id="14417937858594", hold_ref="h_3f9c2a71"),
            # ...which still applies to a line without one. The SKU-less gift-wrap line is left out.
            OrderLine(sku="LIP-TINT-CORAL", qty=1, line_id="14417937891362", hold_ref="h_order_level_0001"),
        ],
        occurred_at="2026-03-14T19:02:11-04:00",
        delivery_id="shopify:webhook:b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        shop="livedrop-demo.myshopify.com",
        source_event="orders/create",
    )
    assert event.status.is_sale and not event.needs_fetch


def test_shopify_without_note_attribute_has_only_line_holds() -> None:
    body = edited("shopify_orders_create.json", note_attributes=[{"name": "gift", "value": "yes"}])
    event = only(normalize_shopify(body, dict(SHOPIFY, **{"X-Shopify-Topic": "orders/paid"})))
    assert event.status is OrderStatus.PAID
    assert [line.hold_ref for line in event.lines] == ["h_3f9c2a71", None]
    assert event.occurred_at == "2026-03-14T19:02:13-04:00"


@pytest.mark.parametrize(
    ("topic", "cancelled_at", "status"),
    [
        ("orders/cancelled", "2026-03-15T08:00:00-04:00", OrderStatus.CANCELLED),
        ("orders/updated", "2026-03-15T08:00:00-04:00", OrderStatus.CANCELLED),
        ("orders/updated", None, OrderStatus.OTHER),
        ("orders/fulfilled", None, OrderStatus.OTHER),
        ("orders/delete", None, OrderStatus.OTHER),
    ],
)
def test_shopify_order_topics(topic: str, cancelled_at: str | None, status: OrderStatus) -> None:
    body = edited("shopify_orders_create.json", cancelled_at=cancelled_at, cancel_reason="customer")
    event = only(normalize_shopify(body, dict(SHOPIFY, **{"X-Shopify-Topic": topic})))
    assert event.status is status
    assert event.source_event == topic
    if status is OrderStatus.CANCELLED:
        assert event.occurred_at == cancelled_at
        assert [line.line_id for line in event.lines] == ["14417937858594", "14417937891362"]


def test_shopify_refund_carries_per_line_quantities() -> None:
    headers = dict(SHOPIFY, **{"X-Shopify-Topic": "refunds/create"})
    event = only(normalize_shopify(sample("shopify_refunds_create.json"), headers))
    assert event.status is OrderStatus.REFUNDED and event.status.is_restock
    assert event.order_id == "5940139491234"
    assert event.refund_id == "929361464"
    assert event.lines == []
    assert event.refund_lines == [
        RefundLine(sku="GLOW-SERUM-30", qty=1, line_id="14417937858594", restock=True),
        # no_restock: the money went back, the goods did not.
        RefundLine(sku="LIP-TINT-CORAL", qty=1, line_id="14417937891362", restock=False),
    ]


def test_shopify_other_topics_and_bad_bodies() -> None:
    assert normalize_shopify(b'{"id": 1, "title": "T-Shirt"}', {"X-Shopify-Topic": "products/update"}) == []
    with pytest.raises(MalformedPayload):
        normalize_shopify(b"{not json", SHOPIFY)
    with pytest.raises(MalformedPayload):
        normalize_shopify(b'{"line_items": []}', SHOPIFY)  # no order id


# --- TikTok Shop ----------------------------------------------------------------------------------------


def test_tiktok_order_status_change_needs_a_fetch_for_its_lines() -> None:
    event = only(normalize_tiktok(sample("tiktok_order_status_change.json"), {}))
    assert event == PlatformOrderEvent(
        platform=Platform.TIKTOK,
        order_id="576486316948490001",
        status=OrderStatus.PAID,
        lines=[],
        occurred_at="2022-02-09T13:21:25Z",
        delivery_id="tiktok:notification:7327112393057371910",
        shop="7494049642642441621",
        needs_fetch=True,
        source_event="type 1: AWAITING_SHIPMENT",
    )


def _tiktok(type_: int, **data: Any) -> bytes:
    body = json.loads(sample("tiktok_order_status_change.json"))
    body["type"] = type_
    body["data"] = {"order_id": "576486316948490001", **data}
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("order_status", "status", "needs_fetch"),
    [
        ("UNPAID", OrderStatus.CREATED, True),
        ("ON_HOLD", OrderStatus.PAID, True),
        ("IN_TRANSIT", OrderStatus.PAID, True),
        ("COMPLETED", OrderStatus.PAID, True),
        ("CANCEL", OrderStatus.CANCELLED, False),  # whole order: the engine knows its lines
        ("CANCELLED", OrderStatus.CANCELLED, False),
        ("SOMETHING_NEW", OrderStatus.OTHER, False),
    ],
)
def test_tiktok_order_statuses(order_status: str, status: OrderStatus, needs_fetch: bool) -> None:
    event = only(normalize_tiktok(_tiktok(1, order_status=order_status, update_time=1644412885), {}))
    assert (event.status, event.needs_fetch, event.lines) == (status, needs_fetch, [])


def test_tiktok_cancellation_and_return_notifications() -> None:
    pending = only(normalize_tiktok(_tiktok(11, cancel_status="CANCELLATION_REQUEST_PENDING"), {}))
    assert pending.status is OrderStatus.OTHER and not pending.needs_fetch
    done = only(normalize_tiktok(_tiktok(11, cancel_status="CANCELLATION_REQUEST_SUCCESS", cancel_id="4035"), {}))
    assert done.status is OrderStatus.CANCELLED and done.needs_fetch  # may cover only some lines
    returned = _tiktok(
        12, return_status="RETURN_OR_REFUND_REQUEST_COMPLETE", return_type="RETURN_AND_REFUND", return_id="99"
    )
    event = only(normalize_tiktok(returned, {}))
    assert (event.status, event.refund_id, event.needs_fetch) == (OrderStatus.REFUNDED, "99", True)
    refund_only = _tiktok(12, return_status="RETURN_OR_REFUND_REQUEST_COMPLETE", return_type="REFUND")
    assert only(normalize_tiktok(refund_only, {})).status is OrderStatus.OTHER


def test_tiktok_non_order_types_yield_nothing() -> None:
    product = b'{"type":5,"tts_notification_id":"1","shop_id":"2","timestamp":1,"data":{"product_id":"3"}}'
    assert normalize_tiktok(product, {}) == []
    assert normalize_tiktok(_tiktok(4, package_id="123"), {}) == []
    with pytest.raises(MalformedPayload):
        normalize_tiktok(b'{"tts_notification_id":"1"}', {})  # no type


# --- Meta ----------------------------------------------------------------------------------------------


def test_meta_batch_becomes_thin_events() -> None:
    events = normalize_meta(sample("meta_commerce_order.json"), {})
    assert [(e.order_id, e.status) for e in events] == [
        ("64000841790004", OrderStatus.PAID),
        ("64000841790005", OrderStatus.OTHER),  # FB_PROCESSING: not final yet
    ]
    for event in events:
        assert event.needs_fetch and event.lines == []
        assert event.shop == "112233445566778"
        assert event.occurred_at == "2026-03-14T23:02:11Z"
        assert event.delivery_id.startswith("meta:body:")
    assert events[0].source_event == "commerce_orders: CREATED"


def test_meta_changes_without_an_order_are_ignored() -> None:
    body = b'{"object":"page","entry":[{"id":"1","time":1,"changes":[{"field":"feed","value":[1,2]}]}]}'
    assert normalize_meta(body, {}) == []
    assert normalize_meta(b'{"object":"page"}', {}) == []
    with pytest.raises(MalformedPayload):
        normalize_meta(b'{"entry": "nope"}', {})


# --- WooCommerce ---------------------------------------------------------------------------------------

WOO = {
    "X-WC-Webhook-Topic": "order.created",
    "X-WC-Webhook-Source": "https://shop.example.com/",
    "X-WC-Webhook-ID": "31",
    "X-WC-Webhook-Delivery-ID": "2b8d5e4f0a9c1d3e5f7a9b1c3d5e7f90",
}


def test_woocommerce_order_created() -> None:
    event = only(normalize_woocommerce(sample("woocommerce_order_created.json"), WOO))
    assert event.platform is Platform.WOOCOMMERCE
    assert (event.order_id, event.status, event.shop) == ("727", OrderStatus.PAID, "https://shop.example.com/")
    assert event.lines == [
        OrderLine(sku="GLOW-SERUM-30", qty=2, line_id="315", hold_ref="h_81d0c6e4"),
        OrderLine(sku="LIP-TINT-CORAL", qty=1, line_id="316", hold_ref="h_order_level_0727"),
    ]
    assert event.occurred_at == "2026-03-14T19:02:14Z"
    assert event.delivery_id.startswith("woocommerce:delivery:31:2b8d5e4f0a9c1d3e5f7a9b1c3d5e7f90:")
    assert event.source_event == "order.created: processing"


@pytest.mark.parametrize(
    ("wc_status", "status"),
    [
        ("pending", OrderStatus.CREATED),
        ("on-hold", OrderStatus.CREATED),
        ("completed", OrderStatus.PAID),
        ("cancelled", OrderStatus.CANCELLED),
        ("failed", OrderStatus.CANCELLED),
        ("refunded", OrderStatus.REFUNDED),
        ("checkout-draft", OrderStatus.OTHER),
    ],
)
def test_woocommerce_statuses(wc_status: str, status: OrderStatus) -> None:
    body = edited("woocommerce_order_created.json", status=wc_status)
    event = only(normalize_woocommerce(body, dict(WOO, **{"X-WC-Webhook-Topic": "order.updated"})))
    assert event.status is status
    if status is OrderStatus.REFUNDED:
        assert event.refund_id == "full"
        assert [(r.line_id, r.qty, r.restock) for r in event.refund_lines] == [("315", 2, True), ("316", 1, True)]
    else:
        assert event.refund_lines == [] and event.refund_id is None


def test_woocommerce_deleted_and_non_order_topics() -> None:
    deleted = only(normalize_woocommerce(b'{"id":727}', dict(WOO, **{"X-WC-Webhook-Topic": "order.deleted"})))
    assert (deleted.status, deleted.lines) == (OrderStatus.OTHER, [])
    product = dict(WOO, **{"X-WC-Webhook-Topic": "product.updated"})
    assert normalize_woocommerce(b'{"id":93,"sku":"GLOW-SERUM-30"}', product) == []


# --- Standard Webhooks (LiveDrop's schema) ----------------------------------------------------------------

STANDARD = {"webhook-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "webhook-timestamp": "1773529333"}


def test_standard_order_paid() -> None:
    event = only(normalize_standard(sample("standard_order_paid.json"), STANDARD))
    assert event == PlatformOrderEvent(
        platform=Platform.STANDARD,
        order_id="ORD-2026-000731",
        status=OrderStatus.PAID,
        lines=[
            OrderLine(sku="GLOW-SERUM-30", qty=2, line_id="1", hold_ref="h_3f9c2a71"),
            OrderLine(sku="LIP-TINT-CORAL", qty=1, line_id="2", hold_ref=None),
        ],
        occurred_at="2026-03-14T19:02:13Z",
        delivery_id="standard:msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        shop="checkout-eu",
        source_event="order.paid",
    )


def test_standard_order_refunded() -> None:
    event = only(normalize_standard(sample("standard_order_refunded.json"), STANDARD))
    assert (event.status, event.refund_id, event.lines) == (OrderStatus.REFUNDED, "RF-88", [])
    assert event.refund_lines == [
        RefundLine(sku="GLOW-SERUM-30", qty=1, line_id="1", restock=True),
        RefundLine(sku="LIP-TINT-CORAL", qty=1, line_id="2", restock=False),
    ]


def test_standard_validation() -> None:
    assert normalize_standard(b'{"type":"order.fulfilled","data":{"anything":1}}', STANDARD) == []
    no_refund_id = b'{"type":"order.refunded","data":{"order_id":"A","lines":[]}}'
    with pytest.raises(MalformedPayload) as caught:
        normalize_standard(no_refund_id, STANDARD)
    assert caught.value.code == "missing_refund_id"
    zero_qty = b'{"type":"order.paid","data":{"order_id":"A","lines":[{"line_id":"1","sku":"S","qty":0}]}}'
    with pytest.raises(MalformedPayload):
        normalize_standard(zero_qty, STANDARD)
    with pytest.raises(MalformedPayload):
        normalize_standard(b'{"type":"order.paid","data":{"order_id":""}}', STANDARD)


# --- dispatch and round trip ------------------------------------------------------------------------------


def test_dispatch_and_events_round_trip_through_msgspec() -> None:
    cases = [
        (Platform.SHOPIFY, sample("shopify_orders_create.json"), SHOPIFY),
        (Platform.TIKTOK, sample("tiktok_order_status_change.json"), {}),
        (Platform.META, sample("meta_commerce_order.json"), {}),
        (Platform.WOOCOMMERCE, sample("woocommerce_order_created.json"), WOO),
        (Platform.STANDARD, sample("standard_order_paid.json"), STANDARD),
    ]
    for platform, body, headers in cases:
        events = normalize(platform, body, headers)
        assert events and all(e.platform is platform for e in events)
        wire = msgspec.json.encode(events)
        assert msgspec.json.decode(wire, type=list[PlatformOrderEvent]) == events


def test_lines_with_no_quantity_are_kept_for_the_applier_to_report() -> None:
    """A quantity ≤ 0 used to vanish here without a word; the applier now records it (bad_qty)."""
    items = [
        {"id": 1, "sku": "GLOW", "quantity": 0},
        {"id": 2, "sku": "GLOW", "quantity": -1},
        {"id": 3, "sku": "GLOW", "quantity": 2},
        {"id": 4, "sku": None, "quantity": 1},  # no SKU: not a LiveDrop product, still left out
    ]
    shopify = only(normalize_shopify(json.dumps({"id": 9, "line_items": items}).encode(), SHOPIFY))
    assert [(line.line_id, line.qty) for line in shopify.lines] == [("1", 0), ("2", -1), ("3", 2)]
    woo_body = json.dumps({"id": 9, "status": "processing", "line_items": items}).encode()
    woo = only(normalize_woocommerce(woo_body, WOO))
    assert [(line.line_id, line.qty) for line in woo.lines] == [("1", 0), ("2", -1), ("3", 2)]
