"""Each sample feed in tests/data/feeds parses into exactly the plan a host should preview:
the drops with their variants, prices in minor units, stock, and every refused row."""

from __future__ import annotations

import datetime

import msgspec
import pytest

from server.shows.feeds import (
    FeedError,
    FeedFormat,
    FileErrorCode,
    ImportOptions,
    ImportPlan,
    PlannedDrop,
    PlannedVariant,
    RefusalCode,
    parse_feed,
)
from tests.support import paths

DATA = paths.DATA / "feeds"
# Inside the sneaker's sale window (December 2026).
NOW = datetime.datetime(2026, 12, 10, 12, 0, tzinfo=datetime.UTC)


def plan_of(name: str, **options: object) -> ImportPlan:
    return parse_feed((DATA / name).read_bytes(), ImportOptions(now=NOW, **options))  # type: ignore[arg-type]


def refusals(plan: ImportPlan) -> list[tuple[int, str | None, RefusalCode]]:
    return [(r.line, r.source_id, r.reason) for r in plan.refused]


def test_google_tsv_groups_sizes_into_one_drop() -> None:
    plan = plan_of("google_sizes.tsv")
    assert plan.format is FeedFormat.GOOGLE_TSV
    assert plan.rows_read == 5
    tee_options = {"color": "red", "gender": "unisex", "age_group": "adult"}
    assert plan.drops == [
        PlannedDrop(
            group="TEE-RED",
            title="Organic cotton tee - red",  # what the variant titles share
            image_url="https://cdn.shop.example/img/tee-red.jpg",
            prices={"EUR": 1900},
            variants=[
                PlannedVariant(sku="TEE-RED-S", line=2, options={**tee_options, "size": "S"}),
                PlannedVariant(sku="TEE-RED-M", line=3, options={**tee_options, "size": "M"}),
                # out_of_stock: kept, with a starting stock of 0; its own price since it differs.
                PlannedVariant(
                    sku="TEE-RED-XL", line=4, options={**tee_options, "size": "XL"}, stock=0, prices={"EUR": 2100}
                ),
            ],
        ),
        # sale_price without an effective date is the price.
        PlannedDrop(
            group="MUG-ENAMEL",
            title="Enamel camp mug",
            image_url="https://cdn.shop.example/img/mug.jpg",
            prices={"EUR": 990},
            variants=[PlannedVariant(sku="MUG-ENAMEL", line=5)],
        ),
        PlannedDrop(
            group="CAP-2019",
            title="Logo cap (2019)",
            image_url="https://cdn.shop.example/img/cap.jpg",
            prices={"EUR": 1500},
            variants=[PlannedVariant(sku="CAP-2019", line=6)],
        ),
    ]
    assert plan.refused == []


def test_google_rss_with_g_namespace() -> None:
    plan = plan_of("google_feed.xml")
    assert plan.format is FeedFormat.GOOGLE_XML
    assert plan.rows_read == 4
    runner, furoshiki = plan.drops
    # The sale window is open at NOW: 43 sells at 69.00, so the drop's "from" price is 69.00
    # and 42 keeps its own 89.00 (not the 4.95 shipping price nested in g:shipping).
    assert runner == PlannedDrop(
        group="RUNNER-WHT",
        title="Runner sneaker white",
        image_url="https://cdn.shop.example/img/runner-white.jpg",
        prices={"USD": 6900},
        variants=[
            PlannedVariant(sku="SNEAK-WHT-42", line=7, options={"color": "white", "size": "42"}, prices={"USD": 8900}),
            PlannedVariant(sku="SNEAK-WHT-43", line=27, options={"color": "white", "size": "43"}),
        ],
    )
    assert furoshiki.title == "Furoshiki wrapping cloth & gift bag"
    assert furoshiki.prices == {"JPY": 1500}
    assert refusals(plan) == [(52, "SOCKS-3PK", RefusalCode.BAD_PRICE)]
    assert "period" in plan.refused[0].message


def test_google_sale_price_outside_its_window_is_not_used() -> None:
    later = datetime.datetime(2027, 1, 5, tzinfo=datetime.UTC)
    plan = parse_feed((DATA / "google_feed.xml").read_bytes(), ImportOptions(now=later))
    runner = plan.drops[0]
    assert runner.prices == {"USD": 8900}
    assert [v.prices for v in runner.variants] == [None, None]


def test_meta_csv_with_quantity_and_variants() -> None:
    plan = plan_of("meta_variants.csv")
    assert plan.format is FeedFormat.META_CSV
    dress, tote, scarf = plan.drops
    assert dress == PlannedDrop(
        group="DRESS-LINEN",
        title="Linen summer dress",
        image_url="https://cdn.shop.example/img/dress-blue.jpg",
        prices={"EUR": 4990},
        variants=[
            PlannedVariant(sku="DRESS-BLU-36", line=2, options={"color": "blue", "size": "36"}, stock=12),
            PlannedVariant(sku="DRESS-BLU-38", line=3, options={"color": "blue", "size": "38"}, stock=8),
            PlannedVariant(
                sku="DRESS-RED-36", line=4, options={"color": "red", "size": "36"}, stock=0, prices={"EUR": 5490}
            ),
        ],
    )
    assert tote.variants == [PlannedVariant(sku="TOTE-CANVAS", line=5, stock=None)]
    assert (scarf.prices, scarf.variants[0].stock) == ({"EUR": 9900}, 3)
    assert refusals(plan) == [(7, "GIFT-1", RefusalCode.FORMULA)]
    assert "title" in plan.refused[0].message


def test_meta_csv_host_stock_fills_only_missing_quantities() -> None:
    plan = plan_of("meta_variants.csv", default_stock=25)
    assert [v.stock for d in plan.drops for v in d.variants] == [12, 8, 0, 25, 3]
    forced = plan_of("meta_variants.csv", default_stock=25, ignore_feed_stock=True)
    # out of stock stays 0 whatever the host says: the feed says none can be sold.
    assert [v.stock for d in forced.drops for v in d.variants] == [25, 25, 0, 25, 25]


def test_meta_tsv_three_decimal_currency() -> None:
    plan = plan_of("meta_feed.tsv")
    assert plan.format is FeedFormat.META_TSV
    (keyboard,) = plan.drops
    assert keyboard.prices == {"KWD": 129000}
    assert [(v.sku, v.stock, v.prices) for v in keyboard.variants] == [
        ("KBD-TKL-BRN", 5, None),
        ("KBD-TKL-RED", 7, None),
        ("KBD-TKL-BLU", None, {"KWD": 131500}),
    ]


def test_meta_xml() -> None:
    plan = plan_of("meta_feed.xml")
    assert plan.format is FeedFormat.META_XML
    assert [(d.group, d.prices, d.variants[0].stock) for d in plan.drops] == [
        ("LAMP-BRASS", {"GBP": 7500}, 20),
        ("CANDLE-FIG", {"BHD": 18000}, 9),
    ]
    assert refusals(plan) == [(20, "VASE-CERAMIC", RefusalCode.BAD_URL)]


def test_shopify_old_vocabulary_with_continuation_rows() -> None:
    plan = plan_of("shopify_old.csv", currency="EUR")
    assert plan.format is FeedFormat.SHOPIFY_CSV
    hoodie, beanie = plan.drops
    assert hoodie == PlannedDrop(
        group="hoodie-classic",
        title="Classic hoodie",
        image_url="https://cdn.shopify.example/files/hoodie-black.jpg",
        prices={"EUR": 5900},
        variants=[
            PlannedVariant(sku="HOOD-BLK-M", line=2, options={"color": "Black", "size": "M"}, stock=14),
            PlannedVariant(sku="HOOD-BLK-L", line=3, options={"color": "Black", "size": "L"}, stock=9),
            PlannedVariant(
                sku="HOOD-GRY-L", line=4, options={"color": "Grey", "size": "L"}, stock=0, prices={"EUR": 6200}
            ),
        ],
    )
    # "Title" / "Default Title" is Shopify's product without options.
    assert beanie.variants == [PlannedVariant(sku="BEANIE-1", line=6, stock=40)]
    # A gift card without a SKU cannot be matched to platform orders: refused.
    assert refusals(plan) == [(7, None, RefusalCode.MISSING_FIELD)]
    assert "SKU" in plan.refused[0].message


def test_shopify_current_vocabulary_with_blank_handle_continuations() -> None:
    plan = plan_of("shopify_current.csv", currency="JPY")
    assert plan.format is FeedFormat.SHOPIFY_CSV
    (shoe,) = plan.drops
    assert shoe == PlannedDrop(
        group="trail-shoe",
        title="Trail running shoe",
        image_url="https://cdn.shopify.example/files/trail-blue.jpg",
        prices={"JPY": 7990},
        variants=[
            PlannedVariant(sku="TRAIL-BLU-42", line=2, options={"color": "Blue", "size": "42"}, stock=6),
            PlannedVariant(sku="TRAIL-BLU-43", line=3, options={"color": "Blue", "size": "43"}, stock=4),
            PlannedVariant(
                sku="TRAIL-BLK-43", line=4, options={"color": "Black", "size": "43"}, stock=None, prices={"JPY": 8490}
            ),
        ],
    )
    assert refusals(plan) == [
        (6, "BOTTLE-1", RefusalCode.DISCONTINUED),  # Status: Archived
        (7, "SOCKS-TRAIL", RefusalCode.BAD_PRICE),  # 1499.5 JPY: yen have no decimals
    ]


def test_shopify_needs_the_shop_currency() -> None:
    with pytest.raises(FeedError) as caught:
        parse_feed((DATA / "shopify_old.csv").read_bytes())
    assert caught.value.code is FileErrorCode.CURRENCY_REQUIRED


def test_format_can_be_forced_but_not_across_xml_and_text() -> None:
    tsv = (DATA / "google_sizes.tsv").read_bytes()
    assert parse_feed(tsv, ImportOptions(format=FeedFormat.META_TSV)).format is FeedFormat.META_TSV
    with pytest.raises(FeedError) as caught:
        parse_feed(tsv, ImportOptions(format=FeedFormat.GOOGLE_XML))
    assert caught.value.code is FileErrorCode.UNKNOWN_FORMAT


def test_detection_reads_content_not_names() -> None:
    """The same TSV is Google's without a Meta-only column and Meta's with one."""
    google = b"id\ttitle\tprice\nA1\tMug\t5.00 EUR\n"
    meta = b"id\ttitle\tprice\tquantity_to_sell_on_facebook\nA1\tMug\t5.00 EUR\t3\n"
    assert parse_feed(google).format is FeedFormat.GOOGLE_TSV
    plan = parse_feed(meta)
    assert plan.format is FeedFormat.META_TSV
    assert plan.drops[0].variants[0].stock == 3


def test_google_header_spellings_with_spaces_and_prefix() -> None:
    """Google reads ``image link`` and ``g:image_link`` as ``image_link``."""
    feed = b"g:id\tTitle\tPrice\timage link\nA1\tMug\t5.00 EUR\thttps://x.example/m.jpg\n"
    (drop,) = parse_feed(feed).drops
    assert (drop.title, drop.image_url, drop.prices) == ("Mug", "https://x.example/m.jpg", {"EUR": 500})


def test_meta_tsv_drop_title_is_what_variant_titles_share() -> None:
    (keyboard,) = plan_of("meta_feed.tsv").drops
    assert keyboard.title == "Mechanical keyboard TKL"


def test_atom_feed_prefers_g_id_over_the_entry_uri() -> None:
    atom = b"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:g="http://base.google.com/ns/1.0">
  <title>Acme</title>
  <entry>
    <id>tag:shop.example,2026:products/mug</id>
    <title>Enamel mug</title>
    <link href="https://shop.example/mug"/>
    <g:id>MUG-1</g:id>
    <g:price>9.50 CHF</g:price>
    <g:availability>in stock</g:availability>
  </entry>
</feed>"""
    plan = parse_feed(atom)
    assert plan.format is FeedFormat.GOOGLE_XML
    assert [(d.group, d.title, d.prices) for d in plan.drops] == [("MUG-1", "Enamel mug", {"CHF": 950})]


def test_crlf_and_blank_lines_keep_line_numbers() -> None:
    data = b"\r\n\r\nid,title,price\r\nA1,Mug,5.00 EUR\r\n\r\nA2,Cup,oops\r\n"
    plan = parse_feed(data)
    assert [v.line for d in plan.drops for v in d.variants] == [4]
    assert [(r.line, r.reason) for r in plan.refused] == [(6, RefusalCode.BAD_PRICE)]


def test_quoted_multiline_cell_reports_the_row_start() -> None:
    data = b'id,title,price,description\nA1,Mug,5.00 EUR,"two\nlines"\nA2,Cup,-1 EUR,x\n'
    plan = parse_feed(data)
    assert [(r.line, r.source_id) for r in plan.refused] == [(4, "A2")]


def test_shopify_without_handle_column_groups_by_title() -> None:
    data = (
        b"Title,Option1 Name,Option1 Value,SKU,Price,Variant Image\n"
        b"Mug,Color,Blue,MUG-B,5.00,https://x.example/b.jpg\n"
        b"Mug,Color,Green,MUG-G,5.00,\n"
    )
    (mug,) = parse_feed(data, ImportOptions(currency="EUR")).drops
    assert [v.options for v in mug.variants] == [{"color": "Blue"}, {"color": "Green"}]
    assert mug.image_url == "https://x.example/b.jpg"  # no product image: the variant's


def test_plan_encodes_to_json_for_the_api() -> None:
    plan = plan_of("meta_feed.xml")
    decoded = msgspec.json.decode(msgspec.json.encode(plan), type=ImportPlan)
    assert decoded == plan
    raw = msgspec.json.decode(msgspec.json.encode(plan))
    assert raw["refused"][0] == {
        "line": 20,
        "source_id": "VASE-CERAMIC",
        "reason": "bad_url",
        "message": "image_link 'javascript:alert(1)' is not an absolute http(s) URL",
    }
