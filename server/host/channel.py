"""The control panel's WebSocket channel: the hosts' side of the live show.

``GET /ws/host/shows/{show_id}`` (docs/protocol.md, "Host channel") joins the hub like a viewer
that is not counted (``Role.HOST``), so a host sees exactly the frames the audience sees, in
the same order, from the same code path. On top of that each node runs, per show and only while at
least one host of that show is connected to it, a ticker that pushes every second:

* ``host_stats``: per drop the counters (with ``oversold``), reservations and units sold per second
  (deltas of the engine's tallies between two ticks), sales, and the show's viewers now;
* ``alert``: new entries of the alerts stream (oversold platform lines, unmatched holds, dead
  webhook deliveries, written by the webhook consumer and the reconciler), slow viewers this node
  closed, and a drop whose ``oversold`` counter rose.

The browser never polls: everything live arrives on this socket; the HTTP API is only used for
what the host *does* (add, reorder, launch, restock, end). Host frames go to the hosts' sockets
only, through ``Hub.deliver``, never to the audience.

The host token may come as ``?token=`` (as the brief of the channel allows, for scripts) or, which
the panel does, in a first ``auth`` frame: uvicorn logs the request line of every WebSocket
handshake, query string included, and a host token is long-lived.

The pages that open this channel are in ``server.host.pages``; the pure figures and frames in
``server.host.figures``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from redis.exceptions import RedisError
from starlette.websockets import WebSocket, WebSocketDisconnect

from broadcast.hub import Connection, Hub, Role
from broadcast.transport import Message, socket_for
from server import keys
from server.host.api import host_token_valid
from server.host.channel_strip import channel_sync
from server.host.figures import (
    ALERT_SLOW_VIEWERS,
    Alert,
    Auth,
    DropFigures,
    drop_figures,
    encoder,
    host_decoder,
    host_stats,
    oversold_alert,
    stream_alert,
    variant_figures,
)
from server.loops import Backoff, repeat
from server.platforms.channels.config import ChannelSettings
from server.platforms.webhooks.alerts import read_stream
from server.replies import decoded
from server.shows.catalog import Catalog, DropInfo, UnknownShow
from server.shows.node import ShowNode, now_ms
from server.shows.variants import prices_of, unit_of
from server.viewers import protocol as p
from stock import StockEngine, UnknownDrop
from stock.types import DropSnapshot

logger = logging.getLogger("livedrop.panel")

AUTH_TIMEOUT: Final = 10.0  # seconds a connection may stay open before its `auth` frame
TICK_SECONDS: Final = 1.0
ALERT_HISTORY: Final = 50  # recent alerts of the show sent to a host when it connects
ALERT_SCAN: Final = 500  # newest stream entries scanned for that history (the stream is shared)
ALERT_BATCH: Final = 200  # stream entries read per tick


# -- the per-show rooms and their ticker ---------------------------------------------------------
@dataclass(eq=False)
class Room:
    """The hosts of one show connected to this node, and what the ticker remembers between ticks."""

    show_id: str
    hosts: dict[Connection, None] = field(default_factory=dict)
    ticker: asyncio.Task[None] | None = None
    before: dict[str, DropSnapshot] = field(default_factory=dict)
    infos: dict[str, DropInfo] = field(default_factory=dict)
    last_tick: float = 0.0
    alerts_after: str = "0-0"
    slow_closed: int = 0
    last_figures: list[DropFigures] = field(default_factory=list)


class HostPanels:
    """Owned by the app's lifespan. ``attach``/``detach`` are called by the host endpoint; the
    ticker of a show runs from its first host on this node to its last."""

    def __init__(
        self,
        *,
        redis: Any,
        engine: StockEngine,
        catalog: Catalog,
        hub: Hub,
        live: ShowNode,
        interval: float = TICK_SECONDS,
        channels: ChannelSettings | None = None,
    ) -> None:
        self.redis = redis
        self.engine = engine
        self.catalog = catalog
        self.hub = hub
        self.live = live
        self.interval = interval
        self.channels = channels or ChannelSettings()
        self.rooms: dict[str, Room] = {}
        self.errors = 0

    async def attach(self, viewer: Connection) -> None:
        """Register a host that has had its ``welcome``: it gets the show's recent alerts and
        a ``host_stats`` at once, then the ticker's frames."""
        room = self.rooms.get(viewer.show_id)
        if room is None:
            room = self.rooms[viewer.show_id] = Room(viewer.show_id, slow_closed=self.hub.stats.slow_closed)
            # The position first, the history second: an alert written in between is in both,
            # and the panel drops repeats by id. The other order could lose it.
            with contextlib.suppress(RedisError):
                last = await self.redis.xrevrange(keys.ALERTS, count=1)
                if last:
                    room.alerts_after = decoded(last[0][0])
            room.hosts[viewer] = None
            room.ticker = asyncio.create_task(self._run(room), name=f"host-ticker:{viewer.show_id}")
        else:
            room.hosts[viewer] = None
        try:
            history = await read_stream(self.redis, keys.ALERTS, ALERT_SCAN)
        except RedisError:
            history = []
        alerts = [a for entry_id, fields in history if (a := stream_alert(entry_id, fields, viewer.show_id))]
        for alert in alerts[-ALERT_HISTORY:]:
            self.hub.deliver(viewer, Message(encoder.encode(alert)))
        if room.last_tick:  # the ticker has a baseline: send its latest figures now
            with contextlib.suppress(RedisError, UnknownDrop):
                self.hub.deliver(viewer, self._stats_message(room, await self._figures(room, advance=False)))
        # The channel strip now too: a panel that (re)connects must not wait for the next tick,
        # nor show stale chips from before it went away.
        with contextlib.suppress(RedisError):
            await self._load_infos(room)
            strip = await channel_sync(self.redis, self.channels, room.show_id, room.infos)
            if strip is not None:
                self.hub.deliver(viewer, Message(encoder.encode(strip), key="channel_sync"))

    async def detach(self, viewer: Connection) -> None:
        room = self.rooms.get(viewer.show_id)
        if room is None:
            return
        room.hosts.pop(viewer, None)
        if not room.hosts:
            del self.rooms[viewer.show_id]
            await _stop(room.ticker)

    async def aclose(self) -> None:
        rooms, self.rooms = list(self.rooms.values()), {}
        for room in rooms:
            await _stop(room.ticker)

    async def _run(self, room: Room) -> None:
        """Tick at a fixed cadence (rates are per elapsed second) while the show has hosts here."""

        async def turn() -> bool:
            if not room.hosts:
                return True
            await self.tick(room)
            return False

        await repeat(
            turn,
            name=f"host ticker of show {room.show_id}",
            interval=self.interval,
            backoff=Backoff(min(self.interval * 2, 10.0), 10.0),
            on_error=self._failed,
            log=logger,
            fixed_rate=True,
        )

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1

    async def tick(self, room: Room) -> None:
        """One round: figures to every host of the show, then the alerts since the last round."""
        figures = await self._figures(room, advance=True)
        self._send(room, self._stats_message(room, figures))
        strip = await channel_sync(self.redis, self.channels, room.show_id, room.infos)
        if strip is not None:  # the sales channels' strip on each drop card (docs/channels.md)
            self._send(room, Message(encoder.encode(strip), key="channel_sync"))
        alerts: list[Alert] = []
        slow = self.hub.stats.slow_closed
        if slow > room.slow_closed:
            count = slow - room.slow_closed
            alerts.append(
                Alert(
                    id=f"slow-{now_ms()}",
                    kind=ALERT_SLOW_VIEWERS,
                    at=now_ms(),
                    message=f"{count} slow viewer connection(s) closed on this node (they reconnect and resume)",
                    detail={"count": str(count)},
                )
            )
        room.slow_closed = slow
        reply = await self.redis.xread({keys.ALERTS: room.alerts_after}, count=ALERT_BATCH)
        for _, entries in reply or []:
            for entry_id, raw in entries:
                room.alerts_after = decoded(entry_id)
                fields = {decoded(k): decoded(v) for k, v in raw.items()}
                alert = stream_alert(room.alerts_after, fields, room.show_id)
                if alert is not None:
                    alerts.append(alert)
        for alert in alerts:
            self._send(room, Message(encoder.encode(alert)))

    async def _figures(self, room: Room, *, advance: bool) -> list[DropFigures]:
        now = time.monotonic()
        elapsed = now - room.last_tick if room.last_tick else 0.0
        figures: list[DropFigures] = []
        current: dict[str, DropSnapshot] = {}
        for drop_id in await self._load_infos(room):
            try:
                snap = await self.engine.snapshot(drop_id)
            except UnknownDrop:
                continue
            current[drop_id] = snap
            before = room.before.get(drop_id)
            figure = drop_figures(snap, before, elapsed) if advance else _hold_rates(snap, room)
            info = room.infos[drop_id]
            if info.variants:
                figure.variants = [
                    variant_figures(v.id, v.sku, await self.engine.snapshot(drop_id, v.id)) for v in info.variants
                ]
            figures.append(figure)
            if advance and before is not None and snap.counters.oversold > before.counters.oversold:
                self._send(room, Message(encoder.encode(oversold_alert(snap, before))))
        if advance:
            room.before, room.last_tick = current, now
            room.last_figures = figures
        return figures

    async def _load_infos(self, room: Room) -> list[str]:
        """The show's drop ids in order, each one's info loaded into ``room.infos`` (once)."""
        found = []
        for drop_id in await self.catalog.drop_ids(room.show_id):
            if drop_id not in room.infos:
                info = await self.catalog.get_drop(drop_id)
                if info is None:
                    continue
                room.infos[drop_id] = info
            found.append(drop_id)
        return found

    def _stats_message(self, room: Room, figures: list[DropFigures]) -> Message:
        live = self.live.shows.get(room.show_id)
        viewers = live.viewers if live is not None else 0
        prices = {drop_id: info.prices for drop_id, info in room.infos.items()}
        for drop_id, info in room.infos.items():
            prices |= {unit_of(drop_id, v.id): prices_of(info.prices, v) for v in info.variants}
        frame = host_stats(room.show_id, viewers, figures, prices)
        # Conflatable: a host whose socket is slow gets the latest figures, not a backlog.
        return Message(encoder.encode(frame), key="host_stats")

    def _send(self, room: Room, message: Message) -> None:
        for viewer in list(room.hosts):
            self.hub.deliver(viewer, message)


def _hold_rates(snap: DropSnapshot, room: Room) -> DropFigures:
    """A drop's figures for a host that just joined: today's counters with the rates of the
    ticker's last round (so its chart does not dip to zero for everyone else's rates)."""
    fresh = drop_figures(snap, None, 0.0)
    for f in room.last_figures:
        if f.drop == snap.drop_id:
            return msgspec.structs.replace(
                fresh, reservations_per_second=f.reservations_per_second, sold_per_second=f.sold_per_second
            )
    return fresh


async def _stop(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# -- the endpoint ----------------------------------------------------------------------------------
async def _read_auth(websocket: WebSocket) -> str | None:
    """The token of the first frame, which must be ``auth``; None (after an error frame) else."""
    try:
        async with asyncio.timeout(AUTH_TIMEOUT):
            message = await websocket.receive()
    except TimeoutError:
        return None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    raw = message.get("text")
    data = raw.encode() if raw is not None else (message.get("bytes") or b"")
    try:
        frame = host_decoder.decode(data)
    except msgspec.DecodeError as exc:
        code, text = p.describe_decode_error(exc)
        await websocket.send_text(p.encode(p.Error(code=code, message=text)).decode())
        return None
    return frame.token if isinstance(frame, Auth) else None


async def host_endpoint(websocket: WebSocket) -> None:
    state: Any = websocket.state
    hub: Hub = state.hub
    live: ShowNode = state.live
    panels: HostPanels = state.panels
    show_id = websocket.path_params["show_id"]
    await websocket.accept()
    try:
        token = websocket.query_params.get("token") or await _read_auth(websocket)
    except WebSocketDisconnect:
        return
    if not token:
        await websocket.close(p.CLOSE_POLICY, 'a host token is required: send {"type": "auth", "token": …}')
        return
    try:
        if not await host_token_valid(state.settings, state.redis, token):
            await websocket.close(p.CLOSE_POLICY, "unknown host token")
            return
        viewer = await hub.join(show_id, socket_for(websocket), None, role=Role.HOST)
    except UnknownShow:
        await websocket.close(p.CLOSE_UNKNOWN_SHOW, "unknown show")
        return
    except RedisError:
        await websocket.close(p.CLOSE_RESTART, "unavailable, retry")
        return
    state.metrics.host_connections.inc()
    try:
        hub.deliver(viewer, live.welcome(show_id, can_reserve=False))
        state.chat.attach(viewer, role="host")  # the chat history and held messages (server/chat)
        await panels.attach(viewer)
        while not viewer.closed:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            data = raw.encode() if raw is not None else (message.get("bytes") or b"")
            if len(data) > p.MAX_FRAME_BYTES:
                await websocket.close(p.CLOSE_TOO_BIG, "frame too big")
                return
            try:
                frame = host_decoder.decode(data)
            except msgspec.DecodeError as exc:
                code, text = p.describe_decode_error(exc)
                hub.deliver(viewer, Message(p.encode(p.Error(code=code, message=text))))
                continue
            match frame:
                case p.Ping(ref=ref):
                    hub.deliver(viewer, Message(p.encode(p.Pong(server_time=live.clock.now_ms(), ref=ref))))
                case Auth():
                    pass  # a repeated auth on an open channel changes nothing
    except WebSocketDisconnect:
        pass
    finally:
        state.metrics.host_connections.dec()
        state.chat.detach(viewer)
        await panels.detach(viewer)
        await hub.leave(viewer)
