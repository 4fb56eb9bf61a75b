"""One blocking reader per node for every Redis stream the node follows.

A node follows one stream per show it has viewers for (the show's feed) and one per drop of
those shows (the drop's ledger). With one ``XREAD BLOCK`` per stream, each holding a pooled
connection for up to ``block_ms``, a node serving more streams than its pool has connections
starved some of them: their stock frames froze. Here every stream goes into one multi-stream
``XREAD BLOCK`` on one connection, whatever their number.

Redis Cluster: a multi-key command may only name keys of one hash slot, and every show and
every drop has a slot of its own (DESIGN §2), so there the streams are grouped by slot and each
group has its own reader — one blocking read per followed slot, each on a connection of its
own (the cluster client's per-node limit, ``LIVEDROP_REDIS_BLOCKING_POOL_SIZE``, bounds them).

Following and unfollowing a stream never waits for Redis: ``watch``/``unwatch`` change what
the next read asks for, and a read already blocked is woken by an entry appended to the
group's wake stream (a key of the group's slot, one per node), which also makes the read return
at once if it reaches Redis after the wake-up. Entries of a stream are handed to its handler in
order, each exactly once per watch: a read that was in flight across an unwatch/watch of the
same stream cannot replay entries the new watcher's snapshot already covers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.crc import key_slot

from server.keys import wake_key
from server.loops import Backoff, repeat
from server.replies import decoded

logger = logging.getLogger("livedrop.tails")

Entries = list[tuple[Any, dict[Any, Any]]]
Handler = Callable[[Entries], None]

WAKE_TTL_MS = 10 * 60 * 1000  # a wake stream of a node that died goes away on its own
READ_GRACE = 5.0  # seconds a read may run past its BLOCK before its connection counts as dead
CLOSE_WAIT = 2.0  # seconds a woken reader has to end by itself at shutdown before it is cancelled


def stream_id(value: str) -> tuple[int, int]:
    """A stream entry id as a comparable pair (``"1712-3"`` -> ``(1712, 3)``)."""
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


def hash_tag(key: str) -> str:
    """The part of ``key`` that picks its Cluster slot (the whole key if it has no tag)."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1 : end] if start >= 0 and end > start + 1 else key


@dataclass(eq=False)
class _Watch:
    after: str
    handler: Handler
    lagging: bool = False  # the last read returned a full page of it: more entries may be waiting


@dataclass(eq=False)
class _Group:
    """Streams read by one XREAD: all of them, or those of one Cluster slot."""

    slot: int
    wake_key: str
    streams: dict[str, _Watch] = field(default_factory=dict)
    wake_after: str = "0-0"
    reading: frozenset[str] = frozenset()  # streams named by the read in flight
    waking: bool = False
    task: asyncio.Task[None] | None = None


class StreamTails:
    """Follow many Redis streams with one blocking read per group (see the module doc).

    ``redis`` answers quick commands (the wake-ups); ``blocking_redis`` carries the blocking
    reads. ``on_error`` is told of each failed read (to count it); ``on_recovered`` is called
    after the first good read that follows a failure (Redis may have lost streams meanwhile).
    """

    def __init__(
        self,
        redis: Any,
        blocking_redis: Any,
        *,
        node_id: str,
        cluster: bool = False,
        block_ms: int = 2000,
        count: int = 1000,
        on_error: Callable[[BaseException], None] | None = None,
        on_recovered: Callable[[], None] | None = None,
    ) -> None:
        self.redis = redis
        self.blocking_redis = blocking_redis
        self.node_id = node_id
        self.cluster = cluster
        self.block_ms = block_ms
        self.count = count
        self.on_error = on_error
        self.on_recovered = on_recovered
        self.groups: dict[int, _Group] = {}
        self._wakes: set[asyncio.Task[None]] = set()
        self._closed = False

    def __len__(self) -> int:
        return sum(len(g.streams) for g in self.groups.values())

    def watch(self, key: str, after: str, handler: Handler) -> None:
        """Hand every entry of ``key`` after id ``after`` to ``handler``, in order, until
        ``unwatch``. Watching a stream again replaces its position and handler."""
        if self._closed:
            raise RuntimeError("stream tails closed")
        slot = key_slot(key.encode()) if self.cluster else 0
        group = self.groups.get(slot)
        if group is None:
            tag = hash_tag(key) if self.cluster else f"tails:{self.node_id}"
            group = self.groups[slot] = _Group(slot, wake_key(tag, self.node_id))
        group.streams[key] = _Watch(after, handler)
        if group.task is None:
            group.task = asyncio.get_running_loop().create_task(self._run(group), name=f"tails:{slot}")
        elif group.reading and not group.waking:
            self._wake(group)

    def unwatch(self, key: str) -> None:
        """Stop following ``key`` now (a read in flight may still return its entries: they
        are dropped). Never waits."""
        slot = key_slot(key.encode()) if self.cluster else 0
        group = self.groups.get(slot)
        if group is not None:
            group.streams.pop(key, None)

    def position(self, key: str) -> str | None:
        slot = key_slot(key.encode()) if self.cluster else 0
        group = self.groups.get(slot)
        watch = group.streams.get(key) if group else None
        return watch.after if watch else None

    def current(self, key: str) -> bool:
        """Whether the node has every entry of ``key`` that Redis has, but those a read in flight
        will deliver: a read naming it is waiting in Redis now, and the last one did not stop at
        its page size. What the node's view lacks is then only what is on its way (the window of
        ``server.shows.soldout``)."""
        slot = key_slot(key.encode()) if self.cluster else 0
        group = self.groups.get(slot)
        if group is None or key not in group.reading:
            return False
        watch = group.streams.get(key)
        return watch is not None and not watch.lagging

    async def aclose(self) -> None:
        """Stop every reader: woken, each returns from its read at once and ends. Cancelling a
        blocked read is only the fallback: a cancel that lands while redis-py sends or reads
        can be swallowed (Python 3.11's ``wait_for``), and the read would block its whole
        BLOCK again."""
        self._closed = True
        running = [g for g in self.groups.values() if g.task is not None]
        for group in running:
            with contextlib.suppress(Exception):
                await self._append_wake(group)
        tasks = [g.task for g in running if g.task is not None] + list(self._wakes)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=CLOSE_WAIT)
            for task in late:
                task.cancel()
            for task in late:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        wake_keys = [g.wake_key for g in self.groups.values()]
        self.groups.clear()
        for key in wake_keys:
            with contextlib.suppress(Exception):
                await self.redis.delete(key)

    # -- the reader ---------------------------------------------------------------------------

    def _wake(self, group: _Group) -> None:
        group.waking = True

        async def wake() -> None:
            try:
                await self._append_wake(group)
            except Exception as exc:  # the read returns by its BLOCK timeout instead
                logger.warning("waking the stream reader failed: %s", exc)
                return
            finally:
                group.waking = False
            # A stream watched while this wake-up was on its way may have missed it (the read
            # it woke had already been replaced by one that does not name that stream).
            if group.reading and not group.streams.keys() <= group.reading and not self._closed:
                self._wake(group)

        task = asyncio.get_running_loop().create_task(wake(), name="tails:wake")
        self._wakes.add(task)
        task.add_done_callback(self._wakes.discard)

    async def _append_wake(self, group: _Group) -> None:
        await self.redis.xadd(group.wake_key, {"w": "1"}, maxlen=1, approximate=False)
        await self.redis.pexpire(group.wake_key, WAKE_TTL_MS)

    async def _run(self, group: _Group) -> None:
        failed = False

        def note(exc: BaseException) -> None:
            nonlocal failed
            failed = True
            group.reading = frozenset()
            if self.on_error is not None:
                self.on_error(exc)

        async def step() -> bool:
            nonlocal failed
            if self._closed or not group.streams:
                # Decided with no await in between: a watch() from now on starts a new reader.
                group.task = None
                if self.groups.get(group.slot) is group:
                    del self.groups[group.slot]
                return True
            # Mark the read as in flight *before* choosing its streams, so a watch() that
            # lands after this point wakes it.
            group.reading = frozenset(group.streams)
            streams = {group.wake_key: group.wake_after, **{k: w.after for k, w in group.streams.items()}}
            async with asyncio.timeout(self.block_ms / 1000 + READ_GRACE):
                reply = await self.blocking_redis.xread(streams, count=self.count, block=self.block_ms)
            group.reading = frozenset()
            if self._closed:
                return False  # the next turn ends the loop
            if failed:
                failed = False
                if self.on_recovered is not None:
                    self.on_recovered()
            self._dispatch(group, streams, reply)
            return False

        try:
            await repeat(step, name="stream reader", backoff=Backoff(0.1, 2.0), on_error=note, log=logger)
        finally:
            if group.task is asyncio.current_task():
                group.task = None

    def _dispatch(self, group: _Group, asked: dict[str, str], reply: Any) -> None:
        """Hand each stream's new entries to its handler. ``asked`` is where the read started
        for each stream: entries of a stream re-watched from an earlier position meanwhile are
        left to the next read, which starts there (handing them over would skip the gap)."""
        items = reply.items() if isinstance(reply, dict) else (reply or [])  # RESP3 | RESP2
        for key in asked:  # a stream the reply leaves out had nothing more when Redis answered
            asked_watch = group.streams.get(key)
            if asked_watch is not None:
                asked_watch.lagging = False
        for raw_key, raw_entries in items:
            key = decoded(raw_key)
            entries: Entries = raw_entries[0] if isinstance(reply, dict) else raw_entries
            if not entries:
                continue
            if key == group.wake_key:
                group.wake_after = decoded(entries[-1][0])
                continue
            watch = group.streams.get(key)
            if watch is None:
                continue  # unwatched while the read was in flight
            watch.lagging = len(entries) >= self.count
            floor = stream_id(watch.after)
            if stream_id(asked.get(key, "0-0")) > floor:
                continue
            fresh = [e for e in entries if stream_id(decoded(e[0])) > floor]
            if not fresh:
                continue
            watch.after = decoded(fresh[-1][0])
            try:
                watch.handler(fresh)
            except Exception:
                # One bad entry must not stop the node's only reader: log it and go on.
                logger.exception("handling entries of stream %s failed", key)
