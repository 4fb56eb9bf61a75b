"""Which of the feed formats a file is, from its content (never its name).

- XML (first character ``<``): Meta's if any item has a field only Meta defines
  (``quantity_to_sell_on_facebook``, ``fb_product_category``, ``inventory``), else Google's.
  Both use the same ``g:`` vocabulary, so the plan is the same either way.
- Text: a Shopify CSV if the header has a column only Shopify's has (``Handle``, ``Variant
  SKU``, ``Option1 Name``, ...); otherwise a merchant feed, which must name ``id``. A comma makes
  it Meta's CSV (Google's text feeds are tab-separated); a TSV is Meta's if it has a Meta-only
  column, else Google's.
"""

from __future__ import annotations

from server.shows.feeds import merchant, shopify
from server.shows.feeds.errors import FeedError, FileErrorCode
from server.shows.feeds.plan import FeedFormat
from server.shows.feeds.rows import SourceRow

XML_FORMATS = frozenset({FeedFormat.GOOGLE_XML, FeedFormat.META_XML})


def looks_like_xml(text: str) -> bool:
    return text.lstrip().startswith("<")


def refuse_html(text: str) -> None:
    """A feed URL that answers with a web page (a login or error page) gets its own message,
    not "the XML declares a DTD"."""
    start = text.lstrip()[:15].lower()
    if start.startswith(("<!doctype html", "<html")):
        raise FeedError(
            FileErrorCode.UNKNOWN_FORMAT, "this is an HTML page, not a product feed (a login or error page?)"
        )


def classify_xml(rows: list[SourceRow]) -> FeedFormat:
    meta = any(merchant.META_ONLY_FIELDS & row.cells.keys() for row in rows)
    return FeedFormat.META_XML if meta else FeedFormat.GOOGLE_XML


def classify_header(header: list[str], delimiter: str) -> FeedFormat:
    names = set(header)
    if shopify.MARKERS & names or ("id" not in names and {"title", "sku"} <= names):
        return FeedFormat.SHOPIFY_CSV
    keys = {merchant.merchant_key(h) for h in header}
    if "id" not in keys:
        shown = ", ".join(header[:5])[:120]
        raise FeedError(
            FileErrorCode.MISSING_HEADER,
            f"the first row ({shown}) is not a feed header: expected id, title, price (Google, Meta) "
            "or Handle/URL handle, Title, SKU, Price (Shopify)",
        )
    if delimiter == ",":
        return FeedFormat.META_CSV
    return FeedFormat.META_TSV if merchant.META_ONLY_FIELDS & keys else FeedFormat.GOOGLE_TSV
