"""Orders the webhooks leave thin, read back from the platforms into the webhook pipeline.

TikTok Shop and Meta notifications carry an order id, not its lines (``needs_fetch``). The applier
records each one in ``ld:{webhooks}:fetch``; this module reads those orders and hands them, with
their lines, to the same ``OrderApplier`` a webhook goes through (normalise → apply → reconcile):

* **TikTok Shop**: Get Order Detail for the queued ids, at most 50 a call, every flush interval;
  and, because TikTok says webhooks may be lost, Search Orders over the ``update_time`` window since
  the last pull (less an overlap), every pull interval.
* **Meta**: ``commerce_orders`` updated since the last pull, every pull interval (sooner when
  notifications are waiting); each ``CREATED`` order is acknowledged once applied.

An order read and applied is marked ``ok`` in ``ld:{webhooks}:fetched`` and its needs-fetch issue
leaves the reconciliation report. One the platform does not know stays in the report with why;
one that could not be read (credentials, outage) stays queued, retried, with the reason shown.
Applying is idempotent (per order line), so reading an order twice changes nothing.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

from server import keys
from server.ops.metrics import Metrics
from server.platforms.channels.http import Backoff, ChannelError
from server.platforms.channels.meta import MetaChannel
from server.platforms.channels.orders import meta_event, tiktok_event, tiktok_units
from server.platforms.channels.store import Lease
from server.platforms.channels.tiktok import MAX_ORDER_IDS, TikTokChannel
from server.platforms.webhooks.apply import OrderApplier
from server.platforms.webhooks.events import OrderStatus, PlatformOrderEvent

logger = logging.getLogger("livedrop.channels")

OK = "ok"
NOTIFIED_PULL_SECONDS = 0.5


async def queued(redis: Any, platform: str, limit: int = 500) -> list[str]:
    """Order ids of ``platform`` waiting in the fetch queue, oldest first."""
    members = await redis.zrange(keys.FETCH_QUEUE, 0, limit - 1)
    prefix = f"{platform}|"
    return [m.decode()[len(prefix) :] for m in members if m.decode().startswith(prefix)]


async def mark_fetched(redis: Any, platform: str, order_ids: Sequence[str], why: str, *, done: bool) -> None:
    """Record how reading orders went; ``done`` takes them off the queue."""
    if not order_ids:
        return
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.FETCHED, mapping={f"{platform}|{o}": why for o in order_ids})
        pipe.expire(keys.FETCHED, keys.FETCHED_TTL_SECONDS)
        if done:
            pipe.zrem(keys.FETCH_QUEUE, *(f"{platform}|{o}" for o in order_ids))
        await pipe.execute()


class OrderPuller:
    """Reads one platform's orders into the applier, on the node holding its pull lease."""

    def __init__(
        self,
        redis: Any,
        channel: TikTokChannel | MetaChannel,
        applier: OrderApplier,
        metrics: Metrics,
        *,
        lease_seconds: float,
        pull_interval: float,
        overlap: float,
        node_id: str = "",
    ) -> None:
        self.redis = redis
        self.channel = channel
        self.platform = channel.name.value
        self.applier = applier
        self.metrics = metrics
        self.lease = Lease(redis, f"pull:{self.platform}", lease_seconds, node_id)
        self.pull_interval = pull_interval
        self.overlap = overlap
        self.backoff = Backoff(base=0.5, cap=60.0)
        self._next_try = 0.0
        self._last_pull = -math.inf  # the first pull is due at once, however new the machine (monotonic starts near 0)
        self.last_error = ""

    async def turn(self) -> None:
        if not await self.lease.hold():
            return
        if time.monotonic() < self._next_try:
            return
        try:
            if isinstance(self.channel, TikTokChannel):
                await self._tiktok(self.channel)
            else:
                await self._meta(self.channel)
        except ChannelError as exc:
            self.last_error = exc.code
            self.metrics.channel_orders.labels(self.platform, "failed").inc()
            waiting = await queued(self.redis, self.platform)
            await mark_fetched(self.redis, self.platform, waiting, f"{exc.code}: {exc.message[:200]}", done=False)
            self._next_try = time.monotonic() + max(exc.wait, self.backoff.next())
            logger.warning("channel %s: order pull failed (%s)", self.platform, exc.code)
            return
        self.backoff.reset()
        self.last_error = ""

    async def _apply(self, events: Sequence[PlatformOrderEvent], *, again: bool = True) -> None:
        """Apply pulled orders. With ``again`` False, a sale of an order already read and applied is
        skipped: a list pull reads the same orders over and over, and an order line is idempotent
        only within its drop, so once a SKU has moved to a newer drop a re-read sale would sell twice."""
        if not again and events:
            raw = await self.redis.hmget(keys.FETCHED, *(f"{self.platform}|{e.order_id}" for e in events))
            done = {e.order_id for e, v in zip(events, raw, strict=True) if v is not None and v.decode() == OK}
            events = [e for e in events if not (e.status.is_sale and e.order_id in done)]
        skus = await self.applier.resolve_skus(list(events))
        for event in events:
            await self.applier.apply(event, skus)
            self.metrics.channel_orders.labels(self.platform, "applied").inc()

    async def _reverse(self, ids: set[str]) -> dict[str, str]:
        if not ids:
            return {}
        ordered = sorted(ids)
        raw = await self.redis.hmget(keys.channel_reverse(self.platform), *ordered)
        return {i: v.decode() for i, v in zip(ordered, raw, strict=True) if v is not None}

    # -- TikTok Shop -------------------------------------------------------------------------------

    async def _tiktok(self, tiktok: TikTokChannel) -> None:
        waiting = await queued(self.redis, self.platform)
        for start in range(0, len(waiting), MAX_ORDER_IDS):
            ids = waiting[start : start + MAX_ORDER_IDS]
            orders = await tiktok.order_details(ids)
            await self._tiktok_apply(orders)
            found = {str(o.get("id")) for o in orders}
            await mark_fetched(self.redis, self.platform, [i for i in ids if i in found], OK, done=True)
            missing = [i for i in ids if i not in found]
            if missing:
                self.metrics.channel_orders.labels(self.platform, "not_found").inc(len(missing))
                await mark_fetched(
                    self.redis, self.platform, missing, "not_found: TikTok Shop has no such order", done=True
                )
        if time.monotonic() - self._last_pull >= self.pull_interval:
            await self._tiktok_window(tiktok)

    async def _tiktok_apply(self, orders: list[dict[str, Any]], *, again: bool = True) -> None:
        sku_ids = {sku_id for o in orders for sku_id in tiktok_units(o)}
        skus = await self._reverse(sku_ids)
        await self._apply([tiktok_event(o, skus) for o in orders], again=again)

    async def _tiktok_window(self, tiktok: TikTokChannel) -> None:
        """Search Orders over ``[last pull - overlap, now)``: orders whose webhook was lost."""
        started = int(time.time())
        raw = await self.redis.get(keys.channel_pull_cursor(self.platform))
        since = int(raw) if raw is not None else started - int(self.overlap)
        token = ""
        while True:
            orders, token = await tiktok.search_orders(since - int(self.overlap), started + 1, token)
            await self._tiktok_apply(orders, again=False)
            await mark_fetched(self.redis, self.platform, [str(o.get("id")) for o in orders], OK, done=True)
            if not token:
                break
        await self.redis.set(keys.channel_pull_cursor(self.platform), started)
        self._last_pull = time.monotonic()

    # -- Meta --------------------------------------------------------------------------------------

    async def _meta(self, meta: MetaChannel) -> None:
        waiting = await queued(self.redis, self.platform)
        elapsed = time.monotonic() - self._last_pull
        # Notifications waiting: read at once (at most every NOTIFIED_PULL_SECONDS); otherwise on
        # the pull interval. Meta decrements its own stock per order, and until LiveDrop has the
        # order a push overwrites that decrement: the sooner it is read, the smaller the buffer.
        if elapsed < self.pull_interval and not (waiting and elapsed >= NOTIFIED_PULL_SECONDS):
            return
        started = time.time()
        raw = await self.redis.get(keys.channel_pull_cursor(self.platform))
        since = float(raw) if raw is not None else started - self.overlap
        orders = await meta.orders(
            ["FB_PROCESSING", "CREATED", "IN_PROGRESS", "COMPLETED", "CANCELLED"], since - self.overlap
        )
        retailer_ids = {
            str(i.get("retailer_id", "")) for o in orders for i in ((o.get("items") or {}).get("data") or ())
        }
        skus = await self._reverse(retailer_ids)
        events = [meta_event(o, skus) for o in orders]
        await self._apply(events, again=False)
        for order, event in zip(orders, events, strict=True):
            state = (order.get("order_status") or {}).get("state")
            if state == "CREATED" and event.status is OrderStatus.PAID:
                await meta.acknowledge(event.order_id)
        done = [e.order_id for e in events if e.status is not OrderStatus.OTHER]
        await mark_fetched(self.redis, self.platform, done, OK, done=True)
        pending = [o for o in waiting if o not in set(done)]
        if pending:
            await mark_fetched(self.redis, self.platform, pending, "waiting: not in commerce_orders yet", done=False)
        await self.redis.set(keys.channel_pull_cursor(self.platform), started)
        self._last_pull = time.monotonic()
