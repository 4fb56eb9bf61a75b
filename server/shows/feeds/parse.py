"""``parse_feed``: bytes of a feed in, an ``ImportPlan`` out. Pure: no Redis, no network, no
clock but the one in the options, so the API's preview and its confirm step plan the same."""

from __future__ import annotations

from server.shows.feeds import detect, merchant, shopify
from server.shows.feeds.assemble import assemble
from server.shows.feeds.errors import FeedError, FileErrorCode
from server.shows.feeds.limits import check_size, decode_text
from server.shows.feeds.money import PriceError, exponent
from server.shows.feeds.options import ImportOptions
from server.shows.feeds.plan import FeedFormat, ImportPlan, Refusal
from server.shows.feeds.rows import Candidate
from server.shows.feeds.tabular import read_table
from server.shows.feeds.xmlfeed import read_xml


def parse_feed(data: bytes, options: ImportOptions | None = None) -> ImportPlan:
    """Plan the drops a feed would create, and name every row it refuses and why.

    Raises ``FeedError`` (and nothing else, whatever the bytes) when the file as a whole cannot
    be read: over a limit, not UTF-8, malformed, DTD/entities in XML, no header, or a Shopify
    CSV without ``options.currency``. A plan with refusals is not an error: the host decides.
    """
    options = options or ImportOptions()
    limits = options.limits
    if options.currency is not None:
        try:
            exponent(options.currency)
        except PriceError as exc:
            raise FeedError(FileErrorCode.CURRENCY_REQUIRED, str(exc)) from None
    check_size(data, limits)
    text = decode_text(data)
    candidates: list[Candidate]
    refused: list[Refusal]
    if detect.looks_like_xml(text):
        detect.refuse_html(text)
        if options.format is not None and options.format not in detect.XML_FORMATS:
            raise FeedError(FileErrorCode.UNKNOWN_FORMAT, f"the file is XML, not {options.format}")
        rows, refused, rows_read = read_xml(data, limits, merchant.KNOWN_FIELDS)
        feed_format = options.format or detect.classify_xml(rows)
        candidates, more = merchant.build(rows, options)
    else:
        if options.format in detect.XML_FORMATS:
            raise FeedError(FileErrorCode.UNKNOWN_FORMAT, f"the file is not XML, so not {options.format}")
        table = read_table(text, limits, lambda header: _columns_to_keep(header, options.format))
        feed_format = options.format or detect.classify_header(table.header, table.delimiter)
        refused, rows_read = table.refused, table.rows_read
        if feed_format is FeedFormat.SHOPIFY_CSV:
            candidates, more = shopify.build(table.header, table.header_line, table.rows, options)
        else:
            merchant.require_columns(table.header, table.header_line)
            candidates, more = merchant.build(table.rows, options)
    drops, cross = assemble(candidates, limits)
    refusals = sorted([*refused, *more, *cross], key=lambda r: r.line)
    return ImportPlan(format=feed_format, drops=drops, refused=refusals, rows_read=rows_read)


def _columns_to_keep(header: list[str], forced: FeedFormat | None) -> set[str]:
    """The header's columns that the format's builder reads (classified from the header alone)."""
    delimiter = "\t"  # the delimiter only tells Meta from Google, which read the same columns
    if (forced or detect.classify_header(header, delimiter)) is FeedFormat.SHOPIFY_CSV:
        return {name for name in header if name in shopify.KNOWN_COLUMNS}
    return {name for name in header if merchant.merchant_key(name) in merchant.KNOWN_FIELDS}
