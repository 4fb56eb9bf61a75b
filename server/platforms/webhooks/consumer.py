"""The consumer group that applies recorded deliveries to stock.

Every node runs one consumer in the group ``apply`` of ``ld:{webhooks}``, named after its host and
process. An entry is acknowledged (XACK) only after every event in it was applied, so:

* a consumer that dies between reading and acknowledging leaves the entry pending; when it comes
  back under the same name it reads its own pending entries first, and any other consumer takes
  them over (XAUTOCLAIM) once they have been idle for ``claim_idle_seconds``;
* Redis restarted from its AOF gives back every acknowledged delivery, applied or not.

An entry may therefore be applied more than once, which the stock engine makes harmless (sales by
(platform, order, line), cancels and refunds by (platform, order, line, event)). Entries of one
order are applied in stream order within a batch, entries of different orders concurrently. An
entry that keeps failing for a reason other than Redis being away is moved to ``ld:{webhooks}:dead``
after ``MAX_ATTEMPTS`` and raises an alert, so it cannot block the group forever.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError, ResponseError

from server import keys
from server.loops import Backoff, repeat
from server.ops.metrics import Metrics
from server.platforms.webhooks.alerts import AlertKind, Alerts
from server.platforms.webhooks.apply import OrderApplier
from server.platforms.webhooks.erasure import SHOPIFY_REDACT_TOPIC, erase_deliveries, shopify_redact_identifiers
from server.platforms.webhooks.errors import WebhookRejected
from server.platforms.webhooks.events import Platform, PlatformOrderEvent
from server.platforms.webhooks.ingest import decode_delivery
from server.platforms.webhooks.normalize import normalize
from server.replies import decoded

logger = logging.getLogger("livedrop.webhooks")

MAX_ATTEMPTS = 5
_Entry = tuple[bytes, dict[bytes, bytes]]


def _stream_id(value: bytes | str) -> tuple[int, int]:
    ms, _, seq = decoded(value).partition("-")
    return int(ms), int(seq or 0)


class WebhookConsumer:
    """Reads the delivery stream as one member of the group and applies each entry."""

    def __init__(
        self,
        redis: Any,
        applier: OrderApplier,
        alerts: Alerts,
        metrics: Metrics,
        *,
        name: str,
        claim_idle_seconds: float = 30.0,
        batch: int = 32,
        block_seconds: float = 1.0,
        retention_seconds: int = 7 * 24 * 3600,
        dead_retention_seconds: int = 14 * 24 * 3600,
    ) -> None:
        self.redis = redis
        self.applier = applier
        self.alerts = alerts
        self.metrics = metrics
        self.name = name
        self.claim_idle_ms = max(1, round(claim_idle_seconds * 1000))
        self.batch = batch
        self.block_ms = max(1, round(block_seconds * 1000))
        self.retention_ms = retention_seconds * 1000
        self.dead_retention_ms = dead_retention_seconds * 1000
        self.healthy = True
        self.applied = 0
        self._failures: dict[str, int] = {}
        self._last_housekeeping = -math.inf  # due at once, however new the machine
        self._recover = True

    async def ensure_group(self) -> None:
        """Create the group (and the stream) if missing. The group starts at the beginning of the
        stream, so deliveries recorded before any consumer existed are applied too."""
        try:
            await self.redis.xgroup_create(keys.STREAM, keys.GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        """Apply deliveries until cancelled. Redis outages are waited out with a backoff."""
        self._recover = True  # after a start or a failure, look at what is pending before new entries
        await repeat(self._turn, name="webhook consumer", backoff=Backoff(0.1, 5.0), on_error=self._failed, log=logger)

    async def _turn(self) -> None:
        if self._recover:
            await self.ensure_group()
            await self.recover()
            self._recover = False
        if time.monotonic() - self._last_housekeeping >= self.claim_idle_ms / 2000:
            await self.housekeeping()
        # No linger after a small batch: waiting a few ms for a fuller one was measured
        # to triple the receivers' median latency (bench.webhooks), for no gain.
        await self.step(block=True)
        self.healthy = True

    def _failed(self, exc: BaseException) -> None:
        self._recover = True
        if isinstance(exc, RedisError):
            self.healthy = False
            self.metrics.redis_errors.labels("webhooks").inc()

    async def step(self, *, block: bool = False) -> int:
        """Read new entries once (waiting up to ``block_seconds`` if asked) and apply them."""
        raw = await self.redis.xreadgroup(
            keys.GROUP,
            self.name,
            {keys.STREAM: ">"},
            count=self.batch,
            block=self.block_ms if block else None,
        )
        entries: list[_Entry] = raw[0][1] if raw else []
        return await self.process(entries)

    async def recover(self) -> int:
        """Apply this consumer's own pending entries (read before a crash or a failure), then take
        over those of consumers idle for longer than ``claim_idle_seconds``."""
        done = 0
        while True:
            raw = await self.redis.xreadgroup(keys.GROUP, self.name, {keys.STREAM: "0"}, count=self.batch)
            entries: list[_Entry] = raw[0][1] if raw else []
            if not entries:
                break
            applied = await self.process(entries)
            done += applied
            if applied < sum(1 for _, fields in entries if fields):
                break  # some failed: they stay pending, retried on the next recovery
        return done + await self.claim()

    async def claim(self) -> int:
        """XAUTOCLAIM entries idle for ``claim_idle_seconds`` (their consumer is presumed dead)."""
        done = 0
        start = "0-0"
        while True:
            reply = await self.redis.xautoclaim(
                keys.STREAM, keys.GROUP, self.name, self.claim_idle_ms, start_id=start, count=self.batch
            )
            start = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
            entries: list[_Entry] = [e for e in reply[1] if e]
            if entries:
                self.metrics.webhook_claimed.inc(len(entries))
                logger.info("webhook consumer %s took over %d idle deliveries", self.name, len(entries))
                done += await self.process(entries)
            if start == "0-0":
                return done

    async def housekeeping(self) -> None:
        """Take over idle entries, trim applied ones and dead letters past their retention, forget
        dead consumers."""
        self._last_housekeeping = time.monotonic()
        await self.claim()
        pending = await self.redis.xpending(keys.STREAM, keys.GROUP)
        seconds, micros = await self.redis.time()
        now_ms = seconds * 1000 + micros // 1000
        # A dead letter's id is the time it died (XADD *), so its age is its id.
        await self.redis.xtrim(keys.DEAD, minid=f"{max(0, now_ms - self.dead_retention_ms)}-0", approximate=False)
        floor = (max(0, now_ms - self.retention_ms), 0)
        # Never trim what is not applied yet: entries pending with a consumer, and entries not
        # yet handed to any (after the group's last-delivered id). Whole ids, not milliseconds:
        # several deliveries recorded within one millisecond must not keep each other.
        oldest = pending.get("min") if pending else None
        groups = await self.redis.xinfo_groups(keys.STREAM)
        delivered = next((g["last-delivered-id"] for g in groups if decoded(g["name"]) == keys.GROUP), None)
        if oldest is not None:
            floor = min(floor, _stream_id(oldest))
        if delivered is not None:
            ms, seq = _stream_id(delivered)
            floor = min(floor, (ms, seq + 1))
        await self.redis.xtrim(keys.STREAM, minid=f"{floor[0]}-{floor[1]}", approximate=False)
        self.metrics.webhook_pending.set(int(pending.get("pending", 0)) if pending else 0)
        for consumer in await self.redis.xinfo_consumers(keys.STREAM, keys.GROUP):
            name = decoded(consumer["name"])
            # A consumer with nothing pending, idle for a day, was a process that is gone.
            if name != self.name and int(consumer["pending"]) == 0 and int(consumer["idle"]) > 86_400_000:
                await self.redis.xgroup_delconsumer(keys.STREAM, keys.GROUP, name)

    async def process(self, entries: Sequence[_Entry]) -> int:
        """Apply entries and acknowledge those applied; returns how many were. Raises a
        ``redis`` error (after acknowledging what was applied) if Redis failed on the way."""
        if not entries:
            return 0
        groups: dict[str, list[tuple[str, list[PlatformOrderEvent]]]] = {}
        fields_of: dict[str, dict[bytes, bytes]] = {}
        redactions: dict[str, list[str]] = {}
        dead: list[tuple[str, str]] = []
        gone: list[str] = []
        for raw_id, fields in entries:
            entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            if not fields:
                gone.append(entry_id)  # trimmed away while pending: nothing left to apply
                continue
            fields_of[entry_id] = fields
            try:
                delivery = decode_delivery(entry_id, fields)
                events = normalize(delivery.platform, delivery.body, delivery.headers)
            except (KeyError, ValueError, WebhookRejected) as exc:
                # Deterministic: it will never apply. (The receiver normalised it once already,
                # so only a foreign entry or a changed normaliser gets here.)
                dead.append((entry_id, type(exc).__name__))
                continue
            except Exception as exc:
                # A normaliser bug on a body it accepted before: retrying cannot help, and letting
                # it out would stop the group on this entry forever. Dead-lettered with an alert;
                # the log names the error's type only (the body holds a buyer's data).
                logger.warning("webhook entry %s cannot be read: %s", entry_id, type(exc).__name__)
                dead.append((entry_id, type(exc).__name__))
                continue
            if (
                delivery.platform is Platform.SHOPIFY
                and delivery.headers.get("x-shopify-topic") == SHOPIFY_REDACT_TOPIC
            ):
                redactions[entry_id] = shopify_redact_identifiers(delivery.body)
            order = f"{delivery.platform.value}|{events[0].order_id}" if events else entry_id
            groups.setdefault(order, []).append((entry_id, events))
        skus = await self.applier.resolve_skus([e for items in groups.values() for _, events in items for e in events])
        outcomes = await asyncio.gather(*(self._apply_in_order(items, skus) for items in groups.values()))
        acked = gone + [entry_id for done, _, _ in outcomes for entry_id in done]
        redis_failed = any(redis_error for _, _, redis_error in outcomes)
        for failed in (entry_id for _, entry_id, redis_error in outcomes if entry_id and not redis_error):
            attempts = self._failures.get(failed, 0) + 1
            self._failures[failed] = attempts
            if attempts >= MAX_ATTEMPTS:
                dead.append((failed, "apply_failed"))
        for entry_id in [e for e in acked if e in redactions]:
            try:
                result = await erase_deliveries(self.redis, redactions[entry_id])
            except RedisError:
                acked.remove(entry_id)  # stays pending: the erasure is retried
                redis_failed = True
                continue
            logger.info("customers/redact erased %d deliveries (%d deferred)", result.erased, result.deferred)
        if acked:
            await self.redis.xack(keys.STREAM, keys.GROUP, *acked)
            # The erasure request names the customer too: it goes once it has been carried out.
            erased_requests = [e for e in acked if e in redactions]
            if erased_requests:
                await self.redis.xdel(keys.STREAM, *erased_requests)
            for entry_id in acked:
                self._failures.pop(entry_id, None)
            self.applied += len(acked) - len(gone)
            self.metrics.webhook_applied.inc(len(acked) - len(gone))
        for entry_id, error in dead:
            await self._dead_letter(entry_id, fields_of[entry_id], error)
        if redis_failed:
            raise RedisError("Redis failed while applying webhook deliveries")
        return len(acked) - len(gone)

    async def _apply_in_order(
        self, items: list[tuple[str, list[PlatformOrderEvent]]], skus: dict[str, str | None]
    ) -> tuple[list[str], str, bool]:
        """Apply one order's entries in stream order, stopping at the first failure (later
        entries of that order wait for it). Returns (applied ids, failed id or '', Redis error)."""
        done: list[str] = []
        for entry_id, events in items:
            try:
                for event in events:
                    await self.applier.apply(event, skus)
            except asyncio.CancelledError:
                raise
            except RedisError:
                return done, entry_id, True
            except Exception:
                logger.exception("applying webhook entry %s failed", entry_id)
                return done, entry_id, False
            done.append(entry_id)
        return done, "", False

    async def _dead_letter(self, entry_id: str, fields: dict[bytes, bytes], error: str) -> None:
        platform = fields.get(b"p", b"?").decode(errors="replace")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(keys.DEAD, {**fields, b"entry": entry_id, b"error": error}, maxlen=keys.DEAD_MAXLEN)
            pipe.xack(keys.STREAM, keys.GROUP, entry_id)
            await pipe.execute()
        self._failures.pop(entry_id, None)
        await self.alerts.alert(
            AlertKind.DEAD_DELIVERY, entry_id, {"platform": platform, "entry": entry_id, "error": error}
        )
