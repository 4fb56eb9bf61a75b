"""Issue 16's WooCommerce hand-off, end to end over real HTTP: a viewer holds a size over WebSocket,
follows the add-to-cart link of its ``reserved`` answer into the stand-in WooCommerce store (which
runs the snippet of docs/checkout.md), places the order, the store sends its signed
``order.created`` webhook with the reference in the order's ``meta_data``, and the hold is
confirmed. An edited reference, and another viewer's reference swapped into a link, confirm
nothing and are reported."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from redis.asyncio import Redis

from server.viewers.tokens import mint
from standins.cli import livedrop_env
from standins.woocommerce import WooCommerceStandIn
from stock import StockEngine
from tests.server.checkout.test_checkout_handoff import counters, until_sold
from tests.support.invariants import assert_drop_invariants
from tests.support.servers import VIEWER_SECRET, Node
from tests.support.standins import Running, serving
from tests.support.util import scaled
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]
HOST_TOKEN = "woo-checkout-host-token"
PRODUCTS = {"d1": "501", "d2": "502", "shoe~s41": "641", "shoe~s42": "642"}


@pytest.fixture(scope="module")
def site() -> Iterator[Running]:
    with serving(WooCommerceStandIn(webhook_secret="woo checkout secret")) as running:
        yield running


@pytest.fixture
async def api(nodes: NodeFactory, site: Running) -> AsyncIterator[tuple[httpx.AsyncClient, Node]]:
    env = {"LIVEDROP_HOST_TOKENS": HOST_TOKEN, "LIVEDROP_CHECKOUT_ALLOW_HTTP": "1", **livedrop_env([site.standin])}
    node = nodes(env=env)
    site.control("POST", "reset")
    site.control("PUT", "webhook", {"url": f"{node.http}/webhooks/woocommerce"})
    products = [
        {"id": 501, "sku": "GLOW", "stock_quantity": 50},
        {"id": 502, "sku": "MUG", "stock_quantity": 50},
        {"id": 640, "sku": "", "stock_quantity": 0},
        {"id": 641, "parent_id": 640, "sku": "SHOE-41", "stock_quantity": 5},
        {"id": 642, "parent_id": 640, "sku": "SHOE-42", "stock_quantity": 5},
    ]
    site.control("POST", "seed", {"products": products})
    headers = {"Authorization": f"Bearer {HOST_TOKEN}"}
    async with httpx.AsyncClient(base_url=node.http, headers=headers, timeout=scaled(10)) as client:
        assert (await client.post("/api/shows", json={"show_id": "s1", "title": "Show"})).status_code == 201
        for drop_id, sku in (("d1", "GLOW"), ("d2", "MUG")):
            drop = {"drop_id": drop_id, "sku": sku, "title": sku.title(), "total": 10, "prices": {"EUR": 1900}}
            assert (await client.post("/api/shows/s1/drops", json=drop)).status_code == 201
        sizes = [
            {"id": "s41", "sku": "SHOE-41", "quantity": 3, "options": {"size": "41"}},
            {"id": "s42", "sku": "SHOE-42", "quantity": 3, "options": {"size": "42"}},
        ]
        shoe = {"drop_id": "shoe", "title": "Shoe", "prices": {"EUR": 9900}, "variants": sizes}
        assert (await client.post("/api/shows/s1/drops", json=shoe)).status_code == 201
        for drop_id in ("d1", "d2", "shoe"):
            assert (await client.post(f"/api/drops/{drop_id}/launch", json={})).status_code == 200
        settings = {"platform": "woocommerce", "store_url": site.url, "products": PRODUCTS}
        configured = await client.put("/api/shows/s1/checkout", json=settings)
        assert configured.status_code == 200 and configured.json()["unmapped"] == [], configured.text
        yield client, node


async def connect(node: Node, viewer_id: str) -> Viewer:
    viewer = await Viewer.connect(node.ws("s1", "token=" + mint(VIEWER_SECRET.encode(), "s1", viewer_id)))
    await viewer.next()
    return viewer


async def place_order(link: str) -> str:
    """A buyer follows the add-to-cart link (a fresh browser: its own session cookie), lands on the
    store's checkout, and presses "Place order". Returns the order page."""
    async with httpx.AsyncClient(timeout=scaled(10), follow_redirects=True) as browser:
        page = await browser.get(link)
        assert page.status_code == 200 and page.url.path == "/checkout/" and "Place order" in page.text, page.text
        nonce = re.search(r'name="woocommerce-process-checkout-nonce" value="([0-9a-f]+)"', page.text)
        assert nonce is not None
        form = {"woocommerce-process-checkout-nonce": nonce.group(1)}
        placed = await browser.post(str(page.url), data=form)
        assert placed.status_code == 200 and "Your order has been received" in placed.text, placed.text
        assert "webhook answered 200" in placed.text
    return placed.text


def with_ref(link: str, ref: str) -> str:
    """The same add-to-cart link with another ``livedrop_hold``."""
    parts = urlsplit(link)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | {"livedrop_hold": ref}
    return urlunsplit(parts._replace(query=urlencode(query)))


async def test_a_size_held_live_is_paid_through_the_woocommerce_checkout(
    api: tuple[httpx.AsyncClient, Node], site: Running, redis: Redis
) -> None:
    client, node = api
    engine = StockEngine(redis)
    viewer = await connect(node, "v1")
    await viewer.send({"type": "reserve", "ref": "r1", "drop": "shoe", "variant": "s42", "qty": 2})
    reserved = await viewer.until("reserved")
    link = reserved["checkout_url"]
    query = urlencode({"add-to-cart": "642", "quantity": 2, "livedrop_hold": reserved["hold_ref"]})
    assert link == f"{site.url}/?{query}"
    await assert_drop_invariants(engine, "shoe", "s42")

    page = await place_order(link)
    confirmed = await viewer.until("confirmed", timeout=scaled(15))
    assert (confirmed["hold"], confirmed["qty"]) == (reserved["hold"], 2)
    # The webhook LiveDrop confirmed by: the reference is order meta, where the snippet writes it.
    deliveries = site.control("GET", "deliveries")["deliveries"]
    order = json.loads(deliveries[-1]["body"])
    assert f'id="order">{order["id"]}<' in page
    assert [(m["key"], m["value"]) for m in order["meta_data"]] == [("livedrop_hold", reserved["hold_ref"])]
    assert [(x["variation_id"], x["sku"], x["quantity"]) for x in order["line_items"]] == [(642, "SHOE-42", 2)]

    async with asyncio.timeout(scaled(15)):
        while (await engine.counters("shoe", "s42")).sold != 2:
            await asyncio.sleep(0.05)
    s42, s41 = await engine.counters("shoe", "s42"), await engine.counters("shoe", "s41")
    assert (s42.total, s42.available, s42.held, s42.sold, s42.oversold) == (3, 1, 0, 2, 0)
    assert (s41.available, s41.held, s41.sold) == (3, 0, 0)  # the other size sells on its own
    await assert_drop_invariants(engine, "shoe", "s42")
    await assert_drop_invariants(engine, "shoe", "s41")
    holds = (await client.get("/api/drops/shoe/holds", params={"variant": "s42"})).json()["holds"]
    assert [(h["hold_id"], h["state"]) for h in holds] == [(reserved["hold"], "confirmed")]
    await viewer.close()


async def test_an_edited_or_another_viewers_reference_confirms_nothing_and_is_reported(
    api: tuple[httpx.AsyncClient, Node], redis: Redis
) -> None:
    client, node = api
    engine = StockEngine(redis)
    alice, bob = await connect(node, "alice"), await connect(node, "bob")
    await alice.send({"type": "reserve", "ref": "r1", "drop": "d1"})
    held = await alice.until("reserved")
    await bob.send({"type": "reserve", "ref": "r1", "drop": "d2"})
    bobs = await bob.until("reserved")
    ref = held["hold_ref"]

    # Edited: one character of the MAC changed (still the snippet's shape, so the store keeps it).
    # The buyer paid: LiveDrop sells the unit from what is available and leaves the hold held.
    edited = ref[:-1] + ("A" if ref[-1] != "A" else "B")
    await place_order(with_ref(held["checkout_url"], edited))
    await until_sold(client, "d1", 1)
    # Another viewer's reference: Bob's mug link with Alice's (genuine) reference swapped in.
    await place_order(with_ref(bobs["checkout_url"], ref))
    await until_sold(client, "d2", 1)

    for drop_id, hold in (("d1", held), ("d2", bobs)):
        holds = (await client.get(f"/api/drops/{drop_id}/holds")).json()["holds"]
        assert [(h["hold_id"], h["state"]) for h in holds] == [(hold["hold"], "held")]
        assert await counters(client, drop_id) == {"total": 10, "available": 8, "held": 1, "sold": 1, "oversold": 0}
        await assert_drop_invariants(engine, drop_id)
    report = (await client.get("/api/shows/s1/reconciliation")).json()
    reasons = {d["drop_id"]: [line["reason"] for line in d["orders_without_hold"]] for d in report["drops"]}
    assert {k: v for k, v in reasons.items() if v} == {"d1": ["hold_ref_invalid"], "d2": ["hold_other_drop"]}

    # The genuine links still pay for their own holds.
    await place_order(held["checkout_url"])
    assert (await alice.until("confirmed", timeout=scaled(15)))["hold"] == held["hold"]
    await place_order(bobs["checkout_url"])
    assert (await bob.until("confirmed", timeout=scaled(15)))["hold"] == bobs["hold"]
    for drop_id in ("d1", "d2"):
        await assert_drop_invariants(engine, drop_id)
    for viewer in (alice, bob):
        await viewer.close()
