"""Decoding and replay of a drop's ledger stream. Pure: no Redis here.

Replaying the deltas of every entry must give the drop's counters (DESIGN §3): the test-suite
checks it after every step, and operators can check it with ``livedrop`` at any time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from stock.types import Counters, LedgerEntry

_DELTA_FIELDS = ("dt", "da", "dh", "ds", "do")
_AFTER_FIELDS = ("t", "a", "h", "s", "o")
_RESERVED = {"op", "ts", *_DELTA_FIELDS, *_AFTER_FIELDS}


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
