"""Helpers for the browser tests: Debian's Chromium driven by Playwright's async API (DESIGN §9).

Never ``playwright install``: the browser is the system's ``/usr/bin/chromium`` (``.ci/run``
installs it with apt-get). The tests skip, with the reason, only when that browser is missing on a
developer's machine; under CI (``CI`` set) a missing browser fails them instead.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import paths

if TYPE_CHECKING:
    from playwright.async_api import ViewportSize

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root in containers, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = paths.ROOT / "test-artifacts"

LAPTOP: ViewportSize = {"width": 1366, "height": 900}
TABLET: ViewportSize = {"width": 820, "height": 1180}  # an iPad Air in portrait
PHONE: ViewportSize = {"width": 390, "height": 844}  # an iPhone 12-15


def require_chromium() -> None:
    """Skip (on a developer's machine) or fail (in CI) when the browser or Playwright is missing."""
    problems = []
    if not Path(CHROMIUM).exists():
        problems.append(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        problems.append("the playwright package is missing (pip install -e '.[dev]')")
    if not problems:
        return
    reason = "browser tests need " + "; ".join(problems)
    if os.environ.get("CI"):
        pytest.fail(reason + " — CI must run them", pytrace=False)
    pytest.skip(reason)


def artifact(name: str) -> Path:
    """Where to save a screenshot: ``test-artifacts/<name>`` (gitignored), made on first use."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


def reset_artifacts(prefix: str) -> None:
    """Remove a previous run's screenshots of one test, so a stale picture is never looked at."""
    if ARTIFACTS.is_dir():
        for old in ARTIFACTS.glob(f"{prefix}*"):
            if old.is_file():
                old.unlink()
            else:
                shutil.rmtree(old)


class PageErrors:
    """Collects uncaught errors and console errors of pages: a test ends by asserting none."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def allow(self, pattern: str) -> None:
        """Console errors matching ``pattern`` are expected (Chromium logs a refused WebSocket
        handshake and a 4xx fetch as errors, whatever the page does with them)."""
        self.allowed.append(re.compile(pattern))

    def watch(self, page: Any, name: str) -> None:
        page.on("pageerror", self._record(f"{name}: uncaught"))
        page.on("console", lambda message: self._console(name, message))

    def _console(self, name: str, message: Any) -> None:
        if message.type == "error" and not any(p.search(message.text) for p in self.allowed):
            self.errors.append(f"{name}: console {message.text}")

    def _record(self, prefix: str) -> Callable[[Any], None]:
        return lambda error: self.errors.append(f"{prefix} {error}")
