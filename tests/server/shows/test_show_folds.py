"""The show snapshot's pure folds (``server.shows.known``): feed events and ledger entries change
what a node knows of a show exactly as a welcome must then describe it. No network."""

from __future__ import annotations

import msgspec

from broadcast.feed import FeedEvent
from server.shows.catalog import DropInfo, Show, ShowState
from server.shows.known import KnownDrop, KnownShow, drop_body, fold_event, fold_ledger
from server.viewers import protocol as p
from stock.types import Counters, DropState, LedgerEntry


def _show() -> KnownShow:
    return KnownShow(show=Show(show_id="s1", title="Show"), drops={}, seq=0, epoch="e1")


def _drop(total: int = 5) -> KnownDrop:
    info = DropInfo(drop_id="d1", show_id="s1", sku="SKU", title="Drop", total=total)
    return KnownDrop(info, DropState.DRAFT.value, 0, Counters(total, total, 0, 0))


def _entry(op: str, after: Counters, **fields: str) -> LedgerEntry:
    return LedgerEntry("1-0", op, 0, 0, 0, 0, 0, after, 1000, dict(fields))


def test_a_new_drop_event_adds_the_drop_and_asks_for_its_ledger() -> None:
    show = _show()
    body = msgspec.json.encode({"drop": drop_body(_drop())})
    new = fold_event(show, FeedEvent(1, "drop", body))
    assert new is not None and show.drops["d1"] is new
    assert new.counters == Counters(5, 5, 0, 0)
    # The same drop again (changed): no second ledger watch, counters from the ledger kept.
    show.drops["d1"].counters = Counters(5, 3, 2, 0)
    assert fold_event(show, FeedEvent(2, "drop", body)) is None
    assert show.drops["d1"].counters == Counters(5, 3, 2, 0)


def test_end_events_close_the_drop_and_the_show() -> None:
    show = _show()
    show.drops["d1"] = _drop()
    fold_event(show, FeedEvent(3, "drop_ended", msgspec.json.encode({"drop": "d1", "reason": "host"})))
    assert show.drops["d1"].state == DropState.CLOSED.value
    fold_event(show, FeedEvent(4, "show_ended", b"{}"))
    assert show.show.state is ShowState.ENDED


def test_ledger_entries_mark_counters_dirty_and_answer_their_customer() -> None:
    d = _drop()
    outcome = fold_ledger(d, _entry("expire", Counters(5, 5, 0, 0), cust="c1", hold="d1.1"), lambda *a: "")
    assert not d.dirty  # same counters: nothing to send
    assert outcome.private == p.HoldExpired(drop="d1", hold="d1.1") and outcome.customer == "c1"
    handout = _entry("handout", Counters(5, 4, 1, 0), cust="c2", hold="d1.2", qty="1", exp="9000", nonce="n")
    outcome = fold_ledger(d, handout, lambda drop, hold, nonce: f"{drop}:{hold}:{nonce}")
    assert d.dirty and d.counters == Counters(5, 4, 1, 0)
    assert isinstance(outcome.private, p.Reserved) and outcome.private.hold_ref == "d1:d1.2:n"
    assert outcome.ended is None


def test_open_and_close_change_the_state_and_a_close_is_announced() -> None:
    d = _drop()
    fold_ledger(d, _entry("open", d.counters, ends_at="5000"), lambda *a: "")
    assert (d.state, d.ends_at) == (DropState.LIVE.value, 5000)
    outcome = fold_ledger(d, _entry("close", d.counters, reason="sold_out"), lambda *a: "")
    assert d.state == DropState.CLOSED.value and outcome.ended == "sold_out" and outcome.private is None
