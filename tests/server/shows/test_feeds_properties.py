"""Property tests: no input makes the feed library raise anything but its own ``FeedError``,
and a generated valid feed, in every format, parses into the plan it was generated from."""

from __future__ import annotations

import csv
import io
from xml.sax.saxutils import escape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.shows.feeds import (
    FeedError,
    FeedFormat,
    ImportOptions,
    ImportPlan,
    Limits,
    PlannedDrop,
    PlannedVariant,
    parse_feed,
)

SMALL = ImportOptions(currency="EUR", limits=Limits(max_bytes=64 * 1024, max_rows=200, max_field_chars=2000))
PREFIXES = [
    b"",
    b"id\ttitle\tprice\titem_group_id\tsize\tquantity_to_sell_on_facebook\timage_link\n",
    b"id,title,price,sale_price,sale_price_effective_date,availability\n",
    b"Handle,Title,Option1 Name,Option1 Value,Variant SKU,Variant Price,Variant Inventory Qty,Image Src\n",
    b'<?xml version="1.0"?><rss xmlns:g="http://base.google.com/ns/1.0"><channel><item>',
]


def parse_or_feed_error(data: bytes) -> ImportPlan | None:
    try:
        return parse_feed(data, SMALL)
    except FeedError as error:
        assert error.code and error.message
        return None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_feed_errors(data: bytes) -> None:
    parse_or_feed_error(data)


FEEDISH = st.text(alphabet=st.sampled_from(list("A1b-=+@ .,;\t\r\n\"'<>/&#xEURJPYKWD09:_é\x00")), max_size=400)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PREFIXES), FEEDISH)
def test_feedish_text_after_a_real_header_raises_only_feed_errors(prefix: bytes, tail: str) -> None:
    plan = parse_or_feed_error(prefix + tail.encode("utf-8", "surrogatepass"))
    if plan is not None:
        for drop in plan.drops:
            assert drop.variants and drop.prices
            assert all(0 <= amount <= 10**12 for amount in drop.prices.values())


# -- round trip -----------------------------------------------------------------------------

Variant = tuple[str, str, int, int | None]  # sku, size, minor price, stock
Product = tuple[str, str, list[Variant]]  # group, title, variants
Catalogue = tuple[str, list[Product]]  # currency, products
CURRENCIES = {"EUR": 2, "USD": 2, "JPY": 0, "KWD": 3}
SKU = st.text(alphabet=st.sampled_from(list("ABCXYZ0129_.:/-")), min_size=1, max_size=12).filter(
    lambda s: s[0] not in "-"
)
TITLE = (
    st.text(alphabet=st.sampled_from(list("Abc xyz é,'\"&<>ü1")), min_size=1, max_size=30).map(str.strip).filter(bool)
)


@st.composite
def catalogues(draw: st.DrawFn) -> Catalogue:
    """(currency, [(group, title, [(sku, size, minor price, stock)])]) with unique SKUs."""
    currency = draw(st.sampled_from(sorted(CURRENCIES)))
    skus = draw(st.lists(SKU, min_size=1, max_size=12, unique=True))
    products: list[Product] = []
    index = 0
    while index < len(skus):
        count = draw(st.integers(1, min(4, len(skus) - index)))
        title = draw(TITLE)
        variants = [
            (
                sku,
                f"S{n}",
                draw(st.integers(0, 10**9)),
                draw(st.none() | st.integers(0, 10**6)),
            )
            for n, sku in enumerate(skus[index : index + count])
        ]
        products.append((f"G{len(products)}", title, variants))
        index += count
    return currency, products


def amount(minor: int, currency: str) -> str:
    digits = CURRENCIES[currency]
    if digits == 0:
        return str(minor)
    return f"{minor // 10**digits}.{minor % 10**digits:0{digits}d}"


def expected(products: list[Product], currency: str) -> list[PlannedDrop]:
    drops = []
    line = 2
    for group, title, variants in products:
        low = min(v[2] for v in variants)
        planned = []
        for sku, size, minor, stock in variants:
            planned.append(
                PlannedVariant(
                    sku=sku,
                    line=line,
                    options={"size": size},
                    stock=stock,
                    prices=None if minor == low else {currency: minor},
                )
            )
            line += 1
        drops.append(PlannedDrop(group=group, title=title, image_url="", prices={currency: low}, variants=planned))
    return drops


def render_merchant(products: list[Product], currency: str, delimiter: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["id", "title", "price", "item_group_id", "size", "quantity_to_sell_on_facebook"])
    for group, title, variants in products:
        for sku, size, minor, stock in variants:
            stock_text = "" if stock is None else str(stock)
            writer.writerow([sku, title, f"{amount(minor, currency)} {currency}", group, size, stock_text])
    return out.getvalue().encode()


def render_shopify(products: list[Product]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["URL handle", "Title", "Option1 name", "Option1 value", "SKU", "Price", "Inventory quantity"])
    for group, title, variants in products:
        for n, (sku, size, minor, stock) in enumerate(variants):
            first = n == 0
            stock_text = "" if stock is None else str(stock)
            price = amount(minor, "EUR")
            writer.writerow(
                [group if first else "", title if first else "", "Size" if first else "", size, sku, price, stock_text]
            )
    return out.getvalue().encode()


def render_xml(products: list[Product], currency: str) -> bytes:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0">']
    for group, title, variants in products:
        for sku, size, minor, stock in variants:
            stock_xml = (
                "" if stock is None else f"<g:quantity_to_sell_on_facebook>{stock}</g:quantity_to_sell_on_facebook>"
            )
            lines.append(
                f"<item><g:id>{escape(sku)}</g:id><g:title>{escape(title)}</g:title>"
                f"<g:price>{amount(minor, currency)} {currency}</g:price><g:item_group_id>{group}</g:item_group_id>"
                f"<g:size>{size}</g:size>{stock_xml}</item>"
            )
    lines.append("</rss>")
    return "\n".join(lines).encode()


@settings(max_examples=150, deadline=None)
@given(catalogues(), st.sampled_from(["\t", ","]))
def test_generated_merchant_feed_round_trips(catalogue: Catalogue, delimiter: str) -> None:
    currency, products = catalogue
    plan = parse_feed(render_merchant(products, currency, delimiter))
    assert plan.format is (FeedFormat.META_TSV if delimiter == "\t" else FeedFormat.META_CSV)
    assert plan.refused == []
    assert plan.drops == expected(products, currency)


@settings(max_examples=100, deadline=None)
@given(catalogues())
def test_generated_xml_feed_round_trips(catalogue: Catalogue) -> None:
    currency, products = catalogue
    plan = parse_feed(render_xml(products, currency))
    assert plan.refused == []
    # Lines: the XML puts item n on line n + 2, as the tabular feeds put row n on line n + 1.
    want = expected(products, currency)
    got = [
        PlannedDrop(
            group=d.group,
            title=d.title,
            image_url=d.image_url,
            prices=d.prices,
            variants=[
                PlannedVariant(sku=v.sku, line=v.line - 1, options=v.options, stock=v.stock, prices=v.prices)
                for v in d.variants
            ],
        )
        for d in plan.drops
    ]
    assert got == want


@settings(max_examples=100, deadline=None)
@given(catalogues())
def test_generated_shopify_csv_round_trips(catalogue: Catalogue) -> None:
    _, products = catalogue
    plan = parse_feed(render_shopify(products), ImportOptions(currency="EUR"))
    assert plan.format is FeedFormat.SHOPIFY_CSV
    assert plan.refused == []
    want = expected(products, "EUR")
    # Shopify option names are the host's own ("Size" → "size"), as Google's size column is.
    assert plan.drops == want
