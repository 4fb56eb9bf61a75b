"""The ceiling A (a bare ``websockets`` server calling ``websockets.broadcast``, ``variants.BareWebsockets``)
broadcasting given payloads: the exact bytes a LiveDrop node sent, so that ``bench.fanout`` compares the node
with the ceiling on the same frames and the same number of sockets.

    python -m bench.fanout_lib.replay_server

Commands (JSON lines, see ``control``): ``status`` (viewers, RSS, CPU), ``cpu``, ``broadcast`` (``payloads``:
the frames' JSON texts, broadcast back to back with one ``await asyncio.sleep(0)`` between frames, as in
``bench.fanout_lib.server``; the reply holds each frame's publish time, taken just before its broadcast),
``quit``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time

import uvloop
from websockets.frames import Frame, Opcode

from bench.fanout_lib import control
from bench.fanout_lib.frames import Wire
from bench.fanout_lib.variants import BareWebsockets, listening_socket


def wire(text: str) -> Wire:
    payload = text.encode()
    return Wire(payload=payload, text=text, framed=Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[]))


async def broadcast(variant: BareWebsockets, payloads: list[str]) -> control.JSON:
    wires = [wire(text) for text in payloads]
    published: list[float] = []
    holds: list[float] = []
    for each in wires:
        published.append(time.time())
        started = time.perf_counter()
        await variant.broadcast(each, 0)
        holds.append(time.perf_counter() - started)
        await asyncio.sleep(0)
    return {"published": published, "hold_ms": 1000 * sum(holds) / max(1, len(holds))}


def status(variant: BareWebsockets) -> control.JSON:
    gc.collect()
    return {"viewers": variant.viewers(), "rss": control.rss_bytes(), "cpu": time.process_time()}


async def serve_commands(args: argparse.Namespace) -> None:
    control.raise_nofile(args.nofile)
    variant = BareWebsockets(slow_after=1.0)
    sock = listening_socket(0)
    ports = await variant.start(sock)
    gc.collect()
    control.reply({"event": "ready", "rss": control.rss_bytes(), "pid": os.getpid(), **ports})
    commands = await control.commands()
    while True:
        command = await control.next_command(commands)
        match command["cmd"]:
            case "status":
                control.reply(status(variant))
            case "cpu":
                control.reply({"cpu": time.process_time()})
            case "broadcast":
                control.reply(await broadcast(variant, command["payloads"]))
            case "quit":
                break
            case other:
                control.reply({"error": f"unknown command {other!r}"})
    sys.stdout.flush()
    os._exit(0)  # the clients are gone already; tearing down thousands of sockets is not measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nofile", type=int, default=65536)
    uvloop.run(serve_commands(parser.parse_args()))


if __name__ == "__main__":
    main()
