"""Issue 16's import test: a Google feed, a Meta CSV and a Shopify CSV with variants imported
into one show through the host API of a real node; a drop launched whose variants sell on their
own over real WebSockets; invariants checked after every step, per variant and per drop. And an
import that fails half-way leaves nothing behind, checked in Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from server.viewers.tokens import mint
from stock import DropConfig, StockEngine
from stock.types import VariantConfig
from tests.support import paths
from tests.support.invariants import assert_drop_invariants, assert_variant_drop_invariants
from tests.support.servers import VIEWER_SECRET, Node
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]
HOST_TOKEN = "host-import-2"
FEEDS = paths.DATA / "feeds"


@pytest.fixture
async def api(nodes: NodeFactory, redis: Redis) -> AsyncIterator[tuple[httpx.AsyncClient, Node]]:
    node = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN})
    headers = {"Authorization": f"Bearer {HOST_TOKEN}"}
    async with httpx.AsyncClient(base_url=node.http, headers=headers, timeout=30) as client:
        assert (await client.post("/api/shows", json={"show_id": "s1", "title": "Catalogue night"})).status_code == 201
        yield client, node


async def import_feed(client: httpx.AsyncClient, name: str, media: str, **query: str) -> dict[str, Any]:
    response = await client.post(
        "/api/shows/s1/imports", content=(FEEDS / name).read_bytes(), params=query, headers={"Content-Type": media}
    )
    assert response.status_code == 201, response.text
    preview: dict[str, Any] = response.json()
    confirmed = await client.post(f"/api/shows/s1/imports/{preview['import_id']}/confirm", json={"default_stock": 5})
    assert confirmed.status_code == 200, confirmed.text
    result: dict[str, Any] = confirmed.json()
    return result


async def check_all(engine: StockEngine, client: httpx.AsyncClient) -> None:
    show = (await client.get("/api/shows/s1")).json()
    for drop in show["drops"]:
        if drop["info"]["variants"]:
            await assert_variant_drop_invariants(engine, drop["info"]["drop_id"])
        else:
            await assert_drop_invariants(engine, drop["info"]["drop_id"])


async def test_three_feeds_into_one_show_and_a_drop_sells_by_size(
    api: tuple[httpx.AsyncClient, Node], redis: Redis
) -> None:
    client, node = api
    engine = StockEngine(redis)
    google = await import_feed(client, "google_feed.xml", "application/xml")
    assert google["format"] == "google_xml" and [r["source_id"] for r in google["refused"]] == ["SOCKS-3PK"]
    await check_all(engine, client)
    meta = await import_feed(client, "meta_variants.csv", "text/csv")
    assert meta["format"] == "meta_csv" and [(r["line"], r["reason"]) for r in meta["refused"]] == [(7, "formula")]
    await check_all(engine, client)
    shopify = await import_feed(client, "shopify_current.csv", "text/csv", currency="EUR")
    assert shopify["format"] == "shopify_csv"
    await check_all(engine, client)

    show = (await client.get("/api/shows/s1")).json()
    ids = [d["info"]["drop_id"] for d in show["drops"]]
    assert ids == google["created"] + meta["created"] + shopify["created"]
    dress = next(d for d in show["drops"] if d["info"]["drop_id"] == "DRESS-LINEN")
    assert [(v["id"], v["sku"], v["total"], v["options"]) for v in dress["info"]["variants"]] == [
        ("blue-36", "DRESS-BLU-36", 12, {"color": "blue", "size": "36"}),
        ("blue-38", "DRESS-BLU-38", 8, {"color": "blue", "size": "38"}),
        ("red-36", "DRESS-RED-36", 0, {"color": "red", "size": "36"}),  # out of stock in the feed
    ]
    assert dress["info"]["prices"] == {"EUR": 4990} and dress["info"]["variants"][2]["prices"] == {"EUR": 5490}
    runner = next(d for d in show["drops"] if d["info"]["drop_id"] == "RUNNER-WHT")
    assert [v["total"] for v in runner["info"]["variants"]] == [5, 5]  # the host's default stock

    # The runner launches; its sizes sell on their own.
    assert (await client.post("/api/drops/RUNNER-WHT/launch", json={})).status_code == 200
    viewers = [
        await Viewer.connect(node.ws("s1", "token=" + mint(VIEWER_SECRET.encode(), "s1", f"v{i}"))) for i in range(2)
    ]
    for viewer in viewers:
        await viewer.next()
    await check_all(engine, client)
    for n in range(5):
        await viewers[n % 2].send({"type": "reserve", "ref": f"a{n}", "drop": "RUNNER-WHT", "variant": "v42"})
        reserved = await viewers[n % 2].until("reserved")
        assert reserved["variant"] == "v42" and reserved["hold_ref"]
        await check_all(engine, client)
    await viewers[0].send({"type": "reserve", "ref": "a5", "drop": "RUNNER-WHT", "variant": "v42"})
    assert (await viewers[0].until("rejected"))["reason"] == "sold_out"
    await viewers[1].send({"type": "reserve", "ref": "b1", "drop": "RUNNER-WHT", "variant": "v43", "qty": 2})
    assert (await viewers[1].until("reserved"))["variant"] == "v43"
    await check_all(engine, client)
    each = await assert_variant_drop_invariants(engine, "RUNNER-WHT")
    assert (each["v42"].available, each["v42"].held, each["v43"].available, each["v43"].held) == (0, 5, 3, 2)
    for viewer in viewers:
        await viewer.close()


async def keys_of(redis: Redis, drop_id: str) -> list[bytes]:
    return [key async for key in redis.scan_iter(match=f"ld:{{drop:{drop_id}}}*")]


TWO_DROPS = (
    b"id\ttitle\tprice\tquantity\titem_group_id\tsize\n"
    b"CAP-S\tCap\t10.00 EUR\t3\tCAP\tS\n"
    b"CAP-M\tCap\t10.00 EUR\t3\tCAP\tM\n"
    b"TEE-S\tTee\t20.00 EUR\t2\tTEE\tS\n"
    b"TEE-M\tTee\t20.00 EUR\t2\tTEE\tM\n"
)


async def test_an_import_that_fails_half_way_creates_nothing(api: tuple[httpx.AsyncClient, Node], redis: Redis) -> None:
    client, _ = api
    await redis.set("ld:sku:CAP-S", "an-older-drop")  # the SKU index entry an import overwrites
    response = await client.post("/api/shows/s1/imports", content=TWO_DROPS, headers={"Content-Type": "text/plain"})
    preview = response.json()
    assert [(d["drop_id"], [v["id"] for v in d["variants"]]) for d in preview["drops"]] == [
        ("CAP", ["S", "M"]),
        ("TEE", ["S", "M"]),
    ]
    before = sorted([key async for key in redis.scan_iter(match="ld:*")])
    # Between preview and confirm, a variant's stock under the second drop's id appears (keys
    # left by some earlier failure, with other stock): its define conflicts after the first
    # drop, variants and all, was created.
    engine = StockEngine(redis)
    await engine.define(DropConfig("TEE", "elsewhere", 0, 0, 60, (VariantConfig("S", "OTHER-SKU", 1),)))
    await redis.delete("ld:{drop:TEE}:meta")
    left_by_earlier = sorted(await keys_of(redis, "TEE"))

    failed = await client.post(f"/api/shows/s1/imports/{preview['import_id']}/confirm", json={})
    assert failed.status_code == 409 and failed.json()["code"] == "import-failed", failed.text
    assert await keys_of(redis, "CAP") == []  # created, then undone
    assert sorted(await keys_of(redis, "TEE")) == left_by_earlier
    assert await redis.get("ld:sku:CAP-S") == b"an-older-drop" and await redis.get("ld:sku:CAP-M") is None
    assert (await client.get("/api/shows/s1")).json()["drops"] == []
    after = sorted([key async for key in redis.scan_iter(match="ld:*") if b"journal" not in key])
    assert after == sorted([k for k in before if b"journal" not in k] + left_by_earlier)
    journal = (await client.get("/api/shows/s1/journal")).json()["entries"]
    assert journal[-1]["action"] == "import_failed"
    # The leftovers cleared, the same preview confirms.
    await redis.delete(*left_by_earlier)
    done = await client.post(f"/api/shows/s1/imports/{preview['import_id']}/confirm", json={})
    assert done.status_code == 200 and done.json()["created"] == ["CAP", "TEE"]
    await assert_variant_drop_invariants(engine, "CAP")
    await assert_variant_drop_invariants(engine, "TEE")
