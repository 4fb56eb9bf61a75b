"""Run stand-in platforms on loopback ports: ``livedrop stand-in shopify|tiktok|meta|woocommerce|all``
(or ``python -m standins ...``).

Each stand-in gets its own port (``all`` uses ``--port`` and the three after it), posts its order
webhooks to ``<--livedrop>/webhooks/<platform>``, and prints the credentials a client needs and
the ``LIVEDROP_*`` variables that make a LiveDrop node accept its webhooks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator, Sequence

import uvicorn

from standins.args import PLATFORMS, add_arguments
from standins.base import StandIn
from standins.meta import MetaStandIn
from standins.shopify import ShopifyStandIn
from standins.tiktok import TikTokStandIn
from standins.woocommerce import WooCommerceStandIn


def build(platform: str) -> StandIn:
    """A stand-in with its default (documented) credentials."""
    match platform:
        case "shopify":
            return ShopifyStandIn()
        case "tiktok":
            return TikTokStandIn()
        case "meta":
            return MetaStandIn()
        case "woocommerce":
            return WooCommerceStandIn()
    raise ValueError(f"unknown platform {platform!r}")


def livedrop_env(standins: Sequence[StandIn]) -> dict[str, str]:
    """The LiveDrop settings under which its webhook receiver accepts these stand-ins' webhooks."""
    env: dict[str, str] = {}
    for s in standins:
        secret = s.emitter.target.secret
        if isinstance(s, ShopifyStandIn):
            env["LIVEDROP_SHOPIFY_SECRETS"] = secret
        elif isinstance(s, TikTokStandIn):
            env["LIVEDROP_TIKTOK_APP_KEY"] = s.app_key
            env["LIVEDROP_TIKTOK_SECRETS"] = secret
        elif isinstance(s, MetaStandIn):
            env["LIVEDROP_META_SECRETS"] = secret
        elif isinstance(s, WooCommerceStandIn):
            env["LIVEDROP_WOOCOMMERCE_SECRETS"] = f'["{secret}"]'
    return env


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to ``serve_all``: several run in one loop, and each
    would otherwise replace the others' handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_all(standins: Sequence[StandIn], host: str, port: int, log_level: str = "warning") -> None:
    """Serve each stand-in on ``port``, ``port + 1``, ... until SIGINT or SIGTERM."""
    servers = [
        _Server(uvicorn.Config(s.app, host=host, port=port + i, log_level=log_level, lifespan="on"))
        for i, s in enumerate(standins)
    ]
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows
            loop.add_signal_handler(sig, stop)
    await asyncio.gather(*(server.serve() for server in servers))


def run(args: argparse.Namespace) -> int:
    names = PLATFORMS if args.platform == "all" else (args.platform,)
    standins = [build(name) for name in names]
    for i, s in enumerate(standins):
        s.emitter.target.url = f"{args.livedrop.rstrip('/')}/webhooks/{s.name}"
        details = " ".join(f"{k}={v}" for k, v in s.describe().items() if k != "platform")
        print(f"stand-in {s.name}: http://{args.host}:{args.port + i}  {details}", file=sys.stderr)
    for key, value in livedrop_env(standins).items():
        print(f"{key}='{value}'")
    try:
        asyncio.run(serve_all(standins, args.host, args.port, args.log_level))
    except KeyboardInterrupt:
        return 130
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="standins", description="stand-in commerce platforms for tests and demos")
    add_arguments(parser)
    return run(parser.parse_args(argv))
