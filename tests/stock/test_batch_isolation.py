"""One bad request never fails the others: ids are checked at the edge (a viewer token naming an id
the engine refuses is refused when the viewer connects), and the engine answers a malformed entry
of a batch alone, ``invalid``, while the rest of the batch is served. Also: rejected answers are
kept for a bounded time only (successful ones for the drop's life)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import pytest
from redis.asyncio import Redis
from websockets.exceptions import InvalidStatus

from server.shows.catalog import Catalog, DropInfo, Show
from stock import ReserveBatcher, StockEngine
from stock.keys import REJECT_TTL_SECONDS, drop_keys
from stock.types import Counters, DropConfig, RejectReason, ReserveRequest
from tests.support.invariants import assert_drop_invariants
from tests.support.servers import VIEWER_SECRET, Node
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]


async def live_drop(engine: StockEngine, total: int = 10) -> None:
    await engine.define(DropConfig("d1", "s1", total=total))
    await engine.open("d1")


async def test_a_malformed_entry_is_answered_alone_and_its_batch_is_served(redis: Redis) -> None:
    engine = StockEngine(redis)
    await live_drop(engine)
    requests = [
        ReserveRequest("r1", "alice", 1),
        ReserveRequest("r2", "a@b", 1),  # an integrator's id the engine does not accept
        ReserveRequest("r|3", "carol", 1),  # a request id with our own separator
        ReserveRequest("r4", "dave", 0),  # no such quantity
        ReserveRequest("r5", "erin", 2),
    ]
    answers = await engine.reserve_many("d1", requests)
    assert [(a.request_id, a.reason, a.hold_id) for a in answers] == [
        ("r1", None, "d1.1"),
        ("r2", RejectReason.INVALID, None),
        ("r|3", RejectReason.INVALID, None),
        ("r4", RejectReason.INVALID, None),
        ("r5", None, "d1.2"),
    ]
    assert all(a.counters == Counters(10, 7, 3, 0, 0) for a in answers)
    holds = await engine.holds("d1")
    assert [(h.customer, h.qty) for h in holds] == [("alice", 1), ("erin", 2)]  # nothing of the bad ones
    await assert_drop_invariants(engine, "d1")


async def test_the_batcher_serves_everyone_batched_with_a_bad_request(redis: Redis) -> None:
    engine = StockEngine(redis)
    await live_drop(engine, total=600)
    batcher = ReserveBatcher(engine)
    customers = [f"viewer-{i}" for i in range(511)]
    customers.insert(200, "a@b")
    answers = await asyncio.gather(*(batcher.reserve("d1", c, 1, f"req-{i}") for i, c in enumerate(customers)))
    assert [a.reason for a in answers].count(RejectReason.INVALID) == 1
    assert answers[200].reason is RejectReason.INVALID
    assert sum(a.ok for a in answers) == 511 and (await engine.counters("d1")).held == 511
    await batcher.aclose()


def integrator_token(viewer: str, show: str = "s1") -> str:
    """A token made by an integrator's own code with the shared secret (not ``tokens.mint``)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    payload = b64(json.dumps({"show": show, "viewer": viewer, "exp": int(time.time()) + 600}).encode())
    signature = b64(hmac.new(VIEWER_SECRET.encode(), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}"


async def test_a_token_naming_an_invalid_viewer_id_is_refused_at_connect(nodes: NodeFactory, redis: Redis) -> None:
    engine = StockEngine(redis)
    await live_drop(engine)
    catalog = Catalog(redis, engine)
    await catalog.put_show(Show(show_id="s1", title="Friday"))
    await catalog.put_drop(DropInfo(drop_id="d1", show_id="s1", sku="SKU-1", title="Sneaker", total=10))
    node = nodes()
    good = await Viewer.connect(node.ws("s1", "token=" + integrator_token("v-1")))
    assert (await good.next())["can_reserve"]
    with pytest.raises(InvalidStatus) as refused:  # refused in the handshake, before any frame
        await Viewer.connect(node.ws("s1", "token=" + integrator_token("a@b")))
    response = refused.value.response
    assert response.status_code == 403
    problem = json.loads(response.body or b"")
    assert problem["code"] == "forbidden_token" and "invalid viewer id" in problem["detail"], problem
    await good.close()


async def test_rejected_answers_are_forgotten_after_a_bounded_time(redis: Redis) -> None:
    engine = StockEngine(redis)
    await engine.define(DropConfig("d1", "s1", total=1))
    early = await engine.reserve("d1", "alice", 1, "r1")  # the drop is not live yet
    assert early.reason is RejectReason.NOT_LIVE
    await engine.open("d1")
    retry = await engine.reserve("d1", "alice", 1, "r1")
    assert retry.duplicate and retry.reason is RejectReason.NOT_LIVE  # within the window: the first answer
    granted = await engine.reserve("d1", "bob", 1, "r2")
    assert granted.ok
    k = drop_keys("d1")
    ttls = [await redis.pttl(key) for key in (k.rejects0, k.rejects1) if await redis.exists(key)]
    assert ttls and all(0 < ttl <= 2 * REJECT_TTL_SECONDS * 1000 for ttl in ttls)

    # Two windows later (by the drop's clock) the rejection is gone; the grant is not.
    await engine.fast_forward("d1", 2 * REJECT_TTL_SECONDS + 1)
    again = await engine.reserve("d1", "alice", 1, "r1")
    assert not again.duplicate and again.ok  # a new attempt (bob's hold expired meanwhile)
    still = await engine.reserve("d1", "bob", 1, "r2")
    assert still.duplicate and still.hold_id == granted.hold_id
    assert sum([await redis.hlen(k.rejects0), await redis.hlen(k.rejects1)]) == 0
