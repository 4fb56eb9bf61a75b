"""Create many drops at once, all or none: the confirm step of a run-of-show import.

Drops live in many Cluster slots (one hash tag each), so no single script can create them all.
Instead: every id is checked free first; then each drop is created through the catalog, as a
host's own create would; and if any of them fails, what was created is undone before the error
is raised — the run-of-show entries removed, the descriptions deleted, the SKU index put back as
it was, and the stock forgotten (``StockEngine.undefine``, which only forgets a drop nobody has
used: new drops are drafts, and nothing can reserve a draft). Only a Redis that fails during the
undo itself can leave anything behind, and the caller then answers 503, so the host retries.
"""

from __future__ import annotations

import asyncio
import logging

from server.keys import drop_info_key, show_drops_key, sku_key
from server.shows.catalog import Catalog, DropInfo
from server.shows.importer import ProposedDrop
from server.shows.variants import VariantInfo
from stock import DropConflict, keys

logger = logging.getLogger(__name__)


async def drop_exists(catalog: Catalog, drop_id: str) -> bool:
    """Whether the id is used, by a described drop or by stock alone."""
    return bool(await catalog.redis.exists(drop_info_key(drop_id), keys.drop_keys(drop_id).meta))


def drop_info(
    show_id: str, drop: ProposedDrop, default_stock: int | None, per_customer_limit: int, hold_seconds: float
) -> DropInfo:
    """The catalog's description of a proposed drop, with the host's rules and stock."""

    def stock(given: int | None) -> int:
        return given if given is not None else (default_stock or 0)

    variants = [
        VariantInfo(id=v.id, sku=v.sku, total=stock(v.stock), options=v.options, prices=v.prices) for v in drop.variants
    ]
    return DropInfo(
        drop_id=drop.drop_id,
        show_id=show_id,
        sku=drop.sku,
        title=drop.title,
        total=drop.total(default_stock),
        image_url=drop.image_url,
        prices=drop.prices,
        per_customer_limit=per_customer_limit,
        hold_seconds=hold_seconds,
        variants=variants,
    )


def skus_of(info: DropInfo) -> list[str]:
    """The SKUs whose index entry creating ``info`` writes (each variant's, or the drop's)."""
    return [v.sku for v in info.variants] if info.variants else [info.sku]


async def create_all(catalog: Catalog, infos: list[DropInfo]) -> None:
    """Create every drop of ``infos`` or none. Raises ``DropConflict`` (nothing written) when an
    id is taken; any other error is raised after the drops created so far are undone."""
    for info in infos:
        if await drop_exists(catalog, info.drop_id):
            raise DropConflict(f"drop {info.drop_id} exists; preview the import again")
    redis = catalog.redis
    skus = list(dict.fromkeys(sku for info in infos for sku in skus_of(info)))
    previous = {sku: await redis.get(sku_key(sku)) for sku in skus}
    started: list[DropInfo] = []
    try:
        for info in infos:
            started.append(info)  # before the call: one that fails half-way is undone too
            await catalog.put_drop(info)
    except BaseException:
        # Shielded: a client that hangs up mid-confirm must not leave half an import behind.
        await asyncio.shield(_undo(catalog, started, previous))
        raise


async def _undo(catalog: Catalog, created: list[DropInfo], previous: dict[str, bytes | None]) -> None:
    redis = catalog.redis
    ours = {info.drop_id for info in created}
    for info in reversed(created):
        try:
            await redis.zrem(show_drops_key(info.show_id), info.drop_id)
            await redis.delete(drop_info_key(info.drop_id))
            await catalog.engine.undefine(info.drop_id)
        except DropConflict:
            logger.warning("import undo: drop %s was used before the import failed; it is kept", info.drop_id)
        except Exception:
            logger.exception("import undo: drop %s may be left behind", info.drop_id)
    for sku, old in previous.items():
        try:
            now = await redis.get(sku_key(sku))
            if now is not None and now.decode().split("~", 1)[0] in ours:
                if old is None:
                    await redis.delete(sku_key(sku))
                else:
                    await redis.set(sku_key(sku), old)
        except Exception:
            logger.exception("import undo: the index of SKU %s may point at a drop that is gone", sku)
