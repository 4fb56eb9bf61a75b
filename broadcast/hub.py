"""The per-node viewer hub: channels per show, ordered fan-out, slow-viewer policy.

Each message is encoded once per node (``transport.Message``) and written to every local
socket of its show from one pump task per show, in order, yielding to the loop every
``yield_every`` writes so that reservations interleave with a 10,000-socket broadcast. A write
never awaits: a viewer whose transport is paused is *set aside* — its frames are parked in its
``Outbox`` (stock frames of one drop replacing each other) and one task per slow viewer waits
for its transport to drain. A viewer that stays paused longer than ``slow_after`` or parks
more than ``outbox_limit`` bytes is closed with 1013 and resumes from its last ``seq``.

The hub knows nothing of stock or Redis: ``on_first``/``on_last`` callbacks let the server
subscribe the node to a show on its first local viewer and unsubscribe on its last.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from broadcast.outbox import Outbox
from broadcast.transport import Message, SendResult, ViewerSocket

logger = logging.getLogger("livedrop.hub")

CLOSE_SLOW = 1013

ShowCallback = Callable[[str], Awaitable[None]]


async def _nothing(show_id: str) -> None:
    return None


class Role(enum.Enum):
    """Who is on the other end of a connection: both get a show's broadcasts in the same order
    from the same code path; only viewers are counted in the audience."""

    VIEWER = "viewer"
    HOST = "host"  # a host's control panel: also gets host frames through ``Hub.deliver``


@dataclass(eq=False)
class Connection:
    """One local connection to a show: a viewer's (``customer`` is None for a viewer that may
    only watch) or a host panel's."""

    socket: ViewerSocket
    show_id: str
    customer: str | None
    outbox: Outbox[Message]
    closed: bool = False
    role: Role = Role.VIEWER
    drain: asyncio.Task[None] | None = None
    close_reason: str = ""
    # The last seq this viewer has (from its welcome, its resume point or a frame sent): a
    # seq'd frame at or below it is skipped, so a replay and the live pump never repeat one.
    last_seq: int = -1
    # While a resume reads the missed events, what the hub would have sent is held here and
    # goes out after them (``Hub.end_resume``): a live frame never overtakes a missed one.
    held: list[Message] | None = None
    held_bytes: int = 0
    paused: bool = False  # the last write filled the transport (SENT_PAUSED)


@dataclass
class HubStats:
    """Plain counters; the server exports them to Prometheus."""

    frames_sent: int = 0
    frames_parked: int = 0
    slow_set_aside: int = 0
    slow_closed: int = 0
    gone: int = 0
    broadcasts: int = 0

    def conflated(self, hub: Hub) -> int:
        return hub.conflated_closed + sum(v.outbox.replaced for c in hub.channels.values() for v in c.viewers)


class _ShowLock:
    """A show's lock and how many tasks hold or wait for it: dropped when none do."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


@dataclass(eq=False)
class Channel:
    show_id: str
    viewers: dict[Connection, None] = field(default_factory=dict)  # an ordered set
    queue: deque[Message] = field(default_factory=deque)
    pump: asyncio.Task[None] | None = None


class Hub:
    def __init__(
        self,
        *,
        outbox_limit: int = 256 * 1024,
        slow_after: float = 5.0,
        close_grace: float = 1.0,
        yield_every: int = 256,
        on_first: ShowCallback = _nothing,
        on_last: ShowCallback = _nothing,
    ) -> None:
        self.outbox_limit = outbox_limit
        self.slow_after = slow_after
        self.close_grace = close_grace
        self.yield_every = yield_every
        self.on_first = on_first
        self.on_last = on_last
        self.channels: dict[str, Channel] = {}
        self.by_customer: defaultdict[str, set[Connection]] = defaultdict(set)
        self.stats = HubStats()
        self.conflated_closed = 0
        # Only while a join or leave runs: an entry per show name ever tried would grow
        # without bound (one per connection attempt, unknown shows included).
        self._locks: dict[str, _ShowLock] = {}
        # Unsubscribes under way (``on_last``), run outside the show's lock: a join that arrives
        # meanwhile cancels the one of its show instead of waiting for it.
        self._leaving: dict[str, asyncio.Task[None]] = {}

    # -- membership ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _show_lock(self, show_id: str) -> AsyncIterator[None]:
        entry = self._locks.get(show_id)
        if entry is None:
            entry = self._locks[show_id] = _ShowLock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[show_id]

    async def join(
        self,
        show_id: str,
        socket: ViewerSocket,
        customer: str | None,
        role: Role = Role.VIEWER,
        resuming: bool = False,
    ) -> Connection:
        """Add a viewer. On the show's first local viewer ``on_first`` runs (under the show's
        lock, so concurrent joins wait for it); if it fails nothing is left subscribed.
        ``resuming``: hold its frames from the first one until ``end_resume``."""
        viewer = Connection(socket, show_id, customer, Outbox(self.outbox_limit), role=role)
        if resuming:
            viewer.held = []
        async with self._show_lock(show_id):
            channel = self.channels.get(show_id)
            if channel is None:
                leaving = self._leaving.pop(show_id, None)
                if leaving is not None and not leaving.done():
                    # The show is wanted again: its unsubscribe is moot. A cancelled on_last
                    # ends at once (it must honour cancellation), and never overlaps on_first.
                    leaving.cancel()
                    await asyncio.wait([leaving])
                await self.on_first(show_id)  # raises: no channel, the caller closes the socket
                channel = self.channels[show_id] = Channel(show_id)
            channel.viewers[viewer] = None
        if customer is not None:
            self.by_customer[customer].add(viewer)
        return viewer

    async def leave(self, viewer: Connection) -> None:
        """Remove a viewer; on the show's last local viewer ``on_last`` runs, outside the show's
        lock: the caller waits for it, a join of the same show does not (it cancels it)."""
        viewer.closed = True
        if viewer.drain is not None:
            viewer.drain.cancel()
        self.conflated_closed += viewer.outbox.replaced
        if viewer.customer is not None:
            peers = self.by_customer.get(viewer.customer)
            if peers is not None:
                peers.discard(viewer)
                if not peers:
                    del self.by_customer[viewer.customer]
        viewer.held = None
        show_id = viewer.show_id
        async with self._show_lock(show_id):
            channel = self.channels.get(show_id)
            if channel is None:
                return
            channel.viewers.pop(viewer, None)
            if channel.viewers:
                return
            del self.channels[show_id]
            if channel.pump is not None:
                channel.pump.cancel()
            task = asyncio.get_running_loop().create_task(self._unsubscribe(show_id), name=f"unsubscribe:{show_id}")
            self._leaving[show_id] = task
        await asyncio.wait([task])  # never raises: a join may have cancelled it
        if self._leaving.get(show_id) is task:
            del self._leaving[show_id]

    async def _unsubscribe(self, show_id: str) -> None:
        try:
            await self.on_last(show_id)
        except Exception:
            logger.exception("unsubscribing from show %s failed", show_id)

    def viewer_count(self, show_id: str) -> int:
        channel = self.channels.get(show_id)
        return sum(1 for v in channel.viewers if v.role is Role.VIEWER) if channel else 0

    def shows(self) -> list[str]:
        return list(self.channels)

    # -- sending --------------------------------------------------------------------------------

    def publish(self, show_id: str, message: Message) -> None:
        """Send ``message`` to every local viewer of the show, after what was published before.
        A conflatable message replaces a queued one with the same key that has not gone out."""
        channel = self.channels.get(show_id)
        if channel is None:
            return
        if message.key is not None:
            for i, queued in enumerate(channel.queue):
                if queued.key == message.key:
                    channel.queue[i] = message
                    return
        if not message.bulk and channel.queue and channel.queue[-1].bulk:
            # Ahead of the bulk frames waiting at the end of the queue (their order among
            # themselves, and every other frame's, is kept).
            at = len(channel.queue)
            while at > 0 and channel.queue[at - 1].bulk:
                at -= 1
            channel.queue.insert(at, message)
        else:
            channel.queue.append(message)
        if channel.pump is None:
            channel.pump = asyncio.get_running_loop().create_task(self._pump(channel), name=f"pump:{show_id}")

    async def _pump(self, channel: Channel) -> None:
        try:
            while channel.queue:
                await self._broadcast(channel, channel.queue.popleft())
        finally:
            channel.pump = None

    async def _broadcast(self, channel: Channel, message: Message) -> None:
        """``message`` to every viewer of the channel, yielding every ``yield_every`` writes. While a
        bulk message goes out, a frame that is not bulk and arrives meanwhile goes out first (to
        every viewer) and the bulk one then resumes where it was: a drop does not wait for a chat
        frame to reach 10,000 sockets."""
        self.stats.broadcasts += 1
        sent = 0
        for viewer in list(channel.viewers):
            self.deliver(viewer, message)
            sent += 1
            if sent % self.yield_every == 0:
                await asyncio.sleep(0)
                while message.bulk and channel.queue and not channel.queue[0].bulk:
                    await self._broadcast(channel, channel.queue.popleft())

    def send_private(self, customer: str, message: Message) -> int:
        """Send to every local connection of one customer; returns how many there were."""
        viewers = self.by_customer.get(customer, ())
        for viewer in list(viewers):
            self.deliver(viewer, message)
        return len(viewers)

    def begin_resume(self, viewer: Connection) -> None:
        """Hold what would be sent to ``viewer`` until ``end_resume``: call it before reading
        the events it missed, so that no live frame reaches it before them."""
        if viewer.held is None:
            viewer.held = []
            viewer.held_bytes = 0

    def end_resume(self, viewer: Connection, first: list[Message], after: int | None = None) -> None:
        """Send ``first`` (the missed events then current stock, or a welcome), then what was
        held meanwhile, skipping every seq'd frame the viewer already has. ``after``: the seq
        the viewer said it has (none for a welcome, which sets the position itself)."""
        held = viewer.held or []
        viewer.held = None
        viewer.held_bytes = 0
        if after is not None:
            viewer.last_seq = after
        for message in first:
            self.deliver(viewer, message)
        for message in held:
            self.deliver(viewer, message)

    def deliver(self, viewer: Connection, message: Message) -> None:
        """Write now, or park behind what is already parked. Never awaits."""
        if viewer.closed:
            return
        if viewer.held is not None:
            viewer.held.append(message)
            viewer.held_bytes += len(message.payload)
            if viewer.held_bytes > self.outbox_limit:
                self.close_slow(viewer, "over its send bound while resuming")
            return
        if message.seq is not None:
            if message.floor:
                viewer.last_seq = message.seq
            elif message.seq <= viewer.last_seq:
                return  # a welcome or a replay already covered it
            else:
                viewer.last_seq = message.seq
        if viewer.outbox:
            self._park(viewer, message)
            return
        result = viewer.socket.try_write(message)
        if result is SendResult.SENT:
            self.stats.frames_sent += 1
        elif result is SendResult.SENT_PAUSED:
            # The write filled the transport with nothing parked yet: the slow-viewer clock
            # starts now, or a viewer that stalls after the last frame is never closed.
            self.stats.frames_sent += 1
            viewer.paused = True
            if viewer.drain is None:
                viewer.drain = asyncio.get_running_loop().create_task(self._drain(viewer))
        elif result is SendResult.WOULD_WAIT:
            self.stats.slow_set_aside += 1
            self._park(viewer, message)
        else:
            self._gone(viewer)

    def _gone(self, viewer: Connection) -> None:
        """The socket is closing or closed (the socket itself sees to one that stays closing)."""
        self.stats.gone += 1
        viewer.closed = True

    def _park(self, viewer: Connection, message: Message) -> None:
        self.stats.frames_parked += 1
        if not viewer.outbox.park(message):
            self.close_slow(viewer, "over its send bound")
            return
        if viewer.drain is None:
            viewer.drain = asyncio.get_running_loop().create_task(self._drain(viewer))

    async def _drain(self, viewer: Connection) -> None:
        """The only per-viewer task, and only for a viewer that was set aside."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.slow_after
        try:
            while (viewer.outbox or viewer.paused) and not viewer.closed:
                try:
                    async with asyncio.timeout_at(deadline):
                        await viewer.socket.wait_writable()
                except TimeoutError:
                    self.close_slow(viewer, f"paused over {self.slow_after}s")
                    return
                viewer.paused = False
                while not viewer.closed:
                    message = viewer.outbox.take()
                    if message is None:
                        break
                    result = viewer.socket.try_write(message)
                    if result is SendResult.SENT:
                        self.stats.frames_sent += 1
                    elif result is SendResult.SENT_PAUSED:
                        self.stats.frames_sent += 1
                        viewer.paused = True
                    elif result is SendResult.WOULD_WAIT:
                        viewer.outbox.put_back(message)
                        break
                    else:
                        self._gone(viewer)
                        return
                if not viewer.outbox:
                    deadline = loop.time() + self.slow_after  # caught up: a new stall starts anew
        finally:
            viewer.drain = None

    def close_slow(self, viewer: Connection, why: str) -> None:
        if viewer.closed:
            return
        viewer.closed = True
        viewer.close_reason = why
        self.stats.slow_closed += 1
        logger.info("closing a slow viewer of show %s: %s", viewer.show_id, why)
        if viewer.drain is not None and viewer.drain is not asyncio.current_task():
            viewer.drain.cancel()
        viewer.socket.close_slow(CLOSE_SLOW, self.close_grace)

    async def aclose(self) -> None:
        """Stop every pump and drain task (shutdown)."""
        tasks = [c.pump for c in self.channels.values() if c.pump is not None] + list(self._leaving.values())
        tasks += [v.drain for c in self.channels.values() for v in c.viewers if v.drain is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
