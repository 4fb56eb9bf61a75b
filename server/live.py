"""What a node knows of the shows it has viewers for, kept current from Redis, and the glue
between the stock engine and the hub.

Per subscribed show the node keeps a snapshot (show, drops, counters, seq, epoch, viewer
count) so a ``welcome`` costs no Redis round-trip — a reconnect storm of 10,000 viewers is
served from memory — and a ring of recent events so most resumes do not either. It learns:
* ordered events (a drop launched or ended, the show ended) from the show's feed stream;
* stock counters and private events (a hold expired, a waitlist hand-out, a confirmation)
  from the ledger streams of the show's drops, written by the stock engine on any node;
* the viewer count from a per-show hash every node writes its own count into.
Stock frames are conflated: each drop's latest counters go out at most every
``stock_interval``, so a burst of 10,000 reservations is ~10 frames a second per viewer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from redis.exceptions import RedisError

from broadcast.feed import MAX_RECOVERY, Feed, FeedEvent, frame
from broadcast.hub import Hub
from broadcast.transport import Message
from server import protocol as p
from server.catalog import Catalog, DropInfo, Show, ShowState
from server.webhooks.consumer import raise_if_cancelled
from stock import StockEngine, UnknownDrop, keys
from stock.ledger import decode_entry
from stock.types import Counters, DropState, LedgerEntry

logger = logging.getLogger("livedrop.live")

RING = MAX_RECOVERY  # recent events kept in memory per show, for resumes
VIEWER_COUNT_TTL_MS = 5000  # a node that has not reported for this long no longer counts
READ_GRACE = 5.0  # seconds a blocking stream read may run past its BLOCK before it is abandoned


class UnknownShow(LookupError):
    pass


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class DropLive:
    info: DropInfo
    state: str
    ends_at: int
    counters: Counters
    dirty: bool = False
    ledger_after: str = "0-0"


@dataclass
class ShowLive:
    show: Show
    drops: dict[str, DropLive]
    seq: int
    epoch: str
    viewers: int = 0
    ring: deque[tuple[int, Message]] = field(default_factory=lambda: deque(maxlen=RING))
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def drop_body(d: DropLive) -> p.DropBody:
    c = d.counters
    return p.DropBody(
        id=d.info.drop_id,
        sku=d.info.sku,
        title=d.info.title,
        image_url=d.info.image_url,
        prices=d.info.prices,
        state=d.state,
        ends_at=d.ends_at,
        per_customer_limit=d.info.per_customer_limit,
        stock=p.StockBody(available=c.available, held=c.held, sold=c.sold, total=c.total),
    )


class Live:
    def __init__(
        self,
        *,
        redis: Any,
        engine: StockEngine,
        catalog: Catalog,
        hub: Hub,
        node_id: str,
        stock_interval: float = 0.1,
        viewers_interval: float = 1.0,
        block_ms: int = 2000,
        blocking_redis: Any = None,
    ) -> None:
        self.redis = redis
        # XREAD BLOCK holds a connection for up to block_ms: those reads get a client (and a
        # pool) of their own, so a show with many drops never starves reservations of
        # connections.
        self.blocking_redis = blocking_redis if blocking_redis is not None else redis
        self.engine = engine
        self.catalog = catalog
        self.feed = Feed(redis, self.blocking_redis)
        self.hub = hub
        self.node_id = node_id
        self.stock_interval = stock_interval
        self.viewers_interval = viewers_interval
        self.block_ms = block_ms
        self.shows: dict[str, ShowLive] = {}
        self.on_event: Callable[[str, FeedEvent], None] | None = None  # host channel hook
        self.redis_errors = 0

    # -- subscription (the hub's on_first / on_last) --------------------------------------------

    async def subscribe(self, show_id: str) -> None:
        live = await self._snapshot(show_id)
        self.shows[show_id] = live
        live.tasks = [
            asyncio.create_task(self._tail_feed(show_id), name=f"feed:{show_id}"),
            asyncio.create_task(self._tick_stock(show_id), name=f"stock:{show_id}"),
            asyncio.create_task(self._count_viewers(show_id), name=f"viewers:{show_id}"),
        ]
        for drop_id in live.drops:
            live.tasks.append(asyncio.create_task(self._tail_ledger(show_id, drop_id), name=f"ledger:{drop_id}"))

    async def unsubscribe(self, show_id: str) -> None:
        live = self.shows.pop(show_id, None)
        if live is None:
            return
        for task in live.tasks:
            task.cancel()
        for task in live.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(RedisError):
            await self.redis.hdel(keys.show_tag(show_id) + "viewers", self.node_id)

    async def aclose(self) -> None:
        for show_id in list(self.shows):
            await self.unsubscribe(show_id)

    async def _snapshot(self, show_id: str) -> ShowLive:
        show = await self.catalog.get_show(show_id)
        if show is None:
            raise UnknownShow(show_id)
        seq, epoch = await self.feed.start(show_id)
        drops: dict[str, DropLive] = {}
        for info in await self.catalog.drops(show_id):
            drops[info.drop_id] = await self._drop_live(info)
        return ShowLive(show=show, drops=drops, seq=seq, epoch=epoch)

    async def _drop_live(self, info: DropInfo) -> DropLive:
        last = await self.redis.xrevrange(keys.drop_keys(info.drop_id).ledger, count=1)
        snap = await self.engine.snapshot(info.drop_id)
        after = last[0][0].decode() if last else "0-0"
        return DropLive(info, snap.state.value, snap.ends_at_ms, snap.counters, ledger_after=after)

    # -- what a viewer is sent --------------------------------------------------------------------

    def welcome(self, show_id: str, can_reserve: bool, reset: bool = False) -> Message:
        live = self.shows[show_id]
        return Message(
            p.encode(
                p.Welcome(
                    show=show_id,
                    title=live.show.title,
                    state=live.show.state.value,
                    seq=live.seq,
                    epoch=live.epoch,
                    server_time=now_ms(),
                    viewers=live.viewers,
                    drops=[drop_body(d) for d in live.drops.values()],
                    can_reserve=can_reserve,
                    reset=reset,
                )
            ),
            seq=live.seq,
            floor=True,  # the viewer has every event up to live.seq: queued ones are skipped
        )

    async def resume(self, show_id: str, after: int, epoch: str) -> list[Message] | None:
        """Missed events after ``after`` then the current stock of every drop, or None when the
        viewer must reset (other epoch, gap beyond retention or beyond MAX_RECOVERY)."""
        live = self.shows[show_id]
        if epoch != live.epoch or after > live.seq:
            return None
        if after == live.seq:
            missed: list[Message] = []
        elif live.ring and live.ring[0][0] <= after + 1:
            missed = [m for seq, m in live.ring if seq > after]
        else:
            events = await self.feed.since(show_id, after)
            if events is None:
                return None
            missed = [Message(frame(e), seq=e.seq) for e in events if e.seq <= live.seq]
        return missed + [self._stock_message(d) for d in live.drops.values()]

    def _stock_message(self, d: DropLive) -> Message:
        c = d.counters
        body = p.StockFrame(
            drop=d.info.drop_id, available=c.available, held=c.held, sold=c.sold, total=c.total, ts=now_ms()
        )
        return Message(p.encode(body), key=f"stock:{d.info.drop_id}")

    # -- host actions (any node) -----------------------------------------------------------------

    async def publish_drop(self, drop_id: str) -> int:
        """Announce a drop's current description and state to the show's viewers (seq'd)."""
        info = await self.catalog.get_drop(drop_id)
        if info is None:
            raise UnknownDrop(drop_id)
        d = await self._drop_live(info)
        body = msgspec.json.encode({"drop": drop_body(d)})
        return (await self.feed.publish(info.show_id, "drop", body)).seq

    async def publish_drop_ended(self, show_id: str, drop_id: str, reason: str, at_ms: int) -> int:
        """Announce that a drop ended; published once whichever nodes see the end."""
        body = msgspec.json.encode({"drop": drop_id, "reason": reason})
        return (await self.feed.publish(show_id, "drop_ended", body, dedupe=f"drop_ended:{drop_id}:{at_ms}")).seq

    async def end_show(self, show_id: str) -> int:
        await self.catalog.set_show_state(show_id, ShowState.ENDED)
        return (await self.feed.publish(show_id, "show_ended", b"{}", dedupe="show_ended")).seq

    async def start_show(self, show_id: str) -> int:
        show = await self.catalog.set_show_state(show_id, ShowState.LIVE)
        if show is None:
            raise UnknownShow(show_id)
        body = msgspec.json.encode({"show": show_id, "title": show.title, "state": show.state.value})
        return (await self.feed.publish(show_id, "show", body)).seq

    # -- background loops per subscribed show ------------------------------------------------------

    async def _tail_feed(self, show_id: str) -> None:
        backoff = 0.1
        while True:
            live = self.shows.get(show_id)
            if live is None:
                return
            try:
                # A read that outlives its BLOCK by far is on a dead (half-open) connection:
                # give up on it rather than stall this show's feed forever.
                async with asyncio.timeout(self.block_ms / 1000 + READ_GRACE):
                    events = await self.feed.read(show_id, live.seq, self.block_ms)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise_if_cancelled()  # redis-py's wait_for can swallow a cancel (server/webhooks/consumer.py)
                # Never let the tail die: a viewer would silently stop getting events.
                self.redis_errors += isinstance(exc, RedisError)
                log = logger.warning if isinstance(exc, RedisError | OSError) else logger.exception
                log("feed of show %s failed (%s), retrying in %.1fs", show_id, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(READ_GRACE):
                        await self._recover(show_id)
                continue
            for event in events:
                self._apply_event(live, event)

    async def _recover(self, show_id: str) -> None:
        """After a Redis error: if the stream's epoch changed (Redis lost it), every local
        viewer gets a fresh welcome marked reset."""
        live = self.shows.get(show_id)
        if live is None:
            return
        try:
            seq, epoch = await self.feed.position(show_id)
            if epoch == live.epoch and seq >= live.seq:
                return
            fresh = await self._snapshot(show_id)
        except (RedisError, OSError, UnknownShow):
            return
        live.seq, live.epoch, live.drops, live.show = fresh.seq, fresh.epoch, fresh.drops, fresh.show
        live.ring.clear()
        channel = self.hub.channels.get(show_id)
        for viewer in list(channel.viewers) if channel else []:
            self.hub.deliver(viewer, self.welcome(show_id, viewer.customer is not None, reset=True))

    def _apply_event(self, live: ShowLive, event: FeedEvent) -> None:
        """Send an event to the show's viewers, then fold it into the snapshot.

        Nothing here touches Redis: the event carries all a welcome needs, so a Redis error
        right after a restart cannot make viewers miss a frame whose seq the node already
        counted. A body the snapshot cannot use is logged; the frame still goes out."""
        show_id = live.show.show_id
        live.seq = event.seq
        message = Message(frame(event), seq=event.seq)
        live.ring.append((event.seq, message))
        self.hub.publish(show_id, message)
        try:
            self._fold(live, event)
        except (msgspec.DecodeError, KeyError):
            logger.exception("event %d of show %s not folded into the snapshot", event.seq, show_id)
        if self.on_event is not None:
            self.on_event(show_id, event)

    def _fold(self, live: ShowLive, event: FeedEvent) -> None:
        show_id = live.show.show_id
        if event.kind == "drop":
            body = msgspec.json.decode(event.body, type=dict[str, p.DropBody])["drop"]
            known = live.drops.get(body.id)
            stock = body.stock
            info = DropInfo(
                drop_id=body.id,
                show_id=show_id,
                sku=body.sku,
                title=body.title,
                total=stock.total,
                image_url=body.image_url,
                prices=body.prices,
                per_customer_limit=body.per_customer_limit,
            )
            live.drops[body.id] = DropLive(
                info,
                body.state,
                body.ends_at,
                known.counters if known else Counters(stock.total, stock.available, stock.held, stock.sold),
                ledger_after=known.ledger_after if known else "0-0",
            )
            if known is None:
                live.tasks.append(asyncio.create_task(self._tail_ledger(show_id, body.id), name=f"ledger:{body.id}"))
        elif event.kind == "drop_ended":
            ended = msgspec.json.decode(event.body, type=dict[str, str])
            d = live.drops.get(ended["drop"])
            if d is not None:
                d.state = DropState.CLOSED.value
        elif event.kind in ("show_ended", "show"):
            state = ShowState.ENDED if event.kind == "show_ended" else ShowState.LIVE
            live.show = msgspec.structs.replace(live.show, state=state)

    async def _tail_ledger(self, show_id: str, drop_id: str) -> None:
        key = keys.drop_keys(drop_id).ledger
        backoff = 0.1
        while True:
            live = self.shows.get(show_id)
            d = live.drops.get(drop_id) if live else None
            if live is None or d is None:
                return
            try:
                async with asyncio.timeout(self.block_ms / 1000 + READ_GRACE):
                    reply = await self.blocking_redis.xread({key: d.ledger_after}, count=1000, block=self.block_ms)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise_if_cancelled()  # redis-py's wait_for can swallow a cancel (server/webhooks/consumer.py)
                self.redis_errors += isinstance(exc, RedisError)
                if not isinstance(exc, RedisError | OSError):
                    logger.exception("ledger tail of drop %s failed", drop_id)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    entry = decode_entry(entry_id, fields)
                    d.ledger_after = entry.entry_id
                    await self._apply_ledger(show_id, d, entry)

    async def _apply_ledger(self, show_id: str, d: DropLive, entry: LedgerEntry) -> None:
        if entry.after != d.counters:
            d.counters = entry.after
            d.dirty = True
        f = entry.fields
        customer = f.get("cust")
        drop_id = d.info.drop_id
        message: msgspec.Struct | None = None
        if entry.op == "expire" and customer:
            message = p.HoldExpired(drop=drop_id, hold=f["hold"])
        elif entry.op == "handout" and customer:
            message = p.Reserved(
                ref="waitlist",
                drop=drop_id,
                hold=f["hold"],
                qty=int(f["qty"]),
                expires_at=int(f["exp"]),
                from_waitlist=True,
            )
        elif (entry.op == "confirm" or (entry.op == "order" and entry.d_held < 0)) and customer:
            message = p.Confirmed(drop=drop_id, hold=f["hold"], qty=int(f.get("qty", "0")))
        elif entry.op == "open":
            d.state = DropState.LIVE.value
            d.ends_at = int(f.get("ends_at", "0"))
        elif entry.op == "close":
            d.state = DropState.CLOSED.value
            await self._announce_end(show_id, drop_id, f.get("reason", "host"), entry.at_ms)
        if message is not None and customer:
            self.hub.send_private(customer, Message(p.server_encoder.encode(message)))

    async def _announce_end(self, show_id: str, drop_id: str, reason: str, at_ms: int) -> None:
        """Publish a drop's end seen in its ledger (a timer or another node closed it). Retried:
        when a drop ends by its timer, this may be the only node that announces it, and the
        publish is deduplicated, so trying again is always safe."""
        for delay in (0.1, 0.3, 1.0, 2.0, None):
            try:
                await self.publish_drop_ended(show_id, drop_id, reason, at_ms)
                return
            except RedisError as exc:
                self.redis_errors += 1
                if delay is None:
                    logger.error("drop_ended of %s not published: %s", drop_id, exc)
                    return
                await asyncio.sleep(delay)

    async def _tick_stock(self, show_id: str) -> None:
        while True:
            await asyncio.sleep(self.stock_interval)
            live = self.shows.get(show_id)
            if live is None:
                return
            for d in live.drops.values():
                if d.dirty:
                    d.dirty = False
                    self.hub.publish(show_id, self._stock_message(d))

    async def _count_viewers(self, show_id: str) -> None:
        counts_key = keys.show_tag(show_id) + "viewers"
        seen_key = keys.show_tag(show_id) + "viewers_seen"
        while True:
            live = self.shows.get(show_id)
            if live is None:
                return
            try:
                now = now_ms()
                await self.redis.hset(counts_key, self.node_id, self.hub.viewer_count(show_id))
                await self.redis.hset(seen_key, self.node_id, now)
                counts = await self.redis.hgetall(counts_key)
                seen = await self.redis.hgetall(seen_key)
                total = sum(int(v) for k, v in counts.items() if now - int(seen.get(k, b"0")) <= VIEWER_COUNT_TTL_MS)
                if total != live.viewers:
                    live.viewers = total
                    self.hub.publish(show_id, Message(p.encode(p.Viewers(count=total)), key="viewers"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise_if_cancelled()  # redis-py's wait_for can swallow a cancel (server/webhooks/consumer.py)
                self.redis_errors += isinstance(exc, RedisError)
                if not isinstance(exc, RedisError | OSError):
                    logger.exception("viewer count of show %s failed", show_id)
            await asyncio.sleep(self.viewers_interval)
