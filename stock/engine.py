"""The stock engine: a typed async API over the Lua scripts, the only writer of stock.

Every mutation is one EVALSHA of one script (atomic in Redis, deadlines by Redis' clock), and
every one is safe to retry: reserve and adjust by request id, confirm and release by hold id,
platform lines by (platform, order, line). That is what lets callers retry blindly after a
connection error or a Redis restart, which is exactly when they do not know what happened.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import msgspec

from stock import keys
from stock.errors import (
    DropConflict,
    HoldNotActive,
    HoldTaken,
    InsufficientStock,
    InvalidArgument,
    NotOwner,
    UnknownDrop,
    UnknownHold,
)
from stock.holdref import HoldRef, HoldRefs
from stock.ledger import decode_entries, entry_key
from stock.scripts import Scripts
from stock.types import (
    AdjustResult,
    CancelOutcome,
    CancelResult,
    ConfirmResult,
    Counters,
    DropConfig,
    DropSnapshot,
    DropState,
    Hold,
    HoldState,
    LedgerEntry,
    OrderOutcome,
    OrderResult,
    PlatformCancel,
    PlatformSale,
    RejectReason,
    ReleaseResult,
    ReserveRequest,
    ReserveResult,
    StateChange,
    SweepResult,
    Variant,
    VariantConfig,
    WaitlistOutcome,
    WaitlistResult,
)

# Bounds that keep one script call short (Redis runs one script at a time) and refuse
# requests no live show sends.
MAX_BATCH = 512
MAX_QTY = 10_000
MAX_TOTAL = 10**12
MAX_HOLD_SECONDS = 7 * 24 * 3600
DEFAULT_SWEEP_BATCH = 256
MAX_VARIANTS = 100
# Tallies of a drop with variants are the sums of its variants' (DropSnapshot).
_SUMMED = frozenset(("total", "available", "held", "sold", "oversold", "oversold_lines")) | frozenset(
    ("holds_created", "holds_confirmed", "holds_released", "holds_expired")
)


class _HoldRecord(msgspec.Struct):
    """A hold as the scripts store it (msgpack, short names to keep the hash small)."""

    c: str
    q: int
    e: int
    s: str
    r: str
    o: str = ""
    m: str = ""
    n: str = ""


_hold_decoder = msgspec.msgpack.Decoder(_HoldRecord)


def _hold(hold_id: str, drop_id: str, raw: bytes) -> Hold:
    rec = _hold_decoder.decode(raw)
    return Hold(
        hold_id=hold_id,
        drop_id=drop_id,
        customer=rec.c,
        qty=rec.q,
        state=HoldState(rec.s),
        expires_at_ms=rec.e,
        request_id=rec.r,
        order_ref=rec.o,
        matched_line=rec.m,
        nonce=rec.n,
    )


def _draw_nonces(n: int) -> Iterator[str]:
    """``n`` nonces of 128 bits from the OS's CSPRNG, in lowercase hex (what a hold reference
    carries: stock/holdref.py)."""
    drawn = os.urandom(16 * n).hex()
    return (drawn[i : i + 32] for i in range(0, 32 * n, 32))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _counters(raw: Sequence[Any]) -> Counters:
    return Counters(int(raw[0]), int(raw[1]), int(raw[2]), int(raw[3]), int(raw[4]))


def _check_qty(qty: int) -> int:
    if not isinstance(qty, int) or isinstance(qty, bool) or not 1 <= qty <= MAX_QTY:
        raise InvalidArgument(f"qty must be an integer from 1 to {MAX_QTY}, got {qty!r}")
    return qty


def _valid_request(r: ReserveRequest) -> bool:
    """Whether the engine accepts a reservation's ids and qty (checked per request: see
    ``reserve_many``)."""
    try:
        keys.check_opaque("request id", r.request_id)
        keys.check_opaque("customer", r.customer)
        _check_qty(r.qty)
    except InvalidArgument:
        return False
    return True


def _line_key(platform: str, order_id: str, line_id: str) -> str:
    keys.check_name("platform", platform)
    keys.check_opaque("order id", order_id)
    keys.check_opaque("line id", line_id)
    return f"{platform}|{order_id}|{line_id}"


class StockEngine:
    """Stock of every drop, in Redis (standalone or Cluster).

    Give it a ``redis.asyncio.Redis`` or ``RedisCluster`` client made with
    ``decode_responses=False`` (holds are stored as msgpack); it registers its scripts on it
    (no network until the first call). ``hold_refs`` signs and verifies hold references: every
    node and worker of a deployment must be given the same key (``HoldRefs(viewer_secret)``);
    without one, a key private to this process is used. Errors raised are ``stock.errors.StockError``
    subclasses, each meaning the call changed nothing, or ``redis`` exceptions when Redis could
    not be reached — then the call may or may not have been applied, and retrying it with the
    same ids is the way to find out.
    """

    def __init__(self, redis: Any, hold_refs: HoldRefs | None = None) -> None:
        self.redis = redis
        self.hold_refs = hold_refs or HoldRefs()
        self._scripts = Scripts(redis)
        self._variant_names: dict[str, list[str]] = {}

    async def _call(self, operation: str, drop_id: str, *args: str | int, variant: str = "") -> list[Any]:
        result: list[Any] = await self._scripts[operation](keys=keys.drop_keys(drop_id, variant), args=args)
        if _text(result[0]) == "unknown_drop":
            raise UnknownDrop(f"no drop {keys.unit_id(drop_id, variant)}")
        return result

    async def variants(self, drop_id: str) -> list[Variant]:
        """The variants of a drop, in the order they were defined, with their SKUs and counters
        ([] for a single-SKU drop). A platform's order line names a SKU: this maps it."""
        meta = await self.redis.hgetall(keys.drop_keys(drop_id).meta)
        if not meta:
            raise UnknownDrop(f"no drop {drop_id}")
        found = {_text(k)[2:]: _text(v).split("|", 1) for k, v in meta.items() if _text(k).startswith("v:")}
        names = sorted(found, key=lambda name: int(found[name][0]))
        self._variant_names[drop_id] = names
        return [Variant(name, found[name][1], await self.counters(drop_id, name)) for name in names]

    async def variant_names(self, drop_id: str) -> list[str]:
        """The names of a drop's variants ([] for a single-SKU drop). Read once per drop and
        kept: a drop's variants are fixed when it is defined."""
        names = self._variant_names.get(drop_id)
        if names is None:
            meta = await self.redis.hgetall(keys.drop_keys(drop_id).meta)
            if not meta:
                raise UnknownDrop(f"no drop {drop_id}")
            found = {_text(k)[2:]: _text(v) for k, v in meta.items() if _text(k).startswith("v:")}
            names = sorted(found, key=lambda name: int(found[name].split("|", 1)[0]))
            self._variant_names[drop_id] = names
        return names

    async def _units(self, drop_id: str) -> list[str]:
        """The drop itself ('') and each of its variants: what a drop-wide operation runs on."""
        return ["", *await self.variant_names(drop_id)]

    # -- drops ---------------------------------------------------------------------------

    async def define(self, config: DropConfig) -> Counters:
        """Create a drop in state draft. Idempotent for identical settings; raises
        DropConflict if the id exists with other settings."""
        keys.check_name("drop id", config.drop_id)
        keys.check_name("show id", config.show_id)
        if not isinstance(config.total, int) or not 0 <= config.total <= MAX_TOTAL:
            raise InvalidArgument(f"total must be an integer from 0 to {MAX_TOTAL}")
        if not isinstance(config.per_customer_limit, int) or config.per_customer_limit < 0:
            raise InvalidArgument("per_customer_limit must be ≥ 0 (0 = no limit)")
        hold_ms = self._hold_ms(config.hold_seconds)
        variants = self._check_variants(config)
        await self._check_no_conflict(config, variants)
        # The variants first: a drop that names them must find them all (a retry after a crash
        # defines what is missing; each define is idempotent).
        for v in variants:
            own = config.per_customer_limit if v.per_customer_limit is None else v.per_customer_limit
            limit = own if config.limit_per_variant else config.per_customer_limit
            cprefix = f"{v.variant}|" if config.limit_per_variant else ""
            unit = keys.unit_id(config.drop_id, v.variant)
            args = (unit, config.show_id, v.total, limit, hold_ms, secrets.token_hex(16), cprefix, 0)
            result = await self._call(
                "define", config.drop_id, *args, "variant", v.variant, "sku", v.sku, variant=v.variant
            )
            if _text(result[0]) == "conflict":
                raise DropConflict(f"variant {v.variant} of drop {config.drop_id} exists with other settings")
        described: list[str | int] = []
        for i, v in enumerate(variants):
            described += (f"v:{v.variant}", f"{i}|{v.sku}")
        result = await self._call(
            "define",
            config.drop_id,
            config.drop_id,
            config.show_id,
            0 if variants else config.total,
            config.per_customer_limit,
            hold_ms,
            secrets.token_hex(16),  # the drop's salt for hold nonces (lib/drop.lua)
            "",
            len(variants),
            *described,
        )
        if _text(result[0]) == "conflict":
            raise DropConflict(f"drop {config.drop_id} exists with other settings")
        if variants:
            return await self.counters(config.drop_id)
        return _counters(result[1])

    async def undefine(self, drop_id: str) -> bool:
        """Forget a drop that was defined and never used (a draft with no hold, no waitlist and
        nothing in its ledger but its definition), with its variants: how a create that failed
        half-way is undone. False when there was no such drop; raises DropConflict, changing
        nothing, when it has been used. The drop goes first, then its variants: a failure in
        between leaves unreachable variant keys, never a drop naming variants it lacks."""
        try:
            names = await self.variant_names(drop_id)
        except UnknownDrop:
            return False
        units = ["", *names]
        for mode in ("check", "delete"):  # every unit checked before any is deleted
            for variant in units:
                result = await self._scripts["undefine"](keys=keys.drop_keys(drop_id, variant), args=(mode,))
                if _text(result[0]) == "in_use":
                    raise DropConflict(f"drop {keys.unit_id(drop_id, variant)} has been used; it cannot be undone")
        self._variant_names.pop(drop_id, None)
        return True

    async def _check_no_conflict(self, config: DropConfig, variants: tuple[VariantConfig, ...]) -> None:
        """A drop that exists with other variants is a conflict, found before anything is written
        (define.lua finds every other difference, but the variants are defined before the drop)."""
        meta = await self.redis.hgetall(keys.drop_keys(config.drop_id).meta)
        if not meta:
            return
        m = {_text(k): _text(v) for k, v in meta.items()}
        have = {k[2:]: v.split("|", 1)[1] for k, v in m.items() if k.startswith("v:")}
        want = {v.variant: v.sku for v in variants}
        if have != want or int(m.get("variants") or 0) != len(variants):
            raise DropConflict(f"drop {config.drop_id} exists with other variants")

    @staticmethod
    def _check_variants(config: DropConfig) -> tuple[VariantConfig, ...]:
        variants = config.variants
        if not variants:
            return ()
        if len(variants) > MAX_VARIANTS:
            raise InvalidArgument(f"a drop has at most {MAX_VARIANTS} variants")
        names = [keys.check_variant(v.variant) for v in variants]
        if "" in names or len(set(names)) != len(names):
            raise InvalidArgument("variant names must be given and distinct")
        skus = [keys.check_opaque("sku", v.sku) for v in variants]
        if len(set(skus)) != len(skus):
            raise InvalidArgument("variant SKUs must be distinct")
        for v in variants:
            if not isinstance(v.total, int) or not 0 <= v.total <= MAX_TOTAL:
                raise InvalidArgument(f"total of variant {v.variant} must be an integer from 0 to {MAX_TOTAL}")
            if v.per_customer_limit is not None and (
                not isinstance(v.per_customer_limit, int) or v.per_customer_limit < 0
            ):
                raise InvalidArgument("per_customer_limit must be ≥ 0 (0 = no limit)")
        if config.total not in (0, sum(v.total for v in variants)):
            raise InvalidArgument("a drop with variants is stocked by them: total must be 0 or their sum")
        return tuple(variants)

    @staticmethod
    def _hold_ms(hold_seconds: float) -> int:
        if not isinstance(hold_seconds, int | float) or not 0 < hold_seconds <= MAX_HOLD_SECONDS:
            raise InvalidArgument(f"hold_seconds must be in (0, {MAX_HOLD_SECONDS}]")
        return max(1, round(hold_seconds * 1000))

    async def configure(
        self,
        drop_id: str,
        *,
        per_customer_limit: int | None = None,
        hold_seconds: float | None = None,
        ends_at_ms: int | None = None,
        variant: str = "",
    ) -> Counters:
        """Change a drop's rules; None leaves a setting as it is, ``ends_at_ms=0`` clears the
        end time. Holds already granted keep their deadline. A drop's rules are its variants'
        too; with ``variant``, only that variant's change (its own per-customer limit)."""
        if per_customer_limit is not None and (not isinstance(per_customer_limit, int) or per_customer_limit < 0):
            raise InvalidArgument("per_customer_limit must be ≥ 0 (0 = no limit)")
        if ends_at_ms is not None and (not isinstance(ends_at_ms, int) or ends_at_ms < 0):
            raise InvalidArgument("ends_at_ms must be ≥ 0")
        hold_ms = "" if hold_seconds is None else self._hold_ms(hold_seconds)
        args = (
            "" if per_customer_limit is None else per_customer_limit,
            hold_ms,
            "" if ends_at_ms is None else ends_at_ms,
        )
        units = [variant] if variant else await self._units(drop_id)
        results = [await self._call("configure", drop_id, *args, variant=unit) for unit in units]
        if variant or len(units) == 1:
            return _counters(results[0][1])
        return await self.counters(drop_id)

    async def open(
        self, drop_id: str, *, duration_seconds: float | None = None, ends_at_ms: int | None = None
    ) -> StateChange:
        """Launch a drop. ``duration_seconds`` counts from now by Redis' clock; the end time
        is what countdowns show and what the sweeper closes the drop at."""
        if duration_seconds is not None and not (
            isinstance(duration_seconds, int | float) and 0 < duration_seconds <= MAX_HOLD_SECONDS
        ):
            raise InvalidArgument("duration_seconds must be positive")
        if ends_at_ms is not None and (not isinstance(ends_at_ms, int) or ends_at_ms < 0):
            raise InvalidArgument("ends_at_ms must be ≥ 0")
        duration = "" if duration_seconds is None else round(duration_seconds * 1000)
        ends = "" if ends_at_ms is None else ends_at_ms
        result = await self._call("set_state", drop_id, "live", "", ends, duration)
        change = self._state_change(result)
        # Variants end when their drop does: the drop's end time, not a duration of their own.
        return await self._each_variant(drop_id, change, "set_state", "live", "", change.ends_at_ms, "")

    async def close(self, drop_id: str, reason: str = "host") -> StateChange:
        """End a drop: no more reservations. Live holds stay confirmable until they expire."""
        if reason not in ("host", "sold_out", "time"):
            raise InvalidArgument("reason must be host, sold_out or time")
        result = await self._call("set_state", drop_id, "closed", reason, "", "")
        return await self._each_variant(drop_id, self._state_change(result), "set_state", "closed", reason, "", "")

    async def _each_variant(self, drop_id: str, change: StateChange, operation: str, *args: str | int) -> StateChange:
        """Apply a drop's change of state to each of its variants; the drop's answer, with the
        counters of the whole drop."""
        names = await self.variant_names(drop_id)
        if not names:
            return change
        for name in names:
            await self._call(operation, drop_id, *args, variant=name)
        return msgspec.structs.replace(change, counters=await self.counters(drop_id))

    @staticmethod
    def _state_change(result: list[Any]) -> StateChange:
        return StateChange(
            changed=_text(result[0]) == "changed",
            state=DropState(_text(result[2])),
            ends_at_ms=int(result[3]),
            counters=_counters(result[1]),
        )

    async def adjust(self, drop_id: str, delta: int, request_id: str, variant: str = "") -> AdjustResult:
        """Restock (delta > 0) or withdraw units; raises InsufficientStock rather than go below
        what is held + sold. Idempotent by request id. A drop with variants is restocked per
        variant (``variant``); its counters are the variant's."""
        keys.check_opaque("request id", request_id)
        if not isinstance(delta, int) or isinstance(delta, bool) or not -MAX_TOTAL <= delta <= MAX_TOTAL:
            raise InvalidArgument("delta must be an integer")
        result = await self._call("adjust", drop_id, request_id, delta, variant=variant)
        if _text(result[0]) == "insufficient":
            raise InsufficientStock(f"drop {drop_id} has {_counters(result[1]).available} available")
        return AdjustResult(delta=delta, duplicate=bool(result[2]), counters=_counters(result[1]))

    async def fast_forward(self, drop_id: str, seconds: float) -> int:
        """Move one drop's clock ahead, for rehearsals and tests of expiry; returns the total
        offset in ms. Never use it on a show that sells for real: holds expire early."""
        if not isinstance(seconds, int | float) or seconds <= 0:
            raise InvalidArgument("seconds must be positive")
        results = [
            await self._call("fast_forward", drop_id, max(1, round(seconds * 1000)), variant=unit)
            for unit in await self._units(drop_id)
        ]
        return int(results[0][1])

    # -- reservations --------------------------------------------------------------------

    async def reserve(self, drop_id: str, customer: str, qty: int, request_id: str, variant: str = "") -> ReserveResult:
        """Hold ``qty`` units for a customer, one EVALSHA. Under load prefer
        ``stock.batcher.ReserveBatcher``, which answers many requests per call. Raises
        InvalidArgument for a malformed request (a batch answers it ``invalid`` instead). A drop
        with variants sells them: ``variant`` names one (a request naming none is ``invalid``)."""
        keys.check_opaque("request id", request_id)
        keys.check_opaque("customer", customer)
        _check_qty(qty)
        (result,) = await self.reserve_many(drop_id, [ReserveRequest(request_id, customer, qty)], variant)
        return result

    async def reserve_many(
        self, drop_id: str, requests: Sequence[ReserveRequest], variant: str = ""
    ) -> list[ReserveResult]:
        """Reserve for many requests in one script call, answered in order (FIFO: earlier
        requests get units first). A rejection is an answer, not an error — and so is a malformed
        request (an id the engine does not accept, a bad qty): it is answered ``invalid`` alone,
        and the rest of its batch goes ahead, so one bad request never fails the others. A batch
        is for one variant (or the drop itself): the counters in the answers are that variant's."""
        if not 1 <= len(requests) <= MAX_BATCH:
            raise InvalidArgument(f"a batch holds 1 to {MAX_BATCH} requests")
        ok = [_valid_request(r) for r in requests]  # once per request: it is most of the Python cost here
        n = sum(ok)
        args: list[str | int] = [n, keys.REJECT_TTL_SECONDS * 1000]
        # The nonce of each hold the call may grant (lib/drop.lua: create_hold), drawn here rather
        # than hashed in Lua: one urandom call per batch is cheaper for Python than one SHA-1 per
        # hold is for Redis, which runs every drop's scripts one at a time.
        nonces = _draw_nonces(n)
        for r, good in zip(requests, ok, strict=True):
            if good:
                args += (r.request_id, r.customer, r.qty, next(nonces))
        result = await self._call("reserve", drop_id, *args, variant=variant)
        counters = _counters(result[1])
        if len(result[2]) != 6 * n:
            raise RuntimeError(f"reserve answered {len(result[2]) // 6} of {n} requests")
        given, at = result[2], 0
        answers = []
        for r, good in zip(requests, ok, strict=True):
            if not good:
                answers.append(ReserveResult(str(r.request_id), RejectReason.INVALID, None, 0, 0, False, counters))
                continue
            code, hold_id, qty, expires, duplicate, nonce = given[at : at + 6]
            at += 6
            reason = None if _text(code) == "reserved" else RejectReason(_text(code))
            hold = _text(hold_id) or None
            answers.append(
                ReserveResult(
                    request_id=r.request_id,
                    reason=reason,
                    hold_id=hold,
                    qty=int(qty),
                    expires_at_ms=int(expires),
                    duplicate=bool(duplicate),
                    counters=counters,
                    hold_ref=self.hold_refs.mint(drop_id, hold, _text(nonce)) if hold else "",
                )
            )
        return answers

    def verify_ref(self, hold_ref: str) -> HoldRef:
        """The hold a reference names; raises UnknownHold if it fails the MAC check (a forged,
        altered or truncated reference names no hold, and says nothing of which holds exist)."""
        ref = self.hold_refs.verify(hold_ref)
        if ref is None:
            raise UnknownHold("not a valid hold reference")
        return ref

    def hold_ref(self, drop_id: str, hold_id: str, nonce: str) -> str:
        """The reference of a hold whose nonce is known (a hand-out read from the ledger)."""
        return self.hold_refs.mint(drop_id, hold_id, nonce)

    async def confirm_ref(self, hold_ref: str, order_ref: str = "") -> ConfirmResult:
        """``confirm`` for a hold named by its reference — what a checkout must use, since the
        reference comes from the buyer's cart. UnknownHold if it fails verification."""
        ref = self.verify_ref(hold_ref)
        return await self.confirm(ref.hold_id, order_ref, nonce=ref.nonce)

    async def release_ref(self, hold_ref: str) -> ReleaseResult:
        """``release`` for a hold named by its reference (a checkout giving up a cart's hold)."""
        ref = self.verify_ref(hold_ref)
        return await self.release(ref.hold_id, nonce=ref.nonce)

    async def confirm(self, hold_id: str, order_ref: str = "", *, nonce: str = "") -> ConfirmResult:
        """Turn a live hold into a sale. Idempotent by (hold id, order ref). ``order_ref``
        should be the platform's order id, so that order's webhook is matched to this hold and
        not counted twice. Raises HoldNotActive if the hold expired or was released, HoldTaken
        if it was confirmed with another order ref. Naming a hold by id is for trusted callers
        only; anything a buyer sent goes through ``confirm_ref``."""
        drop_id, variant = keys.hold_place(hold_id)
        if order_ref:
            keys.check_opaque("order ref", order_ref)
        result = await self._call("confirm", drop_id, hold_id, order_ref, nonce, variant=variant)
        code = _text(result[0])
        if code == "unknown_hold":
            raise UnknownHold(f"no hold {hold_id}")
        if code == "hold_taken":
            raise HoldTaken(hold_id)
        if code != "confirmed":
            raise HoldNotActive(hold_id, code)
        return ConfirmResult(
            hold_id=hold_id,
            qty=int(result[2]),
            order_ref=_text(result[3]),
            duplicate=bool(result[4]),
            counters=_counters(result[1]),
        )

    async def release(self, hold_id: str, customer: str | None = None, *, nonce: str = "") -> ReleaseResult:
        """Give a live hold's units back. With ``customer`` the hold must be theirs (viewers
        release their own holds; a trusted checkout passes None). Idempotent by hold id."""
        drop_id, variant = keys.hold_place(hold_id)
        if customer is not None:
            keys.check_opaque("customer", customer)
        result = await self._call("release", drop_id, hold_id, customer or "", nonce, variant=variant)
        code = _text(result[0])
        if code == "unknown_hold":
            raise UnknownHold(f"no hold {hold_id}")
        if code == "not_owner":
            raise NotOwner(f"hold {hold_id} is not this customer's")
        if code != "released":
            raise HoldNotActive(hold_id, code)
        return ReleaseResult(
            hold_id=hold_id, qty=int(result[2]), duplicate=bool(result[3]), counters=_counters(result[1])
        )

    async def sweep(self, drop_id: str, max_holds: int = DEFAULT_SWEEP_BATCH) -> SweepResult:
        """Expire due holds (at most ``max_holds``), hand units to the waitlist, close the drop
        if its end time passed. Any node may run it at any time; it is safe to overlap."""
        if not 1 <= max_holds <= 10_000:
            raise InvalidArgument("max_holds must be from 1 to 10000")
        result = await self._call("sweep", drop_id, max_holds)
        swept = SweepResult(
            drop_id=drop_id,
            expired=int(result[2]),
            more=bool(result[3]),
            next_due_ms=int(result[4]),
            closed=bool(result[5]),
            counters=_counters(result[1]),
        )
        for name in await self.variant_names(drop_id):
            # A variant closes by its own end time, which is its drop's (``open``).
            r = await self._call("sweep", drop_id, max_holds, variant=name)
            due = [d for d in (swept.next_due_ms, int(r[4])) if d]
            swept = msgspec.structs.replace(
                swept,
                expired=swept.expired + int(r[2]),
                more=swept.more or bool(r[3]),
                next_due_ms=min(due) if due else 0,
            )
        if swept.expired or swept.closed:
            swept = msgspec.structs.replace(swept, counters=await self.counters(drop_id))
        return swept

    # -- waitlist -------------------------------------------------------------------------

    async def join_waitlist(self, drop_id: str, customer: str, qty: int = 1, variant: str = "") -> WaitlistResult:
        """Queue for units that come back; they are handed out as holds, FIFO. Each variant has
        a waitlist of its own (``variant``)."""
        keys.check_opaque("customer", customer)
        result = await self._call("waitlist_join", drop_id, customer, _check_qty(qty), variant=variant)
        return WaitlistResult(
            outcome=WaitlistOutcome(_text(result[0])), position=int(result[2]), counters=_counters(result[1])
        )

    async def leave_waitlist(self, drop_id: str, customer: str, variant: str = "") -> bool:
        """Leave the waitlist; False if the customer was not on it."""
        keys.check_opaque("customer", customer)
        result = await self._call("waitlist_leave", drop_id, customer, variant=variant)
        return _text(result[0]) == "left"

    # -- platform orders ------------------------------------------------------------------

    async def apply_sale(self, sale: PlatformSale) -> OrderResult:
        """Apply one order line a platform sold. Idempotent by (platform, order, line). The hold
        reference the order carried is verified here (MAC) and in the script (nonce); one that
        fails is no hold: the line takes from available and ``hold_issue`` says why."""
        line_key = _line_key(sale.platform, sale.order_id, sale.line_id)
        hold_id = nonce = why = ""
        if sale.hold_ref:
            ref = self.hold_refs.verify(sale.hold_ref)
            if ref is None:
                why = "hold_ref_invalid"
            elif ref.drop_id != sale.drop_id or keys.hold_place(ref.hold_id)[1] != sale.variant:
                # A hold of another drop, or of another variant (other stock), cannot pay for this line.
                why = "hold_other_drop"
            else:
                hold_id, nonce = ref.hold_id, ref.nonce
        qty = _check_qty(sale.qty)
        keys.check_variant(sale.variant)
        result = await self._call(
            "order", sale.drop_id, line_key, sale.order_id, qty, hold_id, nonce, why, variant=sale.variant
        )
        return OrderResult(
            outcome=OrderOutcome(_text(result[0])),
            sold=int(result[2]),
            oversold=int(result[3]),
            hold_id=_text(result[4]) or None,
            counters=_counters(result[1]),
            hold_issue=_text(result[5]),
            drop_state=_text(result[6]),
        )

    async def apply_cancel(self, cancel: PlatformCancel) -> CancelResult:
        """Apply a cancellation or refund of an order line. Idempotent by (platform, order,
        line, event); one that comes before its order makes that order be ignored."""
        line_key = _line_key(cancel.platform, cancel.order_id, cancel.line_id)
        keys.check_opaque("event", cancel.event)
        if not isinstance(cancel.qty, int) or not 0 <= cancel.qty <= MAX_QTY:
            raise InvalidArgument(f"qty must be from 0 (all) to {MAX_QTY}")
        keys.check_variant(cancel.variant)
        result = await self._call(
            "cancel", cancel.drop_id, line_key, cancel.event, cancel.order_id, cancel.qty, variant=cancel.variant
        )
        return CancelResult(
            outcome=CancelOutcome(_text(result[0])),
            restocked=int(result[2]),
            unoversold=int(result[3]),
            counters=_counters(result[1]),
        )

    # -- reads ------------------------------------------------------------------------------

    async def counters(self, drop_id: str, variant: str = "") -> Counters:
        """The drop's counters, read in one HMGET (consistent: scripts write them at once). A
        drop with variants: the sum of theirs (one HMGET each, not one instant), or with
        ``variant`` that variant's."""
        fields = ("total", "available", "held", "sold", "oversold", "variants")
        raw = await self.redis.hmget(keys.drop_keys(drop_id, variant).meta, *fields)
        if raw[0] is None:
            raise UnknownDrop(f"no drop {keys.unit_id(drop_id, variant)}")
        if variant or not int(raw[5] or 0):
            return _counters(raw)
        total = _counters(raw)
        for name in await self.variant_names(drop_id):
            part = await self.counters(drop_id, name)
            total = Counters(
                total.total + part.total,
                total.available + part.available,
                total.held + part.held,
                total.sold + part.sold,
                total.oversold + part.oversold,
            )
        return total

    async def snapshot(self, drop_id: str, variant: str = "") -> DropSnapshot:
        """Everything known about a drop, for the host API and stats (a drop with variants:
        counters and tallies summed over them; with ``variant``, that variant's own)."""
        raw = await self.redis.hgetall(keys.drop_keys(drop_id, variant).meta)
        if not raw:
            raise UnknownDrop(f"no drop {keys.unit_id(drop_id, variant)}")
        m = {_text(k): _text(v) for k, v in raw.items()}
        summed: dict[str, int] = {}
        if not variant and int(m.get("variants") or 0):
            for name in await self.variant_names(drop_id):
                part = await self.redis.hgetall(keys.drop_keys(drop_id, name).meta)
                for k, v in part.items():
                    field = _text(k)
                    if field in _SUMMED or field.startswith("rejected_"):
                        summed[field] = summed.get(field, 0) + int(v or 0)

        def num(name: str) -> int:
            return int(m.get(name) or 0) + summed.get(name, 0)

        return DropSnapshot(
            drop_id=m["id"],
            show_id=m["show"],
            state=DropState(m["state"]),
            counters=Counters(num("total"), num("available"), num("held"), num("sold"), num("oversold")),
            per_customer_limit=num("limit"),
            hold_seconds=num("hold_ms") / 1000,
            ends_at_ms=num("ends_at"),
            end_reason=m.get("end_reason", ""),
            opened_at_ms=num("opened_at"),
            closed_at_ms=num("closed_at"),
            holds_created=num("holds_created"),
            holds_confirmed=num("holds_confirmed"),
            holds_released=num("holds_released"),
            holds_expired=num("holds_expired"),
            rejected={r.value: num(f"rejected_{r.value}") for r in RejectReason},
            oversold_lines=num("oversold_lines"),
        )

    async def hold(self, hold_id: str) -> Hold:
        """A hold as stored (its state is as of the last script that touched it: a hold past
        its deadline reads 'held' until the sweeper or the next call on the drop expires it)."""
        drop_id, variant = keys.hold_place(hold_id)
        raw = await self.redis.hget(keys.drop_keys(drop_id, variant).holds, hold_id)
        if raw is None:
            raise UnknownHold(f"no hold {hold_id}")
        return _hold(hold_id, drop_id, raw)

    async def holds(self, drop_id: str, variant: str = "") -> list[Hold]:
        """Every hold of a drop (or of one of its variants), whatever its state (for
        reconciliation and tests)."""
        raw = await self.redis.hgetall(keys.drop_keys(drop_id, variant).holds)
        result = [_hold(_text(hold_id), drop_id, value) for hold_id, value in raw.items()]
        return sorted(result, key=lambda h: int(h.hold_id.rsplit(".", 1)[1]))

    async def waitlist(self, drop_id: str, variant: str = "") -> list[tuple[str, int]]:
        """The waitlist (of a variant, each has its own) in FIFO order: (customer, units wanted)."""
        k = keys.drop_keys(drop_id, variant)
        members = [_text(m) for m in await self.redis.zrange(k.waitlist, 0, -1)]
        if not members:
            return []
        wanted = await self.redis.hmget(k.waitqty, members)
        return [(m, int(w or 1)) for m, w in zip(members, wanted, strict=True)]

    async def ledger(self, drop_id: str, after: str = "-", count: int = 1000, variant: str = "") -> list[LedgerEntry]:
        """Ledger entries after entry id ``after`` ('-' = from the start), at most ``count``, one
        per change: a batch's packed entry is expanded (``stock.ledger.decode_entries``), and a
        page may end inside it — the next page, after the last id returned, goes on from there.
        Fewer than ``count`` entries means the end of the ledger. Each variant of a drop has a
        ledger of its own (``variant``), which replays to its counters."""
        if count < 1:
            raise InvalidArgument("count must be at least 1")
        key = keys.drop_keys(drop_id, variant).ledger
        floor = None if after == "-" else entry_key(after)
        # A packed entry is stored under the last of its ids, so every entry holding a change
        # after ``after`` is stored after it too; only its earlier changes need skipping.
        start = after if after == "-" else f"({after}"
        found: list[LedgerEntry] = []
        while len(found) < count:
            raw = await self.redis.xrange(key, min=start, max="+", count=count)
            for entry_id, fields in raw:
                found += [e for e in decode_entries(entry_id, fields) if floor is None or entry_key(e.entry_id) > floor]
            if len(raw) < count:
                break
            start = f"({_text(raw[-1][0])}"
        return found[:count]

    async def iter_ledger(self, drop_id: str, page: int = 1000, variant: str = "") -> AsyncIterator[LedgerEntry]:
        """Every ledger entry of a drop (or of one of its variants), read page by page."""
        after = "-"
        while True:
            entries = await self.ledger(drop_id, after, page, variant)
            for entry in entries:
                yield entry
            if len(entries) < page:
                return
            after = entries[-1].entry_id

    async def drop_ids(self) -> list[str]:
        """Every defined drop (SCAN; on a Cluster client redis-py scans every primary)."""
        found = {
            keys.drop_id_of_meta_key(_text(k))
            async for k in self.redis.scan_iter(match=keys.drop_meta_pattern(), count=1000)
        }
        # The pattern also matches variants' metas (``…{drop:D}:v:<variant>:meta``): not drops.
        return sorted(d for d in found if "}" not in d)

    # -- privacy ----------------------------------------------------------------------------

    async def erase_customer(self, customer: str, drop_ids: Sequence[str] | None = None) -> int:
        """Replace a customer's id by one tombstone in every drop (or those given), counters
        unchanged (DESIGN §10). Returns how many places were rewritten. Idempotent."""
        keys.check_opaque("customer", customer)
        tombstone = f"erased-{secrets.token_hex(8)}"
        places = 0
        for drop_id in drop_ids if drop_ids is not None else await self.drop_ids():
            for unit in await self._units(drop_id):
                result = await self._call("erase", drop_id, customer, tombstone, variant=unit)
                places += int(result[2])
        return places
