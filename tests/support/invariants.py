"""DESIGN §3's stock invariants, checked against what is really in Redis."""

from __future__ import annotations

from stock import StockEngine
from stock.ledger import check_invariants, replay
from stock.types import Counters, HoldState


async def assert_drop_invariants(engine: StockEngine, drop_id: str) -> Counters:
    """available + held + sold == total, none negative, held == Σ live holds, the ledger
    replays to the counters, and the per-customer tallies match the holds they count."""
    counters = await engine.counters(drop_id)
    check_invariants(counters)
    holds = await engine.holds(drop_id)
    live = [h for h in holds if h.state is HoldState.HELD]
    assert counters.held == sum(h.qty for h in live), (counters, live)
    entries = [entry async for entry in engine.iter_ledger(drop_id)]
    assert replay(entries) == counters
    waiting = await engine.waitlist(drop_id)
    if waiting and (await engine.snapshot(drop_id)).state == "live":
        # Units that came back went to the waitlist first (a head wanting more than is left
        # gets what is left), so what is on sale beside a waitlist is less than someone wants.
        assert counters.available < max(qty for _, qty in waiting), (counters, waiting)
    return counters
