"""Random sequences of every stock operation, against the Lua engine and the reference model.

Ids are drawn from small pools, so retries (same request id, same hold, same order line) come
up all the time; clock jumps of half a hold expire holds in the middle of sequences. After
every step the engine must agree with the model and DESIGN §3's invariants must hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from redis.asyncio import Redis

from server.ops.local_redis import LocalRedis
from stock import (
    DropConfig,
    HoldNotActive,
    HoldTaken,
    InsufficientStock,
    NotOwner,
    PlatformCancel,
    PlatformSale,
    StockEngine,
    UnknownHold,
)
from tests.support.invariants import assert_drop_invariants
from tests.support.stock_model import DropModel

T = TypeVar("T")
HOLD_SECONDS = 60
DROP = "hd"

customers = st.sampled_from(["c1", "c2", "c3", "c4"])
request_ids = st.sampled_from([f"r{i}" for i in range(12)])
quantities = st.integers(1, 3)
lines = st.tuples(
    st.sampled_from(["shopify", "tiktok"]), st.sampled_from(["o1", "o2", "o3"]), st.sampled_from(["1", "2"])
)


class StockMachine(RuleBasedStateMachine):
    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.client = Redis.from_url(self.url)
        self.run(self.client.flushall())
        self.engine = StockEngine(self.client)
        self.model = DropModel(DROP, 0, 0, HOLD_SECONDS * 1000)

    def run(self, awaitable: Awaitable[T]) -> T:
        async def wait() -> T:
            return await awaitable

        return self.runner.run(wait())

    def teardown(self) -> None:
        self.run(self.client.aclose())
        self.runner.close()

    @initialize(total=st.integers(0, 8), limit=st.integers(0, 3), live=st.booleans())
    def define(self, total: int, limit: int, live: bool) -> None:
        self.run(self.engine.define(DropConfig(DROP, "show", total, limit, HOLD_SECONDS)))
        self.model = DropModel(DROP, total, limit, HOLD_SECONDS * 1000)
        if live:
            self.open()

    def hold_ids(self) -> st.SearchStrategy[str]:
        return st.sampled_from([f"{DROP}.{i}" for i in range(1, self.model.hold_seq + 2)])

    @rule()
    def open(self) -> None:
        self.run(self.engine.open(DROP))
        self.model.open()

    @rule()
    def close(self) -> None:
        self.run(self.engine.close(DROP))
        self.model.close()

    @rule(request_id=request_ids, customer=customers, qty=quantities)
    def reserve(self, request_id: str, customer: str, qty: int) -> None:
        result = self.run(self.engine.reserve(DROP, customer, qty, request_id))
        code, hold_id, granted = self.model.reserve(request_id, customer, qty, result.duplicate)
        assert (result.reason or "reserved", result.hold_id or "", result.qty) == (code, hold_id, granted)

    @rule(batch=st.lists(st.tuples(request_ids, customers, quantities), min_size=2, max_size=6))
    def reserve_batch(self, batch: list[tuple[str, str, int]]) -> None:
        from stock.types import ReserveRequest

        results = self.run(self.engine.reserve_many(DROP, [ReserveRequest(*item) for item in batch]))
        # The model expires lazily once per call, as the script does, then answers in order.
        self.model._expire_due()
        self.model._handout()
        for (request_id, customer, qty), result in zip(batch, results, strict=True):
            code, hold_id, granted = self.model.reserve(request_id, customer, qty, result.duplicate)
            assert (result.reason or "reserved", result.hold_id or "", result.qty) == (code, hold_id, granted)

    @rule(data=st.data(), order_ref=st.sampled_from(["", "o1", "o2"]))
    def confirm(self, data: st.DataObject, order_ref: str) -> None:
        hold_id = data.draw(self.hold_ids())
        expected = self.model.confirm(hold_id, order_ref)
        try:
            self.run(self.engine.confirm(hold_id, order_ref))
            outcome = "confirmed"
        except UnknownHold:
            outcome = "unknown_hold"
        except HoldTaken:
            outcome = "hold_taken"
        except HoldNotActive as exc:
            outcome = exc.state
        assert outcome == expected

    @rule(data=st.data(), customer=st.sampled_from(["", "c1", "c2"]))
    def release(self, data: st.DataObject, customer: str) -> None:
        hold_id = data.draw(self.hold_ids())
        expected = self.model.release(hold_id, customer)
        try:
            self.run(self.engine.release(hold_id, customer or None))
            outcome = "released"
        except UnknownHold:
            outcome = "unknown_hold"
        except NotOwner:
            outcome = "not_owner"
        except HoldNotActive as exc:
            outcome = exc.state
        assert outcome == expected

    @rule()
    def sweep(self) -> None:
        result = self.run(self.engine.sweep(DROP))
        assert result.expired == self.model.sweep()

    @rule()
    def half_a_hold_passes(self) -> None:
        self.run(self.engine.fast_forward(DROP, HOLD_SECONDS / 2))
        self.model.now += HOLD_SECONDS * 1000 // 2

    @rule(request_id=st.sampled_from(["a1", "a2", "a3"]), delta=st.integers(-3, 5))
    def adjust(self, request_id: str, delta: int) -> None:
        expected = self.model.adjust(request_id, delta)
        try:
            self.run(self.engine.adjust(DROP, delta, request_id))
            outcome = "adjusted"
        except InsufficientStock:
            outcome = "insufficient"
        assert outcome == expected

    @rule(customer=customers, qty=quantities)
    def join_waitlist(self, customer: str, qty: int) -> None:
        result = self.run(self.engine.join_waitlist(DROP, customer, qty))
        assert result.outcome == self.model.join_waitlist(customer, qty)

    @rule(customer=customers)
    def leave_waitlist(self, customer: str) -> None:
        assert self.run(self.engine.leave_waitlist(DROP, customer)) == self.model.leave_waitlist(customer)

    def genuine_ref(self, hold_id: str) -> str:
        """The reference the hold's own viewer was given ('' if no such hold)."""
        if hold_id not in self.model.holds:
            return ""
        return self.engine.hold_ref(DROP, hold_id, self.run(self.engine.hold(hold_id)).nonce)

    @rule(
        line=lines,
        qty=quantities,
        data=st.data(),
        naming=st.sampled_from(["none", "own", "bare_id", "spliced", "stale_nonce"]),
    )
    def platform_sale(self, line: tuple[str, str, str], qty: int, data: st.DataObject, naming: str) -> None:
        """An order names no hold, its buyer's own hold (the genuine reference), or — a stranger —
        someone else's hold: by its bare id, with another hold's nonce and MAC spliced on, or with a
        well-signed reference whose nonce is not the hold's. A stranger's reference is no hold."""
        platform, order_id, line_id = line
        hold_id = data.draw(self.hold_ids()) if naming != "none" else ""
        ref = ""
        if naming == "own":
            ref = self.genuine_ref(hold_id)
        elif naming == "bare_id":
            ref = hold_id
        elif naming == "spliced":
            donor = self.genuine_ref(data.draw(self.hold_ids()))
            ref = f"{hold_id}.{donor.split('.', 2)[2]}" if donor else hold_id
        elif naming == "stale_nonce":
            ref = self.engine.hold_refs.mint(DROP, hold_id, "f" * 32)
        trusted = hold_id if naming == "own" and ref else ""
        if naming == "spliced" and ref == self.genuine_ref(hold_id):
            trusted = hold_id  # the donor was the hold itself: its own genuine reference
        result = self.run(self.engine.apply_sale(PlatformSale(platform, order_id, line_id, DROP, qty, ref or None)))
        expected = self.model.sale(f"{platform}|{order_id}|{line_id}", order_id, qty, trusted)
        assert (result.outcome, result.sold, result.oversold) == expected
        if ref and not trusted and result.outcome == "applied" and result.hold_id is None:
            assert result.hold_issue in ("hold_ref_invalid", "hold_not_found")
        if ref and not trusted and result.hold_id is not None and result.outcome != "duplicate":
            # Only the order's own id can find a hold then: one the checkout confirmed for it. (A
            # duplicate line answers what its first delivery did, whose reference may have been genuine.)
            assert self.model.holds[result.hold_id].order_ref == order_id

    @rule(line=lines, event=st.sampled_from(["cancel", "refund-1", "refund-2"]), qty=st.integers(0, 3))
    def platform_cancel(self, line: tuple[str, str, str], event: str, qty: int) -> None:
        platform, order_id, line_id = line
        result = self.run(self.engine.apply_cancel(PlatformCancel(platform, order_id, line_id, DROP, event, qty)))
        expected = self.model.cancel(f"{platform}|{order_id}|{line_id}", event, order_id, qty)
        assert (result.outcome, result.restocked, result.unoversold) == expected

    @invariant()
    def agrees_with_the_model(self) -> None:
        counters = self.run(assert_drop_invariants(self.engine, DROP))
        assert counters == self.model.counters
        holds = self.run(self.engine.holds(DROP))
        assert [(h.hold_id, h.customer, h.qty, h.state) for h in holds] == [
            (hold_id, h.customer, h.qty, h.state) for hold_id, h in self.model.holds.items()
        ]
        assert self.run(self.engine.waitlist(DROP)) == self.model.waitlist


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_engine_matches_the_model(redis_server: LocalRedis) -> None:
    StockMachine.url = redis_server.url
    run_state_machine_as_test(
        StockMachine,
        settings=settings(
            max_examples=300,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
