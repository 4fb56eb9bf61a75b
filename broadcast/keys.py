"""The hub's own Redis keys: a show's event stream and its presence counts.

Every key of a show carries the hash tag ``{show:<id>}`` so each script and stream of one show lives
on a single Redis Cluster slot (DESIGN §2); the server keeps its own per-show keys under the same
tag (``server.keys``). This module is the broadcast layer's: it imports nothing from the stock
engine, so the hub can be used, and tested, without it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

PREFIX: Final = "ld"

# A show id ends up inside a hash tag: a `{` or `}` in it would move its keys to another slot.
_SHOW_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


class InvalidShowId(ValueError):
    """A show id that cannot be part of a key. Callers validate ids at their edge first."""


@lru_cache(maxsize=4096)
def show_tag(show_id: str) -> str:
    """Prefix of every key of a show (``ld:{show:<id>}:``); raises ``InvalidShowId``."""
    if not isinstance(show_id, str) or not _SHOW_ID_RE.fullmatch(show_id):
        raise InvalidShowId(f"show id must be 1-64 characters of A-Z a-z 0-9 _ -, got {show_id!r:.80}")
    return f"{PREFIX}:{{show:{show_id}}}:"
