"""Comment-to-buy with sizes, the pure part: the claim's shape (``parse``) and what its words mean
against the show's drops (``resolve``), without a node or Redis (docs/chat.md, "Comment-to-buy")."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.chat import frames as f
from server.chat.claims import Claim, ClaimDrop, ClaimVariant, Refused, Resolved, parse, resolve, size_word

TEE = ClaimDrop("tee", "A", False)  # no sizes
SNEAKER = ClaimDrop(
    "shoe",
    "B",
    True,
    (ClaimVariant("s41", ("41",), on_sale=False), ClaimVariant("s42", ("42",)), ClaimVariant("kid2", ("2",))),
)
DRESS = ClaimDrop(
    "dress",
    "C",
    False,
    (
        ClaimVariant("red-36", ("Red", "36")),
        ClaimVariant("red-38", ("Red", "38")),
        ClaimVariant("nb36", ("Navy Blue", "36")),
    ),
)
SHIRT = ClaimDrop("shirt", "D", False, (ClaimVariant("S", ("S",)), ClaimVariant("M", ("M",))))
SHOW = [TEE, SNEAKER, DRESS, SHIRT]


def claim(text: str, drops: list[ClaimDrop] = SHOW) -> Resolved | Refused | None:
    parsed = parse(text)
    return None if parsed is None else resolve(parsed, drops)


def code(text: str, drops: list[ClaimDrop] = SHOW) -> str:
    found = claim(text, drops)
    assert isinstance(found, Refused), found
    return found.code


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SOLD 42", Resolved("shoe", 1, "s42", "42")),  # the live drop, size 42
        ("sold 42 2", Resolved("shoe", 2, "s42", "42")),  # a number after a size is the quantity
        ("SOLD B 42 2", Resolved("shoe", 2, "s42", "42")),
        ("SOLD b S42", Resolved("shoe", 1, "s42", "42")),  # the variant's id, any case
        ("SOLD 2", Resolved("shoe", 1, "kid2", "2")),  # the drop has a size 2: the size wins
        ("SOLD 2 3", Resolved("shoe", 3, "kid2", "2")),
        ("SOLD 41", Resolved("shoe", 1, "s41", "41")),  # sold out: the node waitlists it
        ("SOLD C red-36", Resolved("dress", 1, "red-36", "Red-36")),
        ("SOLD C RED/38 2", Resolved("dress", 2, "red-38", "Red-38")),
        ("SOLD C navy-blue-36", Resolved("dress", 1, "nb36", "Navy-Blue-36")),
        ("SOLD D m", Resolved("shirt", 1, "M", "M")),
        ("SOLD D 2 M", Resolved("shirt", 2, "M", "M")),  # CommentSold's order: quantity, then size
        ("SOLD A", Resolved("tee", 1)),  # no sizes: as before
        ("SOLD A 42", Resolved("tee", 42)),  # no sizes: a number is the quantity, as before
        ("SOLD 42 please", None),  # the whole message must be the claim
        ("SOLD B 42 2 now", None),
        ("SOLD A 2 please", None),
        ("SOLD A M", None),  # a size on a drop without sizes: chat, as before sizes existed
        ("SOLD 42 41", Resolved("shoe", 41, "s42", "42")),  # after a size, a number is the quantity
        ("SOLD D S M", None),  # two sizes: chat
        ("SOLD B 42 0", None),
        ("SOLD B 42 101", None),
    ],
)
def test_a_claim_names_a_size(text: str, expected: Resolved | None) -> None:
    assert claim(text) == expected


def test_a_claim_that_names_no_size_or_a_wrong_one_is_refused_with_the_sizes_on_sale() -> None:
    required = claim("SOLD")
    assert isinstance(required, Refused) and required.code == f.CLAIM_VARIANT_REQUIRED and required.drop == "shoe"
    assert "42, 2" in required.message and "41" not in required.message  # sold out: not listed
    assert "SOLD B 42" in required.message
    assert code("SOLD 3") == f.CLAIM_VARIANT_REQUIRED  # no size 3: the number is a quantity
    assert code("SOLD B 5") == f.CLAIM_VARIANT_REQUIRED
    unknown = claim("SOLD 43 2")  # numeric sizes come first: size 43, not 43 of size 2
    assert isinstance(unknown, Refused) and unknown.code == f.CLAIM_UNKNOWN_VARIANT and "43" in unknown.message
    assert code("SOLD D XL") == f.CLAIM_UNKNOWN_VARIANT
    assert code("SOLD D XL 2") == f.CLAIM_UNKNOWN_VARIANT
    assert code("SOLD C red") == f.CLAIM_VARIANT_REQUIRED  # names two sizes: which one?
    assert "Red-36, Red-38" in claim("SOLD C red").message  # type: ignore[union-attr]


def test_codes_and_drops_without_a_live_one() -> None:
    assert code("SOLD ZZ", [TEE]) == f.CLAIM_UNKNOWN_DROP
    assert code("SOLD ZZ 2", [TEE]) == f.CLAIM_UNKNOWN_DROP
    assert code("SOLD", [TEE]) == f.CLAIM_NOT_LIVE
    assert code("SOLD 2", [TEE]) == f.CLAIM_NOT_LIVE
    assert claim("SOLD 2 3", [TEE]) is None
    live_tee = [TEE._replace(live=True)]
    assert code("SOLD ZZ", live_tee) == f.CLAIM_UNKNOWN_DROP  # as before sizes existed
    assert code("SOLD ZZ 2", live_tee) == f.CLAIM_UNKNOWN_DROP


def test_a_word_that_is_a_code_and_a_size_of_the_live_drop_is_the_size_unless_that_drop_is_live() -> None:
    """A show's 13th drop has code M, and the live shirt comes in M: "SOLD M" buys the shirt in M
    while drop M is not live (nobody could buy from it), and drop M once it is live too."""
    drop_m = ClaimDrop("mug", "M", False)
    shirt = SHIRT._replace(live=True)
    assert claim("SOLD M", [drop_m, shirt]) == Resolved("shirt", 1, "M", "M")
    assert claim("SOLD M", [drop_m._replace(live=True), shirt]) == Resolved("mug", 1)
    assert claim("SOLD D M", [drop_m, shirt]) == Resolved("shirt", 1, "M", "M")


def test_parse_keeps_the_words_and_refuses_what_is_not_shaped_like_a_claim() -> None:
    assert parse("mine b 42 2", keyword="MINE") == Claim(("b", "42", "2"))
    assert parse("SOLD a b c d") is None  # more than code, size and quantity
    assert parse("SOLD <b>") is None
    assert parse("SOLDOUT") is None


@given(st.text(max_size=80))
def test_parse_and_resolve_never_raise(text: str) -> None:
    parsed = parse(text)
    if parsed is not None:
        assert len(parsed.words) <= 3
        assert resolve(parsed, SHOW) is None or isinstance(resolve(parsed, SHOW), Resolved | Refused)
        assert resolve(parsed, []) is None or isinstance(resolve(parsed, []), Refused)


@st.composite
def claims(draw: st.DrawFn) -> tuple[str, Resolved]:
    """A claim written by a buyer: a drop with sizes, its code or none (the live one), a size in
    one of the ways a buyer names it, a quantity or none, in either order when the size is a word."""
    drop = draw(st.sampled_from([SNEAKER, DRESS, SHIRT]))
    variant = draw(st.sampled_from(drop.variants))
    size = draw(st.sampled_from([variant.id, size_word(variant), size_word(variant).upper()]))
    qty = draw(st.none() | st.integers(1, 100))
    words = [size] if qty is None else [size, str(qty)]
    if qty is not None and not size.isdigit() and draw(st.booleans()):
        words.reverse()
    if drop is not SNEAKER or draw(st.booleans()):
        words.insert(0, draw(st.sampled_from([drop.code, drop.code.lower()])))
    text = " ".join([draw(st.sampled_from(["SOLD", "sold", "Sold"])), *words])
    return text, Resolved(drop.id, qty or 1, variant.id, size_word(variant))


@given(claims(), st.sampled_from(["please", "thanks!", "asap", "🙏", "<3", "right-now-pls"]))
def test_a_written_claim_resolves_and_extra_words_make_it_chat(written: tuple[str, Resolved], extra: str) -> None:
    text, expected = written
    assert claim(text) == expected
    assert claim(f"{text} {extra}") is None
