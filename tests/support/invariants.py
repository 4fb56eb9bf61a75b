"""DESIGN §3's stock invariants, checked against what is really in Redis."""

from __future__ import annotations

from stock import StockEngine
from stock.ledger import check_invariants, replay
from stock.types import Counters, HoldState


async def assert_drop_invariants(engine: StockEngine, drop_id: str, variant: str = "") -> Counters:
    """available + held + sold == total, none negative, held == Σ live holds, the ledger
    replays to the counters, and the per-customer tallies match the holds they count. With
    ``variant``: all of that for one variant of the drop, on its own."""
    counters = await engine.counters(drop_id, variant)
    check_invariants(counters)
    holds = await engine.holds(drop_id, variant)
    live = [h for h in holds if h.state is HoldState.HELD]
    assert counters.held == sum(h.qty for h in live), (counters, live)
    entries = [entry async for entry in engine.iter_ledger(drop_id, variant=variant)]
    assert replay(entries) == counters
    waiting = await engine.waitlist(drop_id, variant)
    if waiting and (await engine.snapshot(drop_id, variant)).state == "live":
        # Units that came back went to the waitlist first (a head wanting more than is left
        # gets what is left), so what is on sale beside a waitlist is less than someone wants.
        assert counters.available < max(qty for _, qty in waiting), (counters, waiting)
    return counters


async def assert_variant_drop_invariants(engine: StockEngine, drop_id: str) -> dict[str, Counters]:
    """Every variant's invariants on its own, and the drop's counters are their sum (so the
    drop's invariants hold too). Returns each variant's counters."""
    each = {name: await assert_drop_invariants(engine, drop_id, name) for name in await engine.variant_names(drop_id)}
    whole = await engine.counters(drop_id)
    check_invariants(whole)
    assert whole == Counters(
        sum(c.total for c in each.values()),
        sum(c.available for c in each.values()),
        sum(c.held for c in each.values()),
        sum(c.sold for c in each.values()),
        sum(c.oversold for c in each.values()),
    ), (whole, each)
    return each
