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
import logging
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from broadcast.outbox import Outbox
from broadcast.transport import Message, SendResult, ViewerSocket

logger = logging.getLogger("livedrop.hub")

CLOSE_SLOW = 1013

ShowCallback = Callable[[str], Awaitable[None]]


async def _nothing(show_id: str) -> None:
    return None


@dataclass(eq=False)
class Viewer:
    """One local viewer connection. ``customer`` is None for a viewer that may only watch."""

    socket: ViewerSocket
    show_id: str
    customer: str | None
    outbox: Outbox[Message]
    closed: bool = False
    audience: bool = True  # False for a host's panel: it gets every broadcast, is not counted
    drain: asyncio.Task[None] | None = None
    close_reason: str = ""


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


@dataclass(eq=False)
class Channel:
    show_id: str
    viewers: dict[Viewer, None] = field(default_factory=dict)  # an ordered set
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
        self.by_customer: defaultdict[str, set[Viewer]] = defaultdict(set)
        self.stats = HubStats()
        self.conflated_closed = 0
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    # -- membership ---------------------------------------------------------------------------

    async def join(self, show_id: str, socket: ViewerSocket, customer: str | None, audience: bool = True) -> Viewer:
        """Add a viewer. On the show's first local viewer ``on_first`` runs (under the show's
        lock, so concurrent joins wait for it); if it fails nothing is left subscribed."""
        viewer = Viewer(socket, show_id, customer, Outbox(self.outbox_limit), audience=audience)
        async with self._locks[show_id]:
            channel = self.channels.get(show_id)
            if channel is None:
                await self.on_first(show_id)  # raises: no channel, the caller closes the socket
                channel = self.channels[show_id] = Channel(show_id)
            channel.viewers[viewer] = None
        if customer is not None:
            self.by_customer[customer].add(viewer)
        return viewer

    async def leave(self, viewer: Viewer) -> None:
        """Remove a viewer; on the show's last local viewer ``on_last`` runs."""
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
        async with self._locks[viewer.show_id]:
            channel = self.channels.get(viewer.show_id)
            if channel is None:
                return
            channel.viewers.pop(viewer, None)
            if not channel.viewers:
                del self.channels[viewer.show_id]
                if channel.pump is not None:
                    channel.pump.cancel()
                try:
                    await self.on_last(viewer.show_id)
                except Exception:
                    logger.exception("unsubscribing from show %s failed", viewer.show_id)

    def viewer_count(self, show_id: str) -> int:
        channel = self.channels.get(show_id)
        return sum(1 for v in channel.viewers if v.audience) if channel else 0

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
        channel.queue.append(message)
        if channel.pump is None:
            channel.pump = asyncio.get_running_loop().create_task(self._pump(channel), name=f"pump:{show_id}")

    async def _pump(self, channel: Channel) -> None:
        try:
            while channel.queue:
                message = channel.queue.popleft()
                self.stats.broadcasts += 1
                sent = 0
                for viewer in list(channel.viewers):
                    self.deliver(viewer, message)
                    sent += 1
                    if sent % self.yield_every == 0:
                        await asyncio.sleep(0)
        finally:
            channel.pump = None

    def send_private(self, customer: str, message: Message) -> int:
        """Send to every local connection of one customer; returns how many there were."""
        viewers = self.by_customer.get(customer, ())
        for viewer in list(viewers):
            self.deliver(viewer, message)
        return len(viewers)

    def deliver(self, viewer: Viewer, message: Message) -> None:
        """Write now, or park behind what is already parked. Never awaits."""
        if viewer.closed:
            return
        if viewer.outbox:
            self._park(viewer, message)
            return
        result = viewer.socket.try_write(message)
        if result is SendResult.SENT:
            self.stats.frames_sent += 1
        elif result is SendResult.WOULD_WAIT:
            self.stats.slow_set_aside += 1
            self._park(viewer, message)
        else:
            self.stats.gone += 1
            viewer.closed = True

    def _park(self, viewer: Viewer, message: Message) -> None:
        self.stats.frames_parked += 1
        if not viewer.outbox.park(message):
            self.close_slow(viewer, "over its send bound")
            return
        if viewer.drain is None:
            viewer.drain = asyncio.get_running_loop().create_task(self._drain(viewer))

    async def _drain(self, viewer: Viewer) -> None:
        """The only per-viewer task, and only for a viewer that was set aside."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.slow_after
        try:
            while viewer.outbox and not viewer.closed:
                try:
                    async with asyncio.timeout_at(deadline):
                        await viewer.socket.wait_writable()
                except TimeoutError:
                    self.close_slow(viewer, f"paused over {self.slow_after}s")
                    return
                while not viewer.closed:
                    message = viewer.outbox.take()
                    if message is None:
                        break
                    result = viewer.socket.try_write(message)
                    if result is SendResult.SENT:
                        self.stats.frames_sent += 1
                    elif result is SendResult.WOULD_WAIT:
                        viewer.outbox.put_back(message)
                        break
                    else:
                        viewer.closed = True
                        return
        finally:
            viewer.drain = None

    def close_slow(self, viewer: Viewer, why: str) -> None:
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
        tasks = [c.pump for c in self.channels.values() if c.pump is not None]
        tasks += [v.drain for c in self.channels.values() for v in c.viewers if v.drain is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
