"""What a node knows of the shows it has viewers for, kept current from Redis, and the glue
between the stock engine and the hub.

Per subscribed show the node keeps a snapshot (show, drops, counters, seq, epoch, viewer
count) so a ``welcome`` costs no Redis round-trip — a reconnect storm of 10,000 viewers is
served from memory — and a ring of recent events so most resumes do not either. It learns:
* ordered events (a drop launched or ended, the show ended) from the show's feed stream;
* stock counters and private events (a hold expired, a waitlist hand-out, a confirmation)
  from the ledger streams of the show's drops, written by the stock engine on any node;
* the viewer count from the show's presence entries (``broadcast.presence``), which every
  node writes its own count into, fresh by Redis' clock.
Stock frames are conflated: each drop's latest counters go out at most every
``stock_interval``, so a burst of 10,000 reservations is ~10 frames a second per viewer.

Background work is per node, not per show: one reader follows every feed and ledger stream
(``server.shows.tails``), one ticker sends conflated stock frames of every show, one loop reports
viewer counts. Subscribing to a show is a snapshot read and a few in-memory registrations;
unsubscribing never waits for Redis, so the last viewer leaving and the next one arriving do
not queue behind a blocking read. Times sent to viewers are on Redis' clock (``server.shows.clock``):
the same clock that dates ``ends_at`` and hold expiries, so countdowns do not carry the skew of
the node's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

import msgspec
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from broadcast.feed import Feed, FeedEvent, frame, show_keys
from broadcast.hub import Hub
from broadcast.presence import Presence
from broadcast.transport import Message
from server.loops import repeat
from server.shows.catalog import Catalog, DropInfo, ShowState, UnknownShow
from server.shows.clock import Clock
from server.shows.echoes import Echoes, RefOfRequest
from server.shows.known import KnownDrop, KnownShow, drop_body, fold_event, fold_ledger, stock_frame
from server.shows.soldout import SoldOut
from server.shows.tails import Entries, StreamTails
from server.viewers import protocol as p
from stock import StockEngine, UnknownDrop, keys
from stock.ledger import decode_entry
from stock.types import LedgerEntry

logger = logging.getLogger("livedrop.live")


def now_ms() -> int:
    """This machine's wall clock. Times sent to viewers use ``ShowNode.clock`` (Redis' clock)."""
    return int(time.time() * 1000)


class ShowNode:
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
        ref_of_request: RefOfRequest | None = None,
    ) -> None:
        self.redis = redis
        # XREAD BLOCK holds a connection for up to block_ms: those reads get a client (and a
        # pool) of their own, so they never starve reservations of connections.
        self.blocking_redis = blocking_redis if blocking_redis is not None else redis
        self.engine = engine
        self.catalog = catalog
        self.feed = Feed(redis, self.blocking_redis)
        self.presence = Presence(redis)
        self.clock = Clock()
        self.hub = hub
        # Answers for this node's connections of a viewer whose request another node took.
        self.echoes = Echoes(
            hub,
            engine,
            ref_of_request or (lambda customer, request: None),
            self.clock.now_ms,
            lambda: self.checkout_link,
        )
        self.node_id = node_id
        self.stock_interval = stock_interval
        self.viewers_interval = viewers_interval
        self.block_ms = block_ms
        self.shows: dict[str, KnownShow] = {}
        self.redis_errors = 0
        self.tails = StreamTails(
            redis,
            self.blocking_redis,
            node_id=node_id,
            cluster=isinstance(self.blocking_redis, RedisCluster),
            block_ms=block_ms,
            on_error=self._reader_error,
            on_recovered=self._recover_all,
        )
        # Reserves on a drop that is sold out, answered here (server/shows/soldout.py).
        self.soldout = SoldOut(redis, self.clock, self.tails)
        self._loops: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._left: set[str] = set()  # shows whose presence entry this node must remove
        # Told when a host ends or starts a show on this node (the chat's retention starts then).
        self.on_show_state: Callable[[str, ShowState], Awaitable[None]] | None = None
        # (show, drop, variant, qty, hold, hold_ref) -> checkout link; set by the app (server/checkout).
        self.checkout_link: Callable[[str, str, str, int, str, str], Awaitable[str]] | None = None

    # -- subscription (the hub's on_first / on_last) --------------------------------------------

    async def subscribe(self, show_id: str) -> None:
        """Start following a show (the hub's ``on_first``): one snapshot read, then its
        streams join the node's reader. Nothing is left registered if the snapshot fails."""
        live = await self._snapshot(show_id)
        if not self.clock.synced:  # the first welcome's server_time is on Redis' clock too
            await self.clock.sync(self.redis)
        self.shows[show_id] = live
        self._left.discard(show_id)
        self.tails.watch(show_keys(show_id).events, f"{live.seq}-0", partial(self._on_feed, show_id))
        for d in live.drops.values():
            self._watch_ledger(show_id, d)
        self._start_loops()

    async def unsubscribe(self, show_id: str) -> None:
        """Stop following a show (the hub's ``on_last``). Never waits for Redis: the node's
        presence entry for the show is removed by the presence loop, unless a viewer of the
        show arrives first."""
        live = self.shows.pop(show_id, None)
        if live is None:
            return
        self.tails.unwatch(show_keys(show_id).events)
        for drop_id, d in live.drops.items():
            self.tails.unwatch(keys.drop_keys(drop_id).ledger)
            self.soldout.disarm(drop_id)
            for variant in d.variants:
                self.tails.unwatch(keys.drop_keys(drop_id, variant).ledger)
        self._left.add(show_id)

    async def aclose(self) -> None:
        for show_id in list(self.shows):
            await self.unsubscribe(show_id)
        await self.tails.aclose()
        await self.soldout.aclose()
        await self.echoes.aclose()
        tasks = [*self._loops, *self._background]
        self._loops = []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for show_id in list(self._left):  # leave the show's count to the nodes still serving it
            with contextlib.suppress(RedisError, OSError):
                await self.presence.leave(show_id, self.node_id)
        self._left.clear()

    def _start_loops(self) -> None:
        """The node-wide ticker and viewer count, from the first subscription to ``aclose``."""
        if self._loops:
            return
        self._loops = [
            asyncio.create_task(
                repeat(self._tick_stock, name="stock ticker", interval=self.stock_interval, log=logger),
                name="live:stock",
            ),
            asyncio.create_task(
                repeat(
                    self._count_viewers,
                    name="viewer count",
                    interval=self.viewers_interval,
                    on_error=self._count_error,
                    log=logger,
                ),
                name="live:viewers",
            ),
        ]

    def _count_error(self, exc: BaseException) -> None:
        self.redis_errors += isinstance(exc, RedisError)

    def _reader_error(self, exc: BaseException) -> None:
        self._count_error(exc)
        self.soldout.reset()  # what the reader saw may be stale now

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run ``coro`` in the background, tracked so that ``aclose`` stops it; its failure is
        logged, never lost."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                logger.error("%s failed", name, exc_info=t.exception())

        task.add_done_callback(done)

    def _watch_ledger(self, show_id: str, d: KnownDrop) -> None:
        """Follow a drop's ledger and, for a drop with variants, each variant's (their stock and
        their holds' private events are written there)."""
        drop_id = d.info.drop_id
        self.tails.watch(keys.drop_keys(drop_id).ledger, d.ledger_after, partial(self._on_ledger, show_id, drop_id))
        for variant, after in d.variant_after.items():
            key = keys.drop_keys(drop_id, variant).ledger
            self.tails.watch(key, after, partial(self._on_variant_ledger, show_id, drop_id, variant))

    async def _snapshot(self, show_id: str) -> KnownShow:
        show = await self.catalog.get_show(show_id)
        if show is None:
            raise UnknownShow(show_id)
        seq, epoch = await self.feed.start(show_id)
        drops: dict[str, KnownDrop] = {}
        for info in await self.catalog.drops(show_id):
            drops[info.drop_id] = await self._drop_live(info)
        return KnownShow(show=show, drops=drops, seq=seq, epoch=epoch)

    async def _drop_live(self, info: DropInfo) -> KnownDrop:
        # Each ledger's position before its counters: an entry written in between is folded
        # again, which is harmless (entries carry absolute counters), and none is missed.
        last = await self.redis.xrevrange(keys.drop_keys(info.drop_id).ledger, count=1)
        variant_after: dict[str, str] = {}
        for v in info.variants:
            tail = await self.redis.xrevrange(keys.drop_keys(info.drop_id, v.id).ledger, count=1)
            variant_after[v.id] = tail[0][0].decode() if tail else "0-0"
        snap = await self.engine.snapshot(info.drop_id)
        after = last[0][0].decode() if last else "0-0"
        d = KnownDrop(info, snap.state.value, snap.ends_at_ms, snap.counters, ledger_after=after)
        if info.variants:
            d.variants = {v.id: await self.engine.counters(info.drop_id, v.id) for v in info.variants}
            d.variant_after = variant_after
            d.add_up()
        return d

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
                    server_time=self.clock.now_ms(),
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

    def _stock_message(self, d: KnownDrop) -> Message:
        return Message(p.encode(stock_frame(d, self.clock.now_ms())), key=f"stock:{d.info.drop_id}")

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
        if self.on_show_state is not None:
            await self.on_show_state(show_id, ShowState.ENDED)
        # Once per run of the show (whichever nodes end it), and again after a restart.
        return (await self.feed.publish(show_id, "show_ended", b"{}", dedupe="show_ended", per_run=True)).seq

    async def start_show(self, show_id: str) -> int:
        show = await self.catalog.set_show_state(show_id, ShowState.LIVE)
        if show is None:
            raise UnknownShow(show_id)
        if self.on_show_state is not None:
            await self.on_show_state(show_id, ShowState.LIVE)
        body = msgspec.json.encode({"show": show_id, "title": show.title, "state": show.state.value})
        return (await self.feed.publish(show_id, "show", body, starts_run=True)).seq

    # -- what the node's stream reader hands over --------------------------------------------------

    def _on_feed(self, show_id: str, entries: Entries) -> None:
        live = self.shows.get(show_id)
        if live is None:
            return
        for event in Feed.decode(entries):
            if event.seq > live.seq:
                self._apply_event(live, event)

    def _recover_all(self) -> None:
        """The reader read again after a Redis error: check every show's epoch."""
        for show_id in list(self.shows):
            self._spawn(self._recover(show_id), f"recover:{show_id}")

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
        if self.shows.get(show_id) is not live:
            return  # unsubscribed meanwhile
        live.seq, live.epoch, live.drops, live.show = fresh.seq, fresh.epoch, fresh.drops, fresh.show
        live.ring.clear()
        self.tails.watch(show_keys(show_id).events, f"{live.seq}-0", partial(self._on_feed, show_id))
        for d in live.drops.values():
            self._watch_ledger(show_id, d)
        channel = self.hub.channels.get(show_id)
        for viewer in list(channel.viewers) if channel else []:
            self.hub.deliver(viewer, self.welcome(show_id, viewer.customer is not None, reset=True))

    def _apply_event(self, live: KnownShow, event: FeedEvent) -> None:
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

    def _fold(self, live: KnownShow, event: FeedEvent) -> None:
        new_drop = fold_event(live, event)
        if new_drop is not None:
            self._watch_ledger(live.show.show_id, new_drop)

    def _on_ledger(self, show_id: str, drop_id: str, entries: Entries) -> None:
        live = self.shows.get(show_id)
        d = live.drops.get(drop_id) if live else None
        if d is None:
            return
        for entry_id, fields in entries:
            d.ledger_after = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            try:
                entry = decode_entry(entry_id, fields)
                self.soldout.on_entry(d, entry)
                self._apply_ledger(show_id, d, entry)
                self.echoes.entry(show_id, entry_id, fields, entry)
            except (KeyError, ValueError):
                self.soldout.disarm(drop_id)
                # A malformed entry costs its own frame, not the ones after it.
                logger.exception("ledger entry %s of drop %s not applied", d.ledger_after, drop_id)

    def _on_variant_ledger(self, show_id: str, drop_id: str, variant: str, entries: Entries) -> None:
        live = self.shows.get(show_id)
        d = live.drops.get(drop_id) if live else None
        if d is None:
            return
        for entry_id, fields in entries:
            d.variant_after[variant] = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            try:
                entry = decode_entry(entry_id, fields)
                self.soldout.on_entry(d, entry, variant)
                self._apply_ledger(show_id, d, entry, variant)
                self.echoes.entry(show_id, entry_id, fields, entry)
            except (KeyError, ValueError):
                self.soldout.disarm(drop_id)
                logger.exception(
                    "ledger entry %s of drop %s~%s not applied", d.variant_after[variant], drop_id, variant
                )

    def _apply_ledger(self, show_id: str, d: KnownDrop, entry: LedgerEntry, variant: str = "") -> None:
        outcome = fold_ledger(d, entry, self.engine.hold_ref, variant)
        if outcome.ended is not None:
            drop_id = d.info.drop_id
            self._spawn(self._announce_end(show_id, drop_id, outcome.ended, entry.at_ms), f"announce-end:{drop_id}")
        if outcome.private is not None and outcome.customer:
            if isinstance(outcome.private, p.Reserved) and self.checkout_link is not None:
                # A hand-out from the waitlist: with its checkout link, which may need a read.
                self._spawn(self._send_handout(show_id, outcome.customer, outcome.private), "handout-link")
            else:
                self.hub.send_private(outcome.customer, Message(p.server_encoder.encode(outcome.private)))

    async def _send_handout(self, show_id: str, customer: str, frame: p.Reserved) -> None:
        assert self.checkout_link is not None
        variant = frame.variant if isinstance(frame.variant, str) else ""
        link = await self.checkout_link(show_id, frame.drop, variant, frame.qty, frame.hold, frame.hold_ref)
        frame = msgspec.structs.replace(frame, checkout_url=link)
        self.hub.send_private(customer, Message(p.server_encoder.encode(frame)))

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

    async def _tick_stock(self) -> None:
        """One tick of the node's stock ticker: each changed drop's latest counters, once."""
        for show_id, live in list(self.shows.items()):
            for d in live.drops.values():
                if d.dirty:
                    d.dirty = False
                    self.hub.publish(show_id, self._stock_message(d))

    async def _count_viewers(self) -> None:
        """One round of the node's viewer count: report this node's count of every show it
        serves (and remove the entries of shows it left), publish each show's total when it
        changed. The presence script answers with Redis' clock, which keeps ``clock`` synced."""
        for show_id in list(self._left):
            if show_id not in self.shows:
                await self.presence.leave(show_id, self.node_id)
            self._left.discard(show_id)
        await self.clock.sync(self.redis)
        for show_id in list(self.shows):
            audience = await self.presence.report(show_id, self.node_id, self.hub.viewer_count(show_id))
            live = self.shows.get(show_id)
            if live is not None and audience.total != live.viewers:
                live.viewers = audience.total
                self.hub.publish(show_id, Message(p.encode(p.Viewers(count=audience.total)), key="viewers"))


async def viewers_now(live: ShowNode, show_id: str) -> int:
    """The show's audience across nodes, now: what the other nodes last reported (each node
    writes its own count every second, DESIGN §4; a node silent for longer than the presence
    TTL, by Redis' clock, is dead and not counted) plus this node's own count at this instant."""
    others = await live.presence.others(show_id, live.node_id)
    return others.total + live.hub.viewer_count(show_id)
