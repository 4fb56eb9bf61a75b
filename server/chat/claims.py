"""Comment-to-buy: a chat message that says ``SOLD``, ``SOLD 2``, ``SOLD AA 2`` or, on a drop with
sizes, ``SOLD 42`` or ``SOLD A 42 2`` becomes a reservation through the same engine call as the Buy
button (``Reserving.reserve``).

The grammar follows CommentSold's (platforms/contracts.md §3, [CS-qty]: ``SOLD [letter-id] [qty]
[variants]``, e.g. ``SOLD AA 10 blue small``): the show's keyword (``SOLD`` always works too), then
optionally the letter code shown on a drop's card, then optionally a size (a variant), then
optionally a quantity. CommentSold's own order, the quantity before the size (``SOLD A 2 M``), is
read too when the size is not a number. A size is one word: a variant's id, its option value
(``M``, ``42``) or its option values joined by ``-`` (``red-36``), in any case.

Two steps, both pure: ``parse`` says whether a message has the claim's shape (the keyword and at
most three words of the right form: the whole message must be the claim, ``SOLD 2 please`` is
chat), and ``resolve`` reads those words against the show's drops (``ClaimDrop``: codes, which drop
is live, sizes), because what a word means depends on them:

- a word is the drop code only if it is the code of a drop of the show (and, when it is also a
  size of the live drop, only if that drop is live: nobody can buy from a drop that is not);
- on a drop without variants, a number is the quantity, exactly as before sizes existed;
- on a drop with variants, a number is a size only if the drop has that size, else the quantity
  (``SOLD 42`` on sneakers in 41/42 is size 42; ``SOLD 2`` is two units of no size, so
  ``claim_variant_required``).

Without a code the claim is for the show's live drop (the last launched, if several are live).
What finds too little stock is split as CommentSold does: what is available is held, the remainder
waitlisted (``server.chat.node``).

Idempotent on the message: the reservation's request id is derived from the viewer and the
message's ``ref``, so a redelivered ``chat_send`` gets the first answer again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Final, NamedTuple

from server.chat.frames import CLAIM_NOT_LIVE, CLAIM_UNKNOWN_DROP, CLAIM_UNKNOWN_VARIANT, CLAIM_VARIANT_REQUIRED
from server.chat.limits import DEFAULT_KEYWORD

MAX_CLAIM_QTY: Final = 100  # the Buy button's own bound (protocol ``Qty``)
MAX_WORDS: Final = 3  # code, size, quantity

_CODE = re.compile(r"^[A-Za-z]{1,3}$")
_NUMBER = re.compile(r"^[0-9]{1,3}$")
# A size as typed: letters, digits and ``. _ / -`` (``XL``, ``42``, ``42.5``, ``red-36``, ``EU/42``).
_WORD = re.compile(r"^[^\W_][\w./-]{0,31}$")
_JOINERS = re.compile(r"[\s/_-]+")


class Claim(NamedTuple):
    """A message with the claim's shape: the words after the keyword, as typed (0 to 3)."""

    words: tuple[str, ...]


class ClaimVariant(NamedTuple):
    """What resolution needs of one variant: its id, its option values in the host's order, and
    whether it has a unit on sale now (for the list of sizes in a refusal)."""

    id: str
    values: tuple[str, ...]
    on_sale: bool = True


class ClaimDrop(NamedTuple):
    """One drop of the show as the node knows it (run-of-show order)."""

    id: str
    code: str  # "" before the show's chat gave it one
    live: bool
    variants: tuple[ClaimVariant, ...] = ()


class Resolved(NamedTuple):
    """A claim to reserve: ``variant`` "" for a drop without variants; ``size`` is how the claim
    line names the variant ("42", "red-36")."""

    drop: str
    qty: int
    variant: str = ""
    size: str = ""


class Refused(NamedTuple):
    """A claim that cannot be reserved: a ``chat_rejected`` code and its message to the buyer."""

    code: str
    message: str
    drop: str = ""


def parse(text: str, keyword: str = DEFAULT_KEYWORD) -> Claim | None:
    """The claim ``text`` makes, or None if it is not shaped like one. Never raises."""
    words = text.split()
    if not words or len(words) > 1 + MAX_WORDS:
        return None
    if words[0].upper() not in {DEFAULT_KEYWORD, keyword.upper()}:
        return None
    rest = tuple(words[1:])
    if not all(_WORD.match(w) for w in rest):
        return None
    return Claim(rest)


def size_word(variant: ClaimVariant) -> str:
    """The word a buyer types for a variant: its option values joined by ``-`` (spaces too), else
    its id. The demo page's hint and the bots write the same (``server/static/demo/chat.js``)."""
    if not variant.values:
        return variant.id
    return "-".join(_JOINERS.sub("-", v.strip()).strip("-") for v in variant.values)


def _fold(word: str) -> str:
    return _JOINERS.sub("-", word.strip()).strip("-").casefold()


class _Match(NamedTuple):
    found: ClaimVariant | None
    candidates: tuple[ClaimVariant, ...]  # several: the word names more than one (``red``)


def _match(drop: ClaimDrop, word: str) -> _Match:
    """The variant ``word`` names: an exact id or joined values first, else one option value."""
    wanted = _fold(word)
    exact = [v for v in drop.variants if wanted in (v.id.casefold(), _fold(size_word(v)))]
    if exact:
        return _Match(exact[0], ())
    partial = tuple(v for v in drop.variants if any(_fold(value) == wanted for value in v.values))
    if len(partial) == 1:
        return _Match(partial[0], ())
    return _Match(None, partial)


def _qty(word: str) -> int | None:
    if not _NUMBER.match(word):
        return None
    qty = int(word)
    return qty if 1 <= qty <= MAX_CLAIM_QTY else None


def sizes_on_sale(drop: ClaimDrop) -> str:
    on_sale = [size_word(v) for v in drop.variants if v.on_sale]
    return ", ".join(on_sale) if on_sale else "none (all sold out: name one to join its waitlist)"


def _label(drop: ClaimDrop) -> str:
    return drop.code or drop.id


def _target(words: tuple[str, ...], drops: Sequence[ClaimDrop]) -> tuple[ClaimDrop | None, tuple[str, ...]]:
    """The drop the claim is for and the words left after its code. None: no code and no live drop."""
    live = [d for d in drops if d.live]
    current = live[-1] if live else None
    if words:
        first = words[0].upper()
        coded = next((d for d in drops if d.code and d.code == first), None)
        if coded is not None:
            also_a_size = current is not None and _match(current, words[0]).found is not None
            if not also_a_size or coded.live:
                return coded, words[1:]
    return current, words


def resolve(claim: Claim, drops: Sequence[ClaimDrop]) -> Resolved | Refused | None:
    """What ``claim`` asks of the show whose drops are ``drops``: a reservation, a refusal for the
    buyer, or None when the words are not a claim after all (posted as plain chat). Pure."""
    drop, rest = _target(claim.words, drops)
    if len(rest) > MAX_WORDS - 1:
        return None  # three words and none a code: more than a size and a quantity, so chat
    if drop is None:
        if rest and _CODE.match(rest[0]) and all(_qty(w) is not None for w in rest[1:]):
            return Refused(CLAIM_UNKNOWN_DROP, f"no drop {rest[0].upper()} in this show")
        if all(_qty(w) is not None for w in rest) and len(rest) <= 1:
            return Refused(CLAIM_NOT_LIVE, "no drop is live")
        return None
    if not drop.variants:
        return _single(drop, rest, code_given=len(rest) < len(claim.words))
    return _sized(drop, rest)


def _single(drop: ClaimDrop, rest: tuple[str, ...], *, code_given: bool) -> Resolved | Refused | None:
    """A drop without variants: ``[qty]``, read exactly as before sizes existed (a code-shaped word
    that names no drop is ``claim_unknown_drop``; anything else is chat)."""
    if not rest:
        return Resolved(drop.id, 1)
    qty = _qty(rest[0])
    if len(rest) == 1 and qty is not None:
        return Resolved(drop.id, qty)
    unknown = not code_given and _CODE.match(rest[0]) is not None
    if unknown and (len(rest) == 1 or _qty(rest[1]) is not None):
        return Refused(CLAIM_UNKNOWN_DROP, f"no drop {rest[0].upper()} in this show")
    return None


def _sized(drop: ClaimDrop, rest: tuple[str, ...]) -> Resolved | Refused | None:
    """A drop with variants: ``[size] [qty]``, or ``[qty] [size]`` (CommentSold's order) when the
    size is not a number: ``SOLD 43 2`` on sizes 2 and 42 is size 43, unknown, not 43 of size 2."""
    on_sale = [v for v in drop.variants if v.on_sale] or list(drop.variants)
    example = f"SOLD {_label(drop)} {size_word(on_sale[0])}"
    required = Refused(
        CLAIM_VARIANT_REQUIRED,
        f"{_label(drop)} comes in sizes: name one, e.g. {example}; on sale: {sizes_on_sale(drop)}",
        drop.id,
    )
    if not rest:
        return required
    first = _match(drop, rest[0])
    if len(rest) == 1:
        if first.found is not None:
            return Resolved(drop.id, 1, first.found.id, size_word(first.found))
        if _qty(rest[0]) is not None:
            return required
        return _unknown(drop, rest[0], first)
    qty, later = _qty(rest[1]), _match(drop, rest[1])
    if first.found is not None and qty is not None:
        return Resolved(drop.id, qty, first.found.id, size_word(first.found))
    first_qty = _qty(rest[0])
    if first_qty is not None and later.found is not None and _NUMBER.match(rest[1]) is None:
        return Resolved(drop.id, first_qty, later.found.id, size_word(later.found))
    if first.found is None and qty is not None:
        return _unknown(drop, rest[0], first)
    return None  # a word after a complete claim, or two sizes: chat


def _unknown(drop: ClaimDrop, word: str, found: _Match) -> Refused:
    if found.candidates:  # ``red`` on a drop in red-36 and red-37
        names = ", ".join(size_word(v) for v in found.candidates)
        return Refused(
            CLAIM_VARIANT_REQUIRED, f"{word} is in several sizes of {_label(drop)}: name one of {names}", drop.id
        )
    return Refused(CLAIM_UNKNOWN_VARIANT, f"{_label(drop)} has no size {word}; on sale: {sizes_on_sale(drop)}", drop.id)


def message_key(secret: bytes, customer: str, ref: str, part: str = "") -> str:
    """The key of one message (its de-duplication key, and its claim line's): viewer-scoped, without
    the customer id in it (ids in Redis stay pseudonymous, DESIGN §10). A claim's reservation uses
    the Buy button's own request ids (``Reserving.request_id``) with the ref ``chat:<ref>``."""
    digest = hashlib.blake2b(customer.encode(), key=secret[:64], digest_size=12).hexdigest()
    return f"{digest}:chat:{ref}{part}"
