"""Helpers shared by the tests (import them; fixtures live in conftest.py)."""

from __future__ import annotations

import os
from typing import Protocol

from server.ops.local_redis import AppendFsync, LocalRedis

TIMEOUT_SCALE_ENV = "LIVEDROP_TEST_TIMEOUT_SCALE"


def timeout_scale() -> float:
    """The factor from ``$LIVEDROP_TEST_TIMEOUT_SCALE`` (default 1.0).

    One knob for slow machines and CI runners: raise it instead of editing timeouts.
    """
    raw = os.environ.get(TIMEOUT_SCALE_ENV, "").strip()
    if not raw:
        return 1.0
    try:
        factor = float(raw)
    except ValueError:
        raise ValueError(f"{TIMEOUT_SCALE_ENV}={raw!r} is not a number") from None
    if not factor > 0:
        raise ValueError(f"{TIMEOUT_SCALE_ENV}={raw!r} must be positive")
    return factor


def scaled(seconds: float) -> float:
    """``seconds`` multiplied by ``$LIVEDROP_TEST_TIMEOUT_SCALE``: use it for every test timeout."""
    return seconds * timeout_scale()


class RedisServerFactory(Protocol):
    """Type of the ``fresh_redis_server`` fixture: starts a private, killable server."""

    def __call__(self, *, appendfsync: AppendFsync = "always") -> LocalRedis: ...
