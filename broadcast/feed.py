"""A show's ordered event stream in Redis: the cross-node bus for what viewers must not miss.

Pub/Sub is at-most-once, so events that carry a ``seq`` (a drop launched or ended, the show
ended) go to a Redis stream whose entry ids *are* the seqs (``<seq>-0``): strictly increasing,
the same on every node, and a resume is one XRANGE. The ``epoch`` names one life of the stream:
if Redis loses it, the next publish starts a new epoch, and viewers who resume with the old one
are told to reset (Centrifugo's offset + epoch). Each node tails the streams of the shows it
has viewers for with XREAD BLOCK.
"""

from __future__ import annotations

import secrets
from typing import Any, Final, NamedTuple

from broadcast.keys import show_tag
from broadcast.scripts import lua_source

# Entries kept per show. A resume further back than this gets a fresh welcome ("reset").
RETENTION: Final = 2000
# A resume of more than this many events is answered with a reset instead (a welcome is
# smaller and as good); Centrifugo caps recovery at 300 for the same reason.
MAX_RECOVERY: Final = 300


class FeedEvent(NamedTuple):
    seq: int
    kind: str
    body: bytes  # a JSON object without "type" and "seq"


class Published(NamedTuple):
    seq: int
    epoch: str
    fresh: bool


class ShowKeys(NamedTuple):
    seq: str
    epoch: str
    events: str
    published: str


def show_keys(show_id: str) -> ShowKeys:
    base = show_tag(show_id)
    return ShowKeys(base + "seq", base + "epoch", base + "events", base + "published")


def frame(event: FeedEvent) -> bytes:
    """The viewer frame of a stream event: ``{"type":kind,"seq":n,...body}``, built once per
    node by splicing, without decoding the body."""
    head = b'{"type":"%s","seq":%d' % (event.kind.encode(), event.seq)
    return head + (b"}" if event.body == b"{}" else b"," + event.body[1:])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(entries: list[Any]) -> list[FeedEvent]:
    events = []
    for entry_id, fields in entries:
        seq = int(_text(entry_id).split("-", 1)[0])
        kind = fields.get(b"k", fields.get("k"))
        body = fields.get(b"b", fields.get("b"))
        events.append(FeedEvent(seq, _text(kind), body if isinstance(body, bytes) else str(body).encode()))
    return events


class Feed:
    """Publish to and read from show streams on one Redis client (standalone or Cluster)."""

    def __init__(self, redis: Any, blocking_redis: Any = None) -> None:
        self.redis = redis
        self.blocking_redis = blocking_redis if blocking_redis is not None else redis  # for XREAD BLOCK
        source = lua_source("broadcast", "publish")
        self._publish = redis.register_script(source)

    async def publish(
        self, show_id: str, kind: str, body: bytes, dedupe: str = "", *, starts_run: bool = False, per_run: bool = False
    ) -> Published:
        """Append an event; with ``dedupe``, a second publish of the same key (another node's
        sweeper seeing the same drop end) returns the first one's seq and appends nothing.

        ``starts_run`` marks an event that begins a new run of the show (it went live);
        ``per_run`` makes ``dedupe`` hold within the current run only, so the same show can
        end once per run (ended, restarted, ended again) instead of once ever."""
        run = "new" if starts_run else "scoped" if per_run else ""
        result = await self._publish(
            keys=show_keys(show_id), args=[kind, body, dedupe, secrets.token_hex(6), RETENTION, run]
        )
        return Published(int(result[0]), _text(result[1]), bool(result[2]))

    @staticmethod
    def decode(entries: list[Any]) -> list[FeedEvent]:
        """The events of raw stream entries (as XREAD/XRANGE return them)."""
        return _decode(entries)

    async def position(self, show_id: str) -> tuple[int, str]:
        """(last seq, epoch) of a show; epoch '' if nothing was ever published."""
        k = show_keys(show_id)
        seq, epoch = await self.redis.mget(k.seq, k.epoch)  # one slot: same hash tag
        return int(seq or 0), _text(epoch) if epoch else ""

    async def start(self, show_id: str) -> tuple[int, str]:
        """(last seq, epoch), giving the show its epoch now if it has none yet: a viewer who
        connected before the first event must be able to resume with the epoch it was told."""
        await self.redis.set(show_keys(show_id).epoch, secrets.token_hex(6), nx=True)
        return await self.position(show_id)

    async def since(self, show_id: str, seq: int, limit: int = MAX_RECOVERY) -> list[FeedEvent] | None:
        """Events after ``seq``, in order, or None if some of them are no longer retained
        (or there are more than ``limit``): the viewer must reset."""
        k = show_keys(show_id)
        entries = await self.redis.xrange(k.events, min=f"({seq}-0", max="+", count=limit + 1)
        events = _decode(entries)
        last, _ = await self.position(show_id)
        if len(events) > limit:
            return None
        if last > seq and (not events or events[0].seq != seq + 1):
            return None
        return events

    async def read(self, show_id: str, after: int, block_ms: int) -> list[FeedEvent]:
        """Events after ``after``, waiting up to ``block_ms`` for one (XREAD BLOCK)."""
        k = show_keys(show_id)
        reply = await self.blocking_redis.xread({k.events: f"{after}-0"}, count=500, block=block_ms)
        if not reply:
            return []
        if isinstance(reply, dict):  # RESP3
            entries = next(iter(reply.values()))[0]
        else:
            entries = reply[0][1]
        return _decode(entries)
