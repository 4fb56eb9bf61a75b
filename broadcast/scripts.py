"""Lua scripts shipped as package data: the one loader for the hub's scripts and the server's.

A script is a file ``<package>/lua/<name>.lua`` opening with its contract, read once through
``importlib.resources`` (so it works from a wheel or a zip) and registered per client with
``register_script``; no script text is ever built at run time. The stock engine keeps its own
loader: it imports nothing of ours, this package included.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def lua_source(package: str, name: str) -> str:
    """The text of ``<package>/lua/<name>.lua`` (``package`` is a dotted package name)."""
    return resources.files(package).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")
