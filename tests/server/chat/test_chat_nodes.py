"""Chat end to end: real `livedrop serve` nodes on a real Redis, real WebSocket clients, the host
API over real HTTP. Two nodes wherever order or the reach of moderation is at stake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from server.chat import keys as ck
from server.shows.actions import HostActions
from tests.server.chat.conftest import chat_token
from tests.support.invariants import assert_drop_invariants
from tests.support.servers import Node
from tests.support.util import scaled
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]
HOST_TOKEN = "chat-host-token"
HOST_ENV = {"LIVEDROP_HOST_TOKENS": HOST_TOKEN}
Frame = dict[str, Any]


@pytest.fixture
async def two(nodes: NodeFactory, host: HostActions) -> AsyncIterator[tuple[Node, Node, httpx.AsyncClient]]:
    a, b = nodes(env=HOST_ENV), nodes(env=HOST_ENV)
    async with httpx.AsyncClient(base_url=a.http, headers={"Authorization": f"Bearer {HOST_TOKEN}"}) as api:
        yield a, b, api


async def joined(node: Node, viewer: str | None, **claims: str) -> Viewer:
    """A viewer connected, past its welcome and chat history."""
    v = await Viewer.connect(node.ws("s1"), chat_token(viewer, **claims) if viewer else None)
    assert (await v.next())["type"] == "welcome"
    assert (await v.until("chat_history"))["type"] == "chat_history"
    return v


async def chat_texts(v: Viewer, count: int, timeout: float = 10.0) -> list[Frame]:
    """The next ``count`` chat messages the viewer gets, in the order it gets them."""
    found: list[Frame] = []
    async with asyncio.timeout(scaled(timeout)):
        while len(found) < count:
            frame = await v.until("chat", timeout=timeout)
            found += frame["messages"]
    return found


async def message_where(v: Viewer, test: Callable[[Frame], bool], timeout: float = 10.0) -> Frame:
    """The first chat message from now on that passes ``test``."""
    async with asyncio.timeout(scaled(timeout)):
        while True:
            messages: list[Frame] = (await v.until("chat", timeout=timeout))["messages"]
            for message in messages:
                if test(message):
                    return message


async def answer(v: Viewer, ref: str, kinds: tuple[str, ...] = ("chat_ack", "chat_rejected")) -> Frame:
    async with asyncio.timeout(scaled(10)):
        while True:
            frame = await v.next(timeout=10)
            if frame["type"] in kinds and frame.get("ref") == ref:
                return frame


async def test_messages_reach_every_viewer_on_two_nodes_in_one_order(two: tuple[Node, Node, httpx.AsyncClient]) -> None:
    a, b, _ = two
    writers = [await joined(a if i % 2 else b, f"w{i}") for i in range(4)]
    readers = [await joined(a, None), await joined(b, None)]
    for round_ in range(5):
        await asyncio.gather(
            *(
                w.send({"type": "chat_send", "ref": f"r{round_}", "text": f"{i}:{round_}"})
                for i, w in enumerate(writers)
            )
        )
    seen = [await chat_texts(r, 20) for r in readers]
    assert [m["id"] for m in seen[0]] == [m["id"] for m in seen[1]]
    assert [m["n"] for m in seen[0]] == sorted(m["n"] for m in seen[0]) == list(range(1, 21))
    # Each writer's messages in the order it sent them, and every author named by its token.
    for i in range(4):
        assert [m["text"] for m in seen[0] if m["name"] == f"W{i}"] == [f"{i}:{r}" for r in range(5)]
    assert {m["uid"] for m in seen[0]} and all("w" not in m["uid"] for m in seen[0])  # a pseudonym, not the id
    # A viewer that resumes gets the history after its missed events.
    again = await Viewer.connect(
        a.ws("s1", f"resume_from={readers[0].frames[0]['seq']}&epoch={readers[0].frames[0]['epoch']}")
    )
    assert [m["id"] for m in (await again.until("chat_history"))["messages"]] == [m["id"] for m in seen[0]]
    await again.close()
    # A late joiner on either node gets the same history.
    late = await Viewer.connect(b.ws("s1"))
    await late.next()
    history = await late.until("chat_history")
    assert [m["id"] for m in history["messages"]] == [m["id"] for m in seen[0]]
    for v in [*writers, *readers, late]:
        await v.close()


async def test_delete_clear_and_pin_reach_both_nodes_and_the_history(
    two: tuple[Node, Node, httpx.AsyncClient], redis: Redis
) -> None:
    a, b, api = two
    alice, watcher_b = await joined(a, "alice"), await joined(b, None)
    await alice.send({"type": "chat_send", "ref": "m1", "text": "first"})
    await alice.send({"type": "chat_send", "ref": "m2", "text": "rude words"})
    first, rude = await chat_texts(watcher_b, 2)

    assert (await api.put("/api/shows/s1/chat/pin", json={"message": first["id"]})).status_code == 200
    assert (await watcher_b.until("chat_pin"))["message"]["id"] == first["id"]
    assert (await alice.until("chat_pin"))["message"]["text"] == "first"

    deleted = await api.delete(f"/api/shows/s1/chat/messages/{rude['id']}")
    assert deleted.json() == {"removed": 1}
    for v in (alice, watcher_b):
        assert (await v.until("chat_delete"))["ids"] == [rude["id"]]
    # Gone from the history, for a new viewer and in Redis.
    late = await joined(a, None)
    assert [m["text"] for m in late.frames[-1]["messages"]] == ["first"]
    assert await redis.xrange(ck.chat_keys("s1").log, min=rude["id"], max=rude["id"]) == []
    again = await api.delete(f"/api/shows/s1/chat/messages/{rude['id']}")
    assert again.status_code == 404 and again.headers["content-type"] == "application/problem+json"

    cleared = await api.post("/api/shows/s1/chat/clear", json={"reason": "fresh start"})
    assert cleared.json() == {"upto": 2}
    for v in (alice, watcher_b, late):
        assert (await v.until("chat_clear"))["upto"] == 2
    view = (await api.get("/api/shows/s1/chat")).json()
    assert view["messages"] == [] and view["pinned"]["id"] == first["id"]

    actions = [r["action"] for r in (await api.get("/api/shows/s1/chat/audit")).json()["records"]]
    assert actions == ["pin", "delete", "clear"]
    for v in (alice, watcher_b, late):
        await v.close()


async def test_timeout_and_ban_refuse_until_lifted_on_every_node(two: tuple[Node, Node, httpx.AsyncClient]) -> None:
    a, b, api = two
    troll_a, troll_b, watcher = await joined(a, "troll"), await joined(b, "troll"), await joined(b, None)
    await troll_a.send({"type": "chat_send", "ref": "t1", "text": "hi"})
    (message,) = await chat_texts(watcher, 1)

    timed = await api.post("/api/shows/s1/chat/timeouts", json={"target": {"message": message["id"]}, "seconds": 2})
    assert timed.status_code == 200
    until = timed.json()["until"]
    for v, ref in ((troll_a, "t2"), (troll_b, "t3")):
        await v.send({"type": "chat_send", "ref": ref, "text": "still here"})
        refused = await answer(v, ref)
        assert refused["code"] == "timeout" and refused["until"] == until
    await asyncio.sleep(max(0.0, (until - message["at"]) / 1000 - 0.9) + 0.2)
    async with asyncio.timeout(scaled(10)):  # the timeout ends by Redis' clock
        while True:
            await troll_b.send({"type": "chat_send", "ref": f"t4-{asyncio.get_running_loop().time()}", "text": "back"})
            got = await troll_b.until("chat_ack", timeout=5) if False else await _ack_or_refusal(troll_b)
            if got["type"] == "chat_ack":
                break
            assert got["code"] in ("timeout", "rate_limited")
            await asyncio.sleep(0.3)

    banned = await api.post("/api/shows/s1/chat/bans", json={"target": {"uid": message["uid"]}, "reason": "spam"})
    assert banned.json() == {"until": -1}
    await asyncio.sleep(0.2)
    await troll_a.send({"type": "chat_send", "ref": "t5", "text": "banned?"})
    assert (await answer(troll_a, "t5"))["code"] == "banned"
    # The connection stays, for watching and buying.
    await troll_a.send({"type": "ping", "ref": "p"})
    assert (await troll_a.until("pong"))["ref"] == "p"

    await api.post("/api/shows/s1/chat/unbans", json={"target": {"uid": message["uid"]}})
    await asyncio.sleep(1.1)  # the viewer's own rate bucket refills
    await troll_a.send({"type": "chat_send", "ref": "t6", "text": "sorry"})
    assert (await answer(troll_a, "t6"))["type"] == "chat_ack"

    bad = await api.post("/api/shows/s1/chat/timeouts", json={"target": {"uid": message["uid"]}, "seconds": 0})
    assert bad.status_code == 422
    unknown = await api.post("/api/shows/s1/chat/bans", json={"target": {"uid": "abcdef"}})
    assert unknown.status_code == 404
    actions = [r["action"] for r in (await api.get("/api/shows/s1/chat/audit")).json()["records"]]
    assert actions == ["timeout", "ban", "unban"]
    for v in (troll_a, troll_b, watcher):
        await v.close()


async def _ack_or_refusal(v: Viewer) -> Frame:
    while True:
        frame = await v.next(timeout=10)
        if frame["type"] in ("chat_ack", "chat_rejected"):
            return frame


async def test_a_ban_with_disconnect_closes_the_viewer_and_refuses_it(
    two: tuple[Node, Node, httpx.AsyncClient],
) -> None:
    a, b, api = two
    troll = await joined(b, "troll")
    await api.post(
        "/api/shows/s1/chat/bans", json={"target": {"viewer": "troll"}, "disconnect": True, "reason": "abuse"}
    )
    async with asyncio.timeout(scaled(5)):
        await troll.conn.wait_closed()
    assert troll.conn.close_code == 1008
    again = await Viewer.connect(a.ws("s1"), chat_token("troll"))
    assert (await again.next())["type"] == "welcome"
    async with asyncio.timeout(scaled(5)):
        await again.conn.wait_closed()
    assert again.conn.close_code == 1008


async def test_blocked_words_are_caught_after_normalisation(two: tuple[Node, Node, httpx.AsyncClient]) -> None:
    a, b, api = two
    mod_token = (await api.post("/api/shows/s1/chat/moderators", json={"viewer_id": "mod1", "name": "Mia"})).json()
    moderator = await Viewer.connect(b.ws("s1"), mod_token["token"])
    await moderator.next()
    you = (await moderator.until("chat_history"))["you"]
    assert you["role"] == "moderator" and you["name"] == "Mia"
    # A moderator's token is a viewer token: it cannot run the show.
    async with httpx.AsyncClient(base_url=a.http) as other:
        refused = await other.post("/api/shows/s1/end", headers={"Authorization": f"Bearer {mod_token['token']}"})
        assert refused.status_code == 401
    settings = {"blocked_words": ["spam", "buy followers"], "blocked_action": "hold"}
    assert (await api.put("/api/shows/s1/chat/settings", json=settings)).status_code == 200
    await moderator.until("chat_mode")
    viewer, watcher = await joined(a, "eve"), await joined(a, None)

    for i, text in enumerate(
        ["S.P.A.M", "\uff33\uff30\uff21\uff2d here", "\u0405\u0420\u0410\u041c", "b u y followers now"]
    ):
        await viewer.send({"type": "chat_send", "ref": f"h{i}", "text": text})
        assert (await answer(viewer, f"h{i}"))["status"] == "held"
        await asyncio.sleep(1.05)  # the viewer's rate: 1/s with a burst of 5
    held: list[Frame] = []
    while len(held) < 4:
        held += (await moderator.until("chat_held"))["added"]
    assert {h["word"] for h in held} == {"spam", "buy followers"}
    # Nobody else saw them; a word merely containing "spam" passes.
    await viewer.send({"type": "chat_send", "ref": "ok", "text": "spammers beware"})
    (shown,) = await chat_texts(watcher, 1)
    assert shown["text"] == "spammers beware"

    # A moderator approves one (it is posted as written) and rejects another.
    await moderator.send({"type": "chat_mod", "action": "approve", "held": held[0]["id"], "ref": "a1"})
    assert (await answer(moderator, "a1"))["status"] == "done"
    assert (await chat_texts(watcher, 1))[0]["text"] == "S.P.A.M"
    rejected = await api.delete(f"/api/shows/s1/chat/held/{held[1]['id']}")
    assert rejected.json()["status"] == "rejected"
    assert len((await api.get("/api/shows/s1/chat")).json()["held"]) == 2

    await api.put("/api/shows/s1/chat/settings", json={"blocked_action": "drop"})
    await asyncio.sleep(0.3)
    await viewer.send({"type": "chat_send", "ref": "d1", "text": "sp am"})
    assert (await answer(viewer, "d1"))["code"] == "blocked"
    # A viewer is no moderator.
    await viewer.send({"type": "chat_mod", "action": "clear", "ref": "x"})
    assert (await answer(viewer, "x"))["code"] == "forbidden"
    for v in (moderator, viewer, watcher):
        await v.close()


async def test_slow_mode_and_flood_hold_while_others_receive_on_time(two: tuple[Node, Node, httpx.AsyncClient]) -> None:
    a, b, api = two
    flooder, calm, reader = await joined(a, "flood"), await joined(b, "calm"), await joined(b, None)
    # A flood from one socket: answered locally, the connection stays.
    await asyncio.gather(*(flooder.send({"type": "chat_send", "ref": f"f{i}", "text": f"x{i}"}) for i in range(30)))
    answers = [await answer(flooder, f"f{i}") for i in range(30)]
    posted = [x for x in answers if x["type"] == "chat_ack"]
    refused = [x for x in answers if x["type"] == "chat_rejected"]
    assert 1 <= len(posted) <= 6 and {x["code"] for x in refused} == {"rate_limited"}
    assert all(x["retry_after"] > 0 for x in refused)
    # Meanwhile another viewer's message reaches the reader within a couple of ticks.
    started = asyncio.get_running_loop().time()
    await calm.send({"type": "chat_send", "ref": "c1", "text": "calm"})
    async with asyncio.timeout(scaled(5)):
        while True:
            frame = await reader.until("chat")
            if any(m["text"] == "calm" for m in frame["messages"]):
                break
    assert asyncio.get_running_loop().time() - started < scaled(1.0)

    await api.put("/api/shows/s1/chat/settings", json={"slow_seconds": 2})
    assert (await reader.until("chat_mode"))["settings"]["slow_seconds"] == 2
    await asyncio.sleep(2.1)
    await calm.send({"type": "chat_send", "ref": "c2", "text": "one"})
    assert (await answer(calm, "c2"))["type"] == "chat_ack"
    await calm.send({"type": "chat_send", "ref": "c3", "text": "two"})
    slow = await answer(calm, "c3")
    assert slow["code"] == "slow_mode" and 1000 < slow["retry_after"] <= 2000
    # Hosts are exempt.
    posted_by_host = await api.post("/api/shows/s1/chat/messages", json={"text": "welcome all!", "name": "Ana"})
    assert posted_by_host.status_code == 201
    host_line = await message_where(reader, lambda m: m["role"] == "host")
    assert host_line["name"] == "Ana" and host_line["text"] == "welcome all!"
    bad = await api.put("/api/shows/s1/chat/settings", json={"slow_seconds": 500})
    assert bad.status_code == 422
    for v in (flooder, calm, reader):
        await v.close()


async def test_sold_2_reserves_like_the_buy_button_and_is_idempotent(
    two: tuple[Node, Node, httpx.AsyncClient], host: HostActions
) -> None:
    a, b, _ = two
    await host.launch("d2")  # code B, 3 units, 2 per customer
    buyer, button, reader = await joined(a, "buyer"), await joined(b, "button"), await joined(b, None)
    assert reader.frames[-1]["codes"] == {"d1": "A", "d2": "B"}

    await buyer.send({"type": "chat_send", "ref": "c1", "text": "sold b 2"})
    reserved = await answer(buyer, "c1", ("reserved", "rejected"))
    assert reserved["type"] == "reserved" and reserved["qty"] == 2 and reserved["drop"] == "d2"
    await button.send({"type": "reserve", "ref": "r1", "drop": "d2", "qty": 2})
    assert (await button.until("rejected"))["reason"] == "sold_out"  # 1 left: the same engine
    # Redelivery: the same message answers the same hold; nothing more is held.
    await buyer.send({"type": "chat_send", "ref": "c1", "text": "sold b 2"})
    assert (await answer(buyer, "c1"))["status"] == "duplicate"
    again = await answer(buyer, "c1", ("reserved", "rejected"))
    assert again["hold"] == reserved["hold"]
    counters = await assert_drop_invariants(host.engine, "d2")
    assert counters.held == 2 and counters.available == 1
    # The per-customer limit holds for claims as for the button.
    await buyer.send({"type": "chat_send", "ref": "c2", "text": "SOLD B 1"})
    assert (await answer(buyer, "c2", ("reserved", "rejected")))["reason"] == "limit_exceeded"
    # Everyone sees the claim line; an unknown code gets a private error.
    line = await message_where(reader, lambda m: m["kind"] == "claim")
    assert line["text"] == "Buyer claimed 2 of B" and line["role"] == "system"
    await buyer.send({"type": "chat_send", "ref": "c3", "text": "SOLD ZZ"})
    assert (await answer(buyer, "c3", ("chat_rejected",)))["code"] == "claim_unknown_drop"
    for v in (buyer, button, reader):
        await v.close()


async def test_a_claim_on_a_sold_out_drop_holds_what_is_left_and_waitlists_the_rest(
    two: tuple[Node, Node, httpx.AsyncClient], host: HostActions, redis: Redis
) -> None:
    a, _, api = two
    await api.put("/api/shows/s1/chat/settings", json={"keyword": "MINE"})
    await host.launch("d1")  # code A, 5 units, no limit
    first, second = await joined(a, "first"), await joined(a, "second")
    await first.send({"type": "chat_send", "ref": "x", "text": "mine 4"})
    assert (await answer(first, "x", ("reserved",)))["qty"] == 4
    await second.send({"type": "chat_send", "ref": "y", "text": "SOLD 3"})
    part = await answer(second, "y", ("reserved", "rejected"))
    assert part["type"] == "reserved" and part["qty"] == 1
    waiting = await answer(second, "y", ("waitlisted",))
    assert waiting["position"] == 1
    assert await host.engine.waitlist("d1") == [("second", 2)]
    await first.send({"type": "chat_send", "ref": "z", "text": "SOLD"})
    assert (await answer(first, "z", ("waitlisted", "rejected")))["type"] == "waitlisted"
    await host.end("d1")
    await second.send({"type": "chat_send", "ref": "w", "text": "SOLD A"})
    assert (await answer(second, "w", ("rejected", "chat_rejected")))["reason"] == "not_live"
    for v in (first, second):
        await v.close()


async def test_show_end_starts_the_retention_and_erase_removes_a_viewer(
    two: tuple[Node, Node, httpx.AsyncClient], redis: Redis, tmp_path: Any
) -> None:
    a, _, api = two
    alice, bob = await joined(a, "alice"), await joined(a, "bob")
    await alice.send({"type": "chat_send", "ref": "1", "text": "mine"})
    await bob.send({"type": "chat_send", "ref": "1", "text": "his"})
    await chat_texts(bob, 2)
    await api.post("/api/shows/s1/chat/timeouts", json={"target": {"viewer": "alice"}, "seconds": 60})

    from server.chat.node import erase_viewer
    from tests.support.servers import VIEWER_SECRET

    removed = await erase_viewer(redis, ["s1"], "alice", VIEWER_SECRET.encode())
    assert removed >= 3
    assert (await bob.until("chat_delete"))["ids"]
    texts = [m["text"] for m in (await api.get("/api/shows/s1/chat")).json()["messages"]]
    assert texts == ["his"]
    assert [r["action"] for r in (await api.get("/api/shows/s1/chat/audit")).json()["records"]] == []
    keys = ck.chat_keys("s1")
    for key in (keys.log, keys.audit):
        entries: Any = await redis.xrange(key)
        for _, fields in entries:
            assert b"alice" not in b"".join(fields.values())

    assert (await api.post("/api/shows/s1/end")).status_code == 200
    ttl = await redis.pttl(ck.chat_keys("s1").log)
    assert 29 * 86_400_000 < ttl <= 30 * 86_400_000
    await bob.send({"type": "chat_send", "ref": "2", "text": "after the end"})
    assert (await answer(bob, "2"))["code"] == "chat_closed"
    await api.post("/api/shows/s1/start")
    assert await redis.pttl(ck.chat_keys("s1").log) == -1
    for v in (alice, bob):
        await v.close()
