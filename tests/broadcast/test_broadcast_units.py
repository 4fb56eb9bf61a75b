"""The hub's pure parts, without a network: outbox conflation and bounds, framing, the feed's
frame splice, the hub's slow-viewer policy against fake sockets."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.frames import Frame
from websockets.streams import StreamReader

from broadcast.feed import FeedEvent, frame
from broadcast.hub import CLOSE_SLOW, Hub
from broadcast.outbox import Outbox
from broadcast.transport import Message, SendResult, frame_text
from tests.support.util import scaled


def test_outbox_keeps_order_and_conflates_in_place() -> None:
    box: Outbox[Message] = Outbox(limit=1000)
    box.park(Message(b"a"))
    box.park(Message(b"stock-1", key="stock:d1"))
    box.park(Message(b"b"))
    box.park(Message(b"stock-2", key="stock:d1"))
    assert [box.take().payload for _ in range(3)] == [b"a", b"stock-2", b"b"]  # type: ignore[union-attr]
    assert box.take() is None and box.replaced == 1 and box.size == 0


def test_outbox_reports_when_over_its_bound() -> None:
    box: Outbox[Message] = Outbox(limit=10)
    assert box.park(Message(b"12345"))
    assert box.park(Message(b"12345"))
    assert not box.park(Message(b"1"))
    # Conflated frames do not grow it.
    small: Outbox[Message] = Outbox(limit=10)
    for i in range(100):
        assert small.park(Message(b"%05d" % i, key="k"))
    assert len(small) == 1 and small.size == 5


def test_put_back_goes_first_unless_a_newer_frame_with_its_key_arrived() -> None:
    box: Outbox[Message] = Outbox(limit=100)
    box.park(Message(b"x"))
    box.put_back(Message(b"first"))
    assert box.take().payload == b"first"  # type: ignore[union-attr]
    box.park(Message(b"new", key="k"))
    box.put_back(Message(b"old", key="k"))
    assert [m.payload for m in (box.take(), box.take())] == [b"x", b"new"]  # type: ignore[union-attr]


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 100_000])
async def test_frame_text_is_a_valid_server_frame(size: int) -> None:
    payload = b"x" * size
    reader = StreamReader()
    reader.feed_data(frame_text(payload))
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
        raise AssertionError("incomplete frame")
    except StopIteration as done:
        parsed: Frame = done.value
    assert parsed.fin and parsed.data == payload and parsed.opcode.value == 1


def test_feed_frames_splice_type_and_seq() -> None:
    body = json.dumps({"drop": "d1", "reason": "host"}).encode()
    assert json.loads(frame(FeedEvent(7, "drop_ended", body))) == {
        "type": "drop_ended",
        "seq": 7,
        "drop": "d1",
        "reason": "host",
    }
    assert json.loads(frame(FeedEvent(8, "show_ended", b"{}"))) == {"type": "show_ended", "seq": 8}


class FakeSocket:
    """Accepts ``capacity`` writes, then reports WOULD_WAIT until drained."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.written: list[bytes] = []
        self.writable = asyncio.Event()
        self.closed_with: int | None = None

    def try_write(self, message: Message) -> SendResult:
        if self.closed_with is not None:
            return SendResult.GONE
        if len(self.written) >= self.capacity and not self.writable.is_set():
            return SendResult.WOULD_WAIT
        self.written.append(message.payload)
        return SendResult.SENT

    async def wait_writable(self) -> None:
        await self.writable.wait()

    @property
    def buffered(self) -> int:
        return 0

    def close_slow(self, code: int, grace: float) -> None:
        self.closed_with = code


async def test_hub_sets_aside_a_paused_viewer_without_slowing_others() -> None:
    hub = Hub(outbox_limit=10_000, slow_after=5.0, yield_every=2)
    slow, fast = FakeSocket(capacity=1), FakeSocket(capacity=10_000)
    v_slow = await hub.join("s", slow, None)
    await hub.join("s", fast, None)
    for i in range(5):
        hub.publish("s", Message(b"e%d" % i))
    hub.publish("s", Message(b"stock-a", key="stock"))
    hub.publish("s", Message(b"stock-b", key="stock"))  # replaces stock-a before it went out
    while hub.channels["s"].pump is not None:
        await asyncio.sleep(0)
    assert fast.written == [b"e0", b"e1", b"e2", b"e3", b"e4", b"stock-b"]
    assert slow.written == [b"e0"] and len(v_slow.outbox) == 5 and v_slow.drain is not None
    slow.writable.set()
    while v_slow.drain is not None:
        await asyncio.sleep(0)
    assert slow.written == fast.written
    assert hub.stats.slow_set_aside == 1


async def test_hub_closes_a_viewer_over_its_bound_or_paused_too_long() -> None:
    hub = Hub(outbox_limit=20, slow_after=0.05)
    over, paused = FakeSocket(capacity=0), FakeSocket(capacity=0)
    v_over = await hub.join("s", over, None)
    hub.deliver(v_over, Message(b"x" * 30))
    assert over.closed_with == CLOSE_SLOW and v_over.closed
    v_paused = await hub.join("s", paused, None)
    hub.deliver(v_paused, Message(b"tiny"))
    # Wait for the close itself (the hub's slow_after timer), not for a guessed duration.
    async with asyncio.timeout(scaled(5)):
        while paused.closed_with is None:
            await asyncio.sleep(0.01)
    assert paused.closed_with == CLOSE_SLOW and hub.stats.slow_closed == 2


async def test_first_and_last_viewer_subscribe_and_roll_back() -> None:
    calls: list[str] = []
    fail = True

    async def on_first(show: str) -> None:
        calls.append(f"+{show}")
        if fail:
            raise RuntimeError("redis down")

    async def on_last(show: str) -> None:
        calls.append(f"-{show}")

    hub = Hub(on_first=on_first, on_last=on_last)
    with pytest.raises(RuntimeError):
        await hub.join("s", FakeSocket(1), None)
    assert "s" not in hub.channels
    fail = False
    viewers = await asyncio.gather(*(hub.join("s", FakeSocket(1), f"c{i}") for i in range(3)))
    assert calls == ["+s", "+s"] and hub.viewer_count("s") == 3
    for v in viewers:
        await hub.leave(v)
    assert calls == ["+s", "+s", "-s"] and not hub.channels and not hub.by_customer


async def test_show_locks_live_only_while_a_join_or_leave_needs_them() -> None:
    """One lock per show name ever tried grew without bound (unknown shows included)."""

    async def on_first(show: str) -> None:
        await asyncio.sleep(0)
        if show.startswith("unknown"):
            raise LookupError(show)

    hub = Hub(on_first=on_first)
    for i in range(1000):
        with pytest.raises(LookupError):
            await hub.join(f"unknown-{i}", FakeSocket(1), None)
    viewers = await asyncio.gather(*(hub.join("s", FakeSocket(1), None) for _ in range(5)))
    assert hub._locks == {}
    await asyncio.gather(*(hub.leave(v) for v in viewers))
    assert hub._locks == {} and hub.channels == {}


class PausingSocket(FakeSocket):
    """Takes every write, but the first one fills the transport: it pauses for good."""

    def try_write(self, message: Message) -> SendResult:
        if self.closed_with is not None:
            return SendResult.GONE
        if self.written:
            return SendResult.WOULD_WAIT
        self.written.append(message.payload)
        return SendResult.SENT_PAUSED


async def test_a_viewer_paused_by_its_last_write_is_closed_with_nothing_parked() -> None:
    hub = Hub(slow_after=0.05)
    stalled = PausingSocket(capacity=0)
    viewer = await hub.join("s", stalled, None)
    hub.deliver(viewer, Message(b"the last frame of a burst"))
    assert not viewer.outbox and viewer.drain is not None  # the slow-viewer clock runs
    await asyncio.wait_for(viewer.drain, 5)
    assert stalled.closed_with == CLOSE_SLOW and viewer.closed


async def test_a_resuming_viewer_gets_missed_events_before_live_ones_and_none_twice() -> None:
    hub = Hub()
    socket = FakeSocket(capacity=1000)
    viewer = await hub.join("s", socket, None, resuming=True)
    for seq in (5, 6):  # the live pump, while the resume reads Redis
        hub.deliver(viewer, Message(b"live-%d" % seq, seq=seq))
    hub.deliver(viewer, Message(b"stock", key="stock:d1"))
    assert socket.written == []
    missed = [Message(b"live-%d" % seq, seq=seq) for seq in (3, 4, 5)]
    hub.end_resume(viewer, missed, after=2)
    assert socket.written == [b"live-3", b"live-4", b"live-5", b"live-6", b"stock"]
    hub.deliver(viewer, Message(b"live-6", seq=6))  # queued before the replay covered it
    hub.deliver(viewer, Message(b"welcome-reset", seq=1, floor=True))  # a new epoch starts over
    hub.deliver(viewer, Message(b"live-2", seq=2))
    assert socket.written[5:] == [b"welcome-reset", b"live-2"]


async def test_a_frame_that_is_not_bulk_overtakes_a_bulk_broadcast_in_progress() -> None:
    """A drop published while a chat frame (bulk) goes out to a large audience reaches every viewer
    before the rest of the chat frame does; every viewer still gets both, and queued bulk frames
    wait behind it."""
    hub = Hub(yield_every=2)
    sockets = [FakeSocket(capacity=100) for _ in range(8)]
    for s in sockets:
        await hub.join("s1", s, None)
    hub.publish("s1", Message(b'{"type":"chat","n":1}', key="chat", bulk=True))
    hub.publish("s1", Message(b'{"type":"chat","n":2}', bulk=True))
    await asyncio.sleep(0)  # the pump starts the first chat frame and yields after 2 viewers
    hub.publish("s1", Message(b'{"type":"drop","seq":1}', seq=1))
    for _ in range(50):
        await asyncio.sleep(0)
    firsts = [json.loads(s.written[0])["type"] for s in sockets]
    assert firsts[:2] == ["chat", "chat"] and firsts[2:] == ["drop"] * 6
    for s in sockets:
        assert sorted(json.loads(x)["type"] for x in s.written) == ["chat", "chat", "drop"]
        assert [json.loads(x).get("n") for x in s.written if b"chat" in x] == [1, 2]


async def test_a_slow_unsubscribe_never_holds_up_a_join_of_the_same_show() -> None:
    """The show's last viewer leaving runs ``on_last`` outside the show's lock: a viewer who
    reconnects meanwhile joins at once, and the moot unsubscribe is cancelled (it once held the
    lock across a 2 s blocking read)."""
    calls: list[str] = []
    unsubscribing = asyncio.Event()

    async def on_first(show: str) -> None:
        calls.append("+")

    async def on_last(show: str) -> None:
        calls.append("-")
        unsubscribing.set()
        try:
            await asyncio.Event().wait()  # slow: never done by itself
        except asyncio.CancelledError:
            calls.append("cancelled")
            raise

    hub = Hub(on_first=on_first, on_last=on_last)
    first = await hub.join("s", FakeSocket(1), "c")
    leaving = asyncio.create_task(hub.leave(first))
    await unsubscribing.wait()
    async with asyncio.timeout(scaled(1)):
        again = await hub.join("s", FakeSocket(1), "c")
        await leaving  # the leave ends too, its unsubscribe cancelled
    assert calls == ["+", "-", "cancelled", "+"]
    assert hub.viewer_count("s") == 1 and hub.by_customer["c"] == {again} and hub._leaving == {}
