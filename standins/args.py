"""The stand-in command's arguments, in a module that imports nothing heavy, so that
``livedrop --help`` does not load the stand-ins (or graphql-core) to describe them."""

from __future__ import annotations

import argparse

PLATFORMS = ("shopify", "tiktok", "meta", "woocommerce")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("platform", choices=[*PLATFORMS, "all"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="first port (all: this one and the next three)")
    parser.add_argument(
        "--livedrop",
        default="http://127.0.0.1:8000",
        help="LiveDrop base URL; webhooks go to <url>/webhooks/<platform>",
    )
    parser.add_argument("--log-level", default="warning")
