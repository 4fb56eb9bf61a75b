"""Supervised background loops: one helper for "do this step forever, and never die quietly".

A background loop that ends on an unexpected exception takes a feature down silently (a
viewer stops getting events, and nothing says so). ``repeat`` runs one step after another; a
step that raises is logged — a warning for the expected outages (Redis, the network), a full
traceback for anything else — and retried after an exponential backoff. Cancellation always
ends the loop, including a cancel that redis-py's ``wait_for`` swallowed (``raise_if_cancelled``).
Cleanup belongs in the caller's ``finally`` (or in code that does not depend on the loop), so it
runs however the loop ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

logger = logging.getLogger("livedrop.loops")

# Errors that mean "Redis or the network is away": logged without a traceback, counted.
EXPECTED: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


def raise_if_cancelled() -> None:
    """Raise CancelledError if this task was asked to stop, even if the request was lost.

    redis-py 8 sends every command through ``asyncio.wait_for`` (its default 5 s socket
    timeout), and on Python 3.11 ``wait_for`` returns the result, dropping the cancellation,
    when the cancel races with the command completing. A background loop that only relied on
    CancelledError would then keep running and hang the app's shutdown. ``cancelling()`` still
    counts the request, so loops check it once per turn.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Backoff:
    """Exponential backoff: ``first``, doubled after each failure up to ``most``."""

    def __init__(self, first: float = 0.1, most: float = 2.0) -> None:
        self.first, self.most, self.delay = first, most, first

    def failed(self) -> float:
        """The delay to wait now; the next one is longer."""
        delay, self.delay = self.delay, min(self.delay * 2, self.most)
        return delay

    def reset(self) -> None:
        self.delay = self.first


async def repeat(
    step: Callable[[], Awaitable[bool | None]],
    *,
    name: str,
    interval: float = 0.0,
    backoff: Backoff | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    log: logging.Logger = logger,
    fixed_rate: bool = False,
) -> None:
    """Run ``step`` again and again, ``interval`` seconds apart, until it returns True or the
    task is cancelled. A step that raises is logged (``name`` says which loop), reported to
    ``on_error`` (to count it) and retried after ``backoff``. With ``fixed_rate`` the interval runs
    from the start of one step to the start of the next (a ticker whose rates are per second),
    else from the end of one step."""
    backoff = backoff or Backoff()
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        try:
            if await step():
                return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise_if_cancelled()
            if on_error is not None:
                on_error(exc)
            delay = backoff.failed()
            if isinstance(exc, EXPECTED):
                log.warning("%s failed (%s: %s), retrying in %.1fs", name, type(exc).__name__, exc, delay)
            else:
                log.exception("%s failed, retrying in %.1fs", name, delay)
            await asyncio.sleep(delay)
            continue
        raise_if_cancelled()
        backoff.reset()
        if interval > 0:
            await asyncio.sleep(max(0.0, started + interval - loop.time()) if fixed_rate else interval)
