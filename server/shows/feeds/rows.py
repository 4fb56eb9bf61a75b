"""Rows as every format reader hands them on, and the per-row checks they share.

A reader turns a file into ``SourceRow``s (line number + cells by normalised column name). A
builder turns a row into a ``Candidate`` variant or raises ``RowProblem``, which becomes one
``Refusal``; the row is then simply not in the plan.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import msgspec

from server.shows.feeds.limits import MAX_IMAGE_URL, MAX_STOCK
from server.shows.feeds.plan import Refusal, RefusalCode
from stock.errors import InvalidArgument
from stock.keys import check_opaque

# OWASP "CSV Injection": a cell that starts with one of these is run as a formula by Excel,
# LibreOffice or Sheets when a host later opens an export of the show.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_WS_RE = re.compile(r"\s+")
# Bidirectional embeddings, overrides and isolates: they reorder what a viewer sees ("Trojan
# Source"), so a title could display as something other than what the host approved.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class SourceRow(msgspec.Struct, frozen=True):
    line: int
    cells: dict[str, str]


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """One row that passed its own checks, before it is grouped with the others."""

    line: int
    sku: str
    group: str
    title: str
    image_url: str
    prices: dict[str, int]
    options: dict[str, str]
    stock: int | None


class RowProblem(Exception):
    """Raised by a row builder: the row becomes a refusal with this code and message."""

    def __init__(self, code: RefusalCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def refusal(row: SourceRow, source_id: str | None, problem: RowProblem) -> Refusal:
    return Refusal(line=row.line, source_id=source_id or None, reason=problem.code, message=problem.message)


def norm_header(name: str) -> str:
    """Case and spacing do not matter in column names (``Option1 Name`` = ``option1  name``)."""
    return _WS_RE.sub(" ", name.strip().lower())


def check_text(field: str, value: str, cap: int) -> str:
    """A text LiveDrop will show and may export: length-capped, and refused if it starts like a
    spreadsheet formula. Refused rather than neutralised with a leading quote, because the
    quote would then be shown to viewers on the live show (docs/feeds.md)."""
    if len(value) > cap:
        raise RowProblem(RefusalCode.FIELD_TOO_LONG, f"{field} has {len(value)} characters, at most {cap}")
    if value.startswith(FORMULA_STARTS):
        raise RowProblem(
            RefusalCode.FORMULA,
            f"{field} starts with {value[:1]!r}, which spreadsheets run as a formula; remove that character",
        )
    if any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c in _BIDI_CONTROLS for c in value):
        raise RowProblem(RefusalCode.BAD_ROW, f"{field} contains a control character")
    return value


def check_sku(field: str, value: str) -> str:
    """An id LiveDrop can use as a SKU: stock/keys.py's opaque-id rule, and no formula start
    (that rule allows ``=``, ``+`` and ``-``)."""
    if not value:
        raise RowProblem(RefusalCode.MISSING_FIELD, f"{field} is empty")
    try:
        check_opaque(field, value)
    except InvalidArgument:
        raise RowProblem(
            RefusalCode.BAD_ID, f"{field} {value!r:.60} breaks LiveDrop's id rule: 1-128 of A-Z a-z 0-9 _ . : / + = -"
        ) from None
    return check_text(field, value, 128)


def check_image_url(field: str, value: str) -> str:
    """An absolute http(s) URL or nothing: a ``javascript:`` or relative link must not reach the
    viewer page."""
    if not value:
        return ""
    if len(value) > MAX_IMAGE_URL:
        raise RowProblem(RefusalCode.FIELD_TOO_LONG, f"{field} has {len(value)} characters, at most {MAX_IMAGE_URL}")
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() or ord(c) < 32 for c in value)
    ):
        raise RowProblem(RefusalCode.BAD_URL, f"{field} {value!r:.80} is not an absolute http(s) URL")
    return value


def parse_stock(field: str, value: str) -> int | None:
    """A whole number of units, 0 to 10**9, or None for an empty cell."""
    if not value:
        return None
    if not value.isascii() or not value.isdigit():
        raise RowProblem(RefusalCode.BAD_QUANTITY, f"{field} {value!r:.40} is not a whole number of units")
    stock = int(value) if len(value) <= 12 else MAX_STOCK + 1
    if stock > MAX_STOCK:
        raise RowProblem(RefusalCode.BAD_QUANTITY, f"{field} {stock} is more than {MAX_STOCK:,}")
    return stock
