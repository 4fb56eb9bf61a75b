"""Decoding and replay of a drop's ledger stream. Pure: no Redis here.

Replaying the deltas of every entry must give the drop's counters (DESIGN §3): the test-suite
checks it after every step, and operators can check it with ``livedrop`` at any time.

One stream entry is one change, except a reserve call's packed entry (op ``reserves``, written by
``lib/drop.lua``): the n reservations of one batch in one entry, to keep Redis' cost per hold low.
``decode_entries`` expands it into the n ``reserve`` entries it stands for, each with an id of its
own (the packed entry was added under the last of n consecutive ids that no other entry can have),
so a reader sees one entry per change either way. ``decode_entry`` gives one entry per stream entry:
for a packed one, the batch as a whole (op ``reserves``, the deltas summed, the counters after it),
which is all a reader of counters needs and replays to the same counters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from stock.types import Counters, LedgerEntry

_DELTA_FIELDS = ("dt", "da", "dh", "ds", "do")
_AFTER_FIELDS = ("t", "a", "h", "s", "o")
_RESERVED = {"op", "ts", *_DELTA_FIELDS, *_AFTER_FIELDS}
PACKED_OP = "reserves"
"""The op of a packed entry: the reservations of one reserve call (see the module's docstring)."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def decode_entry(entry_id: bytes | str, raw: Mapping[bytes, bytes] | Mapping[str, str]) -> LedgerEntry:
    """One XRANGE/XREAD item into a LedgerEntry."""
    fields = {_text(k): _text(v) for k, v in raw.items()}
    return LedgerEntry(
        entry_id=_text(entry_id),
        op=fields["op"],
        d_total=int(fields.get("dt", 0)),
        d_available=int(fields.get("da", 0)),
        d_held=int(fields.get("dh", 0)),
        d_sold=int(fields.get("ds", 0)),
        d_oversold=int(fields.get("do", 0)),
        after=Counters(
            total=int(fields["t"]),
            available=int(fields["a"]),
            held=int(fields["h"]),
            sold=int(fields["s"]),
            oversold=int(fields["o"]),
        ),
        at_ms=int(fields["ts"]),
        fields={k: v for k, v in fields.items() if k not in _RESERVED},
    )


def decode_entries(entry_id: bytes | str, raw: Mapping[bytes, bytes] | Mapping[str, str]) -> list[LedgerEntry]:
    """One XRANGE/XREAD item into the changes it records: one entry, or the ``reserve`` entries of
    a packed one, oldest first, with the ids ``<ms>-<seq-n+1>`` … ``<ms>-<seq>`` (its own id last)."""
    entry = decode_entry(entry_id, raw)
    if entry.op != PACKED_OP:
        return [entry]
    f = entry.fields
    n, first, drop_id = int(f["n"]), int(f["first"]), f.get("drop", "")
    parts = f["b"].split(",")
    if n < 1 or len(parts) != 3 * n:
        raise ValueError(f"ledger entry {entry.entry_id}: packed entry of {n} holds has {len(parts)} fields")
    ms, seq = (int(x) for x in entry.entry_id.split("-"))
    qtys = [int(q) for q in parts[1::3]]
    if sum(qtys) != entry.d_held or entry.d_available != -entry.d_held:
        raise ValueError(f"ledger entry {entry.entry_id}: packed quantities do not add up to its deltas")
    if not drop_id:
        raise ValueError(f"ledger entry {entry.entry_id}: packed entry without its drop")
    after = entry.after
    # Counters after reservation i: those after the batch, less what the later ones took.
    later = sum(qtys)
    out = []
    for i in range(n):
        customer, qty, request_id = parts[3 * i : 3 * i + 3]
        later -= qtys[i]
        out.append(
            LedgerEntry(
                entry_id=f"{ms}-{seq - n + 1 + i}",
                op="reserve",
                d_total=0,
                d_available=-qtys[i],
                d_held=qtys[i],
                d_sold=0,
                d_oversold=0,
                after=Counters(after.total, after.available + later, after.held - later, after.sold, after.oversold),
                at_ms=entry.at_ms,
                fields={
                    "hold": f"{drop_id}.{first + i}",
                    "cust": customer,
                    "qty": qty,
                    "req": request_id,
                    "exp": f["exp"],
                },
            )
        )
    return out


def entry_key(entry_id: str) -> tuple[int, int]:
    """A ledger entry id as a sortable pair (``<ms>-<seq>``)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def replay(entries: Iterable[LedgerEntry]) -> Counters:
    """The counters that a ledger's deltas add up to, checking each entry's ``after`` on the way.

    Raises ValueError at the first entry whose recorded counters disagree with the sum of the
    deltas before it, or that breaks an invariant: a ledger that cannot be replayed is a bug.
    """
    total = available = held = sold = oversold = 0
    for entry in entries:
        total += entry.d_total
        available += entry.d_available
        held += entry.d_held
        sold += entry.d_sold
        oversold += entry.d_oversold
        now = Counters(total, available, held, sold, oversold)
        if now != entry.after:
            raise ValueError(f"ledger entry {entry.entry_id} ({entry.op}) records {entry.after}, replay gives {now}")
        check_invariants(now)
    return Counters(total, available, held, sold, oversold)


def check_invariants(c: Counters) -> None:
    """Raise ValueError unless DESIGN §3's counter invariants hold."""
    if c.available + c.held + c.sold != c.total:
        raise ValueError(f"available + held + sold != total: {c}")
    if min(c.available, c.held, c.sold, c.oversold) < 0:
        raise ValueError(f"negative counter: {c}")
