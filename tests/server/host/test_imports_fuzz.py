"""Fuzzing the import endpoints of a real node (DESIGN §13): random bytes and feed-like text
under any content type and options, random URLs, random confirm bodies. Every answer is a 2xx
or a 4xx problem, never a 5xx; a preview creates nothing; the node stays healthy."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from server.ops.local_redis import LocalRedis
from tests.support.servers import Node

NodeFactory = Callable[..., Node]
HOST_TOKEN = "host-fuzz-1"
ANSWERS = {201, 404, 413, 415, 422}

HEADERS = [
    "id\ttitle\tprice\titem_group_id\tsize\tquantity\timage_link\tavailability",
    "id,title,price,item_group_id,color,quantity_to_sell_on_facebook,sale_price",
    "Handle,Title,Option1 Name,Option1 Value,Variant SKU,Variant Price,Variant Inventory Qty,Image Src",
    "URL handle,Title,SKU,Price,Inventory quantity,Option1 name,Option1 value,Status",
]
cell = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["19.00 EUR", "1500 JPY", "12.345 KWD", "=1+1", "-5", "in stock", "out_of_stock", '"', "\r", ""]),
)


@st.composite
def feed_text(draw: st.DrawFn) -> bytes:
    header = draw(st.sampled_from(HEADERS))
    sep = "\t" if "\t" in header else ","
    width = header.count(sep) + 1
    rows = draw(st.lists(st.lists(cell, min_size=width - 1, max_size=width + 1), max_size=6))
    return (header + "\n" + "".join(sep.join(r) + "\n" for r in rows)).encode("utf-8", "surrogatepass")


@st.composite
def feed_xml(draw: st.DrawFn) -> bytes:
    fields = draw(
        st.lists(
            st.tuples(st.sampled_from(["g:id", "title", "g:price", "g:item_group_id", "g:size", "g:inventory"]), cell),
            max_size=8,
        )
    )
    prolog = draw(st.sampled_from(["", '<?xml version="1.0"?>', '<!DOCTYPE r [<!ENTITY e "x">]>']))
    inner = "".join(f"<{name}>{value}</{name}>" for name, value in fields)
    close = draw(st.sampled_from(["</item></channel></rss>", "</channel></rss>", ""]))
    return f'{prolog}<rss xmlns:g="http://base.google.com/ns/1.0"><channel><item>{inner}{close}'.encode(
        "utf-8", "surrogatepass"
    )


bodies = st.one_of(st.binary(max_size=600), feed_text(), feed_xml())
media = st.sampled_from(
    [
        "",
        "text/csv",
        "text/tab-separated-values",
        "application/xml",
        "text/plain; charset=latin-1",
        "application/json",
        "multipart/form-data; boundary=x",
        "text/html",
        "x/y;;",
        "TEXT/CSV",
    ]
)
queries = st.dictionaries(
    st.sampled_from(["currency", "default_stock", "ignore_feed_stock", "format", "x"]),
    st.one_of(st.text(max_size=8), st.sampled_from(["EUR", "5", "true", "google_tsv", "shopify_csv", "-1"])),
    max_size=4,
)
urls = st.builds(
    lambda scheme, host, path: f"{scheme}{host}{path}",
    st.sampled_from(["http://", "https://", "file://", "ftp://", "", "javascript:"]),
    st.sampled_from(["127.0.0.1", "[::1]", "10.0.0.1", "169.254.169.254", "0", "localhost", "[::ffff:7f00:1]", ""]),
    st.text(max_size=10),
)
confirm_bodies = st.one_of(
    st.binary(max_size=100),
    st.dictionaries(
        st.sampled_from(["default_stock", "hold_seconds", "per_customer_limit", "x"]), st.integers(-5, 10**10)
    ).map(lambda d: str(d).replace("'", '"').encode()),
)


def test_the_import_endpoints_answer_every_input(nodes: NodeFactory, redis_server: LocalRedis) -> None:
    node = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN, "LIVEDROP_IMPORT_FETCH_TIMEOUT": "2"})
    headers = {"Authorization": f"Bearer {HOST_TOKEN}"}
    seen: dict[int, int] = {}
    with httpx.Client(base_url=node.http, headers=headers, timeout=30) as client:
        assert client.post("/api/shows", json={"show_id": "s1", "title": "Fuzz"}).status_code == 201

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(body=bodies, kind=media, query=queries)
        def upload(body: bytes, kind: str, query: dict[str, str]) -> None:
            r = client.post("/api/shows/s1/imports", content=body, params=query, headers={"Content-Type": kind})
            assert r.status_code in ANSWERS, (r.status_code, r.text)
            seen[r.status_code] = seen.get(r.status_code, 0) + 1
            if r.status_code != 201:
                assert r.headers["content-type"] == "application/problem+json", r.text

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        @given(url=urls, import_id=st.text(max_size=20), body=confirm_bodies)
        def others(url: str, import_id: str, body: bytes) -> None:
            r = client.post("/api/shows/s1/imports/url", json={"url": url})
            assert r.status_code in ANSWERS, (r.status_code, r.text)
            r = client.post(f"/api/shows/s1/imports/{quote(import_id, safe='')}/confirm", content=body)
            assert r.status_code in ANSWERS | {405}, (r.status_code, r.text)

        upload()
        others()
        assert sum(seen.values()) >= 30, seen  # every example reached the node
        assert client.get("/readyz").status_code == 200

    async def nothing_created() -> None:
        redis = Redis.from_url(redis_server.url)
        try:
            assert [key async for key in redis.scan_iter(match="ld:{drop:*")] == []
        finally:
            await redis.aclose()

    asyncio.run(nothing_created())
