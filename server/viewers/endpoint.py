"""``GET /ws/shows/{show_id}``: the viewers' WebSocket endpoint (docs/protocol.md).

The endpoint only reads: every frame a viewer gets is written by the hub (``Hub.deliver``),
so private answers stay in order with broadcasts and a slow viewer is handled in one place.
A bad frame gets an ``error`` frame and the connection stays; nothing a viewer sends can
reach another viewer's connection.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec
from redis.exceptions import RedisError
from starlette.websockets import WebSocket, WebSocketDisconnect

from broadcast.hub import Connection, Hub
from broadcast.transport import SansIOSocket, socket_for
from server.chat import frames as chat_frames
from server.chat.node import ChatNode
from server.shows.catalog import UnknownShow
from server.shows.node import ShowNode
from server.viewers import protocol as p
from server.viewers.answers import answer, current_state, ref_of, release_key, reserve_key
from server.viewers.auth import credentials
from server.viewers.expiry import close_at_expiry
from server.viewers.handshake import BAD_POSITION, Refused, admit, refuse, resume_position
from server.viewers.reserving import Reserving
from server.viewers.variants import drop_of_hold, variant_error
from stock import HoldNotActive, InvalidArgument, NotOwner, StockEngine, UnknownDrop, UnknownHold
from stock.types import WaitlistOutcome

logger = logging.getLogger("livedrop.viewers")

# Every frame a viewer sends costs the node work, so every kind is limited per connection
# (docs/protocol.md). Frames of any kind: a client pings every few seconds and sends a handful
# of reservations; 20/s with bursts of 40 is far above that and bounds a flood.
FRAME_RATE, FRAME_BURST = 20.0, 40.0
# A ``hello`` may replay up to MAX_RECOVERY events: 500 of them in 0.5 s once made the node
# send ~46k frames back to one socket. A client sends one per reconnect.
HELLO_RATE, HELLO_BURST = 0.5, 3.0


class RateLimit:
    """A token bucket per connection: ``rate`` per second, bursts up to ``burst``."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def _send(hub: Hub, viewer: Connection, frame: msgspec.Struct) -> None:
    """To the asking connection, or to every connection of its viewer (server.viewers.answers)."""
    answer(hub, viewer, frame)


async def viewer_endpoint(websocket: WebSocket) -> None:
    state: Any = websocket.state
    live: ShowNode = state.live
    hub: Hub = state.hub
    secret: bytes = state.viewer_secret
    show_id = websocket.path_params["show_id"]
    # The Sec-WebSocket-Protocol header, else ?token= (old clients): see server.viewers.auth.
    token, subprotocol = credentials(websocket.query_params.get("token"), websocket.scope.get("subprotocols", ()))
    try:
        # Refusals are answered in the handshake, before `accept` (server.viewers.handshake).
        claims = await admit(live, secret, show_id, token)
    except Refused as refused:
        state.metrics.viewer_refused.labels(refused.body.code).inc()
        await refuse(websocket, refused, subprotocol)
        return
    customer = claims.viewer if claims is not None else None
    await websocket.accept(subprotocol=subprotocol)
    socket = socket_for(websocket)
    state.metrics.viewer_send_path.labels("sansio" if isinstance(socket, SansIOSocket) else "asgi").inc()
    # A position that does not parse is no position: the viewer gets a welcome marked reset.
    position = resume_position(websocket.query_params)
    resuming = position is not None and position is not BAD_POSITION
    try:
        # A resuming viewer's frames are held from its first one: the live pump must not reach
        # it before the events it missed (server/viewers/endpoint.py ``_resume``).
        viewer = await hub.join(show_id, socket, customer, resuming=resuming)
    except UnknownShow:  # deleted since the handshake admitted it
        await websocket.close(p.CLOSE_UNKNOWN_SHOW, "unknown show")
        return
    except RedisError:
        await websocket.close(p.CLOSE_RESTART, "unavailable, retry")
        return
    state.metrics.viewer_connections.inc()
    expired = state.metrics.viewer_refused.labels("closed_token_expired").inc
    expiry = close_at_expiry(websocket, viewer, claims.exp, expired) if claims is not None else None
    chat: ChatNode = state.chat
    try:
        if resuming and position is not None:
            await _resume(live, hub, viewer, position.after, position.epoch)
        else:
            hub.deliver(viewer, live.welcome(show_id, customer is not None, reset=position is BAD_POSITION))
        # The chat history after the welcome or the missed events (server/chat); a viewer banned
        # from the show with `disconnect` is closed here.
        if not chat.attach(viewer, claims.name if claims else "", claims.role if claims else ""):
            await websocket.close(p.CLOSE_POLICY, "banned from this show")
            return
        await _read_frames(websocket, state, viewer)
    except WebSocketDisconnect:
        pass
    finally:
        if expiry is not None:
            expiry.cancel()
        state.metrics.viewer_connections.dec()
        chat.detach(viewer)
        await hub.leave(viewer)


async def _resume(live: ShowNode, hub: Hub, viewer: Connection, after: int, epoch: str) -> None:
    """Missed events, in order, before any live frame: what the hub would send meanwhile is
    held (``begin_resume``) and follows them, less the seqs the replay already carried."""
    hub.begin_resume(viewer)  # a cancel below leaves it held: the viewer is leaving anyway
    try:
        messages = await live.resume(viewer.show_id, after, epoch)
    except RedisError:
        messages = None
    if messages is None:
        hub.end_resume(viewer, [live.welcome(viewer.show_id, viewer.customer is not None, reset=True)])
    else:
        hub.end_resume(viewer, messages, after)


async def _read_frames(websocket: WebSocket, state: Any, viewer: Connection) -> None:
    hub: Hub = state.hub
    limiter = RateLimit(rate=state.settings.reserve_rate, burst=state.settings.reserve_burst)
    # Never tighter than the reserve budget an operator configured (a load test raises it).
    settings = state.settings
    frames = RateLimit(
        rate=max(FRAME_RATE, 2 * settings.reserve_rate), burst=max(FRAME_BURST, 2 * settings.reserve_burst)
    )
    hellos = RateLimit(rate=HELLO_RATE, burst=HELLO_BURST)
    while not viewer.closed:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("text")
        if data is None:  # a binary frame: the protocol is JSON text frames
            await websocket.close(p.CLOSE_UNSUPPORTED_DATA, "text frames only")
            return
        raw = data.encode()
        if len(raw) > p.MAX_FRAME_BYTES:
            await websocket.close(p.CLOSE_TOO_BIG, "frame too big")
            return
        if not frames.allow():
            state.metrics.viewer_frames_limited.labels("any").inc()
            _send(hub, viewer, p.Error(code=p.ERR_RATE_LIMITED, message="too many frames"))
            continue
        try:
            frame = chat_frames.viewer_decoder.decode(raw)  # the protocol's frames and the chat's
        except msgspec.DecodeError as exc:
            code, text = p.describe_decode_error(exc)
            ref = ref_of(raw) if code == p.ERR_BAD_FRAME else None
            _send(hub, viewer, p.Error(code=code, message=text, ref=ref))
            continue
        await _handle(state, viewer, frame, limiter, hellos)


async def _handle(
    state: Any,
    viewer: Connection,
    frame: p.ClientFrame | chat_frames.ChatClientFrame,
    limiter: RateLimit,
    hellos: RateLimit,
) -> None:
    hub: Hub = state.hub
    live: ShowNode = state.live
    match frame:
        # -- chat: its own dispatch (server/chat/node.py) ----------------------------------------
        case chat_frames.ChatSend() | chat_frames.ChatModerate():
            await state.chat.handle(viewer, frame)
        # -- the show and the stock ------------------------------------------------------------
        case p.Ping(ref=ref):
            _send(hub, viewer, p.Pong(server_time=live.clock.now_ms(), ref=ref))
        case p.Hello() if not hellos.allow():
            state.metrics.viewer_frames_limited.labels("hello").inc()
            _send(hub, viewer, p.Error(code=p.ERR_RATE_LIMITED, message="too many hello frames"))
        case p.Hello(resume_from=after, epoch=epoch):
            if after is None:
                hub.deliver(viewer, live.welcome(viewer.show_id, viewer.customer is not None))
            else:
                await _resume(live, hub, viewer, after, epoch or "")
            state.chat.send_history(viewer)
        case p.Reserve() | p.Release() | p.Waitlist() if viewer.customer is None:
            _send(hub, viewer, p.Error(code=p.ERR_UNAUTHENTICATED, message="a viewer token is needed", ref=frame.ref))
        case p.Release() if not limiter.allow():
            # Each release is a Redis script call, answered or not: it shares the reserve budget.
            state.metrics.viewer_frames_limited.labels("release").inc()
            _send(hub, viewer, p.Error(code=p.ERR_RATE_LIMITED, message="too many requests", ref=frame.ref))
        case p.Reserve() | p.Waitlist() if not limiter.allow():
            state.metrics.reservations.labels("rate_limited").inc()
            _send(hub, viewer, p.Error(code=p.ERR_RATE_LIMITED, message="too many requests", ref=frame.ref))
        case p.Reserve(drop=drop) | p.Waitlist(drop=drop) if not _in_show(live, viewer, drop):
            # A token is for one show: its viewer buys that show's drops, none other.
            _send(hub, viewer, p.Error(code=p.ERR_UNKNOWN_DROP, message=f"no drop {drop} in this show", ref=frame.ref))
        case p.Release(hold=hold, ref=ref) if not _in_show(live, viewer, drop_of_hold(hold)):
            _send(hub, viewer, p.Error(code=p.ERR_UNKNOWN_HOLD, message=f"no hold {hold}", ref=ref))
        case p.Reserve(drop=drop, variant=variant) | p.Waitlist(drop=drop, variant=variant) if (
            wrong := variant_error(live, viewer.show_id, drop, variant, frame.ref)
        ) is not None:
            _send(hub, viewer, wrong)
        case p.Reserve(ref=ref, drop=drop, qty=qty, variant=variant):
            await _reserve(state, viewer, ref, drop, qty, variant or "")
        case p.Release(hold=hold, ref=ref):
            await _release(state, viewer, hold, ref)
        case p.Waitlist(drop=drop, qty=qty, ref=ref, variant=variant):
            await _waitlist(state, viewer, drop, qty, ref, variant or "")


def _in_show(live: ShowNode, viewer: Connection, drop_id: str) -> bool:
    """Whether the drop belongs to the viewer's show, from the node's snapshot (no Redis)."""
    show = live.shows.get(viewer.show_id)
    return show is not None and drop_id in show.drops


async def _reserve(state: Any, viewer: Connection, ref: str, drop: str, qty: int, variant: str = "") -> None:
    hub: Hub = state.hub
    reserving: Reserving = state.reserving
    assert viewer.customer is not None
    started = time.perf_counter()
    request = reserving.request_id(viewer.customer, ref)  # answers.request_id, its digest cached
    live: ShowNode = state.live
    live.echoes.originated.mark(reserve_key(request))  # this node's tabs are answered here
    try:
        result = await reserving.reserve(viewer.show_id, drop, viewer.customer, qty, request, variant)
    except UnknownDrop:
        _send(hub, viewer, p.Error(code=p.ERR_UNKNOWN_DROP, message=f"no drop {drop}", ref=ref))
        return
    except InvalidArgument:
        _send(hub, viewer, p.Rejected(ref=ref, drop=drop, reason="invalid", variant=variant or p.UNSET))
        return
    except RedisError:
        state.metrics.redis_errors.labels("reserve").inc()
        _send(hub, viewer, p.Error(code=p.ERR_UNAVAILABLE, message="try again", ref=ref))
        return
    state.metrics.reserve_seconds.observe(time.perf_counter() - started)
    if result.ok and result.hold_id is not None:
        state.metrics.reservations.labels("reserved").inc()
        now = live.clock.now_ms()
        # A retry names the hold its first answer made: say what became of it since.
        held = (
            await current_state(state.engine, result.hold_id, result.expires_at_ms, now)
            if result.duplicate
            else p.HOLD_HELD
        )
        _send(
            hub,
            viewer,
            p.Reserved(
                ref=ref,
                drop=drop,
                hold=result.hold_id,
                qty=result.qty,
                expires_at=result.expires_at_ms,
                hold_ref=result.hold_ref,
                state=held,
                variant=variant or p.UNSET,
                checkout_url=await state.checkout.link(
                    viewer.show_id, drop, variant, result.qty, result.hold_id, result.hold_ref
                ),
            ),
        )
    else:
        reason = result.reason.value if result.reason else "invalid"
        state.metrics.reservations.labels(reason).inc()
        _send(hub, viewer, p.Rejected(ref=ref, drop=drop, reason=reason, variant=variant or p.UNSET))


async def _release(state: Any, viewer: Connection, hold: str, ref: str | None) -> None:
    hub: Hub = state.hub
    engine: StockEngine = state.engine
    live: ShowNode = state.live
    live.echoes.originated.mark(release_key(hold))
    try:
        await engine.release(hold, viewer.customer)
    except (UnknownHold, InvalidArgument):
        _send(hub, viewer, p.Error(code=p.ERR_UNKNOWN_HOLD, message=f"no hold {hold}", ref=ref))
        return
    except NotOwner:
        _send(hub, viewer, p.Error(code=p.ERR_NOT_OWNER, message="not your hold", ref=ref))
        return
    except HoldNotActive as exc:
        _send(hub, viewer, p.Error(code=p.ERR_HOLD_NOT_ACTIVE, message=f"hold is {exc.state}", ref=ref))
        return
    except RedisError:
        _send(hub, viewer, p.Error(code=p.ERR_UNAVAILABLE, message="try again", ref=ref))
        return
    _send(hub, viewer, p.Released(hold=hold, ref=ref))


async def _waitlist(state: Any, viewer: Connection, drop: str, qty: int, ref: str | None, variant: str = "") -> None:
    hub: Hub = state.hub
    engine: StockEngine = state.engine
    assert viewer.customer is not None
    try:
        result = await engine.join_waitlist(drop, viewer.customer, qty, variant)
    except UnknownDrop:
        _send(hub, viewer, p.Error(code=p.ERR_UNKNOWN_DROP, message=f"no drop {drop}", ref=ref))
        return
    except RedisError:
        _send(hub, viewer, p.Error(code=p.ERR_UNAVAILABLE, message="try again", ref=ref))
        return
    if result.outcome in (WaitlistOutcome.WAITLISTED, WaitlistOutcome.DUPLICATE):
        _send(hub, viewer, p.Waitlisted(drop=drop, position=result.position, ref=ref, variant=variant or p.UNSET))
    else:
        _send(
            hub, viewer, p.Rejected(ref=ref or "", drop=drop, reason=result.outcome.value, variant=variant or p.UNSET)
        )
