"""What a node knows of a show, and how events fold into it: the pure core of ``server.shows.node``.

A node keeps, per subscribed show, a snapshot (show, drops, counters, seq, epoch, viewer count)
and a ring of recent frames, so a ``welcome`` and most resumes cost no Redis round-trip. The
snapshot changes only by folding what the streams say: a feed event (a drop launched or changed,
a drop or the show ended) or a ledger entry of one of its drops (new counters, a private answer
for one customer, the drop opening or closing). These folds do no I/O and are tested without a
network; the node's shell reads the streams, sends the frames and publishes announcements.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import msgspec

from broadcast.feed import MAX_RECOVERY, FeedEvent
from broadcast.transport import Message
from server.shows.catalog import DropInfo, Show, ShowState
from server.shows.variants import VariantInfo
from server.viewers import protocol as p
from stock.types import Counters, DropState, LedgerEntry

RING = MAX_RECOVERY  # recent events kept in memory per show, for resumes


@dataclass
class KnownDrop:
    info: DropInfo
    state: str
    ends_at: int
    counters: Counters
    dirty: bool = False  # counters changed since the last stock frame (conflation)
    ledger_after: str = "0-0"
    # A drop with variants: each variant's counters (``counters`` is their sum) and where the
    # node's reader is in each variant's ledger, in the order the drop lists them.
    variants: dict[str, Counters] = field(default_factory=dict)
    variant_after: dict[str, str] = field(default_factory=dict)

    def add_up(self) -> None:
        """``counters`` = the sum of the variants' (a drop with variants sells nothing itself)."""
        each = self.variants.values()
        self.counters = Counters(
            sum(c.total for c in each),
            sum(c.available for c in each),
            sum(c.held for c in each),
            sum(c.sold for c in each),
            sum(c.oversold for c in each),
        )


@dataclass
class KnownShow:
    show: Show
    drops: dict[str, KnownDrop]
    seq: int
    epoch: str
    viewers: int = 0
    ring: deque[tuple[int, Message]] = field(default_factory=lambda: deque(maxlen=RING))


class LedgerOutcome(NamedTuple):
    """What a ledger entry asks of the node beyond the new counters."""

    private: msgspec.Struct | None  # a frame for one customer's sockets
    customer: str | None
    ended: str | None  # the drop closed, for this reason: announce it on the feed


def stock_body(c: Counters) -> p.StockBody:
    return p.StockBody(available=c.available, held=c.held, sold=c.sold, total=c.total)


def variant_bodies(d: KnownDrop) -> list[p.VariantBody]:
    empty = Counters(0, 0, 0, 0)
    return [
        p.VariantBody(
            id=v.id,
            sku=v.sku,
            options=v.options,
            stock=stock_body(d.variants.get(v.id, empty)),
            prices=p.UNSET if v.prices is None else v.prices,
        )
        for v in d.info.variants
    ]


def drop_body(d: KnownDrop) -> p.DropBody:
    """The drop as viewers see it; a drop without variants has no variant field at all."""
    return p.DropBody(
        id=d.info.drop_id,
        sku=d.info.sku,
        title=d.info.title,
        image_url=d.info.image_url,
        prices=d.info.prices,
        state=d.state,
        ends_at=d.ends_at,
        per_customer_limit=d.info.per_customer_limit,
        stock=stock_body(d.counters),
        variants=variant_bodies(d) if d.info.variants else p.UNSET,
        limit_per_variant=True if d.info.limit_per_variant else p.UNSET,
    )


def stock_frame(d: KnownDrop, ts: int) -> p.StockFrame:
    c = d.counters
    return p.StockFrame(
        drop=d.info.drop_id,
        available=c.available,
        held=c.held,
        sold=c.sold,
        total=c.total,
        ts=ts,
        variants={name: stock_body(vc) for name, vc in d.variants.items()} if d.info.variants else p.UNSET,
    )


def _variant_info(body: p.VariantBody) -> VariantInfo:
    return VariantInfo(
        id=body.id,
        sku=body.sku,
        total=body.stock.total,
        options=body.options,
        prices=None if body.prices is p.UNSET else body.prices,
    )


def _counters_of(body: p.StockBody) -> Counters:
    return Counters(body.total, body.available, body.held, body.sold)


def fold_event(live: KnownShow, event: FeedEvent) -> KnownDrop | None:
    """Fold a feed event into the snapshot. Returns a drop the snapshot did not know before (the
    caller starts following its ledger), else None. Raises ``msgspec.DecodeError``/``KeyError``
    on a body it cannot use."""
    show_id = live.show.show_id
    if event.kind == "drop":
        body = msgspec.json.decode(event.body, type=dict[str, p.DropBody])["drop"]
        known = live.drops.get(body.id)
        stock = body.stock
        bodies = [] if body.variants is p.UNSET else body.variants
        info = DropInfo(
            drop_id=body.id,
            show_id=show_id,
            sku=body.sku,
            title=body.title,
            total=stock.total,
            image_url=body.image_url,
            prices=body.prices,
            per_customer_limit=body.per_customer_limit,
            variants=[_variant_info(v) for v in bodies],
            limit_per_variant=body.limit_per_variant is True,
        )
        d = live.drops[body.id] = KnownDrop(
            info,
            body.state,
            body.ends_at,
            known.counters if known else _counters_of(stock),
            ledger_after=known.ledger_after if known else "0-0",
            dirty=known.dirty if known else False,
            # Counters the node already follows win over the event's (they may be newer).
            variants={
                v.id: known.variants[v.id] if known and v.id in known.variants else _counters_of(v.stock)
                for v in bodies
            },
            variant_after={v.id: known.variant_after.get(v.id, "0-0") if known else "0-0" for v in bodies},
        )
        return d if known is None else None
    if event.kind == "drop_ended":
        ended = msgspec.json.decode(event.body, type=dict[str, str])
        gone = live.drops.get(ended["drop"])
        if gone is not None:
            gone.state = DropState.CLOSED.value
    elif event.kind in ("show_ended", "show"):
        state = ShowState.ENDED if event.kind == "show_ended" else ShowState.LIVE
        live.show = msgspec.structs.replace(live.show, state=state)
    return None


def fold_ledger(
    d: KnownDrop, entry: LedgerEntry, hold_ref: Callable[[str, str, str], str], variant: str = ""
) -> LedgerOutcome:
    """Fold one ledger entry of a drop, or of one of its ``variant``s: new counters (marked dirty
    for the next stock tick), the drop's state on open/close (from the drop's own ledger: its
    variants open and close with it), and the private frame a customer must get (hold expired, a
    waitlist hand-out with its signed reference from ``hold_ref``, a confirmation)."""
    if variant:
        if d.variants.get(variant) != entry.after:
            d.variants[variant] = entry.after
            d.add_up()
            d.dirty = True
    elif not d.info.variants and entry.after != d.counters:
        # A drop with variants has nothing of its own: its counters are their sum (above).
        d.counters = entry.after
        d.dirty = True
    f = entry.fields
    customer = f.get("cust")
    drop_id = d.info.drop_id
    named: str | p.Unset = variant or p.UNSET
    message: msgspec.Struct | None = None
    ended: str | None = None
    if entry.op == "expire" and customer:
        message = p.HoldExpired(drop=drop_id, hold=f["hold"], variant=named)
    elif entry.op == "handout" and customer:
        message = p.Reserved(
            ref="waitlist",
            drop=drop_id,
            hold=f["hold"],
            qty=int(f["qty"]),
            expires_at=int(f["exp"]),
            from_waitlist=True,
            hold_ref=hold_ref(drop_id, f["hold"], f.get("nonce", "")),
            variant=named,
        )
    elif (entry.op == "confirm" or (entry.op == "order" and entry.d_held < 0)) and customer:
        message = p.Confirmed(drop=drop_id, hold=f["hold"], qty=int(f.get("qty", "0")), variant=named)
    elif variant:
        pass  # a variant opens and closes with its drop, whose own ledger says so
    elif entry.op == "open":
        d.state = DropState.LIVE.value
        d.ends_at = int(f.get("ends_at", "0"))
    elif entry.op == "close":
        d.state = DropState.CLOSED.value
        ended = f.get("reason", "host")
    return LedgerOutcome(message, customer, ended)
