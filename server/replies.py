"""Reading Redis replies: one helper, because a reply field is ``bytes`` from a plain client and
``str`` from one made with ``decode_responses`` (tests and tools use both), and every reader of
streams, hashes and sets needs the same answer."""

from __future__ import annotations

from typing import Any


def decoded(value: Any) -> str:
    """``value`` as text: bytes decoded as UTF-8, anything else through ``str``."""
    return value.decode() if isinstance(value, bytes) else str(value)
