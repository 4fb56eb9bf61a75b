"""Drops with variants in the host API: the request types (in ``/openapi.json`` like the rest),
the checks a body must pass before anything is written, and the per-variant views.

The stock engine checks ids and sums too, but a host deserves one clear 422 naming what is wrong
before any key is written, rather than an engine error half-way through defining variants: every
rule the engine would refuse is checked here first, so a refused drop leaves nothing behind.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from starlette.requests import Request

from server.problems import Problem
from server.shows.catalog import DropInfo
from server.shows.variants import VariantInfo
from stock import StockEngine
from stock.engine import MAX_VARIANTS
from stock.types import DropSnapshot

VariantName = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]
Sku = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:/+=-]+$")]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
Price = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
OptionName = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
OptionValue = Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
Quantity = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
LimitScope = Literal["drop", "variant"]


class CreateVariant(msgspec.Struct, forbid_unknown_fields=True):
    """One variant of a new drop. ``id`` is what viewers name it by (``reserve`` with
    ``variant``); ``options`` what a size or colour picker shows; ``prices`` None means the drop's;
    ``per_customer_limit`` only with ``limit_scope: "variant"`` (None: the drop's)."""

    id: VariantName
    sku: Sku
    quantity: Quantity
    options: Annotated[dict[OptionName, OptionValue], msgspec.Meta(max_length=8)] = msgspec.field(default_factory=dict)
    prices: dict[Currency, Price] | None = None
    per_customer_limit: Annotated[int, msgspec.Meta(ge=0, le=10_000)] | None = None


class VariantStock(msgspec.Struct):
    """One variant of a drop with its stock and tallies (``DropView.variants``)."""

    id: str
    sku: str
    stock: DropSnapshot


def invalid(detail: str, code: str = "invalid-variants") -> Problem:
    return Problem(422, code, "Invalid variants", detail)


def check_variants(
    variants: list[CreateVariant], *, drop_id: str, drop_sku: str | None, total: int | None, scope: LimitScope
) -> tuple[str, int, list[VariantInfo]]:
    """(the drop's SKU, its total, its variants) for a new drop, or a 422 problem naming what is
    wrong. A drop without variants needs a SKU and a total; one with variants is stocked by them
    (a ``total`` given must be their sum) and its SKU, which names the product and which no order
    line sells, defaults to the drop's id."""
    if not variants:
        if scope == "variant":
            raise invalid("limit_scope 'variant' needs variants")
        if not drop_sku:
            raise Problem(422, "invalid-request", "Invalid request body", "sku is required for a drop without variants")
        if total is None:
            raise Problem(
                422, "invalid-request", "Invalid request body", "total is required for a drop without variants"
            )
        return drop_sku, total, []
    if len(variants) > MAX_VARIANTS:
        raise invalid(f"a drop has at most {MAX_VARIANTS} variants")
    ids = [v.id for v in variants]
    if len(set(ids)) != len(ids):
        raise invalid(f"variant ids must be distinct: {sorted({i for i in ids if ids.count(i) > 1})}")
    skus = [v.sku for v in variants]
    if len(set(skus)) != len(skus):
        raise invalid(f"variant SKUs must be distinct: {sorted({s for s in skus if skus.count(s) > 1})}")
    combos = [tuple(sorted(v.options.items())) for v in variants if v.options]
    if len(set(combos)) != len(combos):
        raise invalid("two variants have the same options")
    whole = sum(v.quantity for v in variants)
    if total is not None and total != whole:
        raise invalid(f"total {total} is not the sum of the variants' quantities ({whole}); leave it out")
    if scope == "drop" and any(v.per_customer_limit is not None for v in variants):
        raise invalid("a variant's per_customer_limit needs limit_scope 'variant'")
    infos = [
        VariantInfo(
            id=v.id,
            sku=v.sku,
            total=v.quantity,
            options=dict(v.options),
            prices=None if v.prices is None else dict(v.prices),
            per_customer_limit=v.per_customer_limit,
        )
        for v in variants
    ]
    return drop_sku or drop_id, whole, infos


def pick_variant(info: DropInfo, variant: str | None) -> str:
    """The variant a per-variant operation (restock) names: required on a drop with variants,
    refused on one without (422 problems, nothing done)."""
    if not info.variants:
        if variant is not None:
            raise invalid(f"drop {info.drop_id} has no variants", "unknown-variant")
        return ""
    if variant is None:
        ids = ", ".join(v.id for v in info.variants)
        raise invalid(f"drop {info.drop_id} has variants: name one of {ids}", "variant-required")
    if info.variant(variant) is None:
        raise invalid(f"drop {info.drop_id} has no variant {variant}", "unknown-variant")
    return variant


def query_variant(request: Request, info: DropInfo) -> str:
    """``?variant=`` of a read on one variant (a ledger page): '' for the drop itself."""
    given = request.query_params.get("variant")
    if given is None:
        return ""
    return pick_variant(info, given)


async def variant_stock(engine: StockEngine, info: DropInfo) -> list[VariantStock]:
    return [VariantStock(id=v.id, sku=v.sku, stock=await engine.snapshot(info.drop_id, v.id)) for v in info.variants]
