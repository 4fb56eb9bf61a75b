"""Bounds of the chat and the per-connection token bucket. Pure.

The figures follow what the large platforms allow (docs/chat.md, contracts §3): a timeout of
1 s to 2 weeks (Twitch's Ban User ``duration``), slow mode of 1-120 s (Stream Chat's cooldown),
messages short enough to read in a fast-moving crowd.
"""

from __future__ import annotations

import time
from typing import Final

MAX_TEXT_CHARS: Final = 300
"""Characters of a message after normalisation; longer ones are refused, not cut."""
MAX_NAME_CHARS: Final = 40
MIN_TIMEOUT_SECONDS: Final = 1
MAX_TIMEOUT_SECONDS: Final = 14 * 24 * 3600  # two weeks
MIN_SLOW_SECONDS: Final = 1
MAX_SLOW_SECONDS: Final = 120
MAX_BLOCKED_WORDS: Final = 500
MAX_BLOCKED_WORD_CHARS: Final = 64
MAX_KEYWORD_CHARS: Final = 16
DEFAULT_KEYWORD: Final = "SOLD"


class TokenBucket:
    """``rate`` tokens per second, at most ``burst``: the first line against a flood from one
    socket, before anything reaches Redis (the per-viewer bucket in ``post.lua`` holds across
    connections and nodes)."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float | None = None) -> None:
        self.rate, self.burst, self.tokens = rate, burst, burst
        self.stamp = time.monotonic() if now is None else now

    def allow(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the next token."""
        return max(0.0, (1 - self.tokens) / self.rate) if self.rate > 0 else 60.0


def letter_code(index: int) -> str:
    """The claim code of the ``index``-th drop of a show (0 → ``A``, 25 → ``Z``, 26 → ``AA``):
    the letters a host shows on a drop's card, as CommentSold's overlay does."""
    if index < 0:
        raise ValueError("index must be >= 0")
    code = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        code = chr(ord("A") + rest) + code
    return code
