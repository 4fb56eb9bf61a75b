"""Caps and decoding, checked before any parsing builds anything.

The caller (upload handler, URL fetcher) is expected to cap the bytes it reads; these checks
hold anyway, so that no input, however small or hostile, makes the parser build a structure
larger than the limits: rows, columns and field lengths are all bounded here.
"""

from __future__ import annotations

import codecs

import msgspec

from server.shows.feeds.errors import FeedError, FileErrorCode


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Settable caps. Defaults fit a show's catalogue with a wide margin (a show sells tens of
    products, a shop's whole feed a few thousand rows)."""

    max_bytes: int = 20 * 1024 * 1024
    max_rows: int = 10_000
    max_columns: int = 500
    # Longest cell of any kind: Google caps description at 5,000 characters.
    max_field_chars: int = 10_000
    # Variants of one drop: Shopify allowed 100 per product for years, now 2,048.
    max_variants: int = 250

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be at least 1")


# What LiveDrop itself accepts (server/host/api.py CreateDrop, stock/keys.py check_opaque).
MAX_TITLE = 200
MAX_IMAGE_URL = 2000
MAX_OPTION_NAME = 50
MAX_OPTION_VALUE = 100
MAX_GROUP = 255
MAX_STOCK = 1_000_000_000

_BOMS_NOT_UTF8 = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)


def check_size(data: bytes, limits: Limits) -> None:
    """Refuse an empty or oversized file before anything reads it."""
    if len(data) > limits.max_bytes:
        raise FeedError(FileErrorCode.TOO_LARGE, f"the file has {len(data):,} bytes, more than {limits.max_bytes:,}")
    if not data.strip():
        raise FeedError(FileErrorCode.EMPTY, "the file is empty")


def decode_text(data: bytes) -> str:
    """UTF-8 text of a CSV/TSV feed, without its byte-order mark.

    Google, Meta and Shopify all ask for UTF-8. Bytes that are not UTF-8 (a Latin-1 export
    from a spreadsheet, a UTF-16 file, binary) refuse the whole file, naming the line of the
    first bad byte: guessing another encoding would put mangled titles on a live show.
    """
    if data.startswith(_BOMS_NOT_UTF8):
        raise FeedError(FileErrorCode.BAD_ENCODING, "the file is UTF-16 or UTF-32; save it as UTF-8", 1)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FeedError(
            FileErrorCode.BAD_ENCODING, f"byte 0x{data[exc.start]:02x} is not UTF-8; save the file as UTF-8", line
        ) from None
    nul = text.find("\0")
    if nul >= 0:
        message = "the file contains a NUL character (binary data?)"
        raise FeedError(FileErrorCode.BAD_ENCODING, message, line_of(text, nul))
    return text


def line_of(text: str, index: int) -> int:
    """1-based line number of ``text[index]``."""
    return text.count("\n", 0, index) + 1
