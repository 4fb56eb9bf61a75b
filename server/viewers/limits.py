"""Limits on the JSON that clients send (viewer frames, host API bodies, webhook bodies). Pure.

msgspec decodes recursively and raises ``RecursionError`` past the interpreter's recursion limit
(about 1,000 levels, less when the stack is already deep). That is no client's fault of ours to
answer 500 for, and what "deep" means should not depend on the stack: ``check_depth`` refuses
nesting past a fixed limit before any decoding, and ``decode`` turns a ``RecursionError`` that
gets through anyway into ``TooDeep``. Every surface maps ``TooDeep`` to its own client error
(an error frame, a 400 problem document), never a traceback.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Final, TypeVar

import msgspec

T = TypeVar("T")

MAX_DEPTH: Final = 32
"""Nesting (objects and arrays) allowed in viewer frames and host API bodies: ours are 3 deep."""
MAX_WEBHOOK_DEPTH: Final = 64
"""Nesting allowed in webhook bodies: platform orders are under 10 deep (Meta's is the deepest)."""
MAX_API_BODY: Final = 256 * 1024
"""Bytes of a host API request body: the largest valid one (a run-of-show of 1,000 ids of 64
characters) is about 67 KiB."""


class TooDeep(ValueError):
    """The JSON is nested deeper than allowed."""


# Linear passes in C: escapes out first (a backslash only ever appears inside a JSON string), then
# strings, which can then hold no escaped quote, so "[^"]*" never backtracks; then everything but
# brackets. A pattern matching whole strings with escapes in one go backtracks quadratically on
# bodies made of `\"`.
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
for _c in b"[{":
    _STEP[_c] = 1
for _c in b"]}":
    _STEP[_c] = -1


def json_depth(raw: bytes) -> int:
    """How deeply ``raw`` nests objects and arrays (0 for a scalar). Brackets inside strings do
    not count. Meant for well-formed JSON; for anything else the answer is an upper bound."""
    brackets = _STRING.sub(b"", _ESCAPE.sub(b"", raw)).translate(None, _NOT_BRACKET)
    return max(accumulate(_STEP[b] for b in brackets), default=0)


def check_depth(raw: bytes, limit: int) -> None:
    """Raise ``TooDeep`` when ``raw`` nests deeper than ``limit``. Costs two ``count`` calls when
    the body has no more opening brackets than ``limit`` (nearly always)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return
    depth = json_depth(raw)
    if depth > limit:
        raise TooDeep(f"JSON nested {depth} levels deep; at most {limit} are accepted")


def decode(raw: bytes, kind: type[T], limit: int = MAX_DEPTH) -> T:
    """``msgspec.json.decode(raw, type=kind)`` within the depth ``limit``. Raises ``TooDeep`` or
    ``msgspec.DecodeError`` (``ValidationError`` included) for bad input, nothing else."""
    check_depth(raw, limit)
    try:
        return msgspec.json.decode(raw, type=kind)
    except RecursionError:
        raise TooDeep("JSON nested too deeply") from None
