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
import logging
import os
import random
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

import msgspec
import uvicorn
from redis.asyncio import Redis

from broadcast.hub import Hub
from server.checkout.store import CheckoutStore
from server.demo.bots import BOT_NAMES, DEFAULT_CHAT_INTERVAL, BotBrain, run_bot
from server.demo.channels import DemoChannels, Listing
from server.demo.seed import autopilot, seed_show
from server.demo.store import DemoStore, with_store_secret
from server.settings import Settings
from server.shows.actions import HostActions
from server.shows.catalog import Catalog
from server.shows.node import ShowNode
from server.viewers import tokens
from server.viewers.protocol import MAX_FRAME_BYTES
from stock import StockEngine

logger = logging.getLogger("livedrop.demo")

DEFAULT_BOTS: Final = 50
MAX_BOTS: Final = 500  # a demo, not a load test: loadtest/ is for that
DEFAULT_BOT_INTERVAL: Final = 25.0  # mean seconds between two reservation attempts of one bot
VIEWER_TOKEN_TTL: Final = 12 * 3600.0  # a demo left open for a day still works until evening


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
    store = None
    if args.store:  # the stand-in Shopify store, for checkout links (server/demo/store.py)
        store = DemoStore(args.host, _shown_host(args.host))
        settings = with_store_secret(settings, store.secret)
    channels = None
    if args.channels:  # the four stand-in sales channels (server/demo/channels.py)
        channels = DemoChannels(args.host)
        settings = channels.settings(settings)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(_run(settings, args, show_id, port, bots, host_token, store, channels))


def _shown_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "127.0.0.1") else host


async def _run(
    settings: Settings,
    args: argparse.Namespace,
    show_id: str,
    port: int,
    bots: int,
    token: str,
    store: DemoStore | None = None,
    channels: DemoChannels | None = None,
) -> int:
    from server.app import create_app

    assert settings.redis_url is not None
    redis = Redis.from_url(settings.redis_url)
    engine = StockEngine(redis)
    catalog = Catalog(redis, engine)
    host = HostActions(
        engine, catalog, ShowNode(redis=redis, engine=engine, catalog=catalog, hub=Hub(), node_id="demo-seed")
    )
    tasks: list[asyncio.Task[None]] = []
    try:
        title = f"LiveDrop demo · {time.strftime('%H:%M')}"
        drops = await seed_show(host, show_id, title)
        listings: list[Listing] = []
        if channels is not None:
            # The stand-ins serve and hold their products before the node starts pushing to them
            # (their webhooks go to the node's port, known already).
            await channels.start(f"http://127.0.0.1:{port}")
            listings = await channels.stock(redis, drops)
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
        shown_host = _shown_host(args.host)
        shop_line = ""
        if store is not None:
            await store.start(f"http://{loopback}")
            await store.stock(CheckoutStore(redis), show_id, drops)
            shop_line = f"  Shop           {store.url}  (the viewer page's Checkout link pays here)\n"
        if channels is not None:
            names = ", ".join(f"{name} {url}" for name, url in channels.urls.items())
            shop_line += (
                f"  Channels       {names}\n                 (stock pushed there; their buyers order now and then)\n"
            )
            if listings:
                tasks.append(
                    asyncio.create_task(channels.buyers(listings, engine, random.Random()), name="demo-platform-buyers")
                )
        viewer_token = tokens.mint(secret, show_id, f"viewer-{secrets.token_hex(3)}", ttl=VIEWER_TOKEN_TTL)
        urls = links(f"http://{shown_host}:{port}", show_id, token, viewer_token)
        rng = random.Random()
        for i in range(bots):
            name = f"{BOT_NAMES[i % len(BOT_NAMES)]}{'' if i < len(BOT_NAMES) else i // len(BOT_NAMES) + 1}"
            bot_token = tokens.mint(secret, show_id, f"bot-{i + 1:03d}", ttl=VIEWER_TOKEN_TTL, name=name)
            brain = BotBrain(
                f"bot{i + 1}",
                random.Random(rng.random()),
                interval=args.bot_interval,
                chat_interval=DEFAULT_CHAT_INTERVAL,
                claim_share=0.3,  # some buy by comment, as on CommentSold
            )
            url = f"ws://{loopback}/ws/shows/{show_id}?token={bot_token}"
            tasks.append(asyncio.create_task(run_bot(url, brain, engine, delay=i * 0.1), name=f"bot-{i + 1}"))
        if args.autopilot:
            tasks.append(asyncio.create_task(autopilot(host, show_id), name="demo-autopilot"))
        print(
            "\nLiveDrop demo is running. Open these in a browser (Ctrl-C stops the demo):\n\n"
            f"  Control panel  {urls.panel}\n"
            f"  Viewer page    {urls.viewer}\n"
            f"{shop_line}\n"
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
        if store is not None:
            await store.stop()
        if channels is not None:
            await channels.stop()
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
    parser.add_argument(
        "--no-store",
        dest="store",
        action="store_false",
        help="no stand-in Shopify store: holds are paid with the demo's own Pay now button",
    )
    parser.add_argument(
        "--no-channels",
        dest="channels",
        action="store_false",
        help="no stand-in sales channels (Shopify, TikTok Shop, Meta, WooCommerce) to push stock to",
    )
    parser.add_argument("--log-level", default=os.environ.get("LIVEDROP_LOG_LEVEL", "warning"))
