"""docs/protocol.md and a real node agree: every frame the viewer protocol's sections show is a
frame the node's types accept, every server frame type it shows is produced by a node in one
show's life, and every viewer frame type it shows is accepted (answered without an error)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from broadcast.hub import Hub
from server.shows.actions import HostActions
from server.shows.catalog import Catalog, DropInfo, Show
from server.shows.node import ShowNode
from server.viewers import protocol as p
from server.viewers.tokens import mint
from stock import StockEngine
from tests.support.paths import ROOT
from tests.support.servers import VIEWER_SECRET, Node
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]
DOC = ROOT / "docs" / "protocol.md"


def documented(section: str) -> list[dict[str, Any]]:
    """The JSON frames of the ```json blocks under the viewer protocol's heading ``section``."""
    viewer_part = DOC.read_text(encoding="utf-8").split("\n# Host channel", 1)[0]
    body = viewer_part.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    frames: list[dict[str, Any]] = []
    decoder = json.JSONDecoder()
    for block in re.findall(r"```json\n(.*?)```", body, flags=re.DOTALL):
        at = 0
        while (start := block.find("{", at)) >= 0:
            frame, at = decoder.raw_decode(block, start)
            frames.append(frame)
    return frames


def _default(kind: Any, field: str) -> Any:
    """The default of ``field`` of a msgspec Struct type (``msgspec.NODEFAULT`` when required)."""
    names, defaults = kind.__struct_fields__, kind.__struct_defaults__
    at = names.index(field) - (len(names) - len(defaults))
    return defaults[at] if at >= 0 else msgspec.NODEFAULT


def union_tags(union: Any) -> set[str]:
    return {str(t.__struct_config__.tag) for t in union.__args__}


def test_the_docs_show_every_frame_type_and_each_example_decodes() -> None:
    server, client = documented("Server → viewer"), documented("Viewer → server")
    assert {f["type"] for f in server} == union_tags(p.ServerFrame)
    assert {f["type"] for f in client} == union_tags(p.ClientFrame)
    for frame in server:
        p.server_decoder.decode(json.dumps(frame).encode())  # raises on a field the types lack
    for frame in client:
        p.client_decoder.decode(json.dumps(frame).encode())
    # The example of each answer shows every field a node sends; fields a node leaves out unless
    # they apply (UNSET by default: a drop's variants) may be left out of an example too.
    for frame in server:
        kind = next(t for t in p.ServerFrame.__args__ if t.__struct_config__.tag == frame["type"])
        optional = {f for f in kind.__struct_fields__ if _default(kind, f) is msgspec.UNSET}
        assert {"type", *kind.__struct_fields__} - optional <= set(frame) <= {"type", *kind.__struct_fields__}, frame[
            "type"
        ]


def test_the_variants_section_shows_frames_the_node_accepts() -> None:
    frames = documented("Drops with variants")
    assert frames
    for frame in frames:
        decoder: Any = p.client_decoder if frame["type"] in union_tags(p.ClientFrame) else p.server_decoder
        decoder.decode(json.dumps(frame).encode())
        assert "variant" in frame or "variants" in frame or "variants" in frame.get("drop", {}), frame


@pytest.fixture
async def host(redis: Redis) -> AsyncIterator[HostActions]:
    engine = StockEngine(redis)
    catalog = Catalog(redis, engine)
    live = ShowNode(redis=redis, engine=engine, catalog=catalog, hub=Hub(), node_id="test")
    await catalog.put_show(Show(show_id="s1", title="Friday drop"))
    await catalog.put_drop(DropInfo(drop_id="d1", show_id="s1", sku="S-1", title="Sneaker", total=1, hold_seconds=1))
    await catalog.put_drop(DropInfo(drop_id="d2", show_id="s1", sku="S-2", title="Tee", total=5))
    yield HostActions(engine, catalog, live)


async def test_a_node_produces_every_documented_frame_and_accepts_every_documented_request(
    nodes: NodeFactory, host: HostActions
) -> None:
    node = nodes()
    secret = VIEWER_SECRET.encode()
    watcher = await Viewer.connect(node.ws("s1"))
    welcome = await watcher.until("welcome")
    alice = await Viewer.connect(node.ws("s1"), mint(secret, "s1", "alice"))
    bob = await Viewer.connect(node.ws("s1"), mint(secret, "s1", "bob"))
    for v in (alice, bob):
        await v.until("welcome")
    await watcher.until("viewers", timeout=10)  # three viewers now

    await host.live.start_show("s1")
    await watcher.until("show")
    await host.launch("d1")
    await host.launch("d2")
    await watcher.until("drop", timeout=5)
    await alice.until("drop")
    await bob.until("drop")

    # The documented viewer frames, each sent once, as the docs write them.
    await alice.send({"type": "ping", "ref": "p-3"})
    await alice.until("pong", ref="p-3")
    await alice.send({"type": "reserve", "ref": "r-1", "drop": "d1", "qty": 1})
    await alice.until("reserved", ref="r-1")
    await watcher.until("stock", drop="d1")
    await bob.send({"type": "reserve", "ref": "r-2", "drop": "d1", "qty": 1})
    assert (await bob.until("rejected", ref="r-2"))["reason"] == "sold_out"
    await bob.send({"type": "waitlist", "drop": "d1", "qty": 1, "ref": "w-1"})
    await bob.until("waitlisted", ref="w-1")
    await alice.until("hold_expired", timeout=10)  # its 1 s hold, swept
    assert (await bob.until("reserved", ref="waitlist", timeout=10))["from_waitlist"]
    await alice.send({"type": "reserve", "ref": "r-3", "drop": "d2"})
    hold = (await alice.until("reserved", ref="r-3"))["hold"]
    await alice.send({"type": "release", "hold": hold, "ref": "r-4"})
    await alice.until("released", ref="r-4")
    await alice.send({"type": "reserve", "ref": "r-5", "drop": "d2"})
    paid = (await alice.until("reserved", ref="r-5"))["hold"]
    await host.engine.confirm(paid, "order-1")
    await alice.until("confirmed", hold=paid)
    await alice.send('{"type": "reserve", "ref": "r-6", "drop": "d2", "qty": 0}')
    assert (await alice.until("error", ref="r-6"))["code"] == "bad_frame"
    await host.end("d2")
    await watcher.until("drop_ended", drop="d2")
    await watcher.send({"type": "hello", "resume_from": welcome["seq"], "epoch": welcome["epoch"]})
    await watcher.until("stock")  # the replay, then the stock of each drop
    await host.live.end_show("s1")
    for v in (watcher, alice, bob):
        await v.until("show_ended")

    # The chat's frames have their own section and test (tests/server/chat/test_chat_doc.py).
    seen = [f for v in (watcher, alice, bob) for f in v.frames if not f["type"].startswith("chat")]
    assert {f["type"] for f in seen} == {f["type"] for f in documented("Server → viewer")}
    for frame in seen:  # every frame a node sent is one of the documented types, field for field
        p.server_decoder.decode(json.dumps(frame).encode())
    unexpected = [f for f in seen if f["type"] == "error" and f.get("ref") != "r-6"]
    assert not unexpected, unexpected
    for v in (watcher, alice, bob):
        await v.close()


def test_the_close_codes_and_refusals_the_docs_list_are_the_servers() -> None:
    text = DOC.read_text(encoding="utf-8").split("\n# Host channel", 1)[0]
    section = text.split("\n## Refusals and close codes\n", 1)[1].split("\n## ", 1)[0]
    codes = {int(c) for c in re.findall(r"^\| (\d{4}) \|", section, flags=re.MULTILINE)}
    statuses = {int(c) for c in re.findall(r"^\| (\d{3}) \|", section, flags=re.MULTILINE)}
    ours = {v for k, v in vars(p).items() if k.startswith("CLOSE_") and isinstance(v, int)}
    assert ours - {p.CLOSE_GOING_AWAY} <= codes, ours - codes
    assert statuses == {401, 403, 404, 503}
