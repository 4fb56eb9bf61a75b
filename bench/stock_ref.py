"""The reference reserve script of ``bench/reserve_ref.lua``: its text, its keys and the
redis-benchmark command that runs it. bench/stock.py measures it in the same run as the engine
and prints every engine figure as a ratio to it (issue 17): the distance between the engine and
the least a reservation with a hold can cost Redis."""

from __future__ import annotations

from pathlib import Path

from loadtest.stack import LOOPBACK

SOURCE = (Path(__file__).with_name("reserve_ref.lua")).read_text(encoding="utf-8")


def ref_keys(name: str) -> tuple[str, str, str]:
    """Stock hash, holds hash, expiry zset of one reference run, under one hash tag."""
    base = f"bench:{{ref:{name}}}:"
    return base + "stock", base + "holds", base + "expiry"


def ref_command(
    binary: str,
    port: int,
    sha: str,
    name: str,
    *,
    requests: int,
    clients: int,
    pipeline: int,
    batch: int,
    rand_keyspace: int,
    hold_ms: int,
) -> list[str]:
    """EVALSHA of the reference script, ``batch`` holds per call, hold ids randomised by
    ``__rand_int__`` so that every call writes new holds."""
    pairs: list[str] = []
    for j in range(batch):
        pairs += [f"h.{j}.__rand_int__", "1"]
    return [
        binary,
        "-h",
        LOOPBACK,
        "-p",
        str(port),
        "-n",
        str(requests),
        "-c",
        str(clients),
        "-P",
        str(pipeline),
        "-r",
        str(rand_keyspace),
        "--csv",
        "EVALSHA",
        sha,
        "3",
        *ref_keys(name),
        str(hold_ms),
        *pairs,
    ]
