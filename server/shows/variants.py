"""Variants as the catalog describes them (size, colour, their SKUs and prices), as opposed to
their stock, which the stock engine keeps per variant under the drop's hash tag (docs/stock.md,
"Drops with variants").

A variant is named by its id (``S``, ``red-M``: the engine's variant name). A unit of stock is a
drop, or one variant of a drop, written ``<drop>~<variant>`` — the engine's own name for it
(``stock.keys.unit_id``), and what a variant's SKU maps to, so that a platform's order line,
which knows only its SKU, finds the variant it sold.
"""

from __future__ import annotations

import re

import msgspec

from stock import keys
from stock.types import VariantConfig


class VariantInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One variant of a drop. ``options`` are what a viewer picks from (``{"size": "M"}``);
    ``prices`` None means the drop's; ``per_customer_limit`` None means the drop's (it counts
    on its own only when the drop's limit is per variant)."""

    id: str
    sku: str
    total: int
    options: dict[str, str] = msgspec.field(default_factory=dict)
    prices: dict[str, int] | None = None
    per_customer_limit: int | None = None


_NOT_ID = re.compile(r"[^A-Za-z0-9_-]+")


def suggest_variant_id(label: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """A valid variant id (``stock.keys.check_variant``) for a label such as a size or a SKU, not
    in ``taken``: ``"42"`` → ``"v42"``, ``"Red / M"`` → ``"Red-M"``, a second ``"M"`` → ``"M-2"``.
    For importers (a product feed names variants by options and SKUs, not by ids)."""
    base = _NOT_ID.sub("-", label).strip("-")[:28] or "v"
    if not base[0].isascii() or not base[0].isalpha():
        base = f"v{base}"[:28]
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def variant_configs(variants: list[VariantInfo]) -> tuple[VariantConfig, ...]:
    """What the stock engine is given to define a drop's variants."""
    return tuple(
        VariantConfig(v.id, sku=v.sku, total=v.total, per_customer_limit=v.per_customer_limit) for v in variants
    )


def unit_of(drop_id: str, variant: str = "") -> str:
    """A drop's or a variant's unit name, ``<drop>`` or ``<drop>~<variant>``."""
    return keys.unit_id(drop_id, variant)


def split_unit(unit: str) -> tuple[str, str]:
    """(drop, variant) of a unit name (variant '' for a drop without variants). Raises
    ``stock.InvalidArgument`` for a name that is neither."""
    drop_id, _, variant = unit.partition("~")
    keys.check_name("drop id", drop_id)
    keys.check_variant(variant)
    return drop_id, variant


def prices_of(drop_prices: dict[str, int], variant: VariantInfo | None) -> dict[str, int]:
    """What one unit of a variant costs (its own prices, else the drop's)."""
    if variant is not None and variant.prices is not None:
        return variant.prices
    return drop_prices
