"""Where things are, for tests at any depth of the tree: the checkout and the shared sample data."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: tests/support/paths.py → ../..
DATA = ROOT / "tests" / "data"
