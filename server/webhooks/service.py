"""Wiring of webhook ingestion for the app's lifespan: the log the receivers write to, the applier,
alerts, and this node's consumer task.

``start()`` runs the consumer unless the node is ingest-only (``LIVEDROP_WEBHOOK_APPLY=0``);
``aclose()`` stops it. Stopping between reading an entry and acknowledging it is safe: the entry stays
pending and is applied again (idempotently) by this consumer's next start or by another node.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from server.catalog import Catalog
from server.metrics import Metrics
from server.webhooks.alerts import Alerts
from server.webhooks.apply import OrderApplier
from server.webhooks.config import WebhookSettings
from server.webhooks.consumer import WebhookConsumer
from server.webhooks.ingest import AppendOnce, WebhookLog
from server.webhooks.scripts import BatchingClient
from stock import HoldRefs, StockEngine


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
            name=settings.node_name(),
            claim_idle_seconds=settings.claim_idle_seconds,
            batch=settings.consumer_batch,
            retention_seconds=settings.retention_seconds,
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
        await self.applier.aclose()
        await self.engine_client.aclose()
        await self.alerts.aclose()
