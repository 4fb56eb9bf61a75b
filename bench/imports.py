"""Run-of-show imports and checkout links: what a preview and a link cost, beside their ceilings.

A host waits for an import's preview while the show runs, so the preview must stay well under a
second for the largest feed LiveDrop accepts (``Limits.max_rows``: 10,000 rows). Each format is
planned (``parse_feed``: decode, read, validate, group into variants) and proposed
(``importer.propose``: the ids the confirm step creates), and set beside the fastest pure reader
of the same bytes in the same run: ``csv.reader`` for tabular feeds, defusedxml's ``fromstring``
for XML. The ratio says what validation and grouping add on top of reading.

A checkout link is built for every ``reserved`` answer on the viewer path, so its cost is set
beside ``urllib.parse.urlencode`` of the same parameters (the least a link with a signed reference
can cost).

    python -m bench.imports                 # 10,000 rows per format, 5 runs each
    python -m bench.imports --rows 2000 --runs 3 --json results.json
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import msgspec
from defusedxml.ElementTree import fromstring

from server.checkout.config import CheckoutSettings, CustomCheckout, ShopifyCheckout, WooCommerceCheckout
from server.checkout.links import checkout_url
from server.shows.feeds.options import ImportOptions
from server.shows.feeds.parse import parse_feed
from server.shows.importer import propose

SIZES = ("36", "37", "38", "39", "40", "41")
"""Six sizes per product: each feed groups its rows into drops of six variants."""


class Row(msgspec.Struct, frozen=True):
    feed: str
    rows: int
    bytes: int
    drops: int
    refused: int
    preview_ms: float
    reader_ms: float
    ratio: float


class LinkRow(msgspec.Struct, frozen=True):
    platform: str
    link_us: float
    urlencode_us: float
    ratio: float


def google_tsv(rows: int) -> bytes:
    columns = ("id", "title", "description", "link", "image_link", "availability", "price", "brand")
    lines = ["\t".join((*columns, "condition", "item_group_id", "color", "size")) + "\n"]
    for n in range(rows):
        group, size = divmod(n, len(SIZES))
        lines.append(
            f"SKU-{group}-{SIZES[size]}\tRunner {group} {SIZES[size]}\tLightweight runner.\t"
            f"https://shop.example/p/{group}\thttps://cdn.shop.example/{group}.jpg\tin_stock\t89.00 EUR\t"
            f"Acme\tnew\tRUNNER-{group}\twhite\t{SIZES[size]}\n"
        )
    return "".join(lines).encode()


def meta_csv(rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            *("id", "title", "description", "availability", "condition", "price", "link", "image_link", "brand"),
            *("quantity_to_sell_on_facebook", "item_group_id", "color", "size"),
        ]
    )
    for n in range(rows):
        group, size = divmod(n, len(SIZES))
        writer.writerow(
            [
                *(f"DRESS-{group}-{SIZES[size]}", f"Linen dress {group}, blue", "Relaxed fit.", "in stock", "new"),
                *("49.90 EUR", f"https://shop.example/d/{group}", f"https://cdn.shop.example/d{group}.jpg", "Acme"),
                *("12", f"DRESS-{group}", "blue", SIZES[size]),
            ]
        )
    return out.getvalue().encode()


def shopify_csv(rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            *("Title", "URL handle", "Vendor", "Status", "SKU", "Option1 name", "Option1 value", "Price"),
            *("Inventory tracker", "Inventory quantity", "Product image URL"),
        ]
    )
    for n in range(rows):
        group, size = divmod(n, len(SIZES))
        first = size == 0
        writer.writerow(
            [
                *(f"Trail shoe {group}" if first else "", f"trail-{group}", "Acme" if first else ""),
                *("Active" if first else "", f"TRAIL-{group}-{SIZES[size]}", "Size" if first else "", SIZES[size]),
                *("79.90", "shopify", "6", f"https://cdn.shopify.example/t{group}.jpg" if first else ""),
            ]
        )
    return out.getvalue().encode()


def google_xml(rows: int) -> bytes:
    items = []
    for n in range(rows):
        group, size = divmod(n, len(SIZES))
        items.append(
            f"<item><g:id>SNEAK-{group}-{SIZES[size]}</g:id><title>Runner {group}</title>"
            f"<link>https://shop.example/r/{group}</link><g:image_link>https://cdn.shop.example/r{group}.jpg</g:image_link>"
            f"<g:availability>in_stock</g:availability><g:price>89.00 USD</g:price><g:condition>new</g:condition>"
            f"<g:item_group_id>RUNNER-{group}</g:item_group_id><g:size>{SIZES[size]}</g:size></item>"
        )
    body = "".join(items)
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" xmlns:g="http://base.google.com/ns/1.0">'
        f"<channel><title>Feed</title>{body}</channel></rss>"
    ).encode()


def _best_ms(fn: Callable[[], object], runs: int) -> float:
    """The median of ``runs`` timings: the machine is shared, the median moves least."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _read_csv(data: bytes, delimiter: str) -> object:
    for _ in csv.reader(io.StringIO(data.decode()), delimiter=delimiter):
        pass
    return None


def measure_feeds(rows: int, runs: int) -> list[Row]:
    feeds: list[tuple[str, bytes, ImportOptions, Callable[[bytes], object]]] = [
        ("Google Merchant TSV", google_tsv(rows), ImportOptions(), lambda d: _read_csv(d, "\t")),
        ("Meta catalog CSV", meta_csv(rows), ImportOptions(), lambda d: _read_csv(d, ",")),
        ("Shopify product CSV", shopify_csv(rows), ImportOptions(currency="EUR"), lambda d: _read_csv(d, ",")),
        ("Google Merchant XML", google_xml(rows), ImportOptions(default_stock=5), lambda d: fromstring(d)),
    ]
    results = []
    for name, data, options, reader in feeds:
        plan = parse_feed(data, options)
        drops = propose(plan, set())

        def preview(data: bytes = data, options: ImportOptions = options) -> None:
            propose(parse_feed(data, options), set())

        preview_ms = _best_ms(preview, runs)
        reader_ms = _best_ms(lambda data=data, reader=reader: reader(data), runs)  # type: ignore[misc]
        results.append(
            Row(
                feed=name,
                rows=rows,
                bytes=len(data),
                drops=len(drops),
                refused=len(plan.refused),
                preview_ms=round(preview_ms, 1),
                reader_ms=round(reader_ms, 1),
                ratio=round(preview_ms / reader_ms, 1),
            )
        )
    return results


def measure_links(calls: int) -> list[LinkRow]:
    ref = "d1~M.17.Zm9vYmFyYmF6cXV4cXV1eA.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2ln"
    settings: dict[str, CheckoutSettings] = {
        "shopify": ShopifyCheckout(store_url="https://shop.example", products={"d1~M": "44712345678"}),
        "woocommerce": WooCommerceCheckout(store_url="https://shop.example", products={"d1~M": "1234"}),
        "custom": CustomCheckout(url_template="https://pay.example/checkout?hold={hold}&ref={ref}&qty={qty}"),
    }
    results = []
    for name, setting in settings.items():
        assert checkout_url(setting, "d1", "M", 1, "d1~M.17", ref), name
        start = time.perf_counter()
        for _ in range(calls):
            checkout_url(setting, "d1", "M", 1, "d1~M.17", ref)
        link_us = (time.perf_counter() - start) / calls * 1e6
        start = time.perf_counter()
        for _ in range(calls):
            "https://shop.example/?" + urlencode({"p": "44712345678", "q": 1, "livedrop_hold": ref})
        bare_us = (time.perf_counter() - start) / calls * 1e6
        results.append(LinkRow(name, round(link_us, 2), round(bare_us, 2), round(link_us / bare_us, 2)))
    return results


def report(feeds: list[Row], links: list[LinkRow]) -> str:
    lines = [
        "| feed | rows | bytes | drops | refused | preview ms | reader ms (ceiling) | x reader |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    lines += [
        f"| {r.feed} | {r.rows:,} | {r.bytes:,} | {r.drops:,} | {r.refused} "
        f"| {r.preview_ms} | {r.reader_ms} | {r.ratio} |"
        for r in feeds
    ]
    lines += ["", "| checkout link | µs per link | urlencode µs (ceiling) | x urlencode |", "|---|--:|--:|--:|"]
    lines += [f"| {r.platform} | {r.link_us} | {r.urlencode_us} | {r.ratio} |" for r in links]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000, help="rows per feed (at most 10,000, the import limit)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per feed; the median is reported")
    parser.add_argument("--link-calls", type=int, default=50_000)
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args(argv)
    feeds = measure_feeds(args.rows, args.runs)
    links = measure_links(args.link_calls)
    print(report(feeds, links))
    bad = [r.feed for r in feeds if r.refused or r.drops != -(-args.rows // len(SIZES))]
    if args.json:
        args.json.write_bytes(msgspec.json.encode({"feeds": feeds, "links": links}))
    if bad:
        print(f"check failed: {', '.join(bad)} refused rows or grouped them wrongly", file=sys.stderr)
        return 1
    print(f"all {len(feeds)} feeds planned every row into drops of {len(SIZES)} sizes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
