# ruff: noqa: RUF002, RUF003  (this module is about look-alike characters: its examples are some)
"""Chat text: what is shown, and what blocked words are matched against. Pure.

Shown text is NFC-normalised, with control and format characters removed (bidi overrides, zero
widths) and runs of white space collapsed, so a message cannot reorder or hide text around it.
It stays text: clients set it as a text node, never as HTML.

Matching uses a *skeleton*: NFKC (full-width ``ＳＰＡＭ`` becomes ``SPAM``), case-folded, each
character that Unicode's confusables table maps to a Latin look-alike replaced by it (Cyrillic
``ѕ`` → ``s``, via ``confusable-homoglyphs``), accents dropped, then everything that is not a
letter or a digit removed. A blocked entry matches when the skeleton of a run of consecutive words
of the message equals the entry's skeleton, so ``S.P.A.M``, ``s p a m`` and ``ЅРАМ`` are caught,
while a word that merely contains the entry (``spammer`` for ``spam``) is not.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

from confusable_homoglyphs import confusables

_SPACE = re.compile(r"\s+")
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn"})


def display_text(raw: str) -> str:
    """The text to store and show: NFC, no control/format characters, white space collapsed."""
    text = unicodedata.normalize("NFC", raw)
    text = "".join(
        " " if ch in "\t\n\r" else ch
        for ch in text
        if ch in "\t\n\r" or unicodedata.category(ch) not in _DROP_CATEGORIES
    )
    return _SPACE.sub(" ", text).strip()


@lru_cache(maxsize=8192)
def _latin(ch: str) -> str:
    """``ch`` as the Latin letter it is confused with, if the confusables table names one."""
    if ch.isascii():
        return ch
    found = confusables.is_confusable(ch, greedy=True, preferred_aliases=["latin"])
    if found:
        for glyph in found[0]["homoglyphs"]:
            candidate = glyph["c"]
            if len(candidate) == 1 and candidate.isascii() and candidate.isalnum():
                return str(candidate)
    return ch


def skeleton(text: str) -> str:
    """The form blocked words are compared in (see the module doc)."""
    # Look-alikes before case folding: upper-case Cyrillic М is a Latin M, lower-case м is not.
    latin = "".join(_latin(ch) for ch in unicodedata.normalize("NFKC", text)).casefold()
    stripped = unicodedata.normalize("NFKD", latin)
    return "".join(ch for ch in stripped if ch.isalnum())


class BlockList:
    """A show's blocked entries, each compiled to its skeleton once."""

    def __init__(self, words: Iterable[str]) -> None:
        self.words: dict[str, str] = {}
        for word in words:
            key = skeleton(word)
            if key:
                self.words.setdefault(key, word)
        self._longest = max((len(k) for k in self.words), default=0)

    def __bool__(self) -> bool:
        return bool(self.words)

    def match(self, text: str) -> str | None:
        """The blocked entry ``text`` contains (as the host wrote it), or None."""
        if not self.words:
            return None
        parts = [skeleton(token) for token in text.split()]
        parts = [part for part in parts if part]
        for start in range(len(parts)):
            joined = ""
            for part in parts[start:]:
                joined += part
                if len(joined) > self._longest:
                    break
                found = self.words.get(joined)
                if found is not None:
                    return found
        return None
