"""Shopify product CSV → candidates, in both header vocabularies.

Old exports say ``Handle, Variant SKU, Variant Price, Variant Inventory Qty, Image Src``; the
current help page says ``URL handle, SKU, Price, Inventory quantity, Product image URL`` and
writes ``Option1 name`` in lower case. Both are read (column names are compared without case).

Rows are grouped by handle into one product; a row with a blank handle continues the product
above it, as do image-only rows. Product fields (title, option names, status, image) come from
the product's first row. Without a handle column at all, Shopify derives the handle from the
title, so rows are grouped by title.
"""

from __future__ import annotations

import dataclasses

from server.shows.feeds.errors import FeedError, FileErrorCode
from server.shows.feeds.limits import MAX_GROUP, MAX_OPTION_NAME, MAX_OPTION_VALUE, MAX_TITLE
from server.shows.feeds.money import PriceError, to_minor
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

# canonical name → header spellings (old, current), already lower-cased.
COLUMNS: dict[str, tuple[str, ...]] = {
    "handle": ("handle", "url handle"),
    "title": ("title",),
    "sku": ("variant sku", "sku"),
    "price": ("variant price", "price"),
    "quantity": ("variant inventory qty", "inventory quantity"),
    "image": ("image src", "product image url"),
    "variant_image": ("variant image", "variant image url"),
    "status": ("status",),
    **{f"option{n}_name": (f"option{n} name",) for n in (1, 2, 3)},
    **{f"option{n}_value": (f"option{n} value",) for n in (1, 2, 3)},
}
# Headers that only a Shopify product CSV has.
MARKERS = frozenset(
    {"handle", "url handle", "variant sku", "variant price", "variant inventory qty", "inventory quantity"}
    | {"option1 name", "option1 value", "image src", "product image url", "body (html)"}
)
REQUIRED = ("title", "sku", "price")
KNOWN_COLUMNS = frozenset(spelling for spellings in COLUMNS.values() for spelling in spellings)


@dataclasses.dataclass
class _Product:
    line: int
    title: str
    option_names: list[str]
    image_url: str
    problem: RowProblem | None = None


def _columns(header: list[str], line: int) -> dict[str, str]:
    found = {}
    for canonical, spellings in COLUMNS.items():
        column = next((s for s in spellings if s in header), None)
        if column is not None:
            found[canonical] = column
    missing = [c for c in REQUIRED if c not in found]
    if missing:
        raise FeedError(
            FileErrorCode.MISSING_COLUMN,
            f"the Shopify header has no {', '.join(missing)} column (or its old name)",
            line,
        )
    return found


def build(
    header: list[str], header_line: int, rows: list[SourceRow], options: ImportOptions
) -> tuple[list[Candidate], list[Refusal]]:
    if options.currency is None:
        raise FeedError(FileErrorCode.CURRENCY_REQUIRED, "a Shopify CSV has no currency: name the shop's currency")
    columns = _columns(header, header_line)
    products: dict[str, _Product] = {}
    current: str | None = None
    candidates: list[Candidate] = []
    refused: list[Refusal] = []
    for row in rows:
        cells = {canonical: row.cells.get(column, "") for canonical, column in columns.items()}
        try:
            group = _group(cells, "handle" in columns, current)
            current = group
            product = products.get(group)
            if product is None:
                product = products[group] = _new_product(row.line, cells)
                if product.problem is not None:
                    raise product.problem
            elif product.problem is not None:
                first = product.problem
                raise RowProblem(first.code, f"its product (line {product.line}) is refused: {first.message}")
            elif not product.image_url and cells.get("image"):
                product.image_url = _image(cells["image"], "image")
            if not (cells["sku"] or cells["price"] or cells.get("option1_value")):
                continue  # an image-only or blank continuation row
            candidates.append(_candidate(row.line, group, product, cells, options))
        except RowProblem as problem:
            refused.append(refusal(row, cells["sku"], problem))
    return candidates, refused


def _group(cells: dict[str, str], has_handle: bool, current: str | None) -> str:
    key = cells["handle"] if has_handle else cells["title"]
    if key:
        return check_text("handle" if has_handle else "title", key, MAX_GROUP)
    if has_handle and current is not None:
        return current
    raise RowProblem(RefusalCode.MISSING_FIELD, "no handle, and no product row above it")


def _new_product(line: int, cells: dict[str, str]) -> _Product:
    """The product of a handle's first row; a refused product keeps its problem so that all
    its rows are refused with it."""
    product = _Product(line=line, title="", option_names=[], image_url="")
    try:
        if not cells["title"]:
            raise RowProblem(RefusalCode.MISSING_FIELD, "the product's first row has no Title")
        product.title = check_text("title", cells["title"], MAX_TITLE)
        product.option_names = [
            check_text(f"option{n} name", cells.get(f"option{n}_name", ""), MAX_OPTION_NAME) for n in (1, 2, 3)
        ]
        if cells.get("status", "").lower() == "archived":
            raise RowProblem(RefusalCode.DISCONTINUED, "the product is archived")
        product.image_url = _image(cells.get("image", ""), "image")
    except RowProblem as problem:
        product.problem = problem
    return product


def _image(value: str, field: str) -> str:
    return check_image_url(field, value)


def _candidate(line: int, group: str, product: _Product, cells: dict[str, str], options: ImportOptions) -> Candidate:
    missing = [label for name, label in (("sku", "SKU"), ("price", "Price")) if not cells[name]]
    if missing:
        raise RowProblem(RefusalCode.MISSING_FIELD, f"no {', '.join(missing)}")
    sku = check_sku("SKU", cells["sku"])
    assert options.currency is not None  # checked by build()
    try:
        price = to_minor(cells["price"], options.currency)
    except PriceError as exc:
        raise RowProblem(RefusalCode.BAD_PRICE, f"price: {exc}") from None
    variant_options: dict[str, str] = {}
    for n, name in enumerate(product.option_names, start=1):
        value = cells.get(f"option{n}_value", "")
        if not name:
            continue
        if not value:
            raise RowProblem(RefusalCode.MISSING_FIELD, f"no Option{n} value for {name}")
        if name.lower() == "title" and value == "Default Title":
            continue  # Shopify's marker of a product without options
        variant_options[name.lower()] = check_text(f"option{n} value", value, MAX_OPTION_VALUE)
    stock = None if options.ignore_feed_stock else parse_stock("inventory quantity", cells.get("quantity", ""))
    image = product.image_url or _image(cells.get("variant_image", ""), "variant image")
    return Candidate(
        line=line,
        sku=sku,
        group=group,
        title=product.title,
        image_url=image,
        prices={price.currency: price.minor},
        options=variant_options,
        stock=options.default_stock if stock is None else stock,
    )
