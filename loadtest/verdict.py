"""After a load test: was any unit oversold, any webhook lost or applied twice, any client lied to?

The verdict reads the deployment through the host HTTP API only (loadtest/audit.py: drop
snapshots, paged ledgers, holds and waitlists, the webhook intake, recorded deliveries, alerts,
the reconciliation report), never Redis, and compares it with what the clients were told
(loadtest/records.py) and with Locust's statistics. Each check is named, and the run passes only
if all pass:

* **ledger** — for every drop, DESIGN §3's invariants: available + held + sold == total, no
  counter negative, held == the sum of live holds, and replaying the ledger entry by entry
  (``loadtest.audit.replay``, which checks the invariants after each entry) gives the counters.
* **oversold** — ``oversold`` only ever moves in platform ``order``/``cancel`` entries: units
  oversold are units the platforms sold without stock, never a live reservation or checkout;
  and every oversold line raised its alert.
* **webhooks** — once the consumer group has applied everything: every delivery acknowledged
  with a 2xx is in the delivery stream exactly once, was answered ``accepted`` at most once,
  and each of its effects is there exactly once (one ``order`` ledger entry per sale line,
  of the right quantity; one ``cancel`` per cancelled line and event; one needs-fetch issue
  per thin notification).
* **buyers** — every hold a buyer was told it got exists, is its own and nobody else's; every
  confirmation and release answered is in the hold's state and in the ledger exactly once.
* **activity** — the test did what it was meant to (drops launched, holds granted, webhooks
  of each platform acknowledged, pushes measured), so that an idle run cannot pass.
* **client errors** — Locust counted no failed request (error frames, missing answers, seq
  gaps, HTTP errors), beyond ``max_failures``.
"""

from __future__ import annotations

import csv
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest.audit import Auditor, Counters, LedgerEntry, check_invariants, replay
from loadtest.hostapi import HostApiError
from loadtest.plan import Plan
from loadtest.records import read_records

SALE_OPS = ("order", "order_ignored")
CANCEL_OPS = ("cancel", "cancel_first")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Verdict:
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def add(self, name: str, problems: Sequence[str], detail: str = "") -> None:
        shown = "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
        self.checks.append(Check(name, not problems, shown or detail))

    def render(self) -> str:
        lines = [f"{'PASS' if c.ok else 'FAIL'}  {c.name}: {c.detail}" for c in self.checks]
        lines.append(f"verdict: {'PASS' if self.ok else 'FAIL'}")
        return "\n".join(lines)


@dataclass
class DropRecord:
    counters: Counters
    entries: list[LedgerEntry]
    snapshot: dict[str, Any]  # the host API's DropSnapshot
    holds: list[dict[str, Any]]
    waitlist: list[dict[str, Any]]


def wait_for_webhooks(auditor: Auditor, timeout: float) -> str:
    """Until the appliers have read and applied every recorded delivery (``GET
    /api/webhooks/intake`` says ``caught_up``); '' when they have, else what is outstanding."""
    deadline = time.monotonic() + timeout
    while True:
        intake = auditor.intake()
        if intake["caught_up"]:
            return ""
        if not intake["consumers"]:
            state = "no consumer group yet"
        else:
            state = f"{intake['pending']} pending, lag {intake['lag']}"
        if time.monotonic() > deadline:
            return state
        time.sleep(0.2)


def judge(
    auditor: Auditor,
    plan: Plan,
    record_dir: Path,
    stats_csv: Path | None,
    *,
    max_failures: int = 0,
    drain_timeout: float = 30.0,
    expect_platforms: Iterable[str] = (),
) -> Verdict:
    verdict = Verdict()
    records = list(read_records(record_dir))
    outstanding = wait_for_webhooks(auditor, drain_timeout)
    verdict.add(
        "webhooks drained", [f"consumer group not caught up: {outstanding}"] if outstanding else [], "all applied"
    )

    drops: dict[str, DropRecord] = {}
    problems: list[str] = []
    for spec in plan.drops:
        try:
            drops[spec.drop_id] = _drop_state(auditor, spec.drop_id)
        except (HostApiError, OSError) as exc:
            problems.append(f"{spec.drop_id}: {exc}")
    for drop_id, state in drops.items():
        problems += _ledger_problems(drop_id, state)
    verdict.add(
        "ledger invariants", problems, f"{len(drops)} drops, {sum(len(s.entries) for s in drops.values())} entries"
    )

    acked = [r for r in records if r["k"] == "webhook"]
    verdict.add("oversold only by platforms", _oversold_problems(auditor, drops, acked), _oversold_detail(drops))
    verdict.add("webhooks applied once", _webhook_problems(auditor, plan, drops, acked), _webhook_detail(acked))
    verdict.add("buyers told the truth", _buyer_problems(drops, records), _buyer_detail(records))

    stats = read_stats(stats_csv) if stats_csv is not None else {}
    verdict.add("activity", _activity_problems(plan, drops, records, stats, expect_platforms), "every part exercised")
    failures = int(stats.get(("", "Aggregated"), {}).get("Failure Count", "0") or 0)
    if stats_csv is not None and not stats:
        client_problems = [f"no Locust statistics in {stats_csv.name}: Locust did not run (see locust.log)"]
    elif failures > max_failures:
        client_problems = [f"{failures} failed requests (allowed {max_failures}): {_failure_names(stats)}"]
    else:
        client_problems = []
    verdict.add("client errors", client_problems, f"{failures} failed requests")
    verdict.figures = _figures(drops, records, stats)
    return verdict


def _drop_state(auditor: Auditor, drop_id: str) -> DropRecord:
    snapshot = auditor.drop(drop_id)
    entries = auditor.ledger(drop_id)
    holds = auditor.holds(drop_id)
    return DropRecord(Counters.of(snapshot["counters"]), entries, snapshot, holds["holds"], holds["waitlist"])


def _ledger_problems(drop_id: str, state: DropRecord) -> list[str]:
    problems = []
    try:
        check_invariants(state.counters)
        replayed = replay(state.entries)
        if replayed != state.counters:
            problems.append(f"{drop_id}: ledger replays to {replayed}, counters are {state.counters}")
    except ValueError as exc:
        problems.append(f"{drop_id}: {exc}")
    live = sum(h["qty"] for h in state.holds if h["state"] == "held")
    if state.counters.held != live:
        problems.append(f"{drop_id}: held {state.counters.held} but live holds sum to {live}")
    waiting = [w["qty"] for w in state.waitlist]
    if waiting and state.snapshot["state"] == "live" and state.counters.available >= max(waiting):
        problems.append(f"{drop_id}: {state.counters.available} on sale while the waitlist waits")
    return problems


def _oversold_problems(auditor: Auditor, drops: dict[str, DropRecord], acked: list[dict[str, Any]]) -> list[str]:
    problems = []
    oversold_lines: set[str] = set()
    for drop_id, state in drops.items():
        for entry in state.entries:
            if entry.d_oversold and entry.op not in ("order", "cancel"):
                problems.append(f"{drop_id}: {entry.op} entry {entry.entry_id} changed oversold")
            if entry.op == "order" and entry.d_oversold > 0:
                oversold_lines.add(entry.fields.get("line", ""))
        from_platforms = sum(e.d_oversold for e in state.entries if e.op in ("order", "cancel"))
        if from_platforms != state.counters.oversold:
            problems.append(
                f"{drop_id}: oversold {state.counters.oversold}, platform lines account for {from_platforms}"
            )
    platform_lines = {e["line"] for r in acked for e in r["effects"] if e["kind"] == "sale"}
    unknown = sorted(oversold_lines - platform_lines)
    if unknown:
        problems.append(f"oversold on lines no platform user sent: {unknown[:3]}")
    alerted = {
        "|".join(alert["fields"].get(name, "") for name in ("platform", "order", "line"))
        for alert in auditor.alerts()
        if alert["kind"] == "oversold"
    }
    missing = sorted(oversold_lines - alerted)
    if missing:
        problems.append(f"oversold lines without an alert: {missing[:3]}")
    return problems


def _webhook_problems(
    auditor: Auditor, plan: Plan, drops: dict[str, DropRecord], acked: list[dict[str, Any]]
) -> list[str]:
    problems: list[str] = []
    stream_keys: Counter[str] = Counter(key for d in auditor.deliveries() for key in d["keys"])
    accepted: Counter[str] = Counter(r["key"] for r in acked if r["answer"] == "accepted")
    for key in {r["key"] for r in acked}:
        if stream_keys[key] != 1:
            problems.append(f"delivery {key} recorded {stream_keys[key]} times")
        if accepted[key] > 1:
            problems.append(f"delivery {key} answered 'accepted' {accepted[key]} times")

    sales: dict[str, list[LedgerEntry]] = defaultdict(list)
    cancels: dict[tuple[str, str], list[LedgerEntry]] = defaultdict(list)
    for state in drops.values():
        for entry in state.entries:
            line = entry.fields.get("line", "")
            if entry.op in SALE_OPS:
                sales[line].append(entry)
            elif entry.op in CANCEL_OPS:
                cancels[(line, entry.fields.get("event", ""))].append(entry)
    issues: Counter[tuple[str, str, str]] = Counter()
    if any(e["kind"] == "notify" for r in acked for e in r["effects"]):
        # Needs-fetch issues are deployment-wide; the show's reconciliation report lists them.
        for note in auditor.reconciliation(plan.show_id)["needs_fetch"]:
            issues[(note["platform"], note["order_id"], note["status"])] += 1

    seen: set[tuple[str, ...]] = set()
    for record in acked:
        for effect in record["effects"]:
            kind = effect["kind"]
            if kind == "sale" and ("sale", effect["line"]) not in seen:
                seen.add(("sale", effect["line"]))
                found = sales.get(effect["line"], [])
                if len(found) != 1:
                    problems.append(f"sale {effect['line']}: {len(found)} ledger entries")
                elif found[0].op == "order" and int(found[0].fields.get("qty", "0")) != effect["qty"]:
                    problems.append(f"sale {effect['line']}: qty {found[0].fields.get('qty')} != {effect['qty']}")
            elif kind == "cancel" and ("cancel", effect["line"], effect["event"]) not in seen:
                seen.add(("cancel", effect["line"], effect["event"]))
                found = cancels.get((effect["line"], effect["event"]), [])
                if len(found) != 1:
                    problems.append(f"cancel {effect['line']}#{effect['event']}: {len(found)} ledger entries")
            elif kind == "notify":
                issue = (effect["platform"], effect["order"], effect["status"])
                if issues[issue] != 1:
                    problems.append(f"{issue[0]} order {issue[1]}: {issues[issue]} needs-fetch issues")
    return problems


def _buyer_problems(drops: dict[str, DropRecord], records: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    holds = {h["hold_id"]: h for state in drops.values() for h in state.holds}
    owners: dict[str, str] = {}
    for record in records:
        if record["k"] != "reserved":
            continue
        hold_id, customer = record["hold"], record["customer"]
        if owners.setdefault(hold_id, customer) != customer:
            problems.append(f"hold {hold_id} was told to {owners[hold_id]} and to {customer}")
            continue
        hold = holds.get(hold_id)
        if hold is None:
            problems.append(f"hold {hold_id} told to a buyer: no such hold in the plan's drops")
            continue
        if hold["customer"] != customer or hold["drop_id"] != record["drop"] or hold["qty"] != record["qty"]:
            problems.append(
                f"hold {hold_id}: stored {hold['customer']}/{hold['drop_id']}/{hold['qty']}, buyer was told otherwise"
            )
    by_hold: dict[tuple[str, str], int] = Counter()
    for state in drops.values():
        for entry in state.entries:
            if entry.op in ("confirm", "release"):
                by_hold[(entry.op, entry.fields.get("hold", ""))] += 1
    for record in records:
        if record["k"] == "confirmed" and not record["duplicate"]:
            expected = ("confirm", "confirmed")
        elif record["k"] == "released":
            expected = ("release", "released")
        else:
            continue
        hold_id = record["hold"]
        if hold_id not in holds:
            problems.append(f"hold {hold_id}: no such hold in the plan's drops")
            continue
        hold_state = holds[hold_id]["state"]
        if hold_state != expected[1]:
            problems.append(f"hold {hold_id} was answered {expected[0]}ed but is {hold_state}")
        if by_hold[(expected[0], hold_id)] != 1:
            problems.append(f"hold {hold_id}: {by_hold[(expected[0], hold_id)]} {expected[0]} ledger entries")
    return problems


def _activity_problems(
    plan: Plan,
    drops: dict[str, DropRecord],
    records: list[dict[str, Any]],
    stats: dict[tuple[str, str], dict[str, str]],
    expect_platforms: Iterable[str],
) -> list[str]:
    problems = []
    for drop_id, state in drops.items():
        if not any(e.op == "open" for e in state.entries):
            problems.append(f"{drop_id} was never launched")
    if plan.buyers and not any(r["k"] == "reserved" for r in records):
        problems.append("no buyer got a hold")
    if plan.platforms:
        acked = Counter(r["platform"] for r in records if r["k"] == "webhook")
        for platform in expect_platforms:
            if not acked[platform]:
                problems.append(f"no {platform} webhook acknowledged")
    if plan.viewers + plan.buyers and plan.drops:
        for name in ("stock", "drop"):
            if not int(stats.get(("WS push", name), {}).get("Request Count", "0") or 0):
                problems.append(f"no {name} push measured")
    return problems


def _failure_names(stats: dict[tuple[str, str], dict[str, str]]) -> str:
    failing = [
        f"{kind} {name} x{row['Failure Count']}"
        for (kind, name), row in stats.items()
        if kind and int(row.get("Failure Count", "0") or 0)
    ]
    return ", ".join(failing[:6])


def read_stats(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    """Locust's ``<prefix>_stats.csv`` by (type, name); the total is ('', 'Aggregated')."""
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        return {(row.get("Type") or "", row.get("Name") or ""): row for row in csv.DictReader(handle)}


def _oversold_detail(drops: dict[str, DropRecord]) -> str:
    return f"{sum(s.counters.oversold for s in drops.values())} units oversold, all by platform lines"


def _webhook_detail(acked: list[dict[str, Any]]) -> str:
    answers = Counter(r["answer"] for r in acked)
    return f"{len({r['key'] for r in acked})} deliveries acknowledged ({dict(answers)})"


def _buyer_detail(records: list[dict[str, Any]]) -> str:
    kinds = Counter(r["k"] for r in records)
    return f"{kinds['reserved']} holds, {kinds['confirmed']} confirmed, {kinds['released']} released"


def _figures(
    drops: dict[str, DropRecord], records: list[dict[str, Any]], stats: dict[tuple[str, str], dict[str, str]]
) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "drops": {
            drop_id: {
                **{k: getattr(s.counters, k) for k in ("total", "available", "held", "sold", "oversold")},
                **{k: s.snapshot[k] for k in ("holds_created", "holds_confirmed", "holds_released", "holds_expired")},
            }
            for drop_id, s in drops.items()
        },
        "webhooks_acknowledged": dict(Counter(r["platform"] for r in records if r["k"] == "webhook")),
    }
    latency = {}
    for (kind, name), row in stats.items():
        if kind in ("WS", "WS push") or name == "Aggregated":
            latency[f"{kind} {name}".strip()] = {
                "count": int(row.get("Request Count") or 0),
                "failures": int(row.get("Failure Count") or 0),
                "p50_ms": _number(row.get("50%")),
                "p99_ms": _number(row.get("99%")),
                "max_ms": _number(row.get("Max Response Time")),
                "per_s": _number(row.get("Requests/s")),
            }
    figures["requests"] = latency
    return figures


def _number(value: str | None) -> float | None:
    try:
        return round(float(value or ""), 1)
    except ValueError:
        return None
