"""The ``livedrop`` command.

``serve`` is the main job: when ``REDIS_URL`` is unset it starts a private Redis first (data
kept on disk under ``./var/redis`` or ``$LIVEDROP_DATA_DIR``) and stops it on exit. uvloop is
chosen here, at the entry point, never inside library code.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence

from server.ops.local_redis import LocalRedis, RedisUnavailable, default_data_dir
from server.ops.logs import log_config
from server.viewers.protocol import MAX_FRAME_BYTES

logger = logging.getLogger("livedrop")


@contextlib.contextmanager
def redis_for(url: str | None) -> Iterator[str]:
    """The Redis to use: ``url`` if given, else a local server for as long as the block runs."""
    if url:
        yield url
        return
    data_dir = default_data_dir()
    server = LocalRedis(data_dir)
    server.start()
    print(f"livedrop: started a local Redis at {server.url} (data in {data_dir})", file=sys.stderr)
    try:
        yield server.url
    finally:
        server.stop()


def _exit_on_sigterm() -> None:
    """uvicorn re-raises the SIGTERM it handled once it has shut down; turned into SystemExit
    here, it unwinds our ``with`` blocks so the local Redis is stopped cleanly, not orphaned."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _raise_fd_limit() -> None:
    """Each viewer is a file descriptor: lift the soft limit (often 1,024) to the hard one."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


@contextlib.contextmanager
def metrics_dir(workers: int) -> Iterator[None]:
    """With several worker processes, a scrape reaches one of them: give them a shared
    prometheus_client multiprocess directory so ``/metrics`` sums them all. An operator's
    ``PROMETHEUS_MULTIPROC_DIR`` is used (emptied first: files left by an earlier run would be
    summed in); otherwise a private directory lives as long as the server."""
    if workers <= 1:
        yield
        return
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        os.makedirs(given, exist_ok=True)
        for name in os.listdir(given):
            if name.endswith(".db"):
                os.remove(os.path.join(given, name))
        yield
        return
    with tempfile.TemporaryDirectory(prefix="livedrop-metrics-") as path:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path  # read by the workers at import
        try:
            yield
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    if args.workers > 1 and os.environ.get("LIVEDROP_WEBHOOK_CONSUMER"):
        # Workers sharing one consumer name would each take the others' in-flight deliveries
        # for their own crashed ones.
        print("livedrop: LIVEDROP_WEBHOOK_CONSUMER names one process; unset it to run --workers > 1", file=sys.stderr)
        return 2
    _exit_on_sigterm()
    _raise_fd_limit()
    with redis_for(args.redis_url or os.environ.get("REDIS_URL")) as url, metrics_dir(args.workers):
        os.environ["REDIS_URL"] = url  # worker processes read their settings from the environment
        # The default webhook consumer name is built from these (stable across restarts).
        os.environ["LIVEDROP_PORT"], os.environ["LIVEDROP_WORKERS"] = str(args.port), str(args.workers)
        if not os.environ.get("LIVEDROP_VIEWER_SECRET"):
            # Workers must share it; tokens minted by this run stop working at the next one.
            os.environ["LIVEDROP_VIEWER_SECRET"] = secrets.token_urlsafe(32)
            print("livedrop: LIVEDROP_VIEWER_SECRET is unset; using a random one for this run", file=sys.stderr)
        print(f"livedrop: serving on http://{args.host}:{args.port}", file=sys.stderr)
        uvicorn.run(
            "server.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            loop="uvloop" if sys.platform != "win32" else "asyncio",
            ws="websockets-sansio",
            # permessage-deflate halves the fan-out ceiling (DESIGN §9): off unless asked for.
            ws_per_message_deflate=args.ws_deflate,
            ws_max_size=MAX_FRAME_BYTES,
            lifespan="on",
            log_level=args.log_level,
            log_config=log_config(args.log_json, args.log_level),
            timeout_graceful_shutdown=args.shutdown_timeout,
        )
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    import asyncio

    from server.platforms.reconcile.cli import print_report
    from server.platforms.webhooks.config import webhook_settings_from_env

    grace = args.grace if args.grace is not None else webhook_settings_from_env(os.environ).reconcile_grace_seconds
    with redis_for(args.redis_url or os.environ.get("REDIS_URL")) as url:
        return asyncio.run(print_report(url, args.show, grace))


def _channels(args: argparse.Namespace) -> int:
    import asyncio

    from server.platforms.channels.cli import print_status
    from server.platforms.channels.config import channel_settings_from_env

    settings = channel_settings_from_env(os.environ)
    with redis_for(args.redis_url or os.environ.get("REDIS_URL")) as url:
        return asyncio.run(print_status(url, settings, as_json=args.json))


def _erase(args: argparse.Namespace) -> int:
    """Right to deletion: the customer id in every stock record (a tombstone, counters unchanged),
    the customer's chat messages and records in every show (server/chat), then every applied or
    dead-lettered webhook body that names the person. Prints what was done;
    exits 3 while deliveries naming the person wait to be applied (run it again then)."""
    import asyncio
    import json

    from redis.asyncio import Redis

    from server.chat.node import erase_viewer
    from server.keys import SHOWS_KEY
    from server.platforms.webhooks.erasure import erase_deliveries
    from server.replies import decoded
    from stock import StockEngine
    from stock.errors import InvalidArgument

    if not args.customer and not args.identifier:
        print("livedrop: name a --customer and/or an --identifier", file=sys.stderr)
        return 2

    async def run(url: str) -> int:
        client = Redis.from_url(url)
        try:
            places = await StockEngine(client).erase_customer(args.customer) if args.customer else 0
            chat = 0
            if args.customer:
                shows = sorted(decoded(s) for s in await client.smembers(SHOWS_KEY))
                secret = os.environ.get("LIVEDROP_VIEWER_SECRET", "").encode()
                chat = await erase_viewer(client, shows, args.customer, secret)
            result = await erase_deliveries(client, [*args.identifier, *([args.customer] if args.customer else [])])
        except InvalidArgument as exc:
            print(f"livedrop: {exc}", file=sys.stderr)
            return 2
        finally:
            await client.aclose()
        print(
            json.dumps(
                {
                    "stock_places": places,
                    "chat_records": chat,
                    "webhooks_erased": result.erased,
                    "deferred": result.deferred,
                }
            )
        )
        return 3 if result.deferred else 0

    with redis_for(args.redis_url or os.environ.get("REDIS_URL")) as url:
        return asyncio.run(run(url))


def _watch(args: argparse.Namespace) -> int:
    """Print a show's frames, one JSON object a line, resuming after a dropped connection."""
    import asyncio
    import json

    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.typing import Subprotocol

    from server.viewers.auth import subprotocols

    async def run() -> int:
        last: tuple[int, str] | None = None
        printed = 0
        while True:
            query = f"resume_from={last[0]}&epoch={last[1]}" if last is not None else ""
            url = f"{args.url.rstrip('/')}/ws/shows/{args.show}" + (f"?{query}" if query else "")
            # The token goes in Sec-WebSocket-Protocol, out of the URL that servers log.
            offered = [Subprotocol(p) for p in subprotocols(args.token)]
            try:
                async with connect(url, compression=None, max_size=2**20, subprotocols=offered) as ws:
                    async for raw in ws:
                        print(raw, flush=True)
                        frame = json.loads(raw)
                        if frame.get("type") == "welcome":
                            last = (frame["seq"], frame["epoch"])
                        elif "seq" in frame and last is not None:
                            last = (frame["seq"], last[1])
                        printed += 1
                        if args.count and printed >= args.count:
                            return 0
                    return 0
            except InvalidStatus as exc:  # refused in the handshake: a problem body says why
                body = (exc.response.body or b"").decode(errors="replace")
                print(f"livedrop: refused: {exc.response.status_code} {body}", file=sys.stderr)
                if exc.response.status_code < 500:
                    return 1
            except ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code in (1008, 4401, 4404):
                    print(f"livedrop: closed: {exc.rcvd.code} {exc.rcvd.reason}", file=sys.stderr)
                    return 1
                print(f"livedrop: connection closed ({exc}), resuming", file=sys.stderr)
            except OSError as exc:
                print(f"livedrop: {exc}; retrying", file=sys.stderr)
            await asyncio.sleep(1.0)

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:
        return 0


def _token(args: argparse.Namespace) -> int:
    from server.viewers.tokens import mint

    secret = args.secret or os.environ.get("LIVEDROP_VIEWER_SECRET", "")
    if not secret:
        print("livedrop: set LIVEDROP_VIEWER_SECRET (or --secret) to the deployment's viewer secret", file=sys.stderr)
        return 2
    print(mint(secret.encode(), args.show, args.viewer, ttl=args.ttl))
    return 0


def _token_host(args: argparse.Namespace) -> int:
    """Mint a host token that every node accepts (its SHA-256 goes into Redis; the token itself
    is printed once and stored nowhere), or revoke one."""
    import hashlib

    from redis import Redis

    from server.keys import HOST_TOKENS_KEY

    with redis_for(args.redis_url or os.environ.get("REDIS_URL")) as url:
        client = Redis.from_url(url)
        try:
            if args.revoke:
                digest = hashlib.sha256(args.revoke.encode()).hexdigest()
                removed = client.srem(HOST_TOKENS_KEY, digest)
                print("livedrop: revoked" if removed else "livedrop: no such token", file=sys.stderr)
                return 0 if removed else 1
            token = secrets.token_urlsafe(32)
            client.sadd(HOST_TOKENS_KEY, hashlib.sha256(token.encode()).hexdigest())
        finally:
            client.close()
    print(token)
    return 0


def _demo(args: argparse.Namespace) -> int:
    import asyncio
    from collections.abc import Callable

    from server.demo import command as demo

    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    with contextlib.suppress(ImportError):  # no uvloop on Windows
        import uvloop

        loop_factory = uvloop.new_event_loop
    with redis_for(args.redis_url or os.environ.get("REDIS_URL")) as url:
        return demo.main(args, url, loop_factory)


def _redis(args: argparse.Namespace) -> int:
    """Run a local Redis (or a local Redis Cluster) in the foreground, as ``serve`` would start one,
    for several nodes or tools to share: the URL goes to stdout once it answers (a cluster's master
    URLs on one line, space-separated), and SIGTERM or Ctrl-C stops it."""
    import threading

    from server.ops.local_redis import LocalCluster

    if args.cluster < 0:
        print("livedrop: --cluster takes the number of masters (1 or more)", file=sys.stderr)
        return 2
    data_dir = args.data_dir or default_data_dir()
    server = LocalCluster(data_dir, nodes=args.cluster) if args.cluster else LocalRedis(data_dir)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    server.start(args.timeout)
    try:
        print(" ".join(server.urls) if isinstance(server, LocalCluster) else server.url, flush=True)
        print(f"livedrop: local Redis running (data in {data_dir}); stop it with Ctrl-C", file=sys.stderr)
        while not stop.wait(0.5):  # a timed wait: the main thread stays responsive to signals
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _stand_in(args: argparse.Namespace) -> int:
    from standins.cli import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livedrop", description="LiveDrop live-shopping real-time server")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server (starts a local Redis when REDIS_URL is unset)")
    serve.add_argument("--host", default=os.environ.get("LIVEDROP_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("LIVEDROP_PORT", "8000")))
    serve.add_argument("--workers", type=int, default=int(os.environ.get("LIVEDROP_WORKERS", "1")))
    serve.add_argument("--redis-url", default=None, help="Redis URL (default: $REDIS_URL, else a local Redis)")
    serve.add_argument("--ws-deflate", action="store_true", help="enable permessage-deflate (costs fan-out)")
    serve.add_argument("--log-level", default=os.environ.get("LIVEDROP_LOG_LEVEL", "info"))
    serve.add_argument("--shutdown-timeout", type=float, default=10.0)
    serve.add_argument(
        "--log-json",
        action="store_true",
        default=os.environ.get("LIVEDROP_LOG_JSON", "") in ("1", "true", "yes"),
        help="structured logs: one JSON object a line (also LIVEDROP_LOG_JSON=1)",
    )
    serve.set_defaults(func=_serve)

    reconcile = commands.add_parser("reconcile", help="print a show's reconciliation report as JSON")
    reconcile.add_argument("show", help="show id")
    reconcile.add_argument("--redis-url", default=None, help="Redis URL (default: $REDIS_URL, else the local Redis)")
    reconcile.add_argument(
        "--grace", type=float, default=None, help="seconds before a confirmed hold counts as unmatched"
    )
    reconcile.set_defaults(func=_reconcile)

    channels = commands.add_parser("channels", help="sales channels (docs/channels.md)").add_subparsers(
        dest="action", required=True
    )
    channel_status = channels.add_parser("status", help="per channel and SKU: value pushed, when, lag, last error")
    channel_status.add_argument(
        "--redis-url", default=None, help="Redis URL (default: $REDIS_URL, else the local Redis)"
    )
    channel_status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    channel_status.set_defaults(func=_channels)

    erase = commands.add_parser(
        "erase", help="right to deletion: a customer id in stock records, and webhook bodies naming the person"
    )
    erase.add_argument("--customer", default=None, help="LiveDrop customer (viewer) id to replace by a tombstone")
    erase.add_argument(
        "--identifier",
        action="append",
        default=[],
        help="e-mail, phone, platform customer id or order id to look for in webhook bodies (repeatable)",
    )
    erase.add_argument("--redis-url", default=None, help="Redis URL (default: $REDIS_URL, else the local Redis)")
    erase.set_defaults(func=_erase)

    watch = commands.add_parser("watch", help="print a show's frames as JSON lines (resumes after a drop)")
    watch.add_argument("show")
    watch.add_argument("--url", default=os.environ.get("LIVEDROP_URL", "ws://127.0.0.1:8000"))
    watch.add_argument("--token", default=None, help="a viewer token (watching needs none)")
    watch.add_argument("--count", type=int, default=0, help="stop after this many frames (0: never)")
    watch.set_defaults(func=_watch)

    from server.demo.command import add_arguments as demo_arguments

    demo = commands.add_parser("demo", help="a demo show with bot viewers; prints the panel and viewer URLs")
    demo_arguments(demo)
    demo.set_defaults(func=_demo)

    local_redis = commands.add_parser("redis", help="run a local Redis for several nodes; prints its URL")
    local_redis.add_argument("--data-dir", default=None, help="where its AOF goes (default: $LIVEDROP_DATA_DIR)")
    local_redis.add_argument("--cluster", type=int, default=0, metavar="N", help="a Redis Cluster of N masters")
    local_redis.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for it to answer")
    local_redis.set_defaults(func=_redis)

    stand_in = commands.add_parser("stand-in", help="run stand-in platforms (tests, demos; docs/standins.md)")
    from standins.args import add_arguments as stand_in_arguments

    stand_in_arguments(stand_in)
    stand_in.set_defaults(func=_stand_in)

    token = commands.add_parser("token", help="mint tokens").add_subparsers(dest="kind", required=True)
    viewer = token.add_parser("viewer", help="print a viewer token (needs the deployment's viewer secret)")
    viewer.add_argument("show", help="show id")
    viewer.add_argument("viewer", help="opaque viewer id (never a name or an e-mail)")
    viewer.add_argument("--ttl", type=float, default=3600.0, help="seconds the token is valid")
    viewer.add_argument("--secret", default=None, help="viewer secret (default: $LIVEDROP_VIEWER_SECRET)")
    viewer.set_defaults(func=_token)
    host = token.add_parser("host", help="mint a host token every node accepts (stored hashed in Redis)")
    host.add_argument("--redis-url", default=None, help="Redis URL (default: $REDIS_URL, else the local Redis)")
    host.add_argument("--revoke", default=None, metavar="TOKEN", help="revoke this token instead")
    host.set_defaults(func=_token_host)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except RedisUnavailable as exc:
        print(f"livedrop: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
