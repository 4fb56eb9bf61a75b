"""Random sequences of stock operations on a drop with two variants, against the Lua engine and
the reference model: one ``DropModel`` per variant, sharing their per-customer counts when the
limit counts across variants. After every step each variant agrees with its model, each keeps
DESIGN §3's invariants (ledger replay included), and the drop's counters are their sum."""

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
    RejectReason,
    StockEngine,
    UnknownHold,
)
from stock.types import ReserveRequest, VariantConfig
from tests.support.invariants import assert_variant_drop_invariants
from tests.support.stock_model import DropModel

T = TypeVar("T")
HOLD_SECONDS = 60
DROP = "hv"
NAMES = ("A", "B")

variants = st.sampled_from(NAMES)
customers = st.sampled_from(["c1", "c2", "c3"])
request_ids = st.sampled_from([f"r{i}" for i in range(8)])
quantities = st.integers(1, 3)
lines = st.tuples(st.sampled_from(["shopify", "tiktok"]), st.sampled_from(["o1", "o2"]), st.sampled_from(["1", "2"]))


class VariantMachine(RuleBasedStateMachine):
    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.client = Redis.from_url(self.url)
        self.run(self.client.flushall())
        self.engine = StockEngine(self.client)
        self.models: dict[str, DropModel] = {}

    def run(self, awaitable: Awaitable[T]) -> T:
        async def wait() -> T:
            return await awaitable

        return self.runner.run(wait())

    def teardown(self) -> None:
        self.run(self.client.aclose())
        self.runner.close()

    @initialize(
        totals=st.tuples(st.integers(0, 5), st.integers(0, 5)),
        limit=st.integers(0, 3),
        per_variant=st.booleans(),
        live=st.booleans(),
    )
    def define(self, totals: tuple[int, int], limit: int, per_variant: bool, live: bool) -> None:
        configs = tuple(VariantConfig(name, f"SKU-{name}", total) for name, total in zip(NAMES, totals, strict=True))
        self.run(self.engine.define(DropConfig(DROP, "show", 0, limit, HOLD_SECONDS, configs, per_variant)))
        shared: dict[str, int] = {}
        for name, total in zip(NAMES, totals, strict=True):
            model = DropModel(f"{DROP}~{name}", total, limit, HOLD_SECONDS * 1000)
            if not per_variant:
                model.customers = shared  # the limit counts a customer's units across variants
            self.models[name] = model
        if live:
            self.open()

    def hold_ids(self) -> st.SearchStrategy[str]:
        return st.sampled_from(
            [f"{DROP}~{name}.{i}" for name, m in self.models.items() for i in range(1, m.hold_seq + 2)]
        )

    def model_of(self, hold_id: str) -> DropModel:
        return self.models[hold_id.split("~", 1)[1].split(".", 1)[0]]

    @rule()
    def open(self) -> None:
        self.run(self.engine.open(DROP))
        for name in NAMES:  # the engine opens them in the order they were defined
            self.models[name].open()

    @rule()
    def close(self) -> None:
        self.run(self.engine.close(DROP))
        for model in self.models.values():
            model.close()

    @rule(variant=variants, request_id=request_ids, customer=customers, qty=quantities)
    def reserve(self, variant: str, request_id: str, customer: str, qty: int) -> None:
        result = self.run(self.engine.reserve(DROP, customer, qty, request_id, variant))
        code, hold_id, granted = self.models[variant].reserve(request_id, customer, qty, result.duplicate)
        assert (result.reason or "reserved", result.hold_id or "", result.qty) == (code, hold_id, granted)

    @rule(request_id=request_ids, customer=customers)
    def reserve_naming_no_variant(self, request_id: str, customer: str) -> None:
        result = self.run(self.engine.reserve(DROP, customer, 1, f"x{request_id}"))
        assert result.reason is RejectReason.INVALID

    @rule(variant=variants, batch=st.lists(st.tuples(request_ids, customers, quantities), min_size=2, max_size=5))
    def reserve_batch(self, variant: str, batch: list[tuple[str, str, int]]) -> None:
        results = self.run(self.engine.reserve_many(DROP, [ReserveRequest(*item) for item in batch], variant))
        model = self.models[variant]
        model._expire_due()
        model._handout()
        for (request_id, customer, qty), result in zip(batch, results, strict=True):
            code, hold_id, granted = model.reserve(request_id, customer, qty, result.duplicate)
            assert (result.reason or "reserved", result.hold_id or "", result.qty) == (code, hold_id, granted)

    @rule(data=st.data(), order_ref=st.sampled_from(["", "o1", "o2"]))
    def confirm(self, data: st.DataObject, order_ref: str) -> None:
        hold_id = data.draw(self.hold_ids())
        expected = self.model_of(hold_id).confirm(hold_id, order_ref)
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
        expected = self.model_of(hold_id).release(hold_id, customer)
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
        assert result.expired == sum(self.models[name].sweep() for name in NAMES)

    @rule()
    def half_a_hold_passes(self) -> None:
        self.run(self.engine.fast_forward(DROP, HOLD_SECONDS / 2))
        for model in self.models.values():
            model.now += HOLD_SECONDS * 1000 // 2

    @rule(variant=variants, request_id=st.sampled_from(["a1", "a2"]), delta=st.integers(-3, 4))
    def adjust(self, variant: str, request_id: str, delta: int) -> None:
        expected = self.models[variant].adjust(request_id, delta)
        try:
            self.run(self.engine.adjust(DROP, delta, request_id, variant))
            outcome = "adjusted"
        except InsufficientStock:
            outcome = "insufficient"
        assert outcome == expected

    @rule(variant=variants, customer=customers, qty=quantities)
    def join_waitlist(self, variant: str, customer: str, qty: int) -> None:
        result = self.run(self.engine.join_waitlist(DROP, customer, qty, variant))
        assert result.outcome == self.models[variant].join_waitlist(customer, qty)

    @rule(variant=variants, customer=customers)
    def leave_waitlist(self, variant: str, customer: str) -> None:
        left = self.run(self.engine.leave_waitlist(DROP, customer, variant))
        assert left == self.models[variant].leave_waitlist(customer)

    @rule(variant=variants, line=lines, qty=quantities, data=st.data(), named=st.booleans())
    def platform_sale(
        self, variant: str, line: tuple[str, str, str], qty: int, data: st.DataObject, named: bool
    ) -> None:
        """An order line of one variant, naming no hold or the genuine reference of a hold of either
        variant: a hold of the other variant is other stock and cannot pay for it."""
        platform, order_id, line_id = line
        ref = trusted = ""
        if named:
            hold_id = data.draw(self.hold_ids())
            if hold_id in self.model_of(hold_id).holds:
                ref = self.engine.hold_ref(DROP, hold_id, self.run(self.engine.hold(hold_id)).nonce)
                trusted = hold_id if self.model_of(hold_id) is self.models[variant] else ""
        sale = PlatformSale(platform, order_id, line_id, DROP, qty, ref or None, variant)
        result = self.run(self.engine.apply_sale(sale))
        expected = self.models[variant].sale(f"{platform}|{order_id}|{line_id}", order_id, qty, trusted)
        assert (result.outcome, result.sold, result.oversold) == expected

    @rule(variant=variants, line=lines, event=st.sampled_from(["cancel", "refund-1"]), qty=st.integers(0, 3))
    def platform_cancel(self, variant: str, line: tuple[str, str, str], event: str, qty: int) -> None:
        platform, order_id, line_id = line
        cancel = PlatformCancel(platform, order_id, line_id, DROP, event, qty, variant)
        result = self.run(self.engine.apply_cancel(cancel))
        expected = self.models[variant].cancel(f"{platform}|{order_id}|{line_id}", event, order_id, qty)
        assert (result.outcome, result.restocked, result.unoversold) == expected

    @invariant()
    def agrees_with_the_model(self) -> None:
        if not self.models:
            return
        each = self.run(assert_variant_drop_invariants(self.engine, DROP))
        for name, model in self.models.items():
            assert each[name] == model.counters, name
            holds = self.run(self.engine.holds(DROP, name))
            assert [(h.hold_id, h.customer, h.qty, h.state) for h in holds] == [
                (hold_id, h.customer, h.qty, h.state) for hold_id, h in model.holds.items()
            ]
            assert self.run(self.engine.waitlist(DROP, name)) == model.waitlist


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_variants_match_the_model(redis_server: LocalRedis) -> None:
    VariantMachine.url = redis_server.url
    run_state_machine_as_test(
        VariantMachine,
        settings=settings(
            max_examples=150,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
