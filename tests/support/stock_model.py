"""A pure-Python reference model of one drop: the test oracle for the Lua engine.

It is written from DESIGN §3, in the plainest way, with the same documented choices as the
scripts (where lazy expiry happens, partial hand-outs to the waitlist, cancel-first
tombstones that remember partial refunds, rejected answers forgotten after a bounded time,
a second confirm with another order being a conflict). Time is virtual: ``now`` moves only by
``fast_forward``; the Lua side runs on Redis' clock plus the same offset, and tests keep real
elapsed time far below the jumps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stock.keys import REJECT_TTL_SECONDS
from stock.types import Counters

EXPIRE_BATCH = 64
HANDOUT_BATCH = 64


@dataclass
class MHold:
    customer: str
    qty: int
    expires: int
    state: str = "held"
    order_ref: str = ""
    matched: str = ""


@dataclass
class MLine:
    st: str
    sold: int = 0
    over: int = 0
    bs: int = 0
    bo: int = 0
    hold: str = ""
    customer: str = ""
    cq: int = 0
    whole: bool = False
    refunds: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class DropModel:
    drop_id: str
    total: int
    limit: int
    hold_ms: int
    state: str = "draft"
    available: int = 0
    held: int = 0
    sold: int = 0
    oversold: int = 0
    now: int = 0
    hold_seq: int = 0
    holds: dict[str, MHold] = field(default_factory=dict)
    customers: dict[str, int] = field(default_factory=dict)
    requests: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    rejected: dict[str, tuple[tuple[str, str, int], int]] = field(default_factory=dict)
    adjustments: set[str] = field(default_factory=set)
    lines: dict[str, MLine] = field(default_factory=dict)
    events: set[str] = field(default_factory=set)
    waitlist: list[tuple[str, int]] = field(default_factory=list)
    orderrefs: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.available = self.total

    @property
    def counters(self) -> Counters:
        return Counters(self.total, self.available, self.held, self.sold, self.oversold)

    # -- helpers mirroring lib/drop.lua ----------------------------------------------------

    def _customer_add(self, customer: str, n: int) -> None:
        left = self.customers.get(customer, 0) + n
        if left <= 0:
            self.customers.pop(customer, None)
        else:
            self.customers[customer] = left

    def _create_hold(self, customer: str, qty: int) -> str:
        self.hold_seq += 1
        hold_id = f"{self.drop_id}.{self.hold_seq}"
        self.holds[hold_id] = MHold(customer, qty, self.now + self.hold_ms)
        self._customer_add(customer, qty)
        self.available -= qty
        self.held += qty
        return hold_id

    def _end_hold(self, hold: MHold, state: str) -> None:
        hold.state = state
        self._customer_add(hold.customer, -hold.qty)
        self.held -= hold.qty
        self.available += hold.qty

    def _expire_due(self) -> int:
        due = [h for h in self.holds.values() if h.state == "held" and h.expires <= self.now]
        for hold in due[:EXPIRE_BATCH]:
            self._end_hold(hold, "expired")
        return len(due[:EXPIRE_BATCH])

    def selling(self) -> bool:
        return self.state == "live"

    def _handout(self) -> None:
        served = 0
        while self.available > 0 and served < HANDOUT_BATCH and self.selling() and self.waitlist:
            customer, wanted = self.waitlist.pop(0)
            give = min(wanted, self.available)
            if not (self.limit > 0 and self.customers.get(customer, 0) + give > self.limit):
                self._create_hold(customer, give)
            served += 1

    # -- operations ------------------------------------------------------------------------

    def open(self) -> None:
        if self.state != "live":
            self.state = "live"
            self._handout()

    def close(self) -> None:
        self.state = "closed"

    def reserve(self, request_id: str, customer: str, qty: int, remembered: bool = True) -> tuple[str, str, int]:
        """Returns (code, hold id or '', qty). A rejection is remembered for at least
        REJECT_TTL_SECONDS and at most twice that (where, in between, depends on Redis' real
        clock, which the model does not know: ``remembered`` says what the engine did there)."""
        self._expire_due()
        self._handout()
        if request_id in self.requests:
            return self.requests[request_id]
        if request_id in self.rejected:
            answer, at = self.rejected[request_id]
            age = self.now - at
            ttl = REJECT_TTL_SECONDS * 1000
            if age < ttl or (age < 2 * ttl and remembered):
                return answer
            del self.rejected[request_id]
        hold_id = ""
        if not self.selling():
            code = "not_live"
        elif self.limit > 0 and self.customers.get(customer, 0) + qty > self.limit:
            code = "limit_exceeded"
        elif qty > self.available:
            code = "sold_out"
        else:
            code = "reserved"
            hold_id = self._create_hold(customer, qty)
        answer = (code, hold_id, qty if code == "reserved" else 0)
        if code == "reserved":
            self.requests[request_id] = answer
        else:
            self.rejected[request_id] = (answer, self.now)
        return answer

    def confirm(self, hold_id: str, order_ref: str) -> str:
        hold = self.holds.get(hold_id)
        if hold is None:
            return "unknown_hold"
        if hold.state == "confirmed":
            return "confirmed" if hold.order_ref == order_ref else "hold_taken"
        if hold.state == "held" and hold.expires <= self.now:
            self._end_hold(hold, "expired")
            self._handout()
        if hold.state != "held":
            return hold.state
        hold.state = "confirmed"
        hold.order_ref = order_ref
        if order_ref:
            self.orderrefs.setdefault(order_ref, []).append(hold_id)
        self.held -= hold.qty
        self.sold += hold.qty
        return "confirmed"

    def release(self, hold_id: str, customer: str) -> str:
        hold = self.holds.get(hold_id)
        if hold is None:
            return "unknown_hold"
        if customer and hold.customer != customer:
            return "not_owner"
        if hold.state == "held":
            self._end_hold(hold, "expired" if hold.expires <= self.now else "released")
            self._handout()
        return hold.state

    def sweep(self) -> int:
        expired = self._expire_due()
        self._handout()
        return expired

    def adjust(self, request_id: str, delta: int) -> str:
        if request_id in self.adjustments:
            return "adjusted"
        self._expire_due()
        self._handout()
        if self.available + delta < 0:
            return "insufficient"
        self.adjustments.add(request_id)
        self.total += delta
        self.available += delta
        self._handout()
        return "adjusted"

    def join_waitlist(self, customer: str, qty: int) -> str:
        if any(c == customer for c, _ in self.waitlist):
            return "duplicate"
        if not self.selling():
            return "not_live"
        if self.limit > 0 and self.customers.get(customer, 0) + qty > self.limit:
            return "limit_exceeded"
        self._expire_due()
        self._handout()
        if self.available >= qty:
            return "available"
        self.waitlist.append((customer, qty))
        return "waitlisted"

    def leave_waitlist(self, customer: str) -> bool:
        before = len(self.waitlist)
        self.waitlist = [(c, q) for c, q in self.waitlist if c != customer]
        return len(self.waitlist) != before

    def _find_hold(self, hold_id: str, order_id: str, line_key: str) -> tuple[str, MHold | None]:
        if not hold_id:
            for candidate in self.orderrefs.get(order_id, []):
                hold = self.holds[candidate]
                if hold.state == "confirmed" and hold.matched in ("", line_key):
                    return candidate, hold
            return "", None
        # ``hold_id`` comes from a verified reference (the machine passes '' for a stranger's).
        hold_or_none = self.holds.get(hold_id)
        if hold_or_none is None or hold_or_none.matched not in ("", line_key):
            return "", None
        if hold_or_none.state == "confirmed" and hold_or_none.order_ref not in ("", order_id):
            return "", None  # paid by another order
        return hold_id, hold_or_none

    def sale(self, line_key: str, order_id: str, qty: int, hold_ref: str) -> tuple[str, int, int]:
        """Returns (outcome, sold, oversold)."""
        rec = self.lines.get(line_key)
        refunds: list[tuple[str, int]] = []
        if rec is not None:
            if rec.st == "cancelled_first" and rec.whole:
                rec.st = "ignored"
                _, named = self._find_hold(hold_ref, order_id, line_key)
                if named is not None and named.state == "held":
                    self._end_hold(named, "expired" if named.expires <= self.now else "released")
                    self._handout()
                return "ignored", 0, 0
            if rec.st == "ignored":
                return "ignored", 0, 0
            if rec.st != "cancelled_first":
                return "duplicate", rec.sold, rec.over
            refunds = rec.refunds
        hold_id, hold = self._find_hold(hold_ref, order_id, line_key)
        covered, customer = 0, ""
        if hold is not None and hold.state == "held" and hold.expires <= self.now:
            self._end_hold(hold, "expired")
        if hold is not None and hold.state == "held":
            hold.state = "confirmed"
            hold.order_ref = order_id
            self.held -= hold.qty
            self.sold += hold.qty
        if hold is not None and hold.state == "confirmed":
            hold.matched = line_key
            covered, customer = hold.qty, hold.customer
        else:
            hold_id = ""
        over = 0
        rest = qty - covered
        if rest > 0:
            take = min(rest, self.available)
            self.available -= take
            self.sold += take
            over = rest - take
            self.oversold += over
        elif rest < 0:
            self.sold += rest
            self.available -= rest
            self._customer_add(customer, rest)
            covered = qty
        line = self.lines[line_key] = MLine("sold", qty - over, over, 0, 0, hold_id, customer, covered)
        for _, refund_qty in refunds:
            self._give_back(line, refund_qty)
        self._handout()
        return "applied", qty - over, over

    def cancel(self, line_key: str, event: str, order_id: str, qty: int) -> tuple[str, int, int]:
        """Returns (outcome, restocked, unoversold)."""
        event_key = f"{line_key}#{event}"
        if event_key in self.events:
            return "duplicate", 0, 0
        self.events.add(event_key)
        rec = self.lines.get(line_key)
        if rec is None:
            hold_id, hold = self._find_hold("", order_id, line_key)
            if hold is None:
                rec = self.lines[line_key] = MLine("cancelled_first")
            else:
                hold.matched = line_key
                rec = self.lines[line_key] = MLine("sold", hold.qty, 0, 0, 0, hold_id, hold.customer, hold.qty)
        if rec.st == "cancelled_first":
            if qty == 0:
                rec.whole = True
            elif not rec.whole:
                rec.refunds.append((event, qty))
            return "tombstoned", 0, 0
        if rec.st != "sold":
            return "tombstoned", 0, 0
        from_sold, from_over = self._give_back(rec, qty)
        self._handout()
        return "restocked", from_sold, from_over

    def _give_back(self, rec: MLine, qty: int) -> tuple[int, int]:
        left = rec.sold + rec.over - rec.bs - rec.bo
        n = min(qty, left) if qty > 0 else left
        from_over = min(n, rec.over - rec.bo)
        from_sold = n - from_over
        rec.bo += from_over
        rec.bs += from_sold
        self.oversold -= from_over
        self.sold -= from_sold
        self.available += from_sold
        if rec.customer:
            freed = min(from_sold, rec.cq)
            rec.cq -= freed
            self._customer_add(rec.customer, -freed)
        return from_sold, from_over
