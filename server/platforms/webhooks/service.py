"""Wiring of webhook ingestion for the app's lifespan: the log the receivers write to, the applier,
alerts, and this node's consumer task.

``start()`` runs the consumer unless the node is ingest-only (``LIVEDROP_WEBHOOK_APPLY=0``);
``aclose()`` stops it. Stopping between reading an entry and acknowledging it is safe: the entry stays
pending and is applied again (idempotently) by this consumer's next start or by another node.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from typing import IO, Any

from server.ops.metrics import Metrics
from server.platforms.webhooks.alerts import Alerts
from server.platforms.webhooks.apply import OrderApplier
from server.platforms.webhooks.config import WebhookSettings
from server.platforms.webhooks.consumer import WebhookConsumer
from server.platforms.webhooks.ingest import AppendOnce, WebhookLog
from server.platforms.webhooks.scripts import BatchingClient
from server.shows.catalog import Catalog
from stock import HoldRefs, StockEngine


def claim_worker_slot(settings: WebhookSettings) -> tuple[int | None, IO[bytes] | None]:
    """The lowest worker index (0 .. workers-1) no other live worker of this node holds, and the
    open lock file that holds it for as long as this process lives (the OS releases it when the
    process dies, so a restarted worker takes the same index back, and its consumer name).
    (None, None) when the node runs one process or no index is free."""
    if settings.workers <= 1 or not settings.listen_port or settings.consumer_name:
        return None, None
    try:
        import fcntl
    except ImportError:  # Windows: no flock; names fall back to host and pid
        return None, None
    directory = os.path.join(tempfile.gettempdir(), "livedrop-consumers")
    os.makedirs(directory, exist_ok=True)
    for slot in range(settings.workers):
        handle = open(os.path.join(directory, f"{settings.listen_port}.{slot}.lock"), "ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return slot, handle
    return None, None


class WebhookService:
    """Everything webhooks need on one node."""

    def __init__(
        self,
        redis: Any,
        catalog: Catalog,
        metrics: Metrics,
        settings: WebhookSettings,
        *,
        hold_refs: HoldRefs | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.log = WebhookLog(redis, settings.dedupe_ttl_seconds)
        slot, self._slot_lock = claim_worker_slot(settings)
        self.alerts = Alerts(AppendOnce(redis), metrics)
        # The applier's own engine: the same scripts and keys, but its calls from concurrent
        # deliveries share round trips (scripts.BatchingClient).
        self.engine_client = BatchingClient(redis)
        self.applier = OrderApplier(redis, StockEngine(self.engine_client, hold_refs), catalog, self.alerts, metrics)
        self.consumer = WebhookConsumer(
            redis,
            self.applier,
            self.alerts,
            metrics,
            name=settings.node_name(slot),
            claim_idle_seconds=settings.claim_idle_seconds,
            batch=settings.consumer_batch,
            retention_seconds=settings.retention_seconds,
            dead_retention_seconds=settings.dead_retention_seconds,
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        """False while this node's consumer cannot reach Redis."""
        return self._task is None or self.consumer.healthy

    def start(self) -> None:
        """Start applying deliveries (unless this node is ingest-only)."""
        if self.settings.apply and self._task is None:
            self._task = asyncio.create_task(self.consumer.run(), name="webhook-consumer")

    async def aclose(self) -> None:
        """Stop the consumer; what it had read but not acknowledged stays pending."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.log.aclose()
        if self._slot_lock is not None:
            self._slot_lock.close()
            self._slot_lock = None
        await self.applier.aclose()
        await self.engine_client.aclose()
        await self.alerts.aclose()
