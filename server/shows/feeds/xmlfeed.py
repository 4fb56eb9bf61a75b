"""RSS 2.0 and Atom product feeds (Google's ``g:`` vocabulary, which Meta reuses), read by a
streaming ``defusedxml`` parser.

defusedxml refuses DTDs, entity declarations and external entities, so a billion-laughs or
XXE file is refused as a whole before any expansion. The parser feeds a small target that
keeps only the leaf fields LiveDrop reads, so the rows are all that is built (a few fields
each, whatever the item holds), and the parse stops at the first item past ``limits.max_rows``.
"""

from __future__ import annotations

from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, ParseError

from server.shows.feeds.errors import FeedError, FileErrorCode
from server.shows.feeds.limits import Limits
from server.shows.feeds.plan import Refusal, RefusalCode
from server.shows.feeds.rows import SourceRow

GOOGLE_NS = "http://base.google.com/ns/1.0"
ATOM_NS = "http://www.w3.org/2005/Atom"
# Children in these namespaces (or none) are product fields; anything else is ignored.
_FIELD_NAMESPACES = ("", GOOGLE_NS, ATOM_NS)
_ITEM_TAGS = ("item", f"{{{ATOM_NS}}}entry")


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


class _ItemCollector:
    """ElementTree parser target: one dict of leaf fields per ``<item>``/``<entry>``."""

    def __init__(self, limits: Limits, fields: frozenset[str]) -> None:
        self.limits = limits
        self.fields = fields
        self.parser: Any = None  # set once the parser exists: it holds the line numbers
        self.rows: list[SourceRow] = []
        self.refused: list[Refusal] = []
        self.items = 0
        self._depth = 0
        self._item_depth: int | None = None
        self._item_line = 0
        self._cells: dict[str, str] = {}
        self._problem: str | None = None
        self._field: str | None = None
        self._keep = False
        self._google = False
        self._from_google: set[str] = set()
        self._nested = False
        self._text: list[str] = []
        self._text_len = 0

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self._depth += 1
        if self._item_depth is None:
            if tag in _ITEM_TAGS:
                self.items += 1
                if self.items > self.limits.max_rows:
                    message = f"the feed has more than {self.limits.max_rows:,} items"
                    raise FeedError(FileErrorCode.TOO_MANY_ROWS, message, self._line())
                self._item_depth, self._item_line = self._depth, self._line()
                self._cells, self._problem, self._from_google = {}, None, set()
            return
        if self._depth == self._item_depth + 1:
            ns, local = _split(tag)
            self._field = local.lower() if ns in _FIELD_NAMESPACES else None
            self._keep = self._field in self.fields
            self._google = ns == GOOGLE_NS
            self._nested, self._text, self._text_len = False, [], 0
        else:
            self._nested = True  # g:shipping and the like: not a field LiveDrop reads

    def data(self, text: str) -> None:
        if self._field is not None and not self._nested:
            self._text_len += len(text)
            if self._text_len <= self.limits.max_field_chars:
                if self._keep:
                    self._text.append(text)
            elif self._problem is None:
                self._problem = f"{self._field} has more than {self.limits.max_field_chars:,} characters"

    def end(self, tag: str) -> None:
        depth, self._depth = self._depth, self._depth - 1
        if self._item_depth is None:
            return
        if depth == self._item_depth:
            self._item_depth = None
            if self._problem is not None:  # the only item-level problem: a field over the cap
                self.refused.append(
                    Refusal(
                        line=self._item_line,
                        source_id=self._cells.get("id"),
                        reason=RefusalCode.FIELD_TOO_LONG,
                        message=self._problem,
                    )
                )
            else:
                self.rows.append(SourceRow(self._item_line, self._cells))
        elif depth == self._item_depth + 1 and self._field is not None:
            # A repeated field keeps its first value, except that a g: field wins over a plain one
            # (an Atom entry has its own <id>, a URI, beside <g:id>).
            first = self._field not in self._cells or (self._google and self._field not in self._from_google)
            if self._keep and not self._nested and first:
                self._cells[self._field] = "".join(self._text).strip()
                if self._google:
                    self._from_google.add(self._field)
            self._field = None

    def close(self) -> None:
        return None

    def _line(self) -> int:
        return int(self.parser.parser.CurrentLineNumber) if self.parser is not None else 0


def read_xml(data: bytes, limits: Limits, fields: frozenset[str]) -> tuple[list[SourceRow], list[Refusal], int]:
    """Rows of an RSS/Atom feed: (rows, refused rows, items read), keeping only ``fields`` (every
    field is still length-checked). Raises FeedError for a malformed or forbidden document, or
    one with no item at all."""
    collector = _ItemCollector(limits, fields)
    parser = DefusedXMLParser(target=collector, forbid_dtd=True)
    collector.parser = parser
    try:
        parser.feed(data)
        parser.close()
    except FeedError:
        raise
    except DefusedXmlException as exc:
        raise FeedError(
            FileErrorCode.FORBIDDEN_XML,
            f"the XML declares a DTD or entities ({type(exc).__name__}), which feeds never need",
            collector._line() or None,
        ) from None
    except ParseError as exc:
        raise FeedError(FileErrorCode.MALFORMED, f"not well-formed XML: {exc}", exc.position[0]) from None
    except (ValueError, LookupError, RecursionError) as exc:  # e.g. an unknown declared encoding
        raise FeedError(FileErrorCode.MALFORMED, f"unreadable XML: {exc}") from None
    if collector.items == 0:
        raise FeedError(FileErrorCode.EMPTY, "the XML has no <item> or <entry> element")
    return collector.rows, collector.refused, collector.items
