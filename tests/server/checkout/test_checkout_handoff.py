"""Issue 16's checkout test: a viewer holds over WebSocket, follows the checkout link in its
``reserved`` answer into the stand-in Shopify store, pays, the store sends a real signed
``orders/create`` webhook with the reference as a note attribute, and the hold is confirmed. A
reference that was edited, or moved onto another product's cart, confirms nothing and is reported."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from redis.asyncio import Redis

from server.viewers.tokens import mint
from standins.cli import livedrop_env
from standins.shopify import ShopifyStandIn
from stock import StockEngine
from tests.support.invariants import assert_drop_invariants
from tests.support.servers import VIEWER_SECRET, Node
from tests.support.standins import Running, serving
from tests.support.util import scaled
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]
HOST_TOKEN = "checkout-host-token"
GLOW_VARIANT, MUG_VARIANT = "44000001", "44000002"


@pytest.fixture(scope="module")
def shop() -> Iterator[Running]:
    with serving(ShopifyStandIn()) as running:
        yield running


@pytest.fixture
async def api(nodes: NodeFactory, shop: Running) -> AsyncIterator[tuple[httpx.AsyncClient, Node]]:
    env = {"LIVEDROP_HOST_TOKENS": HOST_TOKEN, "LIVEDROP_CHECKOUT_ALLOW_HTTP": "1", **livedrop_env([shop.standin])}
    node = nodes(env=env)
    shop.control("POST", "reset")
    shop.control("PUT", "webhook", {"url": f"{node.http}/webhooks/shopify"})
    items = [
        {"inventory_item_id": 1, "location_id": 1, "sku": "GLOW", "available": 50, "variant_id": GLOW_VARIANT},
        {"inventory_item_id": 2, "location_id": 1, "sku": "MUG", "available": 50, "variant_id": MUG_VARIANT},
    ]
    shop.control("POST", "seed", {"items": items})
    headers = {"Authorization": f"Bearer {HOST_TOKEN}"}
    async with httpx.AsyncClient(base_url=node.http, headers=headers, timeout=scaled(10)) as client:
        assert (await client.post("/api/shows", json={"show_id": "s1", "title": "Show"})).status_code == 201
        for drop_id, sku in (("d1", "GLOW"), ("d2", "MUG")):
            drop = {"drop_id": drop_id, "sku": sku, "title": sku.title(), "total": 10, "prices": {"EUR": 1900}}
            assert (await client.post("/api/shows/s1/drops", json=drop)).status_code == 201
            assert (await client.post(f"/api/drops/{drop_id}/launch", json={})).status_code == 200
        yield client, node


async def counters(client: httpx.AsyncClient, drop_id: str) -> dict[str, int]:
    found: dict[str, int] = (await client.get(f"/api/drops/{drop_id}")).json()["stock"]["counters"]
    return found


async def until_sold(client: httpx.AsyncClient, drop_id: str, sold: int) -> dict[str, int]:
    async with asyncio.timeout(scaled(15)):
        while (found := await counters(client, drop_id))["sold"] != sold:
            await asyncio.sleep(0.05)
    return found


async def pay(link: str) -> dict[str, Any]:
    """A buyer follows the link, sees the store's checkout, and pays."""
    async with httpx.AsyncClient(timeout=scaled(10)) as browser:
        page = await browser.get(link)
        assert page.status_code == 200 and "Pay now" in page.text, page.text
        paid = await browser.post(link)
        assert paid.status_code == 200 and "Thank you" in paid.text, paid.text
        assert "webhook answered 200" in paid.text
    return {"page": page.text, "paid": paid.text}


def with_ref(link: str, ref: str, variant_id: str | None = None) -> str:
    parts = urlsplit(link)
    path = parts.path if variant_id is None else f"/cart/{variant_id}:{parts.path.rsplit(':', 1)[1]}"
    return f"{parts.scheme}://{parts.netloc}{path}?" + urlencode({"attributes[livedrop_hold]": ref})


async def test_a_hold_is_paid_through_the_stores_checkout(
    api: tuple[httpx.AsyncClient, Node], shop: Running, redis: Redis
) -> None:
    client, node = api
    settings = {"platform": "shopify", "store_url": shop.url, "products": {"d1": GLOW_VARIANT}}
    configured = await client.put("/api/shows/s1/checkout", json=settings)
    assert configured.status_code == 200, configured.text
    assert configured.json()["unmapped"] == ["d2"]  # the mug has no Shopify variant yet
    engine = StockEngine(redis)

    viewer = await Viewer.connect(node.ws("s1", "token=" + mint(VIEWER_SECRET.encode(), "s1", "v1")))
    await viewer.next()
    await viewer.send({"type": "reserve", "ref": "r1", "drop": "d1", "qty": 2})
    reserved = await viewer.until("reserved")
    link = reserved["checkout_url"]
    assert link == f"{shop.url}/cart/{GLOW_VARIANT}:2?" + urlencode({"attributes[livedrop_hold]": reserved["hold_ref"]})
    await assert_drop_invariants(engine, "d1")

    await pay(link)
    confirmed = await viewer.until("confirmed", timeout=scaled(15))
    assert (confirmed["hold"], confirmed["qty"]) == (reserved["hold"], 2)
    assert await until_sold(client, "d1", 2) == {"total": 10, "available": 8, "held": 0, "sold": 2, "oversold": 0}
    await assert_drop_invariants(engine, "d1")
    holds = (await client.get("/api/drops/d1/holds")).json()["holds"]
    assert [(h["hold_id"], h["state"]) for h in holds] == [(reserved["hold"], "confirmed")]

    # The mug has no product id: its holds carry no link, and nothing else changes.
    await viewer.send({"type": "reserve", "ref": "r2", "drop": "d2"})
    assert (await viewer.until("reserved"))["checkout_url"] == ""
    await viewer.close()


async def test_an_edited_or_moved_reference_confirms_nothing_and_is_reported(
    api: tuple[httpx.AsyncClient, Node], shop: Running, redis: Redis
) -> None:
    client, node = api
    products = {"d1": GLOW_VARIANT, "d2": MUG_VARIANT}
    assert (
        await client.put(
            "/api/shows/s1/checkout", json={"platform": "shopify", "store_url": shop.url, "products": products}
        )
    ).status_code == 200
    engine = StockEngine(redis)
    viewer = await Viewer.connect(node.ws("s1", "token=" + mint(VIEWER_SECRET.encode(), "s1", "v2")))
    await viewer.next()
    await viewer.send({"type": "reserve", "ref": "r1", "drop": "d1", "qty": 1})
    held = await viewer.until("reserved")
    ref = held["hold_ref"]

    # Edited: one character of the MAC changed. The store sells (the buyer paid), LiveDrop takes
    # the unit from what is available, and the hold stays held for its viewer.
    edited = ref[:-1] + ("A" if ref[-1] != "A" else "B")
    await pay(with_ref(held["checkout_url"], edited))
    await until_sold(client, "d1", 1)
    # Moved: the genuine reference on a cart for another product (the mug).
    await pay(with_ref(held["checkout_url"], ref, MUG_VARIANT))
    await until_sold(client, "d2", 1)

    holds = (await client.get("/api/drops/d1/holds")).json()["holds"]
    assert [(h["hold_id"], h["state"]) for h in holds] == [(held["hold"], "held")]
    assert await counters(client, "d1") == {"total": 10, "available": 8, "held": 1, "sold": 1, "oversold": 0}
    await assert_drop_invariants(engine, "d1")
    await assert_drop_invariants(engine, "d2")
    report = (await client.get("/api/shows/s1/reconciliation")).json()
    reasons = {d["drop_id"]: [line["reason"] for line in d["orders_without_hold"]] for d in report["drops"]}
    assert reasons == {"d1": ["hold_ref_invalid"], "d2": ["hold_other_drop"]}
    # The genuine link still pays for the hold.
    await pay(held["checkout_url"])
    assert (await viewer.until("confirmed", timeout=scaled(15)))["hold"] == held["hold"]
    await assert_drop_invariants(engine, "d1")
    await viewer.close()


@pytest.mark.parametrize(
    ("settings", "detail"),
    [
        ({"platform": "shopify", "store_url": "ftp://shop.example", "products": {}}, "https"),
        ({"platform": "shopify", "store_url": "https://shop.example/path", "products": {}}, "no path"),
        ({"platform": "shopify", "store_url": "https://u:p@shop.example", "products": {}}, "user name"),
        ({"platform": "woocommerce", "store_url": "https://shop.example/?x=1", "products": {}}, "no query"),
        ({"platform": "custom", "url_template": "https://pay.example/checkout?hold={hold}"}, "{ref}"),
        ({"platform": "custom", "url_template": "https://pay.example/c?r={ref}&p={price}"}, "unknown placeholder"),
        ({"platform": "custom", "url_template": "https://{drop}.evil.example/c?r={ref}"}, "fixed scheme and host"),
        ({"platform": "custom", "url_template": "https://pay.example/c?r={ref}}"}, "unmatched brace"),
        ({"platform": "custom", "url_template": "javascript:alert(1)//{ref}"}, "fixed scheme"),
    ],
)
async def test_settings_are_validated(
    api: tuple[httpx.AsyncClient, Node], settings: dict[str, Any], detail: str
) -> None:
    client, _ = api
    response = await client.put("/api/shows/s1/checkout", json=settings)
    assert response.status_code == 422 and detail in response.json()["detail"], response.text


async def test_schema_errors_custom_links_and_the_journal(api: tuple[httpx.AsyncClient, Node]) -> None:
    client, node = api
    for body in (
        {"platform": "magento", "store_url": "https://x.example"},
        {"platform": "shopify", "store_url": "https://x.example", "products": {"d1": "gid://shopify/1"}},
        {"platform": "shopify", "store_url": "https://x.example", "products": {"bad id!": "1"}},
        {"platform": "custom", "url_template": "https://x.example/{ref}", "extra": 1},
    ):
        response = await client.put("/api/shows/s1/checkout", json=body)
        assert response.status_code == 422 and response.json()["code"] == "invalid-request", body
    assert (
        await client.put(
            "/api/shows/none/checkout", json={"platform": "custom", "url_template": "https://x.example/{ref}"}
        )
    ).status_code == 404
    assert (await client.get("/api/shows/s1/checkout")).status_code == 404

    template = "https://pay.example/live?hold={ref}&d={drop}&n={qty}"
    assert (
        await client.put("/api/shows/s1/checkout", json={"platform": "custom", "url_template": template})
    ).status_code == 200
    assert (await client.get("/api/shows/s1/checkout")).json()["settings"]["url_template"] == template
    # (the node that took the PUT dropped its copy of the settings: its next link uses the new ones)
    viewer = await Viewer.connect(node.ws("s1", "token=" + mint(VIEWER_SECRET.encode(), "s1", "v3")))
    await viewer.next()
    await viewer.send({"type": "reserve", "ref": "r1", "drop": "d2", "qty": 3})
    reserved = await viewer.until("reserved")
    link = urlsplit(reserved["checkout_url"])
    assert (link.netloc, parse_qs(link.query)) == (
        "pay.example",
        {"hold": [reserved["hold_ref"]], "d": ["d2"], "n": ["3"]},
    )
    # The merchant's checkout confirms by the reference it was given.
    confirmed = await client.post(f"/api/holds/{reserved['hold_ref']}/confirm", json={"order_ref": "ext-1"})
    assert confirmed.status_code == 200
    assert (await viewer.until("confirmed"))["hold"] == reserved["hold"]
    await viewer.close()

    assert (await client.delete("/api/shows/s1/checkout")).json() == {"deleted": True}
    assert (await client.delete("/api/shows/s1/checkout")).json() == {"deleted": False}
    journal = (await client.get("/api/shows/s1/journal")).json()["entries"]
    assert [(e["action"], e["fields"]) for e in journal] == [
        ("checkout_set", {"platform": "custom"}),
        ("checkout_deleted", {}),
    ]


async def test_a_hold_handed_out_from_the_waitlist_carries_its_link(api: tuple[httpx.AsyncClient, Node]) -> None:
    client, node = api
    one = {"drop_id": "d3", "sku": "ONE", "title": "Last one", "total": 1, "prices": {"EUR": 100}}
    assert (await client.post("/api/shows/s1/drops", json=one)).status_code == 201
    assert (await client.post("/api/drops/d3/launch", json={})).status_code == 200
    template = {"platform": "custom", "url_template": "https://pay.example/c?r={ref}"}
    assert (await client.put("/api/shows/s1/checkout", json=template)).status_code == 200
    first, second = [
        await Viewer.connect(node.ws("s1", "token=" + mint(VIEWER_SECRET.encode(), "s1", name))) for name in ("a", "b")
    ]
    for viewer in (first, second):
        await viewer.next()
    await first.send({"type": "reserve", "ref": "r1", "drop": "d3"})
    held = await first.until("reserved")
    await second.send({"type": "reserve", "ref": "r1", "drop": "d3"})
    assert (await second.until("rejected"))["reason"] == "sold_out"
    await second.send({"type": "waitlist", "ref": "w1", "drop": "d3"})
    await second.until("waitlisted")
    await first.send({"type": "release", "hold": held["hold"], "ref": "x1"})
    handed = await second.until("reserved", timeout=scaled(10))
    assert handed["from_waitlist"] and handed["checkout_url"] == "https://pay.example/c?r=" + handed["hold_ref"]
    for viewer in (first, second):
        await viewer.close()


async def test_a_size_is_paid_through_its_own_shopify_variant(
    api: tuple[httpx.AsyncClient, Node], shop: Running, redis: Redis
) -> None:
    client, node = api
    shop.control(
        "POST",
        "seed",
        {
            "items": [
                {"inventory_item_id": 41, "location_id": 1, "sku": "SHOE-41", "available": 5, "variant_id": "4441"},
                {"inventory_item_id": 42, "location_id": 1, "sku": "SHOE-42", "available": 5, "variant_id": "4442"},
            ]
        },
    )
    sizes = [
        {"id": "s41", "sku": "SHOE-41", "quantity": 2, "options": {"size": "41"}},
        {"id": "s42", "sku": "SHOE-42", "quantity": 2, "options": {"size": "42"}},
    ]
    shoe = {"drop_id": "shoe", "title": "Shoe", "prices": {"EUR": 9900}, "variants": sizes}
    assert (await client.post("/api/shows/s1/drops", json=shoe)).status_code == 201, "variants"
    assert (await client.post("/api/drops/shoe/launch", json={})).status_code == 200
    products = {"shoe~s41": "4441", "shoe~s42": "4442"}
    view = await client.put(
        "/api/shows/s1/checkout", json={"platform": "shopify", "store_url": shop.url, "products": products}
    )
    assert view.json()["unmapped"] == ["d1", "d2"]
    viewer = await Viewer.connect(node.ws("s1", "token=" + mint(VIEWER_SECRET.encode(), "s1", "v4")))
    await viewer.next()
    await viewer.send({"type": "reserve", "ref": "r1", "drop": "shoe", "variant": "s42"})
    reserved = await viewer.until("reserved")
    assert reserved["checkout_url"].startswith(f"{shop.url}/cart/4442:1?")
    await pay(reserved["checkout_url"])
    assert (await viewer.until("confirmed", timeout=scaled(15)))["hold"] == reserved["hold"]
    engine = StockEngine(redis)
    assert (await engine.counters("shoe", "s42")).sold == 1 and (await engine.counters("shoe", "s41")).sold == 0
    await assert_drop_invariants(engine, "shoe", "s42")
    await viewer.close()
