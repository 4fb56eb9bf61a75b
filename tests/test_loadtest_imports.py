"""``loadtest/`` talks to LiveDrop only through its public surfaces: the host HTTP API, the viewer
WebSocket, signed webhooks over HTTP and the ``livedrop`` command. It never imports the server,
the stock engine or the hub, so what it checks is what a deployment really exposes, and a
refactoring of their internals cannot break it. This test reads every module's syntax tree."""

from __future__ import annotations

import ast
from pathlib import Path

LOADTEST = Path(__file__).resolve().parent.parent / "loadtest"
INTERNAL = frozenset({"server", "stock", "broadcast"})
DYNAMIC_IMPORTERS = frozenset({"import_module", "__import__"})


def internal_imports(source: str) -> list[str]:
    """The modules of ours (``server``, ``stock``, ``broadcast``) that ``source`` imports,
    statically or through ``importlib.import_module``/``__import__`` with a literal name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in DYNAMIC_IMPORTERS and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        found += [name for name in names if name.split(".", 1)[0] in INTERNAL]
    return found


def test_loadtest_imports_no_server_stock_or_hub_module() -> None:
    modules = sorted(LOADTEST.glob("*.py"))
    assert len(modules) > 5  # the package is where this test thinks it is
    offenders = {path.name: found for path in modules if (found := internal_imports(path.read_text(encoding="utf-8")))}
    assert offenders == {}, f"loadtest must use public surfaces only, not {offenders}"


def test_the_check_sees_every_form_of_import() -> None:
    source = """
import stock
import os, server.platforms.webhooks.config as config
from broadcast.hub import Hub
from server import keys
from . import plan
from loadtest.plan import Plan
import importlib
importlib.import_module("stock.ledger")
__import__("server.cli")
"""
    assert internal_imports(source) == [
        "stock",
        "server.platforms.webhooks.config",
        "broadcast.hub",
        "server",
        "stock.ledger",
        "server.cli",
    ]
