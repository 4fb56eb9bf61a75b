"""Comment-to-buy: a chat message that says ``SOLD``, ``SOLD 2`` or ``SOLD AA 2`` becomes a
reservation through the same engine call as the Buy button (``ReserveBatcher.reserve``).

The grammar is CommentSold's (contracts §3): the show's keyword (``SOLD`` always works too), then
optionally the letter code shown on a drop's card, then optionally a quantity. Without a code the
claim is for the show's live drop (the last launched, if several are live). What finds too little
stock is split as CommentSold does: what is available is held, the remainder waitlisted.

Idempotent on the message: the reservation's request id is derived from the viewer and the
message's ``ref``, so a redelivered ``chat_send`` gets the first answer again (the engine keeps a
granted hold's answer for the drop's life), and a waitlist entry is never doubled (the engine
answers ``duplicate``). The buyer gets the answers privately, as the Buy button's: ``reserved``,
``waitlisted``, ``rejected``, or a ``chat_rejected`` for a code that names no drop of the show.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final, NamedTuple

from server.chat.limits import DEFAULT_KEYWORD

MAX_CLAIM_QTY: Final = 100  # the Buy button's own bound (protocol ``Qty``)
_CODE = re.compile(r"^[A-Za-z]{1,3}$")


class Claim(NamedTuple):
    code: str | None  # the drop's letter code, upper case; None: the live drop
    qty: int


def parse(text: str, keyword: str = DEFAULT_KEYWORD) -> Claim | None:
    """The claim ``text`` makes, or None if it is not one. The whole message must be the claim:
    ``SOLD 2 please`` is chat, not an order (a stray word must never buy)."""
    words = text.split()
    if not words or len(words) > 3:
        return None
    head = words[0].upper()
    if head not in {DEFAULT_KEYWORD, keyword.upper()}:
        return None
    code: str | None = None
    qty = 1
    rest = words[1:]
    if rest and _CODE.match(rest[0]) and not rest[0].isdigit():
        code = rest[0].upper()
        rest = rest[1:]
    if rest:
        # isdecimal, not isdigit: "²" is a digit that int() refuses (a viewer's message must never raise).
        if len(rest) != 1 or not rest[0].isdecimal() or len(rest[0]) > 3:
            return None
        qty = int(rest[0])
        if not 1 <= qty <= MAX_CLAIM_QTY:
            return None
    return Claim(code, qty)


def message_key(secret: bytes, customer: str, ref: str, part: str = "") -> str:
    """The key of one message (its de-duplication key, and its claim line's): viewer-scoped, without
    the customer id in it (ids in Redis stay pseudonymous, DESIGN §10). A claim's reservation uses
    the Buy button's own request ids (``Reserving.request_id``) with the ref ``chat:<ref>``."""
    digest = hashlib.blake2b(customer.encode(), key=secret[:64], digest_size=12).hexdigest()
    return f"{digest}:chat:{ref}{part}"
