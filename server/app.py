"""The Starlette application. Its lifespan owns every resource (Redis pool, stock engine,
batcher, sweeper) and hands them to endpoints as ``request.state`` — nothing is created at
import time, so tests can run several apps side by side."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import secrets
import socket
from collections.abc import AsyncIterator
from functools import partial
from typing import Any, TypedDict

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from broadcast.hub import Hub
from broadcast.transport import CaptureTransport
from server.chat.node import ChatNode
from server.checkout.store import CheckoutStore
from server.demo.checkout import demo_routes
from server.host.api import build_api
from server.host.channel import HostPanels
from server.host.pages import panel_routes
from server.ops.metrics import HubExport, Metrics, multiprocess_dir, process_exited
from server.platforms.channels.service import ChannelService
from server.platforms.reconcile.service import Reconciler
from server.platforms.webhooks.receiver import webhook_routes
from server.platforms.webhooks.service import WebhookService
from server.settings import Settings, from_env
from server.shows.actions import HostActions
from server.shows.catalog import Catalog
from server.shows.node import ShowNode
from server.shows.sweeper import Sweeper
from server.viewers.answers import ref_of_request
from server.viewers.client_js import client_routes
from server.viewers.endpoint import viewer_endpoint
from server.viewers.handshake import check_endpoint
from server.viewers.reserving import Reserving
from stock import HoldRefs, ReserveBatcher, StockEngine


class State(TypedDict):
    redis: Redis
    engine: StockEngine
    catalog: Catalog
    hub: Hub
    live: ShowNode
    host: HostActions
    viewer_secret: bytes
    batcher: ReserveBatcher
    reserving: Reserving
    sweeper: Sweeper
    metrics: Metrics
    hub_export: HubExport
    node_id: str
    settings: Settings
    webhooks: WebhookService
    reconciler: Reconciler
    panels: HostPanels
    channels: ChannelService
    chat: ChatNode
    checkout: CheckoutStore


async def healthz(request: Request) -> Response:
    """Liveness: the process answers. Says nothing about Redis, so a Redis outage does not
    get every node restarted by its orchestrator at once. ``node`` names the process that
    answered (host, pid, a random suffix), for operators behind a balancer."""
    return JSONResponse({"status": "ok", "node": request.state.node_id})


async def readyz(request: Request) -> Response:
    """Readiness: this node can serve a sale now — Redis answers and the sweeper runs."""
    redis: Redis = request.state.redis
    sweeper: Sweeper = request.state.sweeper
    checks = {"redis": False, "sweeper": sweeper.healthy}
    try:
        checks["redis"] = bool(await asyncio.wait_for(redis.ping(), timeout=1.0))
    except (RedisError, OSError, TimeoutError):
        request.state.metrics.redis_errors.labels("readyz").inc()
    ready = all(checks.values())
    return JSONResponse({"status": "ready" if ready else "unavailable", "checks": checks}, 200 if ready else 503)


async def metrics(request: Request) -> Response:
    request.state.hub_export.sync()
    m: Metrics = request.state.metrics
    return Response(m.exposition(), media_type=m.content_type)


def connect_redis(url: str, settings: Settings, size: int | None = None) -> tuple[Any, BlockingConnectionPool | None]:
    """A client for ``url``: Redis Cluster when ``settings.redis_cluster`` (every key of a drop
    or a show shares one hash tag, so each script and stream lives on one node), else one
    server through a blocking pool sized for the node (FIFO waits instead of redis-py's
    immediate MaxConnectionsError past the limit, DESIGN §9)."""
    size = size or settings.redis_pool_size
    if settings.redis_cluster:
        return RedisCluster.from_url(url, max_connections=size), None
    pool = BlockingConnectionPool.from_url(url, max_connections=size, timeout=10)
    return Redis(connection_pool=pool), pool


def tune_gc() -> None:
    """Keep full garbage collections rare. Each connected viewer keeps ~130 tracked objects
    alive (its suspended coroutine chain), so at 10,000 viewers a full collection walks over a
    million objects and stalls the loop for ~1 s — in the middle of a reservation burst
    (bench/fanout.py). Objects alive after start-up are frozen out of collections, and the
    oldest generation is collected a hundred times less often; departed viewers leave cycles, so
    full collections are made rare, not disabled."""
    gc.freeze()
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, 1000)


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the app. ``settings.redis_url`` must be set (the CLI starts a local Redis and
    fills it in when the operator gave none)."""
    settings = settings or from_env()
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set: run `livedrop serve`, which starts a local Redis")
    redis_url = settings.redis_url
    viewer_secret = settings.viewer_secret.encode() or secrets.token_bytes(32)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        redis, pool = connect_redis(redis_url, settings)
        # Blocking stream reads (one per subscribed show and per tailed drop) get their own.
        blocking_redis, blocking_pool = connect_redis(redis_url, settings, size=settings.redis_blocking_pool_size)
        hold_refs = HoldRefs(viewer_secret)  # every node and worker derives the same key
        engine = StockEngine(redis, hold_refs)
        catalog = Catalog(redis, engine)
        hub = Hub(outbox_limit=settings.outbox_limit, slow_after=settings.slow_after)
        live = ShowNode(
            redis=redis,
            engine=engine,
            catalog=catalog,
            hub=hub,
            node_id=f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}",
            stock_interval=settings.stock_interval,
            blocking_redis=blocking_redis,
            ref_of_request=partial(ref_of_request, viewer_secret),
        )
        batcher = ReserveBatcher(engine)
        reserving = Reserving(batcher, live.soldout, live.shows, viewer_secret)
        chat = ChatNode(
            hub=hub, live=live, engine=engine, reserving=reserving, secret=viewer_secret, settings=settings.chat
        )

        async def first(show_id: str) -> None:
            await live.subscribe(show_id)
            try:
                await chat.subscribe(show_id)
            except BaseException:
                await live.unsubscribe(show_id)  # nothing left registered, as ShowNode promises
                raise

        async def last(show_id: str) -> None:
            await chat.unsubscribe(show_id)
            await live.unsubscribe(show_id)

        hub.on_first, hub.on_last = first, last
        live.on_show_state = chat.show_state
        metrics_ = Metrics()
        hub_export = HubExport(
            metrics_, hub, lambda: live.redis_errors, lambda: (live.soldout.answered, live.soldout.arms)
        )
        # One process answers a scrape for all of them: the others keep their files current.
        export_task = asyncio.create_task(hub_export.run(), name="hub-export") if multiprocess_dir() else None
        sweeper = Sweeper(engine, metrics_, settings.sweep_interval, settings.drop_scan_interval)
        sweep_task = asyncio.create_task(sweeper.run(), name="sweeper")
        webhooks = WebhookService(redis, catalog, metrics_, settings.webhooks, hold_refs=hold_refs)
        reconciler = Reconciler(redis, engine, catalog, webhooks.alerts, metrics_, settings.webhooks)
        checkout = CheckoutStore(redis)
        live.checkout_link = checkout.link  # waitlist hand-outs carry a checkout link too
        host = HostActions(engine, catalog, live)
        panels = HostPanels(redis=redis, engine=engine, catalog=catalog, hub=hub, live=live, channels=settings.channels)
        channels = ChannelService(
            redis, catalog, webhooks.applier, webhooks.alerts, metrics_, settings.channels, live.node_id
        )
        webhooks.start()
        reconciler.start()
        channels.start()
        if settings.gc_tuning:
            tune_gc()
        try:
            yield {
                "redis": redis,
                "engine": engine,
                "catalog": catalog,
                "hub": hub,
                "live": live,
                "host": host,
                "viewer_secret": viewer_secret,
                "batcher": batcher,
                "reserving": reserving,
                "sweeper": sweeper,
                "metrics": metrics_,
                "hub_export": hub_export,
                "node_id": live.node_id,
                "settings": settings,
                "webhooks": webhooks,
                "reconciler": reconciler,
                "panels": panels,
                "channels": channels,
                "chat": chat,
                "checkout": checkout,  # server/checkout: links in `reserved` answers
            }
        finally:
            if export_task is not None:
                export_task.cancel()
            process_exited()
            await channels.aclose()
            await panels.aclose()
            await reconciler.aclose()
            await webhooks.aclose()
            sweep_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweep_task
            await hub.aclose()
            await chat.aclose()
            await live.aclose()
            await batcher.aclose()
            await redis.aclose()
            await blocking_redis.aclose()
            for each in (pool, blocking_pool):
                if each is not None:
                    await each.aclose()

    api = build_api()
    document = api.openapi()

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    return Starlette(
        routes=[
            Route("/openapi.json", openapi),
            *api.routes(),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            WebSocketRoute("/ws/shows/{show_id}", viewer_endpoint),
            Route("/ws/shows/{show_id}", check_endpoint),  # plain HTTP: why a handshake failed
            *webhook_routes(),
            *panel_routes(settings),
            *demo_routes(settings),
            *client_routes(),
        ],
        # Outermost, so it sees the server's own `send` (the hub's non-awaiting fast path).
        middleware=[Middleware(CaptureTransport)],
        lifespan=lifespan,
    )
