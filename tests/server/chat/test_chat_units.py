"""The chat's pure parts: claim grammar, letter codes, normalisation and blocked words, the token
bucket, the room's folds and batches, and what a slow viewer's buffer does with chat frames."""

from __future__ import annotations

import msgspec
import pytest
from confusable_homoglyphs import confusables
from hypothesis import given
from hypothesis import strategies as st

from broadcast.outbox import Outbox
from broadcast.transport import Message
from server.chat import frames as f
from server.chat.claims import ClaimDrop, Resolved, parse, resolve
from server.chat.limits import TokenBucket, letter_code
from server.chat.normalise import BlockList, display_text, skeleton
from server.chat.room import Restriction, Room
from server.chat.store import Entry

# A show as claim resolution sees it: drop A (d1) live, without sizes; drop AA (d27) queued.
SINGLE = [ClaimDrop("d1", "A", True), ClaimDrop("d2", "B", False), ClaimDrop("d27", "AA", False)]


@pytest.mark.parametrize(
    ("text", "claim"),
    [
        ("SOLD", Resolved("d1", 1)),
        ("sold 2", Resolved("d1", 2)),
        ("SOLD AA 2", Resolved("d27", 2)),
        ("Sold b", Resolved("d2", 1)),
        ("MINE 3", Resolved("d1", 3)),  # the show's keyword
        ("SOLD 0", None),
        ("SOLD 101", None),
        ("SOLD 2 please", None),
        ("SOLDOUT", None),
        ("I SOLD it", None),
        ("SOLD AAAA", None),
        ("SOLD \u00b2", None),  # a superscript two: a digit to str.isdigit, not a number to int()
        ("SOLD AA \u00b3", None),
        ("", None),
    ],
)
def test_claim_grammar(text: str, claim: Resolved | None) -> None:
    """Drops without sizes read claims exactly as before sizes existed."""
    parsed = parse(text, keyword="mine")
    assert (resolve(parsed, SINGLE) if parsed is not None else None) == claim


def test_letter_codes() -> None:
    assert [letter_code(i) for i in (0, 1, 25, 26, 27, 51, 52, 701, 702)] == [
        "A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA",
    ]  # fmt: skip


def test_the_confusables_library_answers_in_the_shape_we_read() -> None:
    """server/chat/normalise.py reads ``is_confusable(...)[0]["homoglyphs"][i]["c"]``."""
    found = confusables.is_confusable("\u0405", greedy=True, preferred_aliases=["latin"])
    assert found and found[0]["homoglyphs"][0]["c"] == "S"
    assert confusables.is_confusable("a", greedy=True, preferred_aliases=["latin"]) is False


@pytest.mark.parametrize(
    "text",
    [
        "S.P.A.M",
        "s p a m",
        "\uff33\uff30\uff21\uff2d",
        "\u0405\u0420\u0410\u041c",
        "SpAm!!",
        "buy  FOLLOWERS",
        "b.u.y followers",
    ],
)
def test_blocked_words_match_after_normalisation(text: str) -> None:
    assert BlockList(["spam", "Buy followers"]).match(text) in ("spam", "Buy followers")


@pytest.mark.parametrize("text", ["spammer", "this pam", "followers", "hello there", ""])
def test_blocked_words_do_not_match_innocent_text(text: str) -> None:
    assert BlockList(["spam", "buy followers"]).match(text) is None


def test_display_text_removes_what_could_hide_or_reorder_text() -> None:
    assert display_text("a\u202eb\u200bc\x00d\n\n e ") == "abcd e"
    assert display_text("<script>alert(1)</script>") == "<script>alert(1)</script>"  # text, shown as text
    assert display_text("e\u0301") == "\u00e9"  # NFC


@given(st.text(max_size=200))
def test_normalisation_is_total_and_stable(text: str) -> None:
    shown = display_text(text)
    assert display_text(shown) == shown
    assert skeleton(skeleton(text)) == skeleton(text)
    BlockList(["spam"]).match(text)


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0.0)
    assert [bucket.allow(now=0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.allow(now=0.5) and not bucket.allow(now=0.5)
    assert 0 < bucket.retry_after() <= 0.5


def _m(entry_id: str, n: int, text: str = "hi") -> Entry:
    return Entry(
        entry_id, {"k": "m", "n": str(n), "at": "1", "v": "v", "u": "u1", "nm": "Ann", "r": "viewer", "t": text}
    )


def test_room_folds_messages_deletes_clears_settings_and_restrictions() -> None:
    room = Room("s1", limit=3)
    for i in range(1, 5):
        room.fold(_m(f"{i}-0", i))
    assert [m.n for m in room.history] == [2, 3, 4]  # bounded history
    assert [m.n for m in room.pending] == [1, 2, 3, 4]
    deleted = room.fold(Entry("5-0", {"k": "d", "ids": "3-0"}))
    assert deleted.broadcast == f.ChatDelete(ids=["3-0"])
    assert [m.n for m in room.history] == [2, 4] and [m.n for m in room.pending] == [1, 2, 4]
    batch = room.take_batch(2)
    assert batch is not None and [m.n for m in batch.messages] == [2, 4]  # the newest of the tick
    assert room.take_batch(2) is None
    room.fold(_m("6-0", 5))
    cleared = room.fold(Entry("7-0", {"k": "c", "upto": "4"}))
    assert cleared.broadcast == f.ChatClear(upto=4) and [m.n for m in room.history] == [5]
    pin = msgspec.json.encode(room.history[0]).decode()
    pinned = room.fold(
        Entry("8-0", {"k": "s", "slow": "5", "kw": "MINE", "words": "spam", "pin": pin, "codes": "d1=A"})
    )
    assert isinstance(pinned.broadcast, f.ChatPin) and room.pinned == room.history[0]
    assert room.settings.slow_seconds == 5 and room.codes == {"d1": "A"}
    assert room.blocked.match("s p a m") == "spam"
    banned = room.fold(Entry("9-0", {"k": "r", "v": "troll", "until": "-1", "dc": "1", "scope": "show"}))
    assert banned.disconnect == "troll" and room.restriction("troll", 10**13) == Restriction(-1, True)
    room.fold(Entry("10-0", {"k": "r", "v": "t2", "until": "1000", "dc": "0", "scope": "show"}))
    assert room.restriction("t2", 999) is not None and room.restriction("t2", 1000) is None
    room.fold(Entry("11-0", {"k": "r", "v": "troll", "until": "0", "dc": "0", "scope": "show"}))
    assert room.restriction("troll", 0) is None
    held = room.fold(
        Entry("12-0", {"k": "h", "hid": "ab", "at": "1", "nm": "Eve", "u": "u2", "t": "spam", "w": "spam"})
    )
    assert isinstance(held.hosts, f.ChatHeld) and held.broadcast is None  # never to viewers


def test_a_slow_viewer_loses_old_chat_first_never_stock_or_drop_frames() -> None:
    outbox: Outbox[Message] = Outbox(limit=10_000)
    drop = Message(b'{"type":"drop","seq":1}', seq=1)
    outbox.park(Message(b'{"type":"chat","messages":[1]}', key="chat"))
    outbox.park(drop)
    outbox.park(Message(b'{"type":"stock","a":1}', key="stock:d1"))
    outbox.park(Message(b'{"type":"chat","messages":[2]}', key="chat"))
    outbox.park(Message(b'{"type":"chat_delete","ids":["x"]}'))
    outbox.park(Message(b'{"type":"chat","messages":[3]}', key="chat"))
    sent = []
    while (m := outbox.take()) is not None:
        sent.append(m.payload)
    assert sent == [
        b'{"type":"chat","messages":[3]}',
        b'{"type":"drop","seq":1}',
        b'{"type":"stock","a":1}',
        b'{"type":"chat_delete","ids":["x"]}',
    ]


def test_every_chat_key_of_a_show_is_in_the_show_slot() -> None:
    """Each chat script names only keys of one show: on Redis Cluster they must share its slot."""
    from redis.crc import key_slot

    from broadcast.feed import show_keys
    from server.chat import keys as ck

    slots = {key_slot(k.encode()) for k in (*ck.chat_keys("s1"), ck.seen_key("s1", "abc:r1"), show_keys("s1").events)}
    assert len(slots) == 1
