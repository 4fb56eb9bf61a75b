"""One node's chat: follows the chat log of every show the node has viewers for, sends one
``chat`` frame per show per tick, and handles what viewers and moderators send.

A message goes: viewer → any node → ``post.lua`` (the checks and the append, atomically) → the
show's chat log → every node's stream reader (the same one that follows shows' feeds and drops'
ledgers, ``server.shows.tails``) → the show's ``Room`` → at the node's next tick, one ``chat``
frame for all the show's new messages, encoded once and handed to the hub, which writes it to
every local socket through the bounded per-viewer buffers. The frame is conflatable (key
``chat``): a viewer who cannot keep up loses old chat first, and never a stock or drop frame.
Moderation events (delete, clear, pin, settings) go out at once, unconflated, and take their
messages out of the tick's batch too, so a deleted message never reaches anyone after the delete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import Coroutine
from functools import partial
from typing import Any

import msgspec
from redis.exceptions import RedisError

from broadcast.hub import Connection, Hub, Role
from broadcast.transport import Message
from server.chat import frames as f
from server.chat import keys as ck
from server.chat.claims import ClaimDrop, ClaimVariant, Refused, Resolved, message_key, parse, resolve
from server.chat.identity import Identity, system_identity, uid_of, viewer_identity
from server.chat.limits import MAX_TEXT_CHARS, TokenBucket
from server.chat.moderation import Moderation, ModerationError
from server.chat.normalise import display_text
from server.chat.room import Room
from server.chat.settings import ChatSettings
from server.chat.store import ChatStore, entries
from server.loops import repeat
from server.shows.catalog import ShowState
from server.shows.known import KnownShow
from server.shows.node import ShowNode
from server.viewers import protocol as p
from server.viewers.answers import answer, reserve_key
from server.viewers.reserving import Reserving
from stock import StockEngine, StockError, UnknownDrop
from stock.types import WaitlistOutcome

logger = logging.getLogger("livedrop.chat")

CHAT_KEY = "chat"  # conflation key of the per-tick frame
CLOSE_BANNED_REASON = "banned from this show"


class ChatNode:
    def __init__(
        self,
        *,
        hub: Hub,
        live: ShowNode,
        engine: StockEngine,
        reserving: Reserving,
        secret: bytes,
        settings: ChatSettings,
    ) -> None:
        self.hub = hub
        self.live = live
        self.engine = engine
        self.reserving = reserving
        self.secret = secret
        self.settings = settings
        self.store = ChatStore(live.redis, rate=settings.viewer_rate, burst=settings.viewer_burst)
        self.moderation = Moderation(self.store, secret)
        self.rooms: dict[str, Room] = {}
        self.people: dict[Connection, tuple[Identity, TokenBucket]] = {}
        self.system = system_identity(secret)
        self.frames_sent = 0
        self.messages_sent = 0
        self._ticker: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # -- following shows (the hub's on_first / on_last, after the show node's) ---------------------

    async def subscribe(self, show_id: str) -> None:
        """Read the show's chat (history, settings, restrictions, codes) and follow its log. A
        failure here fails the join, like the show node's own snapshot."""
        room = Room(show_id, limit=self.settings.history)
        found = await self.store.tail(show_id, ck.LOG_MAXLEN)
        room.load(found, await self.store.state(show_id), await self.store.restricted(show_id))
        known = self.live.shows.get(show_id)
        if known is not None and known.drops:
            room.codes = await self.store.codes(show_id, list(known.drops))
        self.rooms[show_id] = room
        self.live.tails.watch(ck.chat_keys(show_id).log, room.after, partial(self._on_log, show_id))
        if self._ticker is None:
            self._ticker = asyncio.create_task(
                repeat(self.tick, name="chat ticker", interval=self.settings.tick, log=logger), name="chat:tick"
            )

    async def unsubscribe(self, show_id: str) -> None:
        if self.rooms.pop(show_id, None) is not None:
            self.live.tails.unwatch(ck.chat_keys(show_id).log)

    async def aclose(self) -> None:
        tasks = [t for t in (self._ticker, *self._background) if t is not None]
        self._ticker = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                logger.error("%s failed", name, exc_info=t.exception())

        task.add_done_callback(done)

    # -- the log reader and the ticker --------------------------------------------------------------

    def _on_log(self, show_id: str, raw: list[Any]) -> None:
        room = self.rooms.get(show_id)
        if room is None:
            return
        for entry in entries(raw):
            try:
                folded = room.fold(entry)
            except (KeyError, ValueError, msgspec.DecodeError):
                logger.exception("chat entry %s of show %s not applied", entry.id, show_id)
                continue
            if folded.broadcast is not None:
                self.hub.publish(show_id, Message(f.encoder.encode(folded.broadcast)))
            if folded.hosts is not None:
                self._to_moderators(show_id, Message(f.encoder.encode(folded.hosts)))
            if folded.disconnect is not None:
                self._disconnect(show_id, folded.disconnect)

    def _to_moderators(self, show_id: str, message: Message) -> None:
        channel = self.hub.channels.get(show_id)
        for conn in list(channel.viewers) if channel else []:
            person = self.people.get(conn)
            if conn.role is Role.HOST or (person is not None and person[0].role == f.ROLE_MODERATOR):
                self.hub.deliver(conn, message)

    def _disconnect(self, show_id: str, viewer: str) -> None:
        for conn in list(self.hub.by_customer.get(viewer, ())):
            if conn.show_id == show_id and not conn.closed:
                conn.closed = True
                conn.close_reason = CLOSE_BANNED_REASON
                conn.socket.close_slow(p.CLOSE_POLICY, self.hub.close_grace)

    async def tick(self) -> None:
        """One chat frame per show with new messages; claim codes for drops the show gained.

        A show's frame waits while the hub has not yet begun sending the previous one (the
        pump is busy with a large audience: the messages join the next frame instead of replacing
        a queued frame for everyone), and while the node's chat frame budget says so: a show of
        ``v`` local viewers gets a frame at most every ``v / frame_budget`` s. Frames carry
        ``viewer_messages`` per second on average, in bursts of up to ``batch_max``: the newest."""
        now = asyncio.get_running_loop().time()
        for show_id, room in list(self.rooms.items()):
            if not room.pending:
                continue
            channel = self.hub.channels.get(show_id)
            if channel is not None and any(m.key == CHAT_KEY for m in channel.queue):
                continue
            audience = len(channel.viewers) if channel is not None else 0
            if now - room.flushed_at < audience / self.settings.frame_budget:
                continue
            # ``viewer_messages`` per second on average, bursts up to a full frame (a token bucket).
            limit = float(self.settings.batch_max)
            refill = (now - room.flushed_at) * self.settings.viewer_messages
            room.allowance = limit if room.allowance < 0 else min(limit, room.allowance + refill)
            batch = room.take_batch(max(1, math.floor(room.allowance)))
            if batch is not None:
                room.allowance = max(0.0, room.allowance - len(batch.messages))
                room.flushed_at = now
                self.frames_sent += 1
                self.messages_sent += len(batch.messages)
                self.hub.publish(show_id, Message(f.encoder.encode(batch), key=CHAT_KEY, bulk=True))
        for show_id, room in list(self.rooms.items()):
            known = self.live.shows.get(show_id)
            if known is not None and not known.drops.keys() <= room.codes.keys():
                room.codes.update({d: "" for d in known.drops if d not in room.codes})  # asked once
                self._spawn(self.store.codes(show_id, list(known.drops)), f"chat-codes:{show_id}")

    # -- connections ---------------------------------------------------------------------------------

    def attach(self, conn: Connection, name: str = "", role: str = "") -> bool:
        """A viewer joined (after its welcome or resume): send it the chat history. False when it
        is banned from the show with ``disconnect``: the endpoint closes it."""
        room = self.rooms.get(conn.show_id)
        identity = viewer_identity(self.secret, conn.customer, name, role)
        if conn.role is Role.HOST:
            identity = identity._replace(role=f.ROLE_HOST)
        if room is not None and conn.customer is not None:
            found = room.restriction(conn.customer, self.live.clock.now_ms())
            if found is not None and found.disconnect:
                return False
        self.people[conn] = (identity, TokenBucket(self.settings.connection_rate, self.settings.connection_burst))
        self.send_history(conn)
        return True

    def send_history(self, conn: Connection) -> None:
        room = self.rooms.get(conn.show_id)
        person = self.people.get(conn)
        if room is None:
            return
        you = person[0].you() if person is not None and person[0].customer is not None else None
        if you is None and room.history_frame is not None:
            payload = room.history_frame  # the common case: encoded once per change, per node
        else:
            payload = f.encoder.encode(room.history_view(you))
            if you is None:
                room.history_frame = payload
        self.hub.deliver(conn, Message(payload))
        if conn.role is Role.HOST or (person is not None and person[0].role == f.ROLE_MODERATOR):
            self._spawn(self._send_held(conn), "chat-held")

    async def _send_held(self, conn: Connection) -> None:
        try:
            held = await self.store.held(conn.show_id)
        except RedisError:
            return
        if held:
            self.hub.deliver(conn, Message(f.encoder.encode(f.ChatHeld(added=held, gone=[]))))

    def detach(self, conn: Connection) -> None:
        self.people.pop(conn, None)

    def _send(self, conn: Connection, frame: msgspec.Struct) -> None:
        """To the asking connection, or, for an answer with a ``ref``, every connection of its viewer
        (``server.viewers.answers``, as the Buy button's answers go)."""
        answer(self.hub, conn, frame)

    # -- what viewers send ---------------------------------------------------------------------------

    async def handle(self, conn: Connection, frame: f.ChatSend | f.ChatModerate) -> None:
        person = self.people.get(conn)
        if person is None:
            person = (viewer_identity(self.secret, conn.customer), TokenBucket(1, 1))
        identity, bucket = person
        ref = frame.ref
        if identity.customer is None:
            self._send(
                conn, f.ChatRejected(ref=ref, code=f.REFUSED_UNAUTHENTICATED, message="a viewer token is needed")
            )
            return
        if not bucket.allow():
            retry = int(bucket.retry_after() * 1000) + 1
            self._send(
                conn, f.ChatRejected(ref=ref, code=f.REFUSED_RATE, message="too many messages", retry_after=retry)
            )
            return
        try:
            match frame:
                case f.ChatSend(ref=ref, text=text):
                    await self.post(conn, identity, ref, text)
                case f.ChatModerate():
                    await self.moderate(conn, identity, frame)
        except RedisError:
            self._send(conn, f.ChatRejected(ref=ref, code=f.REFUSED_UNAVAILABLE, message="try again"))

    async def post(self, conn: Connection, who: Identity, ref: str, raw: str) -> None:
        show_id = conn.show_id
        room = self.rooms.get(show_id)
        known = self.live.shows.get(show_id)
        assert who.customer is not None
        if room is None or known is None or known.show.state is ShowState.ENDED:
            self._send(conn, f.ChatRejected(ref=ref, code=f.REFUSED_CLOSED, message="the show's chat is closed"))
            return
        text = display_text(raw)
        if not text or len(text) > MAX_TEXT_CHARS:
            self._send(
                conn,
                f.ChatRejected(ref=ref, code=f.REFUSED_EMPTY, message=f"a message is 1-{MAX_TEXT_CHARS} characters"),
            )
            return
        parsed = parse(text, room.settings.keyword)
        claim = resolve(parsed, claim_drops(known, room.codes)) if parsed is not None else None
        hold: tuple[str, str] | None = None
        if not who.exempt and not isinstance(claim, Resolved):  # a refused claim is chat: filtered
            word = room.blocked.match(text)
            if word is not None and room.settings.word_action == "drop":
                self._send(conn, f.ChatRejected(ref=ref, code=f.REFUSED_BLOCKED, message="the message was not posted"))
                return
            if word is not None:
                hold = (secrets.token_hex(6), word)
        if await self.store.deployment_banned(who.customer):
            self._send(conn, f.ChatRejected(ref=ref, code=f.REFUSED_BANNED, message="banned from chat"))
            if claim is not None:
                await self.claim(conn, who, ref, claim)
            return
        result = await self.store.post(
            show_id,
            viewer=who.customer,
            dedupe=message_key(self.secret, who.customer, ref),
            uid=who.uid,
            name=who.name,
            role=who.role,
            text=text,
            exempt=who.exempt,
            hold=hold,
        )
        match result.code:
            case "posted" | "held":
                self._send(conn, f.ChatAck(ref=ref, id=result.id, status=result.code))
            case "duplicate":
                self._send(conn, f.ChatAck(ref=ref, id=result.id, status="duplicate"))
            case "banned":
                self._send(conn, f.ChatRejected(ref=ref, code=f.REFUSED_BANNED, message="banned from this chat"))
            case "timeout":
                self._send(
                    conn, f.ChatRejected(ref=ref, code=f.REFUSED_TIMEOUT, message="timed out", until=result.extra)
                )
            case "slow":
                self._send(
                    conn,
                    f.ChatRejected(ref=ref, code=f.REFUSED_SLOW, message="slow mode", retry_after=result.extra),
                )
            case _:
                self._send(
                    conn,
                    f.ChatRejected(ref=ref, code=f.REFUSED_RATE, message="too many messages", retry_after=result.extra),
                )
        if claim is not None and result.code != "rate":
            await self.claim(conn, who, ref, claim)

    # -- comment-to-buy ------------------------------------------------------------------------------

    async def claim(self, conn: Connection, who: Identity, ref: str, claim: Resolved | Refused) -> None:
        """A claim comment, resolved against the show's drops (``server.chat.claims``), through
        the Buy button's engine path with the size it names."""
        show_id = conn.show_id
        room = self.rooms.get(show_id)
        assert who.customer is not None
        if room is None:
            return
        if isinstance(claim, Refused):
            self._send(conn, f.ChatRejected(ref=ref, code=claim.code, message=claim.message))
            return
        drop, variant, customer = claim.drop, claim.variant, who.customer
        tag = variant or p.UNSET
        try:
            result = await self._reserve(show_id, drop, customer, claim.qty, f"chat:{ref}", variant)
            got = result.qty if result.ok else 0
            if result.ok and result.hold_id is not None:
                await self._reserved(conn, ref, drop, variant, result)
            elif result.reason is not None and result.reason.value == "sold_out":
                available = (await self.engine.counters(drop, variant)).available
                if 0 < available < claim.qty:
                    part = await self._reserve(show_id, drop, customer, available, f"chat:{ref}:part", variant)
                    if part.ok and part.hold_id is not None:
                        got = part.qty
                        await self._reserved(conn, ref, drop, variant, part)
                await self._waitlist(conn, ref, drop, variant, customer, claim.qty - got)
            else:
                reason = result.reason.value if result.reason else "invalid"
                self._send(conn, p.Rejected(ref=ref, drop=drop, reason=reason, variant=tag))
        except UnknownDrop:
            self._send(conn, f.ChatRejected(ref=ref, code=f.CLAIM_UNKNOWN_DROP, message="no such drop"))
            return
        except StockError:  # the node's snapshot was behind the drop's sizes: the engine refused
            self._send(conn, p.Rejected(ref=ref, drop=drop, reason="invalid", variant=tag))
            return
        if got:
            code = room.codes.get(drop) or drop
            size = f" in {claim.size}" if claim.size else ""
            await self.store.post(
                show_id,
                viewer=self.system.customer or "",
                dedupe="claimed:" + message_key(self.secret, customer, ref),
                uid=self.system.uid,
                name=self.system.name,
                role=self.system.role,
                text=f"{who.name} claimed {got} of {code}{size}",
                kind="claim",
                exempt=True,
            )

    async def _reserve(self, show_id: str, drop: str, customer: str, qty: int, ref: str, variant: str) -> Any:
        """The Buy button's own path (``Reserving.reserve``): the same request ids, so the node's
        ledger reader knows the answer went out from here."""
        request = self.reserving.request_id(customer, ref)
        self.live.echoes.originated.mark(reserve_key(request))
        return await self.reserving.reserve(show_id, drop, customer, qty, request, variant)

    async def _reserved(self, conn: Connection, ref: str, drop: str, variant: str, result: Any) -> None:
        link = self.live.checkout_link
        url = await link(conn.show_id, drop, variant, result.qty, result.hold_id, result.hold_ref) if link else ""
        self._send(
            conn,
            p.Reserved(
                ref=ref,
                drop=drop,
                hold=result.hold_id,
                qty=result.qty,
                expires_at=result.expires_at_ms,
                hold_ref=result.hold_ref,
                checkout_url=url,
                variant=variant or p.UNSET,
            ),
        )

    async def _waitlist(self, conn: Connection, ref: str, drop: str, variant: str, customer: str, qty: int) -> None:
        """The remainder joins the waitlist of the size claimed (each size has its own)."""
        if qty <= 0:
            return
        joined = await self.engine.join_waitlist(drop, customer, qty, variant)
        tag = variant or p.UNSET
        if joined.outcome in (WaitlistOutcome.WAITLISTED, WaitlistOutcome.DUPLICATE):
            self._send(conn, p.Waitlisted(drop=drop, position=joined.position, ref=ref, variant=tag))
        else:
            self._send(conn, p.Rejected(ref=ref, drop=drop, reason=joined.outcome.value, variant=tag))

    # -- moderators over the WebSocket ---------------------------------------------------------------

    async def moderate(self, conn: Connection, who: Identity, frame: f.ChatModerate) -> None:
        show_id = conn.show_id
        if who.role != f.ROLE_MODERATOR:
            self._send(conn, f.ChatRejected(ref=frame.ref, code=f.REFUSED_FORBIDDEN, message="moderators only"))
            return
        m = self.moderation
        try:
            match frame.action:
                case "delete" if frame.message:
                    await m.delete(show_id, [frame.message], who, frame.reason)
                case "clear":
                    await m.clear(show_id, who, frame.reason)
                case "timeout" | "ban" | "unban" if frame.message or frame.uid:
                    target = await m.target(show_id, message=frame.message, uid=None if frame.message else frame.uid)
                    if frame.action == "timeout":
                        await m.timeout(show_id, target, frame.seconds or 600, who, frame.reason)
                    elif frame.action == "ban":
                        await m.ban(show_id, target, who, reason=frame.reason)
                    else:
                        await m.unban(show_id, target, who)
                case "pin" if frame.message:
                    await m.pin(show_id, frame.message, who)
                case "unpin":
                    await m.pin(show_id, None, who)
                case "slow":
                    await m.slow(show_id, frame.seconds or 0, who)
                case "approve" | "reject" if frame.held:
                    await m.resolve_held(show_id, frame.held, frame.action == "approve", who)
                case _:
                    raise ModerationError("invalid", f"{frame.action} needs a message or uid")
        except ModerationError as exc:
            self._send(conn, f.ChatRejected(ref=frame.ref, code=exc.code, message=str(exc)))
            return
        self._send(conn, f.ChatAck(ref=frame.ref or "", id=frame.message or frame.held or "", status="done"))

    # -- show life and privacy -------------------------------------------------------------------

    async def show_state(self, show_id: str, state: ShowState) -> None:
        """The show ended (its chat expires after the retention period) or started again."""
        await self.store.expire(show_id, state is ShowState.ENDED, int(self.settings.retention_days * 86_400_000))


def claim_drops(known: KnownShow, codes: dict[str, str]) -> list[ClaimDrop]:
    """The show's drops as claim resolution reads them, from the node's snapshot (no Redis):
    codes, which is live, and each size with whether it has a unit on sale."""
    return [
        ClaimDrop(
            drop_id,
            codes.get(drop_id, ""),
            d.state == "live",
            tuple(
                ClaimVariant(
                    v.id, tuple(v.options.values()), d.variants[v.id].available > 0 if v.id in d.variants else True
                )
                for v in d.info.variants
            ),
        )
        for drop_id, d in known.drops.items()
    ]


async def erase_viewer(redis: Any, show_ids: list[str], viewer: str, secret: bytes) -> int:
    """The right to deletion: remove a viewer's messages and records from the chat of every show."""
    store = ChatStore(redis)
    uid = uid_of(secret, viewer)
    total = 0
    for show_id in show_ids:
        total += await store.erase(show_id, viewer, uid)
    return total
