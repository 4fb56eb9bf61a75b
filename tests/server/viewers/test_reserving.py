"""Request ids with cached digests are the ids every node derives (server/viewers/reserving.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.viewers import reserving
from server.viewers.answers import request_id
from server.viewers.reserving import RequestIds

# Viewer ids and refs are validated text (no lone surrogates: they cannot come off a WebSocket).
ids = st.text(st.characters(min_codepoint=33, codec="utf-8"), min_size=1, max_size=40)


@given(secret=st.binary(min_size=1, max_size=100), pairs=st.lists(st.tuples(ids, ids), min_size=1, max_size=20))
def test_cached_ids_are_the_ids_of_answers(secret: bytes, pairs: list[tuple[str, str]]) -> None:
    cached = RequestIds(secret)
    for customer, ref in pairs + pairs:  # the second round is answered from the cache
        made = cached(customer, ref)
        assert made == request_id(secret, customer, ref)


def test_a_full_cache_starts_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reserving, "DIGESTS", 3)
    cached = RequestIds(b"k")
    for n in range(10):
        assert cached(f"c{n}", "r") == request_id(b"k", f"c{n}", "r")
    assert len(cached._digests) <= 3
