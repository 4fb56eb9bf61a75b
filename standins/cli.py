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


def livedrop_channel_env(standins: Sequence[StandIn], urls: Sequence[str]) -> dict[str, str]:
    """The LiveDrop settings under which it pushes stock to these stand-ins and pulls their orders
    (``urls[i]`` is where ``standins[i]`` listens)."""
    env: dict[str, str] = {}
    for s, url in zip(standins, urls, strict=True):
        if isinstance(s, ShopifyStandIn):
            env |= {"LIVEDROP_SHOPIFY_URL": url, "LIVEDROP_SHOPIFY_ACCESS_TOKEN": s.access_token}
        elif isinstance(s, TikTokStandIn):
            env |= {
                "LIVEDROP_TIKTOK_URL": url,
                "LIVEDROP_TIKTOK_APP_KEY": s.app_key,
                "LIVEDROP_TIKTOK_APP_SECRET": s.app_secret,
                "LIVEDROP_TIKTOK_ACCESS_TOKEN": s.access_token,
                "LIVEDROP_TIKTOK_SHOP_CIPHER": s.shop_cipher,
            }
        elif isinstance(s, MetaStandIn):
            env |= {
                "LIVEDROP_META_URL": url,
                "LIVEDROP_META_ACCESS_TOKEN": s.access_token,
                "LIVEDROP_META_CATALOG_ID": s.catalog_id,
                "LIVEDROP_META_CMS_ID": s.cms_id,
            }
        elif isinstance(s, WooCommerceStandIn):
            env |= {
                "LIVEDROP_WOOCOMMERCE_URL": url,
                "LIVEDROP_WOOCOMMERCE_CONSUMER_KEY": s.consumer_key,
                "LIVEDROP_WOOCOMMERCE_CONSUMER_SECRET": s.consumer_secret,
            }
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
    urls = [f"http://{args.host}:{args.port + i}" for i in range(len(standins))]
    for key, value in (livedrop_env(standins) | livedrop_channel_env(standins, urls)).items():
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
