"""Undefine: a drop defined and never used can be forgotten (an import that failed half-way is
undone), and a drop that has been used never can."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from stock import DropConfig, DropConflict, StockEngine, UnknownDrop
from stock.types import VariantConfig

SIZES = (VariantConfig("S", "TEE-S", 2), VariantConfig("M", "TEE-M", 3))


async def drop_keys_left(redis: Redis, drop_id: str) -> list[bytes]:
    return [key async for key in redis.scan_iter(match=f"ld:{{drop:{drop_id}}}*")]


async def test_an_untouched_drop_with_variants_leaves_no_key(redis: Redis) -> None:
    engine = StockEngine(redis)
    await engine.define(DropConfig("tee", "s1", 0, 0, 60, SIZES))
    await engine.define(DropConfig("mug", "s1", 4))
    assert await engine.undefine("tee") and await engine.undefine("mug")
    assert await drop_keys_left(redis, "tee") == [] and await drop_keys_left(redis, "mug") == []
    assert not await engine.undefine("tee")
    with pytest.raises(UnknownDrop):
        await engine.counters("tee")
    # Defined again, with other stock: a new drop, not a conflict with a ghost.
    await engine.define(DropConfig("tee", "s1", 0, 0, 60, (VariantConfig("S", "TEE-S", 9),)))
    assert (await engine.counters("tee", "S")).total == 9


@pytest.mark.parametrize("use", ["open", "reserve", "restock"])
async def test_a_used_drop_is_never_undone(redis: Redis, use: str) -> None:
    engine = StockEngine(redis)
    await engine.define(DropConfig("tee", "s1", 0, 0, 60, SIZES))
    if use == "restock":
        await engine.adjust("tee", 1, "rs-1", variant="M")
    else:
        await engine.open("tee")
        if use == "reserve":
            assert (await engine.reserve("tee", "c1", 1, "r1", variant="S")).ok
    before = sorted(await drop_keys_left(redis, "tee"))
    with pytest.raises(DropConflict):
        await engine.undefine("tee")
    assert sorted(await drop_keys_left(redis, "tee")) == before
