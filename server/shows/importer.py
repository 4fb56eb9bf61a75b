"""From a feed's import plan to the drops a host will create: ids, variant names, stock.

Pure code: the plan (server/shows/feeds) says what the feed holds; this names each drop and
variant the way LiveDrop's ids require, so that the preview a host confirms shows the very ids
the confirm step creates. Nothing here reads Redis: the ids already taken are passed in.

- A drop's id comes from its group (``item_group_id``, Shopify handle, or the single item's id),
  with every character outside ``A-Z a-z 0-9 _ -`` turned into ``-``, cut to 48 characters, and
  made unique with ``-2``, ``-3``… against the ids taken and the plan's other drops.
- A variant's name comes from the values of the options that differ between the drop's
  variants (``M`` for a tee in one colour, ``red-M`` in several), starts with a letter (``v42`` for
  size 42), at most 32 characters, unique within its drop; ``v1``, ``v2``… when it has none.
- A group of one row with no options is a plain drop (no variants): its SKU is the row's.
"""

from __future__ import annotations

import re

import msgspec

from server.shows.feeds import ImportPlan, PlannedDrop
from stock import InvalidArgument
from stock.keys import check_opaque

_NOT_ID = re.compile(r"[^A-Za-z0-9_-]+")
_MAX_DROP_ID = 48  # room for a "-NNN" suffix within the 64 of an id
_MAX_VARIANT = 32


class ProposedVariant(msgspec.Struct, frozen=True, kw_only=True):
    """One variant the import would create. ``stock`` None: the host must give a default."""

    id: str
    sku: str
    line: int
    options: dict[str, str] = msgspec.field(default_factory=dict)
    stock: int | None = None
    prices: dict[str, int] | None = None


class ProposedDrop(msgspec.Struct, frozen=True, kw_only=True):
    """One drop the import would create, in the show's run of show after the drops it has.
    ``variants`` empty: a plain drop selling ``sku`` with ``stock`` units."""

    drop_id: str
    group: str
    sku: str
    title: str
    image_url: str
    prices: dict[str, int]
    variants: list[ProposedVariant]
    stock: int | None = None
    line: int = 0

    def missing_stock(self) -> int:
        """How many of its units of stock (the drop, or each variant) have no starting stock."""
        if not self.variants:
            return int(self.stock is None)
        return sum(v.stock is None for v in self.variants)

    def total(self, default_stock: int | None) -> int:
        if not self.variants:
            return self.stock if self.stock is not None else (default_stock or 0)
        return sum(v.stock if v.stock is not None else (default_stock or 0) for v in self.variants)


def _slug(text: str, cap: int) -> str:
    return _NOT_ID.sub("-", text).strip("-_")[:cap].strip("-_")


def _unique(base: str, taken: set[str], cap: int) -> str:
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        suffix = f"-{n}"
        candidate = base[: cap - len(suffix)] + suffix
    taken.add(candidate)
    return candidate


def drop_id_for(group: str, taken: set[str]) -> str:
    """A drop id for ``group``, not in ``taken`` (which it joins)."""
    return _unique(_slug(group, _MAX_DROP_ID) or "item", taken, 64)


def variant_name_for(options: dict[str, str], position: int, taken: set[str]) -> str:
    """A variant name from option values, not in ``taken`` (which it joins)."""
    base = _slug("-".join(options.values()), _MAX_VARIANT) if options else ""
    if base and not base[0].isalpha():
        base = ("v" + base)[:_MAX_VARIANT].rstrip("-_")
    return _unique(base or f"v{position}", taken, _MAX_VARIANT)


def _product_sku(planned: PlannedDrop, drop_id: str) -> str:
    """What names the product as a whole (no order line sells it when it has variants)."""
    try:
        return check_opaque("sku", planned.group)
    except InvalidArgument:
        return drop_id


def _varying(planned: PlannedDrop) -> set[str]:
    """The option names whose values differ between the drop's variants (all, if none does)."""
    every = {k for v in planned.variants for k in v.options}
    differ = {k for k in every if len({v.options.get(k) for v in planned.variants}) > 1}
    return differ or every


def propose(plan: ImportPlan, taken_ids: set[str]) -> list[ProposedDrop]:
    """The drops of ``plan`` with their ids, none of which is in ``taken_ids``."""
    taken = set(taken_ids)
    proposed = []
    for planned in plan.drops:
        drop_id = drop_id_for(planned.group, taken)
        first = planned.variants[0]
        if len(planned.variants) == 1 and not first.options:
            proposed.append(
                ProposedDrop(
                    drop_id=drop_id,
                    group=planned.group,
                    sku=first.sku,
                    title=planned.title,
                    image_url=planned.image_url,
                    prices=first.prices or planned.prices,
                    variants=[],
                    stock=first.stock,
                    line=first.line,
                )
            )
            continue
        names: set[str] = set()
        varying = _varying(planned)
        variants = [
            ProposedVariant(
                id=variant_name_for({k: x for k, x in v.options.items() if k in varying}, i, names),
                sku=v.sku,
                line=v.line,
                options=v.options,
                stock=v.stock,
                prices=v.prices,
            )
            for i, v in enumerate(planned.variants, start=1)
        ]
        proposed.append(
            ProposedDrop(
                drop_id=drop_id,
                group=planned.group,
                sku=_product_sku(planned, drop_id),
                title=planned.title,
                image_url=planned.image_url,
                prices=planned.prices,
                variants=variants,
                line=first.line,
            )
        )
    return proposed
