"""What every channel connector is: the ``Channel`` protocol and the pure types of one push.

A push hands a connector the *latest* value of each SKU (never a delta: deltas replayed after a
retry or a take-over would count twice) together with the value the channel acknowledged last,
which Shopify uses for its compare-and-swap. The connector answers per item; a failure of the
whole call (auth, network, throttling) is a ``ChannelError`` instead.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from typing import Protocol

import msgspec


class ChannelName(enum.StrEnum):
    SHOPIFY = "shopify"
    TIKTOK = "tiktok"
    META = "meta"
    WOOCOMMERCE = "woocommerce"


class PushItem(msgspec.Struct, frozen=True, kw_only=True):
    """One SKU to set on one channel. ``ids`` are the channel's own ids (``mapping``);
    ``previous`` the value the channel last acknowledged (None: never pushed, or unknown)."""

    sku: str
    ids: dict[str, str]
    value: int
    previous: int | None = None
    attempt: str = ""
    """Changes with every new value to push (the idempotency key's salt): a retry of the same
    attempt reuses its key, a new attempt never does."""


class Outcome(enum.StrEnum):
    OK = "ok"
    """The channel now holds ``value``."""
    STALE = "stale"
    """Compare-and-swap refused: the channel holds ``observed`` (its own sales moved it)."""
    RETRY = "retry"
    """Not applied, for a reason that may pass (the rest of an all-or-nothing batch failed)."""
    REFUSED = "refused"
    """The channel refused this SKU for good (unknown id, not live): retrying cannot help."""


class ItemResult(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    outcome: Outcome
    value: int = 0
    observed: int | None = None
    code: str = ""
    message: str = ""


class Budget:
    """When the next call to a channel may go, from the platform's own signals (throttle status,
    usage headers, ``Retry-After``). Connectors move it; the push loop waits for it."""

    def __init__(self) -> None:
        self.ready_at = 0.0
        self.spacing = 0.0
        """Minimum seconds between calls, for platforms whose budget is per hour (Meta)."""
        self.last_call = 0.0

    def wait_for(self, seconds: float) -> None:
        self.ready_at = max(self.ready_at, time.monotonic() + max(0.0, seconds))

    def delay(self, *, urgent: bool = False) -> float:
        """Seconds until a call may go. ``urgent`` (a SKU going to 0) ignores the spacing, never a
        throttle the platform declared."""
        now = time.monotonic()
        due = self.ready_at if urgent else max(self.ready_at, self.last_call + self.spacing)
        return max(0.0, due - now)

    def called(self) -> None:
        self.last_call = time.monotonic()


class Channel(Protocol):
    """One platform account. Implementations live in their own modules."""

    name: ChannelName
    max_batch: int
    """The platform's cap of items per call."""
    id_fields: tuple[str, ...]
    """The ids a mapping must give (``mapping`` checks them)."""
    optional_id_fields: tuple[str, ...]
    budget: Budget

    async def push(self, items: Sequence[PushItem]) -> list[ItemResult]:
        """Set each item's value; one result per item. Raises ``ChannelError`` when the call as a
        whole failed (nothing can be said about any item)."""
        ...

    async def read(self, item: PushItem) -> int | None:
        """The value the channel holds now (None: it does not know the SKU)."""
        ...

    async def aclose(self) -> None: ...
