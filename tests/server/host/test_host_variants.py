"""Drops with variants through the host API on a real node: create and launch with sizes, viewers
reserving different sizes over real WebSockets, sizes selling out on their own, restock per size,
figures per size, and every malformed body refused with a problem and nothing written. Invariants
(per variant and per drop) are checked after every step."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from server.keys import drop_info_key, sku_key
from stock import StockEngine
from stock import keys as stock_keys
from tests.support.invariants import assert_drop_invariants, assert_variant_drop_invariants
from tests.support.servers import Node
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]
HOST_TOKEN = "host-secret-v"
SHOE: dict[str, Any] = {
    "drop_id": "shoe",
    "title": "Aurora sneaker",
    "sku": "SNK-AURORA",
    "prices": {"EUR": 8900},
    "per_customer_limit": 2,
    "variants": [
        {"id": "s41", "sku": "SNK-41", "quantity": 1, "options": {"size": "41"}},
        {"id": "s42", "sku": "SNK-42", "quantity": 2, "options": {"size": "42"}, "prices": {"EUR": 9900}},
    ],
}


@pytest.fixture
async def api(nodes: NodeFactory, redis: Redis) -> AsyncIterator[tuple[httpx.AsyncClient, Node]]:
    node = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN})
    async with httpx.AsyncClient(base_url=node.http, headers={"Authorization": f"Bearer {HOST_TOKEN}"}) as client:
        assert (await client.post("/api/shows", json={"show_id": "s1", "title": "Sizes"})).status_code == 201
        yield client, node


async def test_a_drop_with_sizes_launched_and_sold_through_the_api(
    api: tuple[httpx.AsyncClient, Node], redis: Redis
) -> None:
    client, node = api
    engine = StockEngine(redis)

    async def check() -> None:
        await assert_variant_drop_invariants(engine, "shoe")

    created = await client.post("/api/shows/s1/drops", json=SHOE)
    assert created.status_code == 201, created.text
    info = created.json()
    assert info["total"] == 3 and [v["id"] for v in info["variants"]] == ["s41", "s42"]
    assert info["variants"][1]["prices"] == {"EUR": 9900} and not info["limit_per_variant"]
    assert (await client.post("/api/shows/s1/drops", json=SHOE)).status_code == 201  # idempotent
    await check()

    launched = await client.post("/api/drops/shoe/launch", json={"duration_seconds": 300})
    assert launched.json()["state"] == "live"
    await check()
    tokens = [(await client.post("/api/shows/s1/tokens", json={"viewer_id": v})).json()["token"] for v in "ab"]
    alice, bob = [await Viewer.connect(node.ws("s1", f"token={t}")) for t in tokens]
    for v in (alice, bob):
        welcome = await v.next()
        assert [x["options"] for x in welcome["drops"][0]["variants"]] == [{"size": "41"}, {"size": "42"}]
    await alice.send({"type": "reserve", "ref": "1", "drop": "shoe", "variant": "s41"})
    held41 = await alice.until("reserved")
    await check()
    await bob.send({"type": "reserve", "ref": "1", "drop": "shoe", "variant": "s41"})
    assert (await bob.until("rejected"))["reason"] == "sold_out"
    await bob.send({"type": "reserve", "ref": "2", "drop": "shoe", "variant": "s42"})
    held42 = await bob.until("reserved")
    assert held42["variant"] == "s42"
    await check()

    confirmed = await client.post(f"/api/holds/{held41['hold_ref']}/confirm", json={"order_ref": "o-1"})
    assert confirmed.status_code == 200 and confirmed.json()["counters"]["sold"] == 1
    assert (await client.post(f"/api/holds/{held42['hold_ref']}/confirm", json={"order_ref": "o-2"})).status_code == 200
    await check()

    # Restock names the size; the drop's total is the sum.
    needs = await client.post("/api/drops/shoe/restock", json={"delta": 4, "request_id": "rs-0"})
    assert needs.status_code == 422 and needs.json()["code"] == "variant-required"
    unknown = await client.post("/api/drops/shoe/restock", json={"delta": 4, "request_id": "rs-0", "variant": "s99"})
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown-variant"
    restocked = await client.post("/api/drops/shoe/restock", json={"delta": 4, "request_id": "rs-1", "variant": "s41"})
    assert restocked.status_code == 200 and restocked.json()["counters"]["total"] == 7
    await check()
    view = (await client.get("/api/drops/shoe")).json()
    each = {v["id"]: v["stock"]["counters"] for v in view["variants"]}
    assert each == {
        "s41": {"total": 5, "available": 4, "held": 0, "sold": 1, "oversold": 0},
        "s42": {"total": 2, "available": 1, "held": 0, "sold": 1, "oversold": 0},
    }
    show = (await client.get("/api/shows/s1")).json()
    assert [v["id"] for v in show["drops"][0]["variants"]] == ["s41", "s42"]

    stats = (await client.get("/api/drops/shoe/stats")).json()
    assert stats["units_by_channel"] == {"live": 2} and stats["revenue"] == {"EUR": 8900 + 9900}
    by_size = {v["variant"]: v for v in stats["variants"]}
    assert by_size["s41"]["revenue"] == {"EUR": 8900} and by_size["s42"]["revenue"] == {"EUR": 9900}
    assert by_size["s41"]["holds_confirmed"] == 1 and by_size["s42"]["counters"]["sold"] == 1

    ledger = (await client.get("/api/drops/shoe/ledger", params={"variant": "s41"})).json()
    assert [e["op"] for e in ledger["entries"]] == ["define", "open", "reserve", "confirm", "restock"]
    wrong = await client.get("/api/drops/shoe/ledger", params={"variant": "nope"})
    assert wrong.status_code == 422
    holds = (await client.get("/api/drops/shoe/holds")).json()
    assert sorted(h["hold_id"] for h in holds["holds"]) == ["shoe~s41.1", "shoe~s42.1"]
    await client.post("/api/drops/shoe/end", json={})
    await check()
    for v in (alice, bob):
        await v.close()


async def test_limit_per_variant_and_per_drop(api: tuple[httpx.AsyncClient, Node], redis: Redis) -> None:
    client, node = api
    per_size = SHOE | {"drop_id": "tee", "limit_scope": "variant", "per_customer_limit": 1}
    per_size["variants"] = [
        {"id": "S", "sku": "TEE-S", "quantity": 5, "options": {"size": "S"}},
        {"id": "M", "sku": "TEE-M", "quantity": 5, "options": {"size": "M"}, "per_customer_limit": 2},
    ]
    assert (await client.post("/api/shows/s1/drops", json=per_size)).status_code == 201
    across = SHOE | {"drop_id": "cap", "per_customer_limit": 1}
    across["variants"] = [{"id": "red", "sku": "CAP-R", "quantity": 5}, {"id": "blue", "sku": "CAP-B", "quantity": 5}]
    assert (await client.post("/api/shows/s1/drops", json=across)).status_code == 201
    for drop in ("tee", "cap"):
        await client.post(f"/api/drops/{drop}/launch", json={})
    token = (await client.post("/api/shows/s1/tokens", json={"viewer_id": "v"})).json()["token"]
    viewer = await Viewer.connect(node.ws("s1", f"token={token}"))
    welcome = await viewer.next()
    assert {d["id"]: d.get("limit_per_variant") for d in welcome["drops"]} == {"tee": True, "cap": None}

    async def reserve(ref: str, drop: str, variant: str, qty: int = 1) -> str:
        await viewer.send({"type": "reserve", "ref": ref, "drop": drop, "variant": variant, "qty": qty})
        while (frame := await viewer.next())["type"] not in ("reserved", "rejected"):
            pass
        return "reserved" if frame["type"] == "reserved" else str(frame["reason"])

    assert await reserve("1", "tee", "S") == "reserved"
    assert await reserve("2", "tee", "S") == "limit_exceeded"  # 1 per customer in S
    assert await reserve("3", "tee", "M", 2) == "reserved"  # M's own limit, 2
    assert await reserve("4", "cap", "red") == "reserved"
    assert await reserve("5", "cap", "blue") == "limit_exceeded"  # 1 across all colours
    engine = StockEngine(redis)
    for drop in ("tee", "cap"):
        await assert_variant_drop_invariants(engine, drop)
    await viewer.close()


BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    (SHOE | {"variants": [SHOE["variants"][0], SHOE["variants"][0] | {"sku": "X"}]}, "invalid-variants"),
    (SHOE | {"variants": [SHOE["variants"][0], SHOE["variants"][1] | {"sku": "SNK-41"}]}, "invalid-variants"),
    (SHOE | {"total": 99}, "invalid-variants"),
    (SHOE | {"limit_scope": "drop", "variants": [SHOE["variants"][0] | {"per_customer_limit": 1}]}, "invalid-variants"),
    (SHOE | {"variants": [SHOE["variants"][0], SHOE["variants"][1] | {"options": {"size": "41"}}]}, "invalid-variants"),
    ({"drop_id": "mug", "title": "Mug", "total": 3}, "invalid-request"),
    ({"drop_id": "mug", "title": "Mug", "sku": "MUG"}, "invalid-request"),
    ({"drop_id": "mug", "title": "Mug", "sku": "MUG", "total": 3, "limit_scope": "variant"}, "invalid-variants"),
    (SHOE | {"variants": [SHOE["variants"][0] | {"id": "41"}]}, "invalid-request"),
    (SHOE | {"variants": [SHOE["variants"][0] | {"quantity": -1}]}, "invalid-request"),
    (SHOE | {"variants": [SHOE["variants"][0] | {"colour": "red"}]}, "invalid-request"),
    (SHOE | {"variants": [{"id": f"v{i}", "sku": f"S{i}", "quantity": 1} for i in range(101)]}, "invalid-request"),
]


async def test_malformed_variant_bodies_are_problems_and_write_nothing(
    api: tuple[httpx.AsyncClient, Node], redis: Redis
) -> None:
    client, _ = api
    for body, code in BAD_BODIES:
        answer = await client.post("/api/shows/s1/drops", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json" and answer.json()["code"] == code
        assert await redis.get(drop_info_key(body["drop_id"])) is None
        assert not await redis.exists(stock_keys.drop_keys(body["drop_id"]).meta)
        assert await redis.get(sku_key("SNK-41")) is None
    # A drop without variants takes no variant anywhere.
    await client.post("/api/shows/s1/drops", json={"drop_id": "mug", "title": "Mug", "sku": "MUG", "total": 3})
    refused = await client.post("/api/drops/mug/restock", json={"delta": 1, "request_id": "r", "variant": "s41"})
    assert refused.status_code == 422 and refused.json()["code"] == "unknown-variant"
    assert (await client.get("/api/drops/mug")).json()["variants"] == []
    await assert_drop_invariants(StockEngine(redis), "mug")
    # Defining the same drop again with other variants is a conflict, and changes nothing.
    assert (await client.post("/api/shows/s1/drops", json=SHOE)).status_code == 201
    other = SHOE | {"variants": [SHOE["variants"][0]]}
    assert (await client.post("/api/shows/s1/drops", json=other)).status_code == 409
    assert [v["id"] for v in (await client.get("/api/drops/shoe")).json()["info"]["variants"]] == ["s41", "s42"]
    await assert_variant_drop_invariants(StockEngine(redis), "shoe")


# -- hypothesis: the variant fields of the host API ---------------------------------------------------
names = st.one_of(st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,5}", fullmatch=True), st.text(max_size=6), st.integers())
variant_bodies = st.fixed_dictionaries(
    {"id": names, "sku": st.sampled_from(["A-1", "A-2", "A-3", "", "a b", "Z" * 130]) | st.text(max_size=5)},
    optional={
        "quantity": st.integers(-2, 5) | st.sampled_from([10**10, "3", None]),
        "options": st.dictionaries(st.sampled_from(["size", "colour", ""]), st.sampled_from(["M", "L", ""]), max_size=2)
        | st.lists(st.text(max_size=3), max_size=2),
        "prices": st.none() | st.dictionaries(st.sampled_from(["EUR", "usd", "US"]), st.integers(-1, 5000), max_size=2),
        "per_customer_limit": st.none() | st.integers(-1, 3),
        "extra": st.just(1),
    },
)
drop_bodies = st.fixed_dictionaries(
    {"drop_id": st.sampled_from(["f1", "f2", "f3"]), "title": st.just("Fuzz")},
    optional={
        "sku": st.sampled_from(["F-SKU", "", "a b"]),
        "total": st.integers(-1, 12) | st.none(),
        "variants": st.lists(variant_bodies, max_size=4) | st.text(max_size=3),
        "limit_scope": st.sampled_from(["drop", "variant", "size", ""]),
        "per_customer_limit": st.integers(0, 3),
    },
)

sound_bodies = st.builds(
    lambda drop, sizes, qty, scope: {
        "drop_id": drop,
        "title": "Fuzz",
        "limit_scope": scope,
        "variants": [{"id": z, "sku": f"{drop}-{z}", "quantity": qty, "options": {"size": z}} for z in sizes],
    },
    st.sampled_from(["f1", "f2", "f3"]),
    st.lists(st.sampled_from(["S", "M", "L"]), min_size=1, max_size=3, unique=True),
    st.integers(0, 4),
    st.sampled_from(["drop", "variant"]),
)


def test_fuzzed_variant_bodies_get_a_problem_or_a_sound_drop(nodes: NodeFactory, redis_server: Any) -> None:
    """Whatever the body: 201, 409 or 422, never a 5xx; a refused body writes nothing, and every
    drop created keeps its invariants; restocks with fuzzed variants behave the same."""
    import asyncio

    node = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN})
    headers = {"Authorization": f"Bearer {HOST_TOKEN}"}
    with httpx.Client(base_url=node.http, headers=headers, timeout=30) as client:
        assert client.post("/api/shows", json={"show_id": "s1", "title": "Fuzz"}).status_code == 201

        async def invariants(drop_id: str, created: bool) -> None:
            redis = Redis.from_url(redis_server.url)
            try:
                engine = StockEngine(redis)
                exists = bool(await redis.exists(stock_keys.drop_keys(drop_id).meta))
                if not created and not exists:
                    return
                if await engine.variant_names(drop_id):
                    await assert_variant_drop_invariants(engine, drop_id)
                else:
                    await assert_drop_invariants(engine, drop_id)
            finally:
                await redis.aclose()

        statuses: set[int] = set()

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(body=drop_bodies | sound_bodies, restock_variant=names | st.none(), delta=st.integers(-3, 3))
        def run(body: dict[str, Any], restock_variant: Any, delta: int) -> None:
            before = client.get(f"/api/drops/{body['drop_id']}")
            answer = client.post("/api/shows/s1/drops", json=body)
            assert answer.status_code in (201, 409, 422), answer.text
            statuses.add(answer.status_code)
            if answer.status_code != 201:
                assert answer.headers["content-type"] == "application/problem+json"
                after = client.get(f"/api/drops/{body['drop_id']}")
                assert after.status_code == before.status_code and after.json() == before.json()
            restock = {"delta": delta or 1, "request_id": f"r{delta}", "variant": restock_variant}
            again = client.post(f"/api/drops/{body['drop_id']}/restock", json=restock)
            assert again.status_code in (200, 404, 409, 422), again.text
            asyncio.run(invariants(body["drop_id"], answer.status_code == 201))

        run()
        assert {201, 422} <= statuses  # both sides were reached
        assert client.get("/readyz").status_code == 200


# -- pure: the panel's figures and alerts for a drop with variants ------------------------------------
def test_host_stats_count_each_variants_units_at_its_price_and_alerts_name_the_variant() -> None:
    from server.host.figures import DropFigures, VariantFigures, host_stats, stream_alert

    def figures(drop: str, sold: int, variants: list[VariantFigures] | None = None) -> DropFigures:
        f = DropFigures(drop, "live", 10, 10 - sold, 0, sold, 0, sold, sold, 0, 0.0, 0.0)
        if variants is not None:
            f.variants = variants
        return f

    sizes = [VariantFigures("s41", "S-41", 5, 3, 0, 2, 0), VariantFigures("s42", "S-42", 5, 4, 0, 1, 0)]
    prices = {"shoe": {"EUR": 100}, "shoe~s41": {"EUR": 100}, "shoe~s42": {"EUR": 150}, "mug": {"EUR": 10}}
    stats = host_stats("s1", 0, [figures("shoe", 3, sizes), figures("mug", 2)], prices)
    assert stats.sales.revenue == {"EUR": 2 * 100 + 1 * 150 + 2 * 10} and stats.sales.units == 5
    fields = {"kind": "oversold", "show": "s1", "drop": "shoe", "variant": "s42", "platform": "shopify", "qty": "1"}
    alert = stream_alert("1-0", fields, "s1")
    assert alert is not None and alert.drop == "shoe" and "of shoe (s42) that" in alert.message
