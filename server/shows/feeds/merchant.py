"""Google Merchant Center and Meta catalog rows → candidates. Meta's feeds reuse Google's
attribute names (and its ``g:`` namespace in XML), so one mapping reads both; they differ in
the availability spellings (``in_stock`` vs ``in stock``, both read) and in Meta's quantity.

Columns read: ``id`` → SKU, ``title``, ``price`` / ``sale_price`` (+ ``sale_price_effective_date``),
``image_link``, ``availability``, ``item_group_id`` → the drop, ``color``/``size``/``material``/
``pattern``/``gender``/``age_group`` → variant options, and the quantity (Meta's
``quantity_to_sell_on_facebook``, its deprecated ``inventory``, or a ``quantity`` column).
"""

from __future__ import annotations

import datetime

from server.shows.feeds.errors import FeedError, FileErrorCode
from server.shows.feeds.limits import MAX_GROUP, MAX_OPTION_VALUE, MAX_TITLE
from server.shows.feeds.money import Money, PriceError, parse_price
from server.shows.feeds.options import ImportOptions
from server.shows.feeds.plan import Refusal, RefusalCode
from server.shows.feeds.rows import (
    Candidate,
    RowProblem,
    SourceRow,
    check_image_url,
    check_sku,
    check_text,
    parse_stock,
    refusal,
)

OPTION_FIELDS = ("color", "size", "material", "pattern", "gender", "age_group")
QUANTITY_FIELDS = ("quantity_to_sell_on_facebook", "inventory", "quantity")
# Columns only Meta's feeds have: a TSV or XML with one of them is Meta's, not Google's.
META_ONLY_FIELDS = frozenset({"quantity_to_sell_on_facebook", "fb_product_category", "inventory"})
REQUIRED_COLUMNS = ("id", "title", "price")
# Every field this module reads (readers keep only these, so a file of many columns stays small).
KNOWN_FIELDS = frozenset(
    {*REQUIRED_COLUMNS, "sale_price", "sale_price_effective_date", "image_link", "availability", "item_group_id"}
    | {*OPTION_FIELDS, *QUANTITY_FIELDS, *META_ONLY_FIELDS}
)
IN_STOCK, OUT_OF_STOCK, DISCONTINUED = "in stock", "out of stock", "discontinued"
# Google: in_stock, out_of_stock, preorder, backorder. Meta: in stock, out of stock, preorder,
# available for order, discontinued (+ older "pending", "limited availability").
_AVAILABILITY = frozenset(
    {IN_STOCK, OUT_OF_STOCK, DISCONTINUED, "preorder", "backorder", "available for order", "pending"}
    | {"limited availability"}
)


def merchant_key(column: str) -> str:
    """Google accepts ``image link``, ``image_link`` and ``g:image_link`` for one attribute."""
    return column.strip().lower().removeprefix("g:").replace(" ", "_")


def rekey(row: SourceRow) -> SourceRow:
    return SourceRow(row.line, {merchant_key(k): v for k, v in row.cells.items()})


def require_columns(header: list[str], line: int) -> None:
    names = {merchant_key(h) for h in header}
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise FeedError(FileErrorCode.MISSING_COLUMN, f"the header has no {', '.join(missing)} column", line)


def build(rows: list[SourceRow], options: ImportOptions) -> tuple[list[Candidate], list[Refusal]]:
    candidates: list[Candidate] = []
    refused: list[Refusal] = []
    now = options.now or datetime.datetime.now(datetime.UTC)
    for row in rows:
        row = rekey(row)
        try:
            candidates.append(_candidate(row, options, now))
        except RowProblem as problem:
            refused.append(refusal(row, row.cells.get("id"), problem))
    return candidates, refused


def _candidate(row: SourceRow, options: ImportOptions, now: datetime.datetime) -> Candidate:
    cells = row.cells
    missing = [name for name in REQUIRED_COLUMNS if not cells.get(name)]
    if missing:
        raise RowProblem(RefusalCode.MISSING_FIELD, f"no {', '.join(missing)}")
    sku = check_sku("id", cells["id"])
    title = check_text("title", cells["title"], MAX_TITLE)
    group = check_text("item_group_id", cells.get("item_group_id") or sku, MAX_GROUP)
    price = _price(cells, now)
    availability = cells.get("availability", "").lower().replace("_", " ") or IN_STOCK
    if availability not in _AVAILABILITY:
        message = f"availability {cells['availability']!r:.40} is not a known value"
        raise RowProblem(RefusalCode.BAD_AVAILABILITY, message)
    if availability == DISCONTINUED:
        raise RowProblem(RefusalCode.DISCONTINUED, "the product is discontinued")
    stock = None
    if not options.ignore_feed_stock:
        field = next((f for f in QUANTITY_FIELDS if cells.get(f)), None)
        stock = parse_stock(field, cells[field]) if field else None
    if stock is None:
        stock = options.default_stock
    if availability == OUT_OF_STOCK:
        stock = 0
    variant_options = {f: check_text(f, cells[f], MAX_OPTION_VALUE) for f in OPTION_FIELDS if cells.get(f)}
    return Candidate(
        line=row.line,
        sku=sku,
        group=group,
        title=title,
        image_url=check_image_url("image_link", cells.get("image_link", "")),
        prices={price.currency: price.minor},
        options=variant_options,
        stock=stock,
    )


def _price(cells: dict[str, str], now: datetime.datetime) -> Money:
    """``price``, or ``sale_price`` while it is in force: always when it has no
    ``sale_price_effective_date``, else only inside that interval."""
    try:
        price = parse_price(cells["price"])
    except PriceError as exc:
        raise _price_problem("price", exc) from None
    sale_text = cells.get("sale_price", "")
    if not sale_text:
        return price
    try:
        sale = parse_price(sale_text)
    except PriceError as exc:
        raise _price_problem("sale_price", exc) from None
    if sale.currency != price.currency or sale.minor > price.minor:
        raise RowProblem(RefusalCode.BAD_PRICE, f"sale_price {sale_text} is not a lower price in {price.currency}")
    window = cells.get("sale_price_effective_date", "")
    return sale if not window or _in_window(window, now) else price


def _in_window(window: str, now: datetime.datetime) -> bool:
    start_text, sep, end_text = window.partition("/")
    try:
        if not sep:
            raise ValueError(window)
        start = datetime.datetime.fromisoformat(start_text.strip())
        end = datetime.datetime.fromisoformat(end_text.strip())
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError(window)
    except ValueError:
        raise RowProblem(
            RefusalCode.BAD_PRICE,
            f"sale_price_effective_date {window!r:.60} is not two ISO 8601 times with offsets, start/end",
        ) from None
    return start <= now < end


def _price_problem(field: str, exc: PriceError) -> RowProblem:
    code = RefusalCode.UNKNOWN_CURRENCY if exc.unknown_currency else RefusalCode.BAD_PRICE
    return RowProblem(code, f"{field}: {exc}")
