"""One fan-out variant (see ``variants``) in one process, driven by JSON-lines commands on stdin.

    python -m bench.fanout_lib.server --variant D3 [--sndbuf 0] [--slow-after 1.0]

Commands: ``status`` (viewers, RSS, CPU, slow-viewer counters), ``cpu``, ``broadcast`` (frames back
to back, each built and stamped just before its broadcast), ``settle`` (wait for set-aside viewers to
catch up or be evicted), ``quit``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys
import time

import uvloop

from bench.fanout_lib import control
from bench.fanout_lib.frames import build
from bench.fanout_lib.variants import SLOW_CLOSE_GRACE, VARIANTS, Variant, listening_socket


async def run_broadcast(variant: Variant, command: control.JSON, first_seq: int) -> control.JSON:
    """Broadcast ``frames`` frames back to back (yielding once between frames) within ``deadline``."""
    frames: int = command["frames"]
    variant.set_mode(command.get("mode"))
    holds: list[float] = []
    t0 = 0.0
    stalled = False
    try:
        async with asyncio.timeout(command["deadline"]):
            for index in range(frames):
                wire = build(first_seq + index, command["size"])
                t0 = t0 or time.time()
                started = time.perf_counter()
                await variant.broadcast(wire, command["yield_every"])
                holds.append(time.perf_counter() - started)
                await asyncio.sleep(0)
    except TimeoutError:
        stalled = True
    return {
        "t0": t0,
        "frames_done": len(holds),
        "stalled": stalled,
        "hold_ms": 1000 * sum(holds) / max(1, len(holds)),
        "set_aside": variant.set_aside,
        "pending": variant.pending(),
    }


def status(variant: Variant) -> control.JSON:
    gc.collect()
    return {
        "viewers": variant.viewers(),
        "rss": control.rss_bytes(),
        "cpu": time.process_time(),
        "set_aside": variant.set_aside,
        "evicted": variant.evicted,
        "gone": variant.gone,
        "pending": variant.pending(),
    }


async def serve_commands(args: argparse.Namespace) -> None:
    control.raise_nofile(args.nofile)
    variant = VARIANTS[args.variant](args.slow_after)
    sock = listening_socket(args.sndbuf)
    ports = await variant.start(sock)
    gc.collect()
    control.reply({"event": "ready", "rss": control.rss_bytes(), **ports})
    commands = await control.commands()
    seq = 1
    while True:
        command = await control.next_command(commands)
        match command["cmd"]:
            case "status":
                control.reply(status(variant))
            case "cpu":
                control.reply({"cpu": time.process_time()})
            case "broadcast":
                control.reply(await run_broadcast(variant, command, seq))
                seq += command["frames"]
            case "settle":
                # Wait for set-aside viewers to catch up or be evicted (slow-viewer scenario).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(command["timeout"]):
                        while variant.pending():
                            await asyncio.sleep(0.05)
                await asyncio.sleep(SLOW_CLOSE_GRACE + 0.2)
                control.reply(status(variant))
            case "quit":
                break
            case other:
                control.reply({"error": f"unknown command {other!r}"})
    # Tearing down thousands of sockets gracefully takes longer than the measurement; the orchestrator
    # has already stopped the clients, so leave at once.
    sys.stdout.flush()
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    parser.add_argument("--sndbuf", type=int, default=0, help="SO_SNDBUF of accepted sockets (0: kernel)")
    parser.add_argument("--slow-after", type=float, default=1.0, help="seconds paused before eviction")
    parser.add_argument("--nofile", type=int, default=65536)
    uvloop.run(serve_commands(parser.parse_args()))


if __name__ == "__main__":
    main()
