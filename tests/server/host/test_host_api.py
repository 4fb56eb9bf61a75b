"""The hosts' HTTP API on a real node: auth, the whole run of a show, problems, OpenAPI."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from tests.support.servers import Node
from tests.support.util import scaled
from tests.support.viewer_client import Viewer
from tests.support.webhooks import SHOPIFY_SECRET, shopify_headers, shopify_order

NodeFactory = Callable[..., Node]
HOST_TOKEN = "host-secret-1"


@pytest.fixture
async def api(nodes: NodeFactory, redis: Redis) -> AsyncIterator[tuple[httpx.AsyncClient, Node]]:
    """A node on an emptied Redis (the ``redis`` fixture flushes it) and an authorized client."""
    node = nodes(env={"LIVEDROP_HOST_TOKENS": f"other,{HOST_TOKEN}"})
    async with httpx.AsyncClient(base_url=node.http, headers={"Authorization": f"Bearer {HOST_TOKEN}"}) as client:
        yield client, node


async def test_host_runs_a_show_through_the_api(api: tuple[httpx.AsyncClient, Node]) -> None:
    client, node = api
    assert (await client.post("/api/shows", json={"show_id": "s1", "title": "Friday"})).status_code == 201
    drop = {
        "drop_id": "d1",
        "sku": "SNK-42",
        "title": "Sneaker",
        "total": 3,
        "prices": {"EUR": 1900, "USD": 2100},
        "per_customer_limit": 2,
        "hold_seconds": 120,
    }
    created = await client.post("/api/shows/s1/drops", json=drop)
    assert created.status_code == 201 and created.json()["prices"] == {"EUR": 1900, "USD": 2100}
    await client.post("/api/shows/s1/drops", json=drop | {"drop_id": "d2", "sku": "TEE-1"})
    assert (await client.put("/api/shows/s1/order", json={"drop_ids": ["d2"]})).json()["drop_ids"] == ["d2", "d1"]

    token = (await client.post("/api/shows/s1/tokens", json={"viewer_id": "v-1"})).json()["token"]
    viewer = await Viewer.connect(node.ws("s1", f"token={token}"))
    assert (await viewer.next())["can_reserve"]
    launched = await client.post("/api/drops/d1/launch", json={"duration_seconds": 300})
    assert launched.json()["state"] == "live" and launched.json()["ends_at_ms"] > 0
    assert (await viewer.until("drop"))["drop"]["id"] == "d1"
    await viewer.send({"type": "reserve", "ref": "r1", "drop": "d1", "qty": 2})
    reserved = await viewer.until("reserved")
    hold, hold_ref = reserved["hold"], reserved["hold_ref"]

    # A checkout names the hold by its signed reference; the id alone names no hold.
    assert (await client.post(f"/api/holds/{hold}/confirm", json={"order_ref": "1001"})).status_code == 404
    confirmed = await client.post(f"/api/holds/{hold_ref}/confirm", json={"order_ref": "1001"})
    assert confirmed.status_code == 200 and confirmed.json()["counters"]["sold"] == 2
    assert (await viewer.until("confirmed", timeout=10))["hold"] == hold
    again = await client.post(f"/api/holds/{hold_ref}/release")
    assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
    assert again.json()["code"] == "hold-not-active"

    restocked = await client.post("/api/drops/d1/restock", json={"delta": 5, "request_id": "rs-1"})
    assert restocked.json()["counters"]["total"] == 8
    stats = (await client.get("/api/drops/d1/stats")).json()
    assert stats["holds_confirmed"] == 1 and stats["units_by_channel"] == {"live": 2}
    assert stats["revenue"] == {"EUR": 3800, "USD": 4200} and stats["viewers_at_launch"] == 1
    assert stats["conversion"] == 1.0 and stats["average_order_value"] == {"EUR": 3800.0, "USD": 4200.0}
    ledger = (await client.get("/api/drops/d1/ledger", params={"count": 2})).json()
    assert [e["op"] for e in ledger["entries"]] == ["define", "open"] and ledger["next_after"]
    rest = (await client.get("/api/drops/d1/ledger", params={"after": ledger["next_after"]})).json()
    assert [e["op"] for e in rest["entries"]] == ["reserve", "confirm", "restock"]
    for bad_after in ("x-1", "\u00b2", "1-\u00b2"):
        refused = await client.get("/api/drops/d1/ledger", params={"after": bad_after})
        assert refused.status_code == 422 and refused.json()["code"] == "invalid-request", refused.text

    ended = await client.post("/api/drops/d1/end", json={"reason": "host"})
    assert ended.json()["state"] == "closed"
    assert (await viewer.until("drop_ended"))["reason"] == "host"
    show = (await client.get("/api/shows/s1")).json()
    assert [d["info"]["drop_id"] for d in show["drops"]] == ["d2", "d1"]
    assert (await client.get("/api/shows/s1/stats")).json()["revenue"] == {"EUR": 3800, "USD": 4200}
    report = await client.get("/api/shows/s1/reconciliation")
    assert report.status_code == 200, report.text
    assert (await client.get("/api/shows/none/reconciliation")).status_code == 404
    assert (await client.post("/api/shows/s1/end")).status_code == 200
    assert (await viewer.until("show_ended"))["type"] == "show_ended"
    await viewer.close()


async def test_auth_and_problems(api: tuple[httpx.AsyncClient, Node]) -> None:
    client, node = api
    async with httpx.AsyncClient(base_url=node.http) as anonymous:
        missing = await anonymous.get("/api/shows")
        assert missing.status_code == 401 and missing.json()["code"] == "unauthorized"
        wrong = await anonymous.get("/api/shows", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    bad = await client.post("/api/shows", json={"show_id": "has space", "title": "x"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert (await client.post("/api/shows", content=b"{not json")).status_code == 422
    assert (await client.post("/api/drops/nope/launch", json={})).status_code == 404
    assert (await client.post("/api/holds/nope/confirm", json={})).json()["code"] == "unknown-hold"
    assert (await client.post("/api/holds/d9.1/confirm", json={})).status_code == 404
    assert (
        await client.post("/api/shows/none/drops", json={"drop_id": "x", "sku": "s", "title": "t", "total": 1})
    ).status_code == 404


async def test_openapi_document_comes_from_the_same_types(api: tuple[httpx.AsyncClient, Node]) -> None:
    client, _ = api
    doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    create = doc["paths"]["/api/shows/{show_id}/drops"]["post"]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    # sku and total are required of a drop without variants only (a 422 says so): see test_host_variants.py
    assert set(schema["required"]) == {"drop_id", "title"}
    assert schema["properties"]["total"]["anyOf"][0]["minimum"] == 0
    assert create["security"] == [{"hostToken": []}]


async def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    api: tuple[httpx.AsyncClient, Node],
) -> None:
    """Property-based requests from /openapi.json: every answer is a documented non-5xx."""
    client, node = api
    await client.post("/api/shows", json={"show_id": "s1", "title": "Fuzzed"})
    st = Path(sys.executable).with_name("schemathesis")
    proc = await asyncio.create_subprocess_exec(
        str(st),
        "run",
        f"{node.http}/openapi.json",
        "-H",
        f"Authorization: Bearer {HOST_TOKEN}",
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--max-examples",
        "15",
        "--phases",
        "examples,fuzzing",
        "--seed",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), scaled(180))
    assert proc.returncode == 0, out.decode()[-4000:]
    assert b" passed" in out and b"failed" not in out.split(b"SUMMARY")[-1]


async def test_audit_views_show_holds_waitlist_deliveries_and_alerts(nodes: NodeFactory, redis: Redis) -> None:
    """What an auditor needs to check the invariants over HTTP, without Redis credentials: every
    hold and the waitlist of a drop, recorded webhook deliveries with their keys, whether the
    appliers caught up, and the alerts (here an oversold platform line)."""
    node = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN, "LIVEDROP_SHOPIFY_SECRETS": SHOPIFY_SECRET})
    auth = {"Authorization": f"Bearer {HOST_TOKEN}"}
    async with httpx.AsyncClient(base_url=node.http, headers=auth) as client:
        await client.post("/api/shows", json={"show_id": "s1", "title": "Audit"})
        drop = {"drop_id": "d1", "sku": "SNK-42", "title": "Sneaker", "total": 1, "per_customer_limit": 1}
        assert (await client.post("/api/shows/s1/drops", json=drop)).status_code == 201
        await client.post("/api/drops/d1/launch", json={})
        buyers = []
        for viewer_id in ("v-a", "v-b"):
            token = (await client.post("/api/shows/s1/tokens", json={"viewer_id": viewer_id})).json()["token"]
            buyers.append(await Viewer.connect(node.ws("s1", f"token={token}")))
        await buyers[0].send({"type": "reserve", "ref": "r1", "drop": "d1", "qty": 1})
        hold = (await buyers[0].until("reserved"))["hold"]
        await buyers[1].send({"type": "reserve", "ref": "r2", "drop": "d1", "qty": 1})
        assert (await buyers[1].until("rejected"))["reason"] == "sold_out"
        await buyers[1].send({"type": "waitlist", "ref": "w1", "drop": "d1", "qty": 1})
        await buyers[1].until("waitlisted")

        holds = await client.get("/api/drops/d1/holds")
        assert holds.status_code == 200, holds.text
        assert [(h["hold_id"], h["customer"], h["qty"], h["state"]) for h in holds.json()["holds"]] == [
            (hold, "v-a", 1, "held")
        ]
        assert holds.json()["waitlist"] == [{"customer": "v-b", "qty": 1}]

        # A platform sells 2 units of a sold-out drop: recorded once (the retry is a duplicate),
        # applied, and its line oversold with an alert.
        body = shopify_order(9001, [(1, "SNK-42", 2)])
        headers = shopify_headers(body, "orders/paid", webhook_id="wh-audit-1")
        for _ in range(2):
            assert (await client.post("/webhooks/shopify", content=body, headers=headers)).status_code == 200
        intake: dict[str, object] = {}
        for _ in range(200):
            intake = (await client.get("/api/webhooks/intake")).json()
            if intake["caught_up"]:
                break
            await asyncio.sleep(scaled(0.05))
        assert intake["caught_up"] and intake["recorded"] == 1 and intake["pending"] == 0, intake
        page = (await client.get("/api/webhooks/deliveries", params={"count": 1})).json()
        recorded = [(d["platform"], d["keys"][0]) for d in page["deliveries"]]
        assert recorded == [("shopify", "shopify:webhook:wh-audit-1")]
        assert page["next_after"] == page["deliveries"][0]["entry_id"]
        assert (await client.get("/api/webhooks/deliveries", params={"after": page["next_after"]})).json() == {
            "deliveries": [],
            "next_after": None,
        }
        alerts = (await client.get("/api/alerts")).json()["alerts"]
        assert [(a["kind"], a["fields"].get("line")) for a in alerts] == [("oversold", "1")], alerts
        assert (await client.get("/api/drops/d1")).json()["stock"]["counters"]["oversold"] == 2

        assert (await client.get("/api/drops/nope/holds")).status_code == 404
        for bad in ({"after": "x-1"}, {"count": "many"}):
            answer = await client.get("/api/alerts", params=bad)
            assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
        async with httpx.AsyncClient(base_url=node.http) as anonymous:
            for path in ("/api/drops/d1/holds", "/api/webhooks/intake", "/api/webhooks/deliveries", "/api/alerts"):
                assert (await anonymous.get(path)).status_code == 401
        doc = (await client.get("/openapi.json")).json()
        assert doc["paths"]["/api/webhooks/intake"]["get"]["security"] == [{"hostToken": []}]
    for buyer in buyers:
        await buyer.close()
