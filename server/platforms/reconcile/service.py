"""The periodic reconciler: every interval, on one node per show (a lock), builds the report of each
show that is on or recently ended, stores it for the panel and raises alerts for what is new."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgspec
from redis.exceptions import RedisError

from server import keys
from server.loops import Backoff, repeat
from server.ops.metrics import Metrics
from server.platforms.reconcile.read import build_report
from server.platforms.reconcile.report import ReconciliationReport
from server.platforms.webhooks.alerts import AlertKind, Alerts
from server.platforms.webhooks.config import WebhookSettings
from server.shows.catalog import Catalog
from server.shows.clock import redis_now_ms
from stock import StockEngine
from stock.types import DropState

logger = logging.getLogger("livedrop.reconcile")

# -- the periodic reconciler ------------------------------------------------------------------


class Reconciler:
    """Every ``reconcile_interval``, on one node per show (a lock), builds the report of each
    show that is on or recently ended, stores it for the panel (``ld:{show:<id>}:reconciliation``)
    and raises an alert for each hold newly found confirmed without a platform order."""

    def __init__(
        self,
        redis: Any,
        engine: StockEngine,
        catalog: Catalog,
        alerts: Alerts,
        metrics: Metrics,
        settings: WebhookSettings,
    ) -> None:
        self.redis = redis
        self.engine = engine
        self.catalog = catalog
        self.alerts = alerts
        self.metrics = metrics
        self.settings = settings
        self.node = settings.node_name()
        self.healthy = True
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.settings.reconcile_interval > 0 and self._task is None:
            self._task = asyncio.create_task(self.run(), name="reconciler")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Reconcile every ``reconcile_interval`` until cancelled, backing off on failures."""
        interval = self.settings.reconcile_interval
        await repeat(
            self._step,
            name="reconciliation",
            interval=interval,
            backoff=Backoff(2 * interval, 10 * interval),
            on_error=self._failed,
            log=logger,
        )

    async def _step(self) -> None:
        await self.reconcile_once()
        self.healthy = True

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, RedisError):
            self.healthy = False
            self.metrics.redis_errors.labels("reconcile").inc()

    async def reconcile_once(self, *, force: bool = False) -> list[ReconciliationReport]:
        """Reconcile every active show this node wins the lock for (all active shows with
        ``force``); returns the reports built."""
        reports = []
        now_ms = await redis_now_ms(self.redis)
        lock_ms = max(1, round(self.settings.reconcile_interval * 900))
        for show in await self.catalog.shows():
            if not await self._active(show.show_id, now_ms):
                continue
            if not force and not await self.redis.set(
                keys.reconcile_lock(show.show_id), self.node, nx=True, px=lock_ms
            ):
                continue
            report = await build_report(
                self.redis,
                self.engine,
                self.catalog,
                show.show_id,
                grace_seconds=self.settings.reconcile_grace_seconds,
            )
            await self._publish(report)
            reports.append(report)
        return reports

    async def _active(self, show_id: str, now_ms: int) -> bool:
        window_ms = self.settings.reconcile_window_seconds * 1000
        for drop_id in await self.catalog.drop_ids(show_id):
            snapshot = await self.engine.snapshot(drop_id)
            if snapshot.state is not DropState.CLOSED or now_ms - snapshot.closed_at_ms < window_ms:
                return True
        return False

    async def _publish(self, report: ReconciliationReport) -> None:
        ttl = max(60, round(self.settings.reconcile_interval * 3))
        await self.redis.set(keys.report(report.show_id), msgspec.json.encode(report), ex=ttl)
        for drop in report.drops:
            for hold in drop.unmatched_holds:
                await self.alerts.alert(
                    AlertKind.UNMATCHED_HOLD,
                    hold.hold_id,
                    {"show": report.show_id, "drop": drop.drop_id, "hold": hold.hold_id, "qty": hold.qty},
                )
