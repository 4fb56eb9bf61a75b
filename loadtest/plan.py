"""The show a load test plays: its drops, when each is launched and restocked, how many users
of each kind, and how fast they arrive. Pure, so the schedule is unit-tested and is the same
on the Locust master (which runs the shape) and on the workers (which run the users).

Timeline of a show of ``show_seconds``: users ramp up for the first ~15%, then drops are
launched one after another, evenly spread so that the last one has ended (each lasts
``drop_seconds``, closed by the server's sweeper with reason ``time``) before the show ends;
half-way through each drop it is restocked once, so units come back while buyers still want
them (waitlist hand-outs, buyers retrying); one second before the end the show is ended.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field


class ActionKind(enum.StrEnum):
    LAUNCH = "launch"
    RESTOCK = "restock"
    END_SHOW = "end_show"


@dataclass(frozen=True)
class DropSpec:
    drop_id: str
    sku: str
    title: str
    total: int
    hold_seconds: float
    duration_seconds: float
    per_customer_limit: int


@dataclass(frozen=True)
class Action:
    at: float  # seconds since the shape started
    kind: ActionKind
    drop_id: str = ""
    amount: int = 0


@dataclass(frozen=True)
class Plan:
    show_id: str
    show_seconds: float
    ramp_seconds: float
    viewers: int
    buyers: int
    platforms: int
    drops: tuple[DropSpec, ...]
    actions: tuple[Action, ...] = field(default=())

    @property
    def users(self) -> int:
        return self.viewers + self.buyers + self.platforms

    @property
    def spawn_rate(self) -> float:
        """Users started per second so that all of them are in by the end of the ramp."""
        return max(1.0, math.ceil(self.users / self.ramp_seconds))

    def drop(self, drop_id: str) -> DropSpec:
        for spec in self.drops:
            if spec.drop_id == drop_id:
                return spec
        raise KeyError(drop_id)

    def due(self, elapsed: float, done: int) -> list[Action]:
        """The actions due at ``elapsed`` seconds, given that the first ``done`` were taken."""
        return [a for a in self.actions[done:] if a.at <= elapsed]


def make_plan(
    show_id: str,
    *,
    show_seconds: float = 60.0,
    viewers: int = 240,
    buyers: int = 60,
    platforms: int = 6,
    drops: int = 3,
    stock: int = 40,
    restock: int | None = None,
    drop_seconds: float = 15.0,
    hold_seconds: float = 10.0,
    per_customer_limit: int = 1,
) -> Plan:
    """A show plan. Raises ValueError when the drops do not fit in the show.

    ``restock`` defaults to a quarter of ``stock``. Drop and SKU ids derive from ``show_id``,
    so every run (with its own show id) has its own drops and SKUs: platform orders of an
    earlier run against the same Redis can never land on this run's stock.
    """
    if show_seconds <= 0 or drops < 0 or stock < 0 or min(viewers, buyers, platforms) < 0:
        raise ValueError("durations and counts must not be negative")
    ramp = max(2.0, round(show_seconds * 0.15, 1))
    first = ramp + 1.0
    last = show_seconds - drop_seconds - 2.0  # the last drop closes before the show ends
    if drops and last < first:
        raise ValueError(
            f"{drops} drop(s) of {drop_seconds:g}s do not fit in a {show_seconds:g}s show: "
            "raise the show length or shorten the drops"
        )
    step = (last - first) / (drops - 1) if drops > 1 else 0.0
    specs = tuple(
        DropSpec(
            drop_id=f"{show_id}-d{i + 1}",
            sku=f"{show_id}-SKU{i + 1}",
            title=f"Drop {i + 1}",
            total=stock,
            hold_seconds=hold_seconds,
            duration_seconds=drop_seconds,
            per_customer_limit=per_customer_limit,
        )
        for i in range(drops)
    )
    amount = max(1, stock // 4) if restock is None else restock
    actions: list[Action] = []
    for i, spec in enumerate(specs):
        at = round(first + i * step, 2)
        actions.append(Action(at, ActionKind.LAUNCH, spec.drop_id))
        if amount > 0:
            actions.append(Action(round(at + drop_seconds / 2, 2), ActionKind.RESTOCK, spec.drop_id, amount))
    actions.append(Action(max(show_seconds - 1.0, 0.0), ActionKind.END_SHOW))
    actions.sort(key=lambda a: a.at)
    return Plan(
        show_id=show_id,
        show_seconds=show_seconds,
        ramp_seconds=ramp,
        viewers=viewers,
        buyers=buyers,
        platforms=platforms,
        drops=specs,
        actions=tuple(actions),
    )
