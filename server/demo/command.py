"""``livedrop demo``: one command that gives a person a live show to click through.

It starts a local Redis when ``REDIS_URL`` is unset (like ``serve``), seeds a show with a few
products whose images ship in ``server/static/demo/products`` (no network needed), launches the
first drop, serves the app in demo mode, and lets a bounded audience of bot viewers shop over real
WebSockets: each bot is one connection with its own viewer token, reserves at a gentle random pace,
then checks out, releases or lets its hold expire, and sometimes joins a waitlist. An autopilot
launches the next drop of the run of show when nothing has been live for a while, so the demo keeps
moving without a host — a host on the panel can launch, restock and end drops at any time.

The bots run as tasks in the server's own process and event loop: one command, one process to
stop, and 50 bots at a few reservations per second cost little next to what the server is built for.

How the demo viewer page gets a token: the panel (signed in with a host token) mints one through
the host API and opens the page with it, and the command prints one URL with a token in it. There
is deliberately no unauthenticated "give me a viewer token" endpoint, even in demo mode: a server
started with the demo flag by mistake would let anyone mint identities, which is what per-customer
limits rely on. The token travels in the URL's fragment (``#token=``), which browsers never send
to the server, so it stays out of access logs and referrers.

Demo mode adds one endpoint, ``POST /demo/checkout``: it confirms a viewer's own hold (bearer
viewer token, ownership checked) without payment, so a person can see the ``confirmed`` state.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import json
import logging
import os
import random
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

import msgspec
import uvicorn
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from broadcast.hub import Hub
from server.problems import Problem, problem_response
from server.settings import Settings
from server.shows.actions import Host
from server.shows.catalog import Catalog, DropInfo, Show
from server.shows.node import Live
from server.viewers import tokens
from server.viewers.protocol import MAX_FRAME_BYTES
from stock import HoldNotActive, InvalidArgument, StockEngine, StockError, UnknownDrop, UnknownHold, keys
from stock.types import DropState, HoldState

logger = logging.getLogger("livedrop.demo")

DEFAULT_BOTS: Final = 50
MAX_BOTS: Final = 500  # a demo, not a load test: loadtest/ is for that
DEFAULT_BOT_INTERVAL: Final = 25.0  # mean seconds between two reservation attempts of one bot
VIEWER_TOKEN_TTL: Final = 12 * 3600.0  # a demo left open for a day still works until evening
AUTOPILOT_IDLE: Final = 15.0  # seconds with no live drop before the autopilot launches the next


# -- the seeded show ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Product:
    slug: str
    sku: str
    title: str
    prices: dict[str, int]
    total: int
    per_customer_limit: int = 3
    hold_seconds: float = 45.0  # short, so a person sees holds expire and units come back
    duration_seconds: float = 240.0


PRODUCTS: Final = (
    Product("sneaker", "SNK-AURORA-42", "Aurora sneaker", {"EUR": 8900, "USD": 9900}, 120),
    Product("tote", "TOTE-CANVAS", "Canvas tote bag", {"EUR": 2400, "USD": 2600}, 80, per_customer_limit=4),
    Product("mug", "MUG-GLAZE", "Glazed ceramic mug", {"EUR": 1800, "USD": 1900}, 60),
    Product("beanie", "BEANIE-WOOL", "Merino wool beanie", {"EUR": 3200, "USD": 3500}, 70),
    # One per customer and fewer units than bots: this one sells out, and the waitlist fills.
    Product("vinyl", "LP-LIVE-01", "Live session vinyl (signed)", {"EUR": 4500, "USD": 4900}, 30, 1),
)


def image_url(product: Product) -> str:
    """Served by the app itself (``/static``), so the demo needs no network."""
    return f"/static/demo/products/{product.slug}.svg"


async def seed_show(host: Host, show_id: str, title: str, launch_first: bool = True) -> list[DropInfo]:
    """Create (or complete) the demo show, its products in run-of-show order, start the show and
    launch its first drop. Idempotent: every step is (a re-run with the same ids changes nothing)."""
    await host.create_show(Show(show_id=show_id, title=title))
    drops = []
    for product in PRODUCTS:
        drops.append(
            await host.add_drop(
                DropInfo(
                    drop_id=f"{show_id}-{product.slug}",
                    show_id=show_id,
                    sku=product.sku,
                    title=product.title,
                    total=product.total,
                    image_url=image_url(product),
                    prices=dict(product.prices),
                    per_customer_limit=product.per_customer_limit,
                    hold_seconds=product.hold_seconds,
                    duration_seconds=product.duration_seconds,
                )
            )
        )
    await host.live.start_show(show_id)
    if launch_first and drops:
        await host.launch(drops[0].drop_id)
    return drops


def next_to_launch(states: Sequence[tuple[str, str]], idle_for: float, idle: float = AUTOPILOT_IDLE) -> str | None:
    """The autopilot's choice: the first draft of the run of show, once no drop has been live
    for ``idle`` seconds; None while a drop is live, too soon, or when nothing is left."""
    if any(state == DropState.LIVE.value for _, state in states) or idle_for < idle:
        return None
    return next((drop_id for drop_id, state in states if state == DropState.DRAFT.value), None)


async def autopilot(host: Host, show_id: str, idle: float = AUTOPILOT_IDLE, every: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    last_live = loop.time()
    while True:
        await asyncio.sleep(every)
        try:
            states = [(d, (await host.engine.snapshot(d)).state.value) for d in await host.catalog.drop_ids(show_id)]
            if any(state == DropState.LIVE.value for _, state in states):
                last_live = loop.time()
                continue
            chosen = next_to_launch(states, loop.time() - last_live, idle)
            if chosen is not None:
                await host.launch(chosen)
                last_live = loop.time()
                logger.info("demo autopilot launched %s", chosen)
        except asyncio.CancelledError:
            raise
        except (RedisError, StockError):
            logger.warning("demo autopilot: could not read or launch drops; retrying")


# -- bots: the decisions (pure) -------------------------------------------------------------------
class Outcome(enum.Enum):
    CHECKOUT = "checkout"
    RELEASE = "release"
    EXPIRE = "expire"


@dataclass(frozen=True)
class SendFrame:
    frame: dict[str, Any]


@dataclass(frozen=True)
class Checkout:
    hold: str


Action = SendFrame | Checkout


@dataclass
class _Drop:
    state: str
    available: int


@dataclass
class BotBrain:
    """What one simulated viewer does, from the frames it receives. Pure: the caller passes the
    time and owns the socket, so the behaviour is tested without a network or a clock.

    A bot tries to reserve one unit (sometimes two) of a live drop with stock left, on average
    every ``interval`` seconds (exponential gaps, so the audience does not move in lockstep). Of
    its holds, most are checked out a few seconds later, some released, some left to expire; on
    ``sold_out`` it sometimes joins the waitlist."""

    name: str
    rng: random.Random
    interval: float = DEFAULT_BOT_INTERVAL
    checkout_share: float = 0.6
    release_share: float = 0.2
    waitlist_share: float = 0.3
    drops: dict[str, _Drop] = field(default_factory=dict)
    plans: dict[str, tuple[float, Outcome]] = field(default_factory=dict)  # hold -> (when, what)
    limited: set[str] = field(default_factory=set)  # drops where this bot reached its limit
    next_try: float = 0.0
    sent: int = 0

    def start(self, now: float) -> None:
        self.next_try = now + self.rng.expovariate(1 / self.interval)

    def next_wake(self) -> float:
        due = [when for when, outcome in self.plans.values() if outcome is not Outcome.EXPIRE]
        return min([self.next_try, *due])

    def on_frame(self, frame: dict[str, Any], now: float) -> list[Action]:
        kind = frame.get("type")
        if kind == "welcome":
            self.drops = {d["id"]: _Drop(d["state"], int(d["stock"]["available"])) for d in frame.get("drops", [])}
        elif kind == "drop":
            d = frame["drop"]
            self.drops[d["id"]] = _Drop(d["state"], int(d["stock"]["available"]))
        elif kind == "stock" and frame.get("drop") in self.drops:
            self.drops[frame["drop"]].available = int(frame["available"])
        elif kind == "drop_ended" and frame.get("drop") in self.drops:
            self.drops[frame["drop"]].state = DropState.CLOSED.value
        elif kind == "reserved":
            roll = self.rng.random()
            if roll < self.checkout_share:
                outcome = Outcome.CHECKOUT
            elif roll < self.checkout_share + self.release_share:
                outcome = Outcome.RELEASE
            else:
                outcome = Outcome.EXPIRE
            self.plans[frame["hold"]] = (now + self.rng.uniform(2.0, 10.0), outcome)
        elif kind in ("hold_expired", "confirmed", "released"):
            self.plans.pop(frame.get("hold", ""), None)
        elif kind == "rejected" and frame.get("reason") == "limit_exceeded":
            self.limited.add(frame["drop"])
        elif kind == "rejected" and frame.get("reason") == "sold_out" and self.rng.random() < self.waitlist_share:
            return [SendFrame({"type": "waitlist", "drop": frame["drop"], "qty": 1, "ref": self._ref()})]
        return self.due(now)

    def due(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for hold, (when, outcome) in list(self.plans.items()):
            if when > now or outcome is Outcome.EXPIRE:
                continue
            del self.plans[hold]
            if outcome is Outcome.CHECKOUT:
                actions.append(Checkout(hold))
            else:
                actions.append(SendFrame({"type": "release", "hold": hold, "ref": self._ref()}))
        if now >= self.next_try:
            self.next_try = now + self.rng.expovariate(1 / self.interval)
            choices = sorted(
                d
                for d, s in self.drops.items()
                if s.state == DropState.LIVE.value and s.available > 0 and d not in self.limited
            )
            if choices:
                qty = 2 if self.rng.random() < 0.1 else 1
                drop = self.rng.choice(choices)
                actions.append(SendFrame({"type": "reserve", "ref": self._ref(), "drop": drop, "qty": qty}))
        return actions

    def _ref(self) -> str:
        self.sent += 1
        return f"{self.name}-{self.sent}"


# -- bots: the I/O shell ----------------------------------------------------------------------------
async def run_bot(url: str, brain: BotBrain, engine: StockEngine, delay: float = 0.0) -> None:
    """One bot viewer: connect, feed frames to its brain, carry out its actions; reconnect after
    a dropped connection (a node restart closes with 1012). Stops on a refused token."""
    await asyncio.sleep(delay)
    loop = asyncio.get_running_loop()
    backoff = 0.5
    brain.start(loop.time())
    while True:
        try:
            async with connect(url, compression=None, open_timeout=10, max_size=2**20) as ws:
                backoff = 0.5
                while True:
                    try:
                        async with asyncio.timeout(max(0.0, brain.next_wake() - loop.time())):
                            raw = await ws.recv()
                        actions = brain.on_frame(json.loads(raw), loop.time())
                    except TimeoutError:
                        actions = brain.due(loop.time())
                    for action in actions:
                        if isinstance(action, SendFrame):
                            await ws.send(json.dumps(action.frame))
                        else:
                            await _checkout(engine, action.hold)
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code in (1008, 4404):
                logger.warning("demo bot %s refused: %s", brain.name, exc.rcvd.reason)
                return
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError):
            pass
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 10.0)


async def _checkout(engine: StockEngine, hold: str) -> None:
    """The bots' "checkout service": confirms the hold as a shop would after payment."""
    with contextlib.suppress(StockError, RedisError):
        await engine.confirm(hold, order_ref=f"demo:{hold}")


# -- demo-mode HTTP: the viewer page's "pay" button --------------------------------------------------
class CheckoutBody(msgspec.Struct, forbid_unknown_fields=True):
    show: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    hold: Annotated[str, msgspec.Meta(min_length=3, max_length=90, pattern=r"^[A-Za-z0-9_-]+\.[0-9]+$")]


class CheckoutResult(msgspec.Struct):
    hold: str
    qty: int


_encoder: Final = msgspec.json.Encoder()


async def checkout(request: Request) -> Response:
    """``POST /demo/checkout`` with ``Authorization: Bearer <viewer token>``: confirm the viewer's
    own hold as if it had paid. The ``confirmed`` frame then reaches the viewer as usual."""
    state: Any = request.state
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    try:
        body = msgspec.json.decode(await request.body(), type=CheckoutBody)
    except msgspec.DecodeError as exc:
        return problem_response(Problem(422, "invalid-request", "Invalid request body", str(exc)))
    if scheme.lower() != "bearer" or not token:
        return problem_response(Problem(401, "unauthorized", "Unauthorized", "a viewer token is required"))
    try:
        claims = tokens.verify(state.viewer_secret, token, body.show)
    except tokens.BadToken as exc:
        return problem_response(Problem(401, "unauthorized", "Unauthorized", str(exc)))
    engine: StockEngine = state.engine
    try:
        hold = await engine.hold(body.hold)
        snapshot = await engine.snapshot(keys.drop_of_hold(body.hold))
        if hold.customer != claims.viewer or snapshot.show_id != body.show:
            return problem_response(Problem(403, "not-owner", "Not the hold's owner"))
        if hold.state is not HoldState.HELD and hold.state is not HoldState.CONFIRMED:
            return problem_response(Problem(409, "hold-not-active", "Hold is not active", hold.state.value))
        result = await engine.confirm(body.hold, order_ref=f"demo:{body.hold}")
    except (UnknownHold, UnknownDrop, InvalidArgument):
        return problem_response(Problem(404, "unknown-hold", "Unknown hold", body.hold))
    except HoldNotActive as exc:
        return problem_response(Problem(409, "hold-not-active", "Hold is not active", str(exc)))
    except RedisError:
        return problem_response(Problem(503, "unavailable", "Service unavailable", "Redis is unreachable; retry"))
    return Response(_encoder.encode(CheckoutResult(hold=result.hold_id, qty=result.qty)), media_type="application/json")


def demo_routes(settings: Settings) -> list[BaseRoute]:
    """Routes that exist only in demo mode (none otherwise)."""
    if not settings.demo:
        return []

    return [Route("/demo/checkout", checkout, methods=["POST"])]


# -- the command ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Links:
    panel: str
    viewer: str


def links(base: str, show_id: str, host_token: str, viewer_token: str) -> Links:
    return Links(
        panel=f"{base}/panel#token={host_token}&show={show_id}",
        viewer=f"{base}/demo/shows/{show_id}#token={viewer_token}",
    )


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def choose_port(host: str, port: int, explicit: bool) -> int:
    """``port``, or when it is taken and was not asked for, a free one (a second demo, or a
    ``livedrop serve`` already on 8000, must not stop a person from clicking through)."""
    if _port_free(host, port):
        return port
    if explicit:
        raise SystemExit(f"livedrop: port {port} on {host} is in use; pick another with --port")
    with socket.socket() as probe:
        probe.bind((host, 0))
        free: int = probe.getsockname()[1]
    print(f"livedrop: port {port} is in use; the demo uses {free}", file=sys.stderr)
    return free


class _Server(uvicorn.Server):
    """uvicorn's server without its signal capture: the demo stops its bots first on SIGINT /
    SIGTERM, then lets the server shut down gracefully (``_run`` installs the handlers)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def main(args: argparse.Namespace, redis_url: str, loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> int:
    """Run the demo until SIGINT/SIGTERM (called by ``livedrop demo`` with a Redis ready)."""
    from server.settings import from_env

    bots = max(0, min(args.bots, MAX_BOTS))
    host_token = secrets.token_urlsafe(24)
    base = from_env()
    settings = msgspec.structs.replace(
        base,
        redis_url=redis_url,
        # A configured secret keeps tokens valid across runs; else one for this run.
        viewer_secret=base.viewer_secret or secrets.token_urlsafe(32),
        host_tokens=[*base.host_tokens, host_token],
        demo=True,
    )
    explicit = args.port is not None or bool(os.environ.get("LIVEDROP_PORT"))
    port = choose_port(args.host, args.port or int(os.environ.get("LIVEDROP_PORT") or 8000), explicit)
    show_id = args.show or time.strftime("demo-%m%d-%H%M%S")  # a new show each run; data stays on disk
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(_run(settings, args, show_id, port, bots, host_token))


async def _run(settings: Settings, args: argparse.Namespace, show_id: str, port: int, bots: int, token: str) -> int:
    from server.app import create_app

    assert settings.redis_url is not None
    redis = Redis.from_url(settings.redis_url)
    engine = StockEngine(redis)
    catalog = Catalog(redis, engine)
    host = Host(engine, catalog, Live(redis=redis, engine=engine, catalog=catalog, hub=Hub(), node_id="demo-seed"))
    tasks: list[asyncio.Task[None]] = []
    try:
        title = f"LiveDrop demo · {time.strftime('%H:%M')}"
        drops = await seed_show(host, show_id, title)
        config = uvicorn.Config(
            create_app(settings),
            host=args.host,
            port=port,
            ws="websockets-sansio",
            ws_per_message_deflate=False,
            ws_max_size=MAX_FRAME_BYTES,
            lifespan="on",
            log_level=args.log_level,
            timeout_graceful_shutdown=5,
        )
        server = _Server(config)
        serving = asyncio.create_task(server.serve(), name="demo-server")
        _on_signals(server, tasks)
        while not server.started:
            if serving.done():
                return 1
            await asyncio.sleep(0.05)
        secret = settings.viewer_secret.encode()
        loopback = f"127.0.0.1:{port}"
        shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "127.0.0.1") else args.host
        viewer_token = tokens.mint(secret, show_id, f"viewer-{secrets.token_hex(3)}", ttl=VIEWER_TOKEN_TTL)
        urls = links(f"http://{shown_host}:{port}", show_id, token, viewer_token)
        rng = random.Random()
        for i in range(bots):
            bot_token = tokens.mint(secret, show_id, f"bot-{i + 1:03d}", ttl=VIEWER_TOKEN_TTL)
            brain = BotBrain(f"bot{i + 1}", random.Random(rng.random()), interval=args.bot_interval)
            url = f"ws://{loopback}/ws/shows/{show_id}?token={bot_token}"
            tasks.append(asyncio.create_task(run_bot(url, brain, engine, delay=i * 0.1), name=f"bot-{i + 1}"))
        if args.autopilot:
            tasks.append(asyncio.create_task(autopilot(host, show_id), name="demo-autopilot"))
        print(
            "\nLiveDrop demo is running. Open these in a browser (Ctrl-C stops the demo):\n\n"
            f"  Control panel  {urls.panel}\n"
            f"  Viewer page    {urls.viewer}\n\n"
            f'  Show "{show_id}": {len(drops)} products, "{drops[0].title}" is live; '
            f"{bots} bot viewers are shopping.\n"
            "  The panel's link carries a host token valid for this run only "
            "(`livedrop token host` mints a lasting one).\n",
            flush=True,
        )
        await serving
        return 0
    finally:
        await _cancel(tasks)
        await redis.aclose()


def _on_signals(server: uvicorn.Server, tasks: list[asyncio.Task[None]]) -> None:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if server.should_exit:
            server.force_exit = True  # a second Ctrl-C: do not wait for connections
        server.should_exit = True
        for task in tasks:
            task.cancel()  # the bots hang up first, so the server's drain has nobody to wait for

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows' loops
            loop.add_signal_handler(sig, stop)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=os.environ.get("LIVEDROP_HOST", "127.0.0.1"))
    parser.add_argument(
        "--port", type=int, default=None, help="default $LIVEDROP_PORT, else 8000 or a free port if 8000 is taken"
    )
    parser.add_argument("--redis-url", default=None, help="Redis URL (default: $REDIS_URL, else a local Redis)")
    parser.add_argument("--show", default=None, help="show id (default: demo-MMDD-HHMMSS, a new show each run)")
    parser.add_argument("--bots", type=int, default=DEFAULT_BOTS, help=f"bot viewers (at most {MAX_BOTS})")
    parser.add_argument(
        "--bot-interval", type=float, default=DEFAULT_BOT_INTERVAL, help="mean seconds between a bot's attempts"
    )
    parser.add_argument("--no-autopilot", dest="autopilot", action="store_false", help="never launch drops")
    parser.add_argument("--log-level", default=os.environ.get("LIVEDROP_LOG_LEVEL", "warning"))
