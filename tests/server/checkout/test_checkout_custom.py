"""Issue 16's custom checkout, end to end over real HTTP: the show's link is a URL template into a
merchant's own checkout (a small real HTTP server here), which takes the buyer's "payment" and then
confirms the hold with ``POST /api/holds/{ref}/confirm`` (docs/checkout.md, "A merchant's own
checkout"). A forged reference is refused and changes nothing; a second order for a paid hold is
refused; an abandoned checkout releases its hold."""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from server.viewers.tokens import mint
from stock import StockEngine
from tests.server.checkout.test_checkout_handoff import counters
from tests.support.invariants import assert_drop_invariants
from tests.support.servers import VIEWER_SECRET, Node
from tests.support.standins import serving_app
from tests.support.util import scaled
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]
HOST_TOKEN = "custom-checkout-host-token"


@dataclass
class Merchant:
    """A merchant's checkout: a page that shows what the link names, a "Pay" button that confirms
    the hold through LiveDrop's host API (the host token stays on this server), and "Abandon",
    which releases it. Every answer LiveDrop gave is kept for the test to read."""

    livedrop: str = ""
    answers: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    _orders: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def app(self) -> Starlette:
        async def show(request: Request) -> Response:
            q = request.query_params
            ref = html.escape(q.get("ref", ""))
            return HTMLResponse(
                f"<h1>Pay for {html.escape(q.get('drop', ''))} {html.escape(q.get('variant', ''))}"
                f" x {html.escape(q.get('qty', ''))}</h1>"
                f'<form method="post" action="/pay"><input type="hidden" name="ref" value="{ref}">'
                '<button name="do" value="pay">Pay</button><button name="do" value="abandon">Abandon</button></form>'
            )

        async def pay(request: Request) -> Response:
            form = parse_qs((await request.body()).decode())
            ref, action = form.get("ref", [""])[0], form.get("do", ["pay"])[0]
            path = f"/api/holds/{quote(ref, safe='')}/" + ("confirm" if action == "pay" else "release")
            body = {"order_ref": f"m-{next(self._orders)}"} if action == "pay" else None
            headers = {"Authorization": f"Bearer {HOST_TOKEN}"}
            async with httpx.AsyncClient(base_url=self.livedrop, headers=headers, timeout=scaled(10)) as client:
                answer = await client.post(path, json=body)
            json = answer.headers.get("content-type", "").endswith("json")
            said: dict[str, Any] = answer.json() if json else {"text": answer.text}
            self.answers.append((action, answer.status_code, said))
            if answer.status_code == 200:
                return HTMLResponse("<h1>Paid</h1>" if action == "pay" else "<h1>Cart emptied</h1>")
            return HTMLResponse(f"<h1>Refused</h1><p>{html.escape(str(said.get('code', '')))}</p>", 409)

        return Starlette(routes=[Route("/pay", show, methods=["GET"]), Route("/pay", pay, methods=["POST"])])


@pytest.fixture(scope="module")
def merchant() -> Iterator[tuple[Merchant, str]]:
    shop = Merchant()
    with serving_app(shop.app(), "merchant-checkout") as port:
        yield shop, f"http://127.0.0.1:{port}"


@pytest.fixture
async def api(
    nodes: NodeFactory, merchant: tuple[Merchant, str]
) -> AsyncIterator[tuple[httpx.AsyncClient, Node, Merchant]]:
    shop, url = merchant
    node = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN, "LIVEDROP_CHECKOUT_ALLOW_HTTP": "1"})
    shop.livedrop = node.http
    shop.answers.clear()
    headers = {"Authorization": f"Bearer {HOST_TOKEN}"}
    async with httpx.AsyncClient(base_url=node.http, headers=headers, timeout=scaled(10)) as client:
        assert (await client.post("/api/shows", json={"show_id": "s1", "title": "Show"})).status_code == 201
        one = {"drop_id": "d1", "sku": "GLOW", "title": "Glow", "total": 10, "prices": {"EUR": 1900}}
        assert (await client.post("/api/shows/s1/drops", json=one)).status_code == 201
        sizes = [
            {"id": "s41", "sku": "SHOE-41", "quantity": 3, "options": {"size": "41"}},
            {"id": "s42", "sku": "SHOE-42", "quantity": 3, "options": {"size": "42"}},
        ]
        shoe = {"drop_id": "shoe", "title": "Shoe", "prices": {"EUR": 9900}, "variants": sizes}
        assert (await client.post("/api/shows/s1/drops", json=shoe)).status_code == 201
        for drop_id in ("d1", "shoe"):
            assert (await client.post(f"/api/drops/{drop_id}/launch", json={})).status_code == 200
        template = f"{url}/pay?ref={{ref}}&hold={{hold}}&drop={{drop}}&variant={{variant}}&qty={{qty}}"
        configured = await client.put("/api/shows/s1/checkout", json={"platform": "custom", "url_template": template})
        assert configured.status_code == 200, configured.text
        yield client, node, shop


async def hold(node: Node, viewer_id: str, **reserve: Any) -> tuple[Viewer, dict[str, Any]]:
    viewer = await Viewer.connect(node.ws("s1", "token=" + mint(VIEWER_SECRET.encode(), "s1", viewer_id)))
    await viewer.next()
    await viewer.send({"type": "reserve", "ref": "r1", **reserve})
    return viewer, await viewer.until("reserved")


async def checkout(link: str, action: str = "pay") -> httpx.Response:
    """A buyer follows the link to the merchant's page and presses one of its buttons."""
    async with httpx.AsyncClient(timeout=scaled(10)) as browser:
        page = await browser.get(link)
        assert page.status_code == 200 and "Pay" in page.text, page.text
        found = re.search(r'name="ref" value="([^"]*)"', page.text)
        assert found is not None
        return await browser.post(link.split("?")[0], data={"ref": html.unescape(found.group(1)), "do": action})


async def test_the_merchants_checkout_confirms_the_hold_its_link_names(
    api: tuple[httpx.AsyncClient, Node, Merchant], redis: Redis
) -> None:
    _, node, shop = api
    engine = StockEngine(redis)
    viewer, reserved = await hold(node, "v1", drop="shoe", variant="s41", qty=2)
    query = parse_qs(urlsplit(reserved["checkout_url"]).query)
    assert query == {
        "ref": [reserved["hold_ref"]],
        "hold": [reserved["hold"]],
        "drop": ["shoe"],
        "variant": ["s41"],
        "qty": ["2"],
    }

    paid = await checkout(reserved["checkout_url"])
    assert paid.status_code == 200 and "Paid" in paid.text, paid.text
    confirmed = await viewer.until("confirmed", timeout=scaled(15))
    assert (confirmed["hold"], confirmed["qty"]) == (reserved["hold"], 2)
    s41 = await engine.counters("shoe", "s41")
    assert (s41.available, s41.held, s41.sold) == (1, 0, 2)
    assert (await engine.counters("shoe", "s42")).available == 3
    await assert_drop_invariants(engine, "shoe", "s41")

    # The same link paid again is a second order for a paid hold: refused, nothing sold twice.
    again = await checkout(reserved["checkout_url"])
    assert again.status_code == 409 and "hold-taken" in again.text
    assert (await engine.counters("shoe", "s41")).sold == 2
    assert [(a, status) for a, status, _ in shop.answers] == [("pay", 200), ("pay", 409)]
    await assert_drop_invariants(engine, "shoe", "s41")
    await viewer.close()


async def test_a_forged_reference_is_refused_and_an_abandoned_checkout_releases(
    api: tuple[httpx.AsyncClient, Node, Merchant], redis: Redis
) -> None:
    client, node, shop = api
    engine = StockEngine(redis)
    viewer, reserved = await hold(node, "v2", drop="d1", qty=1)
    ref = reserved["hold_ref"]
    parts = urlsplit(reserved["checkout_url"])
    for forged in (ref[:-1] + ("A" if ref[-1] != "A" else "B"), "d1.1", "../../shows/s1"):
        query = {k: v[0] for k, v in parse_qs(parts.query).items()} | {"ref": forged}
        refused = await checkout(urlunsplit(parts._replace(query=urlencode(query))))
        assert refused.status_code == 409 and "Refused" in refused.text, (forged, refused.text)
    assert [status for _, status, _ in shop.answers] == [404, 404, 404]
    # (the last one, with slashes, names no hold route at all)
    assert [answer.get("code") for _, _, answer in shop.answers[:2]] == ["unknown-hold", "unknown-hold"]
    assert await counters(client, "d1") == {"total": 10, "available": 9, "held": 1, "sold": 0, "oversold": 0}
    await assert_drop_invariants(engine, "d1")

    # The buyer gives up: the merchant releases the hold and the unit is on sale again at once.
    emptied = await checkout(reserved["checkout_url"], "abandon")
    assert emptied.status_code == 200 and "Cart emptied" in emptied.text
    assert await counters(client, "d1") == {"total": 10, "available": 10, "held": 0, "sold": 0, "oversold": 0}
    # A released hold cannot be paid for any more.
    late = await checkout(reserved["checkout_url"])
    assert late.status_code == 409 and "hold-not-active" in late.text
    await assert_drop_invariants(engine, "d1")
    await viewer.close()
