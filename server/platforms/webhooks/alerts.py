"""Alerts for the host panel and issues for the reconciliation report, each recorded once.

Both are capped streams (``ld:{alerts}``, ``ld:{webhooks}:issues``) written through
``append_once.lua`` with a subject per alert (``oversold:<line>``, ``unmatched_hold:<hold>``…), so a
delivery applied twice after a crash, or a reconciliation that runs every minute, raises each alert
once. Entries hold ids and quantities only: platform order and line ids, SKUs, drop and hold ids,
never a customer.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from typing import Any

from server import keys
from server.ops.metrics import Metrics
from server.platforms.webhooks.ingest import AppendOnce
from server.replies import decoded

logger = logging.getLogger("livedrop.webhooks")


class AlertKind(enum.StrEnum):
    OVERSOLD = "oversold"
    """A platform sold units no longer available: someone will not get their goods."""
    UNMATCHED_HOLD = "unmatched_hold"
    """The checkout confirmed a hold and no platform order has matched it after the grace period."""
    DEAD_DELIVERY = "dead_delivery"
    """An accepted delivery could not be applied after several attempts (see ``ld:{webhooks}:dead``)."""
    CHANNEL_FAILING = "channel_failing"
    """A sales channel keeps refusing or failing stock pushes (credentials, outage): it shows stale stock."""
    CHANNEL_SKU_UNKNOWN = "channel_sku_unknown"
    """A sales channel refused a SKU's ids for good (unknown product, not live): fix the mapping."""


class IssueKind(enum.StrEnum):
    UNKNOWN_SKU = "unknown_sku"
    """A line whose SKU no drop sells: not a LiveDrop product (or a drop was never created)."""
    NEEDS_FETCH = "needs_fetch"
    """A thin notification (TikTok Shop, Meta): the order's lines must be read from the platform."""
    INVALID = "invalid"
    """An event the stock engine refused (an id with characters it does not accept)."""
    BAD_QTY = "bad_qty"
    """A sale or refund line with a quantity ≤ 0 or over 10,000: not applied."""
    SALE_DROP_NOT_LIVE = "sale_drop_not_live"
    """A platform sold units of a drop that is closed (or not launched): applied, but unexpected."""


class Alerts:
    """Raises alerts (log + metric + the capped alerts stream) and records issues."""

    def __init__(self, append: AppendOnce, metrics: Metrics) -> None:
        self._append = append
        self.metrics = metrics

    async def alert(self, kind: AlertKind, subject: str, fields: Mapping[str, str | int]) -> bool:
        """Raise an alert about ``subject`` unless it was raised before. Returns True if new."""
        values = {"kind": kind.value, **{k: v for k, v in fields.items() if v != ""}}
        _, duplicate = await self._append(
            keys.ALERTS,
            [keys.alert_seen(f"{kind.value}:{subject}")],
            values,
            ttl_seconds=keys.ONCE_TTL_SECONDS,
            maxlen=keys.ALERTS_MAXLEN,
        )
        if not duplicate:
            self.metrics.alerts.labels(kind.value).inc()
            logger.warning("alert %s %s", kind.value, " ".join(f"{k}={v}" for k, v in values.items() if k != "kind"))
        return not duplicate

    async def issue(self, kind: IssueKind, subject: str, fields: Mapping[str, str | int]) -> bool:
        """Record an issue for the reconciliation report unless recorded before."""
        values = {"kind": kind.value, **{k: v for k, v in fields.items() if v != ""}}
        _, duplicate = await self._append(
            keys.ISSUES,
            [keys.issue_seen(f"{kind.value}:{subject}")],
            values,
            ttl_seconds=keys.ONCE_TTL_SECONDS,
            maxlen=keys.ISSUES_MAXLEN,
        )
        if not duplicate:
            self.metrics.webhook_issues.labels(kind.value).inc()
        return not duplicate

    async def aclose(self) -> None:
        """Wait for the records in flight."""
        await self._append.script.aclose()


async def read_stream(redis: Any, stream: str, count: int) -> list[tuple[str, dict[str, str]]]:
    """The newest ``count`` entries of a capped stream, oldest first, fields decoded."""
    raw = await redis.xrevrange(stream, count=count)
    return [
        (decoded(entry_id), {decoded(k): decoded(v) for k, v in fields.items()}) for entry_id, fields in reversed(raw)
    ]
