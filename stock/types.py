"""Typed results of the stock engine. Scripts return fixed-shape arrays; these are what the
rest of LiveDrop sees instead of magic strings and positions."""

from __future__ import annotations

import enum

import msgspec


class DropState(enum.StrEnum):
    DRAFT = "draft"
    LIVE = "live"
    CLOSED = "closed"


class HoldState(enum.StrEnum):
    HELD = "held"
    CONFIRMED = "confirmed"
    RELEASED = "released"
    EXPIRED = "expired"


class RejectReason(enum.StrEnum):
    SOLD_OUT = "sold_out"
    LIMIT_EXCEEDED = "limit_exceeded"
    NOT_LIVE = "not_live"
    INVALID = "invalid"


class Counters(msgspec.Struct, frozen=True):
    """A drop's stock. Invariant: available + held + sold == total, none negative."""

    total: int
    available: int
    held: int
    sold: int
    oversold: int = 0


class ReserveRequest(msgspec.Struct, frozen=True):
    request_id: str
    customer: str
    qty: int = 1


class ReserveResult(msgspec.Struct, frozen=True):
    """The answer to one reservation. ``reason`` is None when a hold was granted;
    ``duplicate`` is True when this is a retry answered with the first answer. ``hold_ref`` is
    what the viewer's client, its cart and its checkout name the hold by (stock/holdref.py);
    ``hold_id`` is internal (guessable) and never enough to take the hold."""

    request_id: str
    reason: RejectReason | None
    hold_id: str | None
    qty: int
    expires_at_ms: int
    duplicate: bool
    counters: Counters
    hold_ref: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is None


class Hold(msgspec.Struct, frozen=True):
    hold_id: str
    drop_id: str
    customer: str
    qty: int
    state: HoldState
    expires_at_ms: int
    request_id: str
    order_ref: str
    matched_line: str
    nonce: str = ""


class ConfirmResult(msgspec.Struct, frozen=True):
    hold_id: str
    qty: int
    order_ref: str
    duplicate: bool
    counters: Counters


class ReleaseResult(msgspec.Struct, frozen=True):
    hold_id: str
    qty: int
    duplicate: bool
    counters: Counters


class SweepResult(msgspec.Struct, frozen=True):
    """``more``: due holds remain (call again now); ``next_due_ms``: earliest pending deadline,
    0 if none; ``closed``: this sweep ended the drop because its end time passed."""

    drop_id: str
    expired: int
    more: bool
    next_due_ms: int
    closed: bool
    counters: Counters


class AdjustResult(msgspec.Struct, frozen=True):
    delta: int
    duplicate: bool
    counters: Counters


class StateChange(msgspec.Struct, frozen=True):
    changed: bool
    state: DropState
    ends_at_ms: int
    counters: Counters


class VariantConfig(msgspec.Struct, frozen=True):
    """One variant of a drop (a size, a colour…): its own SKU and stock. ``per_customer_limit``
    None means the drop's; it only counts when the drop's ``limit_per_variant`` is set."""

    variant: str
    sku: str
    total: int
    per_customer_limit: int | None = None


class DropConfig(msgspec.Struct, frozen=True):
    """What a drop is created with. ``per_customer_limit`` 0 means no limit.

    A drop with ``variants`` is stocked by them: each has its own counters, holds, waitlist and
    ledger, and ``total`` must be 0 or their sum. The per-customer limit counts a customer's units
    across all variants, or, with ``limit_per_variant``, in each variant on its own (each variant's
    own limit, or the drop's)."""

    drop_id: str
    show_id: str
    total: int
    per_customer_limit: int = 0
    hold_seconds: float = 600.0
    variants: tuple[VariantConfig, ...] = ()
    limit_per_variant: bool = False


class Variant(msgspec.Struct, frozen=True):
    """A variant as stored: its SKU (what platform order lines name) and its counters."""

    variant: str
    sku: str
    counters: Counters


class DropSnapshot(msgspec.Struct, frozen=True):
    """Everything the meta hash says about a drop, including tallies for stats."""

    drop_id: str
    show_id: str
    state: DropState
    counters: Counters
    per_customer_limit: int
    hold_seconds: float
    ends_at_ms: int
    end_reason: str
    opened_at_ms: int
    closed_at_ms: int
    holds_created: int
    holds_confirmed: int
    holds_released: int
    holds_expired: int
    rejected: dict[str, int]
    oversold_lines: int


class OrderOutcome(enum.StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


class PlatformSale(msgspec.Struct, frozen=True):
    """One order line a commerce platform sold of a drop (from a webhook). ``hold_ref`` is the
    hold reference the buyer's cart carried, as the platform sent it: the engine verifies it, and
    one that fails is no hold at all."""

    platform: str
    order_id: str
    line_id: str
    drop_id: str
    qty: int
    hold_ref: str | None = None
    variant: str = ""


class OrderResult(msgspec.Struct, frozen=True):
    """``hold_id`` is the hold that paid for the line (None: units came from available);
    ``hold_issue`` why the hold the order named did not pay ('' if it did or none was named);
    ``drop_state`` the drop's state when the line was applied."""

    outcome: OrderOutcome
    sold: int
    oversold: int
    hold_id: str | None
    counters: Counters
    hold_issue: str = ""
    drop_state: str = ""


class CancelOutcome(enum.StrEnum):
    RESTOCKED = "restocked"
    DUPLICATE = "duplicate"
    TOMBSTONED = "tombstoned"


class PlatformCancel(msgspec.Struct, frozen=True):
    """A cancellation or refund of an order line. ``event`` tells refunds apart (each counts
    once); ``qty`` 0 means everything left on the line."""

    platform: str
    order_id: str
    line_id: str
    drop_id: str
    event: str = "cancel"
    qty: int = 0
    variant: str = ""


class CancelResult(msgspec.Struct, frozen=True):
    outcome: CancelOutcome
    restocked: int
    unoversold: int
    counters: Counters


class WaitlistOutcome(enum.StrEnum):
    WAITLISTED = "waitlisted"
    DUPLICATE = "duplicate"
    AVAILABLE = "available"
    NOT_LIVE = "not_live"
    LIMIT_EXCEEDED = "limit_exceeded"


class WaitlistResult(msgspec.Struct, frozen=True):
    outcome: WaitlistOutcome
    position: int
    counters: Counters


class LedgerEntry(msgspec.Struct, frozen=True):
    """One change. ``d_*`` are the deltas replayed by ``stock.ledger.replay``; ``after`` the
    counters once it was applied; ``fields`` the rest (hold, customer, order line…)."""

    entry_id: str
    op: str
    d_total: int
    d_available: int
    d_held: int
    d_sold: int
    d_oversold: int
    after: Counters
    at_ms: int
    fields: dict[str, str]
