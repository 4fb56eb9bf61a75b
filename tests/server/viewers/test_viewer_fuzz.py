"""The viewer protocol under hypothesis-generated frame sequences, against a real node.

Each example opens a connection (fresh, or resuming from a random ``resume_from`` with the
right or a wrong ``epoch``), sends a random mix of garbage and valid frames, makes the host
publish events in between and reconnects at random. Whatever it sends:
* every frame that is not a valid request gets an error frame, every request an answer, and
  the connection stays (the client holds a viewer token in half the examples);
* the show's drop, still a draft, is untouched: no reserve or release can reach its stock;
* ``seq`` only ever moves forward by one, except where the client itself asked to go back
  (a ``hello`` with ``resume_from``) or got a welcome that sets its position;
* a bystander on the same show gets every event once, in order, and no error;
* the node stays ready.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from broadcast.feed import Feed
from server.ops.local_redis import LocalRedis
from server.shows.catalog import Catalog, DropInfo, Show
from server.viewers import protocol as p
from server.viewers.tokens import mint
from stock import StockEngine
from tests.support.servers import VIEWER_SECRET, Node
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]
Action = tuple[str, Any]
RIGHT = "<the stream's epoch>"

epochs = st.sampled_from([RIGHT, "other", None])
refs = st.from_regex(r"[A-Za-z0-9]{1,8}", fullmatch=True)
garbage = st.one_of(
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.from_regex(r'\{"type":.{0,60}\}'),
    st.dictionaries(
        st.sampled_from(["type", "ref", "drop", "qty", "hold", "resume_from", "epoch"]),
        st.integers() | st.text(max_size=12) | st.none(),
    ).map(json.dumps),
)
valid = st.one_of(
    st.builds(lambda r: {"type": "ping", "ref": r}, refs),
    st.builds(lambda: {"type": "hello"}),
    st.builds(lambda n, e: {"type": "hello", "resume_from": n, "epoch": e}, st.integers(0, 60), epochs),
    st.builds(lambda r, q: {"type": "reserve", "ref": r, "drop": "d1", "qty": q}, refs, st.integers(1, 3)),
    st.builds(lambda r: {"type": "release", "ref": r, "hold": "d1.1"}, refs),
    st.builds(lambda r: {"type": "waitlist", "ref": r, "drop": "d1"}, refs),
)
actions = st.lists(
    st.one_of(
        st.tuples(st.just("garbage"), garbage),
        st.tuples(st.just("frame"), valid),
        st.tuples(st.just("publish"), st.none()),
        st.tuples(st.just("reconnect"), st.tuples(st.none() | st.integers(0, 60), epochs)),
    ),
    min_size=3,
    max_size=25,
)


@dataclass
class Segment:
    """One connection of the fuzzing client, and what it was sent."""

    viewer: Viewer
    resumed_from: int | None  # the resume point it connected with (right epoch), else None
    bad: int = 0  # frames that are no valid request: each must get an error
    requests: int = 0  # reserve, release, waitlist: each must get an answer (an error without a token)
    rewinds: int = 0  # hellos with resume_from: each may move seq back once
    frames: list[dict[str, Any]] = field(default_factory=list)


def _is_request(text: str) -> bool:
    try:
        p.client_decoder.decode(text.encode())
    except msgspec.DecodeError:
        return False
    return True


async def _sync(viewer: Viewer, ref: str, into: list[dict[str, Any]]) -> None:
    """Read up to the pong of a fresh ping: every answer to what was sent before is in."""
    await viewer.send({"type": "ping", "ref": ref})
    while True:
        frame = await viewer.next(timeout=10)
        into.append(frame)
        if frame["type"] == "pong" and frame.get("ref") == ref:
            return


def _reached(frame: dict[str, Any], seq: int) -> bool:
    """Whether ``frame`` brings its viewer up to ``seq``: the event itself, or a (reset) welcome
    whose snapshot already covers it (a resume that crosses the publish ends that way)."""
    if frame["type"] == "welcome":
        return int(frame.get("seq", -1)) >= seq
    return frame.get("seq") == seq


async def _read_to(viewer: Viewer, seq: int, into: list[dict[str, Any]]) -> None:
    while not any(_reached(f, seq) for f in into):
        into.append(await viewer.next(timeout=10))


def _check_seqs(frames: list[dict[str, Any]], start: int | None, rewinds: int) -> None:
    pos = start
    for frame in frames:
        if "seq" not in frame:
            continue
        if frame["type"] == "welcome":
            pos = frame["seq"]  # a welcome sets the position (a reset may move it back)
        elif pos is None or frame["seq"] != pos + 1:
            rewinds -= 1
            assert rewinds >= 0, f"seq jumped to {frame['seq']} after {pos}: {[f.get('seq') for f in frames]}"
            pos = frame["seq"]
        else:
            pos = frame["seq"]


ANSWERS = frozenset({"error", "rejected", "reserved", "released", "waitlisted"})


async def _example(
    node: Node, redis_url: str, steps: list[Action], first: tuple[int | None, str | None], token: str
) -> None:
    redis = Redis.from_url(redis_url)
    feed = Feed(redis)
    try:
        last, epoch = await feed.position("s1")

        async def publish() -> int:
            body = msgspec.json.encode({"show": "s1", "title": "t", "state": "live"})
            return (await feed.publish("s1", "show", body)).seq

        async def open_segment(resume: tuple[int | None, str | None]) -> Segment:
            after, which = resume
            params = [f"token={token}"] if token else []
            if after is not None:
                params.append(f"resume_from={after}")
                if which:
                    params.append(f"epoch={epoch if which == RIGHT else which}")
            viewer = await Viewer.connect(node.ws("s1", "&".join(params)))
            current, _ = await feed.position("s1")
            right = after is not None and which == RIGHT and after <= current
            return Segment(viewer, after if right else None)

        bystander = await Viewer.connect(node.ws("s1"))
        seen: list[dict[str, Any]] = [await bystander.next()]
        segments = [await open_segment(first)]
        for n, (kind, arg) in enumerate(steps):
            seg = segments[-1]
            if kind == "garbage":
                await seg.viewer.send(arg)
                seg.bad += not _is_request(arg)
            elif kind == "frame":
                if arg["type"] == "hello" and "epoch" in arg:
                    arg = arg | {"epoch": epoch if arg["epoch"] == RIGHT else arg["epoch"]}
                    seg.rewinds += 1
                seg.requests += arg["type"] in ("reserve", "release", "waitlist")
                await seg.viewer.send(arg)
            elif kind == "publish":
                last = await publish()
            else:
                await _sync(seg.viewer, f"sync{n}", seg.frames)
                await seg.viewer.close()
                segments.append(await open_segment(arg))
        last = await publish()  # every connection must reach this one
        seg = segments[-1]
        await _sync(seg.viewer, "end", seg.frames)
        await _read_to(seg.viewer, last, seg.frames)
        await _read_to(bystander, last, seen)
        for seg in segments:
            errors = sum(1 for f in seg.frames if f["type"] == "error")
            assert errors >= seg.bad + (0 if token else seg.requests), seg.frames
            answers = sum(1 for f in seg.frames if f["type"] in ANSWERS)
            assert answers >= seg.bad + seg.requests, seg.frames
            _check_seqs(seg.frames, seg.resumed_from, seg.rewinds)
        assert not any(f["type"] == "error" for f in seen)
        _check_seqs(seen, None, 0)
        counters = await StockEngine(redis).counters("d1")
        assert (counters.available, counters.held, counters.sold) == (5, 0, 0), counters
        await asyncio.gather(segments[-1].viewer.close(), bystander.close())
    finally:
        await redis.aclose()


def test_random_frame_sequences_and_reconnects(nodes: NodeFactory, redis_server: LocalRedis) -> None:
    async def setup() -> None:
        redis = Redis.from_url(redis_server.url)
        catalog = Catalog(redis, StockEngine(redis))
        await catalog.put_show(Show(show_id="s1", title="Fuzz"))
        await catalog.put_drop(DropInfo(drop_id="d1", show_id="s1", sku="SKU-1", title="Sneaker", total=5))
        await Feed(redis).start("s1")
        await redis.aclose()

    node = nodes()
    asyncio.run(setup())

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(steps=actions, first=st.tuples(st.none() | st.integers(0, 60), epochs), with_token=st.booleans())
    def run(steps: list[Action], first: tuple[int | None, str | None], with_token: bool) -> None:
        token = mint(VIEWER_SECRET.encode(), "s1", "fuzzer") if with_token else ""
        asyncio.run(_example(node, redis_server.url, steps, first, token))  # a fresh loop per example

    run()
    with urllib.request.urlopen(node.http + "/readyz", timeout=5) as response:
        assert response.status == 200
