"""The one exception of the feed library: a whole file refused.

A row that is wrong is not an exception: it becomes a ``Refusal`` in the plan, so the host sees
every bad row at once. ``FeedError`` is for files that cannot be read at all (bad encoding,
over a limit, hostile XML, no header): nothing of such a file is planned, so nothing of it can
be created half-way. Callers map it to one RFC 9457 problem (``code`` is its machine-readable
type, ``line`` the line to point at when there is one).
"""

from __future__ import annotations

import enum


class FileErrorCode(enum.StrEnum):
    """Why a whole file was refused."""

    TOO_LARGE = "too_large"
    TOO_MANY_ROWS = "too_many_rows"
    TOO_MANY_COLUMNS = "too_many_columns"
    BAD_ENCODING = "bad_encoding"
    EMPTY = "empty"
    UNKNOWN_FORMAT = "unknown_format"
    MISSING_HEADER = "missing_header"
    MISSING_COLUMN = "missing_column"
    WRONG_DELIMITER = "wrong_delimiter"
    MALFORMED = "malformed"
    FORBIDDEN_XML = "forbidden_xml"
    CURRENCY_REQUIRED = "currency_required"
    FIELD_TOO_LONG = "field_too_long"


class FeedError(ValueError):
    """A feed file refused as a whole. ``str(error)`` is a message a host can act on."""

    def __init__(self, code: FileErrorCode, message: str, line: int | None = None) -> None:
        where = f" (line {line})" if line is not None else ""
        super().__init__(f"{message}{where}")
        self.code = code
        self.message = message
        self.line = line
