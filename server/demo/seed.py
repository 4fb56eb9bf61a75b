"""The demo's show: a few products with images shipped in ``server/static/demo``, seeded as drops, and an
autopilot that launches the next drop when nothing has been live for a while."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from redis.exceptions import RedisError

from server.shows.actions import HostActions
from server.shows.catalog import DropInfo, Show
from server.shows.variants import VariantInfo
from stock import StockError
from stock.types import DropState

logger = logging.getLogger("livedrop.demo")

AUTOPILOT_IDLE: Final = 15.0  # seconds with no live drop before the autopilot launches the next


# -- the seeded show ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Product:
    slug: str
    sku: str
    title: str
    prices: dict[str, int]
    total: int
    per_customer_limit: int = 3
    hold_seconds: float = 45.0  # short, so a person sees holds expire and units come back
    duration_seconds: float = 240.0
    sizes: tuple[tuple[str, int], ...] = ()  # (size, units): a drop with variants, one per size


# The sneaker comes in sizes, few of the edge ones: size 46 sells out first and its waitlist fills.
SNEAKER_SIZES: Final = (("40", 20), ("41", 25), ("42", 30), ("43", 25), ("44", 15), ("46", 5))


PRODUCTS: Final = (
    Product("sneaker", "SNK-AURORA", "Aurora sneaker", {"EUR": 8900, "USD": 9900}, 120, sizes=SNEAKER_SIZES),
    Product("tote", "TOTE-CANVAS", "Canvas tote bag", {"EUR": 2400, "USD": 2600}, 80, per_customer_limit=4),
    Product("mug", "MUG-GLAZE", "Glazed ceramic mug", {"EUR": 1800, "USD": 1900}, 60),
    Product("beanie", "BEANIE-WOOL", "Merino wool beanie", {"EUR": 3200, "USD": 3500}, 70),
    # One per customer and fewer units than bots: this one sells out, and the waitlist fills.
    Product("vinyl", "LP-LIVE-01", "Live session vinyl (signed)", {"EUR": 4500, "USD": 4900}, 30, 1),
)


def variants_of(product: Product) -> list[VariantInfo]:
    """A product's sizes as variants: id ``s<size>``, SKU ``<sku>-<size>``."""
    return [
        VariantInfo(id=f"s{size}", sku=f"{product.sku}-{size}", total=units, options={"size": size})
        for size, units in product.sizes
    ]


def image_url(product: Product) -> str:
    """Served by the app itself (``/static``), so the demo needs no network."""
    return f"/static/demo/products/{product.slug}.svg"


async def seed_show(host: HostActions, show_id: str, title: str, launch_first: bool = True) -> list[DropInfo]:
    """Create (or complete) the demo show, its products in run-of-show order, start the show and
    launch its first drop. Idempotent: every step is (a re-run with the same ids changes nothing)."""
    await host.create_show(Show(show_id=show_id, title=title))
    drops = []
    for product in PRODUCTS:
        drops.append(
            await host.add_drop(
                DropInfo(
                    drop_id=f"{show_id}-{product.slug}",
                    show_id=show_id,
                    sku=product.sku,
                    title=product.title,
                    total=product.total,
                    image_url=image_url(product),
                    prices=dict(product.prices),
                    per_customer_limit=product.per_customer_limit,
                    hold_seconds=product.hold_seconds,
                    duration_seconds=product.duration_seconds,
                    variants=variants_of(product),
                )
            )
        )
    await host.live.start_show(show_id)
    if launch_first and drops:
        await host.launch(drops[0].drop_id)
    return drops


def next_to_launch(states: Sequence[tuple[str, str]], idle_for: float, idle: float = AUTOPILOT_IDLE) -> str | None:
    """The autopilot's choice: the first draft of the run of show, once no drop has been live
    for ``idle`` seconds; None while a drop is live, too soon, or when nothing is left."""
    if any(state == DropState.LIVE.value for _, state in states) or idle_for < idle:
        return None
    return next((drop_id for drop_id, state in states if state == DropState.DRAFT.value), None)


async def autopilot(host: HostActions, show_id: str, idle: float = AUTOPILOT_IDLE, every: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    last_live = loop.time()
    while True:
        await asyncio.sleep(every)
        try:
            states = [(d, (await host.engine.snapshot(d)).state.value) for d in await host.catalog.drop_ids(show_id)]
            if any(state == DropState.LIVE.value for _, state in states):
                last_live = loop.time()
                continue
            chosen = next_to_launch(states, loop.time() - last_live, idle)
            if chosen is not None:
                await host.launch(chosen)
                last_live = loop.time()
                logger.info("demo autopilot launched %s", chosen)
        except asyncio.CancelledError:
            raise
        except (RedisError, StockError):
            logger.warning("demo autopilot: could not read or launch drops; retrying")
