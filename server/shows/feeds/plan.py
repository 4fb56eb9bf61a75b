"""What an import would create: the plan a host previews before confirming.

Everything here is plain data (msgspec Structs), so the API can send it as JSON and the panel
can show it; nothing in it has touched Redis. Prices are minor units per ISO 4217 currency,
the same shape as ``server.shows.catalog.DropInfo.prices``.
"""

from __future__ import annotations

import enum

import msgspec


class FeedFormat(enum.StrEnum):
    """The five feed formats of the issue (Shopify has two header vocabularies, one format)."""

    GOOGLE_TSV = "google_tsv"
    GOOGLE_XML = "google_xml"
    META_CSV = "meta_csv"
    META_TSV = "meta_tsv"
    META_XML = "meta_xml"
    SHOPIFY_CSV = "shopify_csv"


class RefusalCode(enum.StrEnum):
    """Why one row was left out of the plan (docs/feeds.md explains each rule)."""

    MISSING_FIELD = "missing_field"
    BAD_ID = "bad_id"
    DUPLICATE_ID = "duplicate_id"
    DUPLICATE_VARIANT = "duplicate_variant"
    BAD_PRICE = "bad_price"
    UNKNOWN_CURRENCY = "unknown_currency"
    MIXED_CURRENCY = "mixed_currency"
    BAD_QUANTITY = "bad_quantity"
    BAD_URL = "bad_url"
    BAD_ROW = "bad_row"
    FIELD_TOO_LONG = "field_too_long"
    FORMULA = "formula"
    BAD_AVAILABILITY = "bad_availability"
    DISCONTINUED = "discontinued"
    TOO_MANY_VARIANTS = "too_many_variants"


class Refusal(msgspec.Struct, frozen=True, kw_only=True):
    """One row the import leaves out. ``line`` is the 1-based line where the row starts in the
    file (for XML, the line of its ``<item>``/``<entry>``); ``source_id`` is the row's id or
    SKU when it had one."""

    line: int
    source_id: str | None
    reason: RefusalCode
    message: str


class PlannedVariant(msgspec.Struct, frozen=True, kw_only=True):
    """One sellable variant. ``stock`` is None when neither the feed nor the host gave one;
    ``prices`` is set only when it differs from the drop's."""

    sku: str
    line: int
    options: dict[str, str] = msgspec.field(default_factory=dict)
    stock: int | None = None
    prices: dict[str, int] | None = None


class PlannedDrop(msgspec.Struct, frozen=True, kw_only=True):
    """One drop to create, with its variants in file order. ``group`` is the feed's grouping
    key (``item_group_id``, Shopify handle, or the single item's id)."""

    group: str
    title: str
    image_url: str
    prices: dict[str, int]
    variants: list[PlannedVariant]


class ImportPlan(msgspec.Struct, frozen=True, kw_only=True):
    """The whole preview: drops in file order, every refused row, and how many rows were read
    (planned variants + refused rows may be fewer: blank and image-only rows count as read)."""

    format: FeedFormat
    drops: list[PlannedDrop]
    refused: list[Refusal]
    rows_read: int
