"""What the verdict reads after a load test, all through the host HTTP API with a host token: a
drop's stock and ledger (paged), its holds and waitlist, the webhook intake and the recorded
deliveries, the alerts, and the reconciliation report. No Redis access, so the same checks can
judge any deployment the load generator can reach.

Also the pure replay of a ledger (DESIGN §3): summing every entry's deltas must give the
counters, and every intermediate state must keep the invariants. It is written here from the
documented ledger format (docs/stock.md), independently of the stock engine's own.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from loadtest.hostapi import HostApi

PAGE = 1000  # the host API's largest page


@dataclass(frozen=True)
class Counters:
    total: int
    available: int
    held: int
    sold: int
    oversold: int = 0

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Counters:
        return cls(raw["total"], raw["available"], raw["held"], raw["sold"], raw.get("oversold", 0))


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger entry as ``GET /api/drops/{drop}/ledger`` returns it."""

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

    @classmethod
    def of(cls, raw: dict[str, Any]) -> LedgerEntry:
        return cls(
            entry_id=raw["entry_id"],
            op=raw["op"],
            d_total=raw["d_total"],
            d_available=raw["d_available"],
            d_held=raw["d_held"],
            d_sold=raw["d_sold"],
            d_oversold=raw["d_oversold"],
            after=Counters.of(raw["after"]),
            at_ms=raw["at_ms"],
            fields=dict(raw["fields"]),
        )


def check_invariants(c: Counters) -> None:
    """Raise ValueError unless available + held + sold == total and no counter is negative."""
    if c.available + c.held + c.sold != c.total:
        raise ValueError(f"available + held + sold != total: {c}")
    if min(c.available, c.held, c.sold, c.oversold) < 0:
        raise ValueError(f"negative counter: {c}")


def replay(entries: Iterable[LedgerEntry]) -> Counters:
    """The counters a ledger's deltas add up to. Raises ValueError at the first entry whose
    recorded ``after`` disagrees with the sum before it, or that breaks an invariant."""
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


class Auditor:
    """Blocking reads of the host API (the verdict runs after Locust, in an ordinary process)."""

    def __init__(self, api: HostApi) -> None:
        self.api = api

    def _pages(self, path: str, items: str) -> Iterator[dict[str, Any]]:
        after = "-"
        while True:
            page = self.api.call("GET", f"{path}?after={urllib.parse.quote(after)}&count={PAGE}")
            yield from page[items]
            if not page["next_after"]:
                return
            after = page["next_after"]

    def drop(self, drop_id: str) -> dict[str, Any]:
        """The drop's stock snapshot (``DropSnapshot``: state, counters, hold tallies)."""
        view: dict[str, Any] = self.api.call("GET", f"/api/drops/{drop_id}")
        return dict(view["stock"])

    def ledger(self, drop_id: str) -> list[LedgerEntry]:
        return [LedgerEntry.of(raw) for raw in self._pages(f"/api/drops/{drop_id}/ledger", "entries")]

    def holds(self, drop_id: str) -> dict[str, Any]:
        """``{"holds": [...], "waitlist": [...]}`` of the drop."""
        found: dict[str, Any] = self.api.call("GET", f"/api/drops/{drop_id}/holds")
        return found

    def intake(self) -> dict[str, Any]:
        found: dict[str, Any] = self.api.call("GET", "/api/webhooks/intake")
        return found

    def deliveries(self) -> list[dict[str, Any]]:
        return list(self._pages("/api/webhooks/deliveries", "deliveries"))

    def alerts(self) -> list[dict[str, Any]]:
        return list(self._pages("/api/alerts", "alerts"))

    def reconciliation(self, show_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.api.call("GET", f"/api/shows/{show_id}/reconciliation")
        return found
