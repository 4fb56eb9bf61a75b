"""``server.loops.repeat``: a supervised loop logs, backs off, goes on, and stops on cancel."""

from __future__ import annotations

import asyncio
import logging

import pytest

from server.loops import Backoff, repeat
from tests.support.util import scaled


def test_backoff_doubles_up_to_its_ceiling_and_resets() -> None:
    backoff = Backoff(0.1, 0.5)
    assert [backoff.failed() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.failed() == 0.1


async def test_a_step_that_raises_is_logged_and_run_again(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []
    errors: list[BaseException] = []

    async def step() -> bool:
        calls.append(len(calls))
        if len(calls) == 1:
            raise KeyError("a bug")
        if len(calls) == 2:
            raise ConnectionResetError("Redis went away")
        return len(calls) == 4

    with caplog.at_level(logging.WARNING, logger="livedrop.loops"):
        async with asyncio.timeout(scaled(5)):
            await repeat(step, name="test loop", backoff=Backoff(0.001, 0.002), on_error=errors.append)
    assert calls == [0, 1, 2, 3]
    assert [type(e) for e in errors] == [KeyError, ConnectionResetError]
    bug, outage = caplog.records
    assert bug.levelno == logging.ERROR and bug.exc_info is not None  # a bug: full traceback
    assert outage.levelno == logging.WARNING and outage.exc_info is None  # an outage: one line
    assert "test loop failed" in bug.getMessage() and "test loop failed" in outage.getMessage()


async def test_cancelling_ends_the_loop_even_mid_backoff() -> None:
    started = asyncio.Event()

    async def step() -> None:
        started.set()
        raise RuntimeError("always")

    task = asyncio.create_task(repeat(step, name="doomed", backoff=Backoff(60, 60)))
    await started.wait()
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
