"""The fan-out variants under test: one registry and one broadcast loop each.

A  bare ``websockets`` asyncio server, ``websockets.broadcast`` to every connection (the ceiling)
B  Starlette on uvicorn (sansio), one loop awaiting ``websocket.send_text`` per viewer
C  Starlette on uvicorn, a queue and a writer task per viewer (the textbook design)
D1 Starlette on uvicorn, one loop, ``send_nowait`` (pure ASGI, coroutine driven one step)
D2 Starlette on uvicorn, one loop, hook: ``writable`` check + websockets framing + ``transport.write``
D3 Starlette on uvicorn, one loop, hook: ``writable`` check + one pre-serialised frame ``transport.write``
E  Starlette/uvicorn for HTTP and a ``websockets`` server for viewers on a second port, in the same
   process and loop; one loop, ``paused`` check + pre-serialised frame ``transport.write``
P  B, D1, D2 and D3's loops over the same sockets of one process, one per broadcast (paired comparison)

Variants D1-E set aside a viewer whose send would wait (latest frame kept, conflated), drain it from a
task of its own, and evict it after ``slow_after`` seconds still paused. Every loop yields to the event
loop every ``yield_every`` sends; A's ``websockets.broadcast`` is one call to all N, as the ceiling.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, Generic, TypeVar

import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.server import Server, ServerConnection, serve

from bench.fanout_lib.frames import Wire
from bench.fanout_lib.sendpath import (
    SansIOHook,
    SansIOTransport,
    SendResult,
    send_nowait,
    websockets_write,
)

HOST = "127.0.0.1"
VIEWER_PATH = "/ws/shows/{show_id}"
SLOW_CLOSE_CODE = 1013  # DESIGN §4: a viewer that stays over its bound is closed with 1013 and resumes
SLOW_CLOSE_GRACE = 0.5  # seconds a stalled viewer gets to read its close frame before the abort

V = TypeVar("V")


def listening_socket(sndbuf: int) -> socket.socket:
    """A loopback listener; accepted sockets inherit its SO_SNDBUF (used by the slow-viewer scenario to
    emulate a WAN send buffer: on loopback the 64 KiB MSS autotunes send buffers to megabytes)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if sndbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.bind((HOST, 0))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


class Variant:
    """The registry of one variant and its broadcast; counters are reported to the orchestrator."""

    name: ClassVar[str] = "?"

    def __init__(self, slow_after: float) -> None:
        self.slow_after = slow_after
        self.set_aside = 0  # viewers ever set aside because their send would wait
        self.evicted = 0  # viewers closed (or dropped) for staying paused past slow_after
        self.gone = 0  # viewers found closed during a broadcast

    async def start(self, sock: socket.socket) -> dict[str, Any]:
        raise NotImplementedError

    def viewers(self) -> int:
        raise NotImplementedError

    def pending(self) -> int:
        return 0

    def set_mode(self, mode: str | None) -> None:
        """Only the paired variant has modes."""

    async def broadcast(self, wire: Wire, yield_every: int) -> None:
        raise NotImplementedError


class SetAside(Generic[V]):
    """Viewers whose send would wait: the latest frame for each (conflated) and one drain task each.

    Only slow viewers get a task; the broadcast loop skips them and replaces their pending frame."""

    def __init__(self) -> None:
        self.frames: dict[V, Wire] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def __contains__(self, viewer: object) -> bool:
        return viewer in self.frames

    def __len__(self) -> int:
        return len(self.frames)

    def replace(self, viewer: V, wire: Wire) -> None:
        self.frames[viewer] = wire

    def add(self, viewer: V, wire: Wire, drain: Callable[[V], Coroutine[Any, Any, None]]) -> None:
        self.frames[viewer] = wire
        task = asyncio.get_running_loop().create_task(drain(viewer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


# ------------------------------------------------------------------------------------------- A: ceiling


class BareWebsockets(Variant):
    name = "A"

    def __init__(self, slow_after: float) -> None:
        super().__init__(slow_after)
        self.connections: set[ServerConnection] = set()
        self.server: Server | None = None

    async def _handler(self, connection: ServerConnection) -> None:
        self.connections.add(connection)
        try:
            await connection.wait_closed()
        finally:
            self.connections.discard(connection)

    async def start(self, sock: socket.socket) -> dict[str, Any]:
        self.server = await serve(self._handler, sock=sock, compression=None, ping_interval=None)
        return {"port": sock.getsockname()[1]}

    def viewers(self) -> int:
        return len(self.connections)

    async def broadcast(self, wire: Wire, yield_every: int) -> None:
        websockets.broadcast(self.connections, wire.payload, text=True)


# ----------------------------------------------------------------------------- Starlette on uvicorn


class OnUvicorn(Variant):
    """Starlette on uvicorn with loop=uvloop (the loop this process runs), ws=websockets-sansio."""

    def __init__(self, slow_after: float) -> None:
        super().__init__(slow_after)
        self.uvicorn: uvicorn.Server | None = None
        self.serve_task: asyncio.Task[None] | None = None

    def app(self) -> ASGIApp:
        return Starlette(routes=[WebSocketRoute(VIEWER_PATH, self.endpoint), Route("/healthz", healthz)])

    async def endpoint(self, websocket: WebSocket) -> None:
        raise NotImplementedError

    async def start_uvicorn(self, app: ASGIApp, sock: socket.socket) -> None:
        config = uvicorn.Config(
            app,
            loop="uvloop",
            ws="websockets-sansio",
            ws_per_message_deflate=False,
            ws_ping_interval=None,  # A runs without pings too; the clients answer pings anyway
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self.uvicorn = uvicorn.Server(config)
        # The server runs on this process's loop (uvloop, chosen in main): Server.serve() does not
        # install a loop of its own, so ``loop="uvloop"`` is what the loop already is.
        self.serve_task = asyncio.create_task(self.uvicorn.serve(sockets=[sock]))
        while not self.uvicorn.started:
            if self.serve_task.done():
                self.serve_task.result()
            await asyncio.sleep(0.01)

    async def start(self, sock: socket.socket) -> dict[str, Any]:
        await self.start_uvicorn(self.app(), sock)
        return {"port": sock.getsockname()[1]}


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def hold_open(websocket: WebSocket) -> None:
    """A viewer's endpoint stays in ``receive`` until the viewer goes (viewers send nothing here)."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


class StarletteAwait(OnUvicorn):
    name = "B"

    def __init__(self, slow_after: float) -> None:
        super().__init__(slow_after)
        self.sockets: set[WebSocket] = set()

    async def endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self.sockets.add(websocket)
        try:
            await hold_open(websocket)
        finally:
            self.sockets.discard(websocket)

    def viewers(self) -> int:
        return len(self.sockets)

    async def broadcast(self, wire: Wire, yield_every: int) -> None:
        for index, websocket in enumerate(list(self.sockets), 1):
            try:
                await websocket.send_text(wire.text)
            except (WebSocketDisconnect, RuntimeError):
                self.gone += 1
                self.sockets.discard(websocket)
            if index % yield_every == 0:
                await asyncio.sleep(0)


class StarletteQueues(OnUvicorn):
    name = "C"

    def __init__(self, slow_after: float) -> None:
        super().__init__(slow_after)
        self.queues: dict[WebSocket, asyncio.Queue[str | None]] = {}

    async def endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.queues[websocket] = queue

        async def reader() -> None:
            await hold_open(websocket)
            queue.put_nowait(None)

        reading = asyncio.create_task(reader())
        try:
            while (text := await queue.get()) is not None:
                await websocket.send_text(text)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.queues.pop(websocket, None)
            reading.cancel()

    def viewers(self) -> int:
        return len(self.queues)

    async def broadcast(self, wire: Wire, yield_every: int) -> None:
        for index, queue in enumerate(list(self.queues.values()), 1):
            queue.put_nowait(wire.text)
            if index % yield_every == 0:
                await asyncio.sleep(0)


class StarletteStep(StarletteAwait):
    name = "D1"

    def __init__(self, slow_after: float) -> None:
        super().__init__(slow_after)
        self.aside: SetAside[WebSocket] = SetAside()
        # Evicted viewers stay connected (see _drain); a broadcast that took its snapshot of
        # ``sockets`` before the eviction must not set them aside again.
        self.dropped: set[WebSocket] = set()

    def pending(self) -> int:
        return len(self.aside)

    async def endpoint(self, websocket: WebSocket) -> None:
        try:
            await super().endpoint(websocket)
        finally:
            self.dropped.discard(websocket)

    async def broadcast(self, wire: Wire, yield_every: int) -> None:
        aside = self.aside
        for index, websocket in enumerate(list(self.sockets), 1):
            if websocket in aside:
                aside.replace(websocket, wire)
            else:
                result = send_nowait(websocket, wire.text)
                if result is SendResult.WOULD_WAIT and websocket not in self.dropped:
                    self.set_aside += 1
                    aside.add(websocket, wire, self._drain)
                elif result is SendResult.GONE:
                    self.gone += 1
                    self.sockets.discard(websocket)
            if index % yield_every == 0:
                await asyncio.sleep(0)

    async def _drain(self, websocket: WebSocket) -> None:
        try:
            async with asyncio.timeout(self.slow_after):
                while True:
                    wire = self.aside.frames[websocket]
                    await websocket.send_text(wire.text)  # waits for ``writable``, then writes
                    if self.aside.frames[websocket] is wire:
                        return
        except TimeoutError:
            # Still paused. Through ASGI a close is a ``send`` too and would wait for ``writable`` as
            # well: the hub can only stop writing to it and let uvicorn's keepalive reap the socket.
            self.evicted += 1
            self.sockets.discard(websocket)
            self.dropped.add(websocket)
        except (WebSocketDisconnect, RuntimeError):
            self.sockets.discard(websocket)
        finally:
            self.aside.frames.pop(websocket, None)


class StarletteHook(OnUvicorn):
    name = "D3"
    framed = True  # D3 writes one pre-serialised frame; D2 frames per viewer as uvicorn does

    def __init__(self, slow_after: float) -> None:
        super().__init__(slow_after)
        self.transports: set[SansIOTransport] = set()
        self.aside: SetAside[SansIOTransport] = SetAside()

    def app(self) -> ASGIApp:
        return SansIOHook(super().app())

    async def endpoint(self, websocket: WebSocket) -> None:
        transport = SansIOTransport.from_scope(websocket.scope)
        if transport is None:
            raise RuntimeError("the sansio hook did not apply (uvicorn version or ws implementation)")
        await websocket.accept()
        self.transports.add(transport)
        try:
            await hold_open(websocket)
        finally:
            self.transports.discard(transport)

    def viewers(self) -> int:
        return len(self.transports)

    def pending(self) -> int:
        return len(self.aside)

    def _write(self, transport: SansIOTransport, wire: Wire) -> SendResult:
        if self.framed:
            return transport.write_framed(wire.framed)
        return transport.write_text(wire.payload)

    async def broadcast(self, wire: Wire, yield_every: int) -> None:
        aside = self.aside
        for index, transport in enumerate(list(self.transports), 1):
            if transport in aside:
                aside.replace(transport, wire)
            else:
                result = self._write(transport, wire)
                if result is SendResult.WOULD_WAIT:
                    self.set_aside += 1
                    aside.add(transport, wire, self._drain)
                elif result is SendResult.GONE:
                    self.gone += 1
                    self.transports.discard(transport)
            if index % yield_every == 0:
                await asyncio.sleep(0)

    async def _drain(self, transport: SansIOTransport) -> None:
        try:
            async with asyncio.timeout(self.slow_after):
                while True:
                    await transport.wait_writable()
                    wire = self.aside.frames[transport]
                    result = self._write(transport, wire)
                    if result is SendResult.GONE:
                        self.transports.discard(transport)
                        return
                    if result is SendResult.SENT and self.aside.frames[transport] is wire:
                        return
                    # WOULD_WAIT (paused again since the wake-up) or a newer frame: go round.
        except TimeoutError:
            self.evicted += 1
            self.transports.discard(transport)
            transport.close_slow(SLOW_CLOSE_CODE, SLOW_CLOSE_GRACE)
        finally:
            self.aside.frames.pop(transport, None)


class StarletteHookFraming(StarletteHook):
    name = "D2"
    framed = False


class PairedSendPaths(OnUvicorn):
    """B, D1, D2 and D3's send loops over the same viewers in one process, chosen per broadcast: a
    paired comparison of their CPU per frame that a neighbour's load or a process's luck cannot skew.
    No slow-viewer handling: every viewer here reads."""

    name = "P"
    modes: ClassVar[tuple[str, ...]] = ("B", "D1", "D2", "D3")

    def __init__(self, slow_after: float) -> None:
        super().__init__(slow_after)
        self.pairs: dict[WebSocket, SansIOTransport] = {}
        self.mode = "D3"

    def app(self) -> ASGIApp:
        return SansIOHook(super().app())

    def set_mode(self, mode: str | None) -> None:
        if mode is not None:
            self.mode = mode

    async def endpoint(self, websocket: WebSocket) -> None:
        transport = SansIOTransport.from_scope(websocket.scope)
        if transport is None:
            raise RuntimeError("the sansio hook did not apply (uvicorn version or ws implementation)")
        await websocket.accept()
        self.pairs[websocket] = transport
        try:
            await hold_open(websocket)
        finally:
            self.pairs.pop(websocket, None)

    def viewers(self) -> int:
        return len(self.pairs)

    async def broadcast(self, wire: Wire, yield_every: int) -> None:
        mode, text, payload, framed = self.mode, wire.text, wire.payload, wire.framed
        for index, (websocket, transport) in enumerate(list(self.pairs.items()), 1):
            if mode == "B":
                await websocket.send_text(text)
            elif mode == "D1":
                send_nowait(websocket, text)
            elif mode == "D2":
                transport.write_text(payload)
            else:
                transport.write_framed(framed)
            if index % yield_every == 0:
                await asyncio.sleep(0)


class WebsocketsInProcess(OnUvicorn):
    name = "E"

    def __init__(self, slow_after: float) -> None:
        super().__init__(slow_after)
        self.connections: set[ServerConnection] = set()
        self.aside: SetAside[ServerConnection] = SetAside()
        self.ws_server: Server | None = None

    async def _handler(self, connection: ServerConnection) -> None:
        self.connections.add(connection)
        try:
            await connection.wait_closed()
        finally:
            self.connections.discard(connection)

    async def start(self, sock: socket.socket) -> dict[str, Any]:
        http_sock = listening_socket(0)
        await self.start_uvicorn(Starlette(routes=[Route("/healthz", healthz)]), http_sock)
        self.ws_server = await serve(self._handler, sock=sock, compression=None, ping_interval=None)
        return {"port": sock.getsockname()[1], "http_port": http_sock.getsockname()[1]}

    def viewers(self) -> int:
        return len(self.connections)

    def pending(self) -> int:
        return len(self.aside)

    async def broadcast(self, wire: Wire, yield_every: int) -> None:
        aside = self.aside
        for index, connection in enumerate(list(self.connections), 1):
            if connection in aside:
                aside.replace(connection, wire)
            else:
                result = websockets_write(connection, wire.framed)
                if result is SendResult.WOULD_WAIT:
                    self.set_aside += 1
                    aside.add(connection, wire, self._drain)
                elif result is SendResult.GONE:
                    self.gone += 1
                    self.connections.discard(connection)
            if index % yield_every == 0:
                await asyncio.sleep(0)

    async def _drain(self, connection: ServerConnection) -> None:
        try:
            async with asyncio.timeout(self.slow_after):
                while True:
                    # Connection.drain() is what websockets' own send() awaits: it waits while paused.
                    await connection.drain()
                    wire = self.aside.frames[connection]
                    result = websockets_write(connection, wire.framed)
                    if result is SendResult.GONE:
                        self.connections.discard(connection)
                        return
                    if result is SendResult.SENT and self.aside.frames[connection] is wire:
                        return
        except TimeoutError:
            self.evicted += 1
            self.connections.discard(connection)
            if connection.protocol.state is websockets.State.OPEN:
                connection.protocol.send_close(SLOW_CLOSE_CODE, "slow")
                connection.send_data()
            asyncio.get_running_loop().call_later(SLOW_CLOSE_GRACE, connection.transport.abort)
        finally:
            self.aside.frames.pop(connection, None)


VARIANTS: dict[str, type[Variant]] = {
    cls.name: cls
    for cls in (
        BareWebsockets,
        StarletteAwait,
        StarletteQueues,
        StarletteStep,
        StarletteHookFraming,
        StarletteHook,
        WebsocketsInProcess,
        PairedSendPaths,
    )
}
