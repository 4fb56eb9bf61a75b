"""``suggest_variant_id``: whatever the label, a valid variant id the engine accepts, distinct from
the ids already taken (pure, no Redis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.shows.variants import split_unit, suggest_variant_id, unit_of
from stock import keys


def test_readable_ids() -> None:
    assert suggest_variant_id("42") == "v42"
    assert suggest_variant_id("Red / M") == "Red-M"
    assert suggest_variant_id("M", {"M"}) == "M-2"
    assert suggest_variant_id("") == "v"
    assert suggest_variant_id("é") == "v"


@given(labels=st.lists(st.text(max_size=60), max_size=30))
def test_always_valid_and_distinct(labels: list[str]) -> None:
    taken: set[str] = set()
    for label in labels:
        new = suggest_variant_id(label, taken)
        assert keys.check_variant(new) == new and new not in taken
        assert split_unit(unit_of("d1", new)) == ("d1", new)
        taken.add(new)
