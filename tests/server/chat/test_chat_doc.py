"""docs/protocol.md's "Chat" section and the chat's types agree: every frame type is shown, and each
example decodes with the types a node uses, field for field."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from server.chat import frames as f
from tests.server.viewers.test_protocol_doc import documented, union_tags


def test_the_chat_section_shows_every_chat_frame_and_each_decodes() -> None:
    server = documented("Server → viewer (chat)")
    client = documented("Viewer → server (chat)")
    assert {x["type"] for x in server} == union_tags(f.ChatServerFrame)
    assert {x["type"] for x in client} == union_tags(f.ChatClientFrame)
    strict: Any = msgspec.json.Decoder(f.ChatClientFrame)
    for frame in client:
        strict.decode(json.dumps(frame).encode())
    for frame in server:
        f.decoder.decode(json.dumps(frame).encode())
        kind = next(t for t in f.ChatServerFrame.__args__ if t.__struct_config__.tag == frame["type"])
        assert set(frame) <= {"type", *kind.__struct_fields__}, frame
