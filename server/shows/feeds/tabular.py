"""CSV and TSV feeds through the standard ``csv`` module: header, delimiter, bounded rows.

The header is the first non-blank line and decides the delimiter: a tab makes it TSV, a comma
CSV. A header with neither but with ``;`` or ``|`` is a spreadsheet saved with a regional list
separator, which none of the three platforms reads; it is refused as a whole.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Collection

import msgspec

from server.shows.feeds.errors import FeedError, FileErrorCode
from server.shows.feeds.limits import Limits
from server.shows.feeds.plan import Refusal, RefusalCode
from server.shows.feeds.rows import SourceRow, norm_header


class Table(msgspec.Struct, frozen=True, kw_only=True):
    delimiter: str
    header: list[str]
    header_line: int
    rows: list[SourceRow]
    refused: list[Refusal]
    rows_read: int


def first_line(text: str) -> tuple[int, str]:
    """The first non-blank line and its 1-based number."""
    for number, line in enumerate(io.StringIO(text, newline=None), start=1):
        if line.strip():
            return number, line
        if number > 1000:
            break
    raise FeedError(FileErrorCode.MISSING_HEADER, "the file has no header row")


def sniff_delimiter(text: str) -> str:
    number, line = first_line(text)
    if "\t" in line:
        return "\t"
    if "," in line:
        return ","
    if ";" in line or "|" in line:
        sep = ";" if ";" in line else "|"
        raise FeedError(
            FileErrorCode.WRONG_DELIMITER,
            f"the header is separated by {sep!r}; feeds use a tab (TSV) or a comma (CSV)",
            number,
        )
    return ","


def read_table(text: str, limits: Limits, keep: Callable[[list[str]], Collection[str]]) -> Table:
    """Every data row as cells keyed by normalised column name, keeping only the columns
    ``keep(header)`` names (a row of 500 empty cells must not cost 500 dict entries).

    A row whose cell count differs from the header's, or with a cell over
    ``limits.max_field_chars``, is refused on its own; more data rows than ``limits.max_rows``
    refuse the whole file (a truncated import would look complete in the preview).
    """
    delimiter = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    header_line = 0
    kept: list[tuple[int, str]] = []
    rows: list[SourceRow] = []
    refused: list[Refusal] = []
    rows_read = 0
    last_line = 0
    try:
        for cells in reader:
            start, last_line = last_line + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header, header_line = _header(cells, limits, start), start
                wanted = keep(header)
                kept = [(i, name) for i, name in enumerate(header) if name in wanted]
                continue
            rows_read += 1
            if rows_read > limits.max_rows:
                raise FeedError(FileErrorCode.TOO_MANY_ROWS, f"the file has more than {limits.max_rows:,} rows", start)
            if len(cells) != len(header):
                refused.append(
                    Refusal(
                        line=start,
                        source_id=None,
                        reason=RefusalCode.BAD_ROW,
                        message=f"the row has {len(cells)} fields, the header {len(header)}"
                        f"{' (is the delimiter a tab?)' if len(cells) == 1 else ''}",
                    )
                )
                continue
            long = next((i for i, cell in enumerate(cells) if len(cell) > limits.max_field_chars), None)
            if long is not None:
                refused.append(
                    Refusal(
                        line=start,
                        source_id=None,
                        reason=RefusalCode.FIELD_TOO_LONG,
                        message=f"{header[long]} has {len(cells[long]):,} characters, "
                        f"at most {limits.max_field_chars:,}",
                    )
                )
                continue
            # Only spaces are trimmed: a leading tab or CR is a formula trick (OWASP), for the
            # text checks to see.
            rows.append(SourceRow(start, {name: cells[i].strip(" ") for i, name in kept}))
    except csv.Error as exc:
        code = FileErrorCode.FIELD_TOO_LONG if "field larger" in str(exc) else FileErrorCode.MALFORMED
        raise FeedError(code, f"unreadable CSV: {exc}", reader.line_num) from None
    if header is None:
        raise FeedError(FileErrorCode.MISSING_HEADER, "the file has no header row")
    return Table(
        delimiter=delimiter, header=header, header_line=header_line, rows=rows, refused=refused, rows_read=rows_read
    )


def _header(cells: list[str], limits: Limits, line: int) -> list[str]:
    if len(cells) > limits.max_columns:
        raise FeedError(FileErrorCode.TOO_MANY_COLUMNS, f"the header has more than {limits.max_columns} columns", line)
    header = [norm_header(cell) for cell in cells]
    seen: set[str] = set()
    for name in header:
        if len(name) > 200:
            raise FeedError(FileErrorCode.MALFORMED, f"a column name is {len(name)} characters long", line)
        if name and name in seen:
            raise FeedError(FileErrorCode.MALFORMED, f"the column {name!r} appears twice in the header", line)
        seen.add(name)
    return header
