"""Loads the Lua scripts shipped as package data and registers each once per client.

A script may say ``--- @include "lib/x.lua"``; the line is replaced by that file when the
package data is read, so shared helpers exist once in the source tree (BullMQ assembles its
scripts the same way). Nothing from run time ever enters a script's text.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

from redis.commands.core import AsyncScript

_INCLUDE = re.compile(r'^--- @include "([a-z_/]+\.lua)"$', re.MULTILINE)

OPERATIONS = (
    "adjust",
    "cancel",
    "configure",
    "confirm",
    "define",
    "erase",
    "fast_forward",
    "order",
    "release",
    "reserve",
    "set_state",
    "sweep",
    "undefine",
    "waitlist_join",
    "waitlist_leave",
)


def _read(name: str) -> str:
    return resources.files("stock").joinpath("lua", name).read_text(encoding="utf-8")


@cache
def source(operation: str) -> str:
    """The full text of one operation's script, includes spliced in."""
    if operation not in OPERATIONS:
        raise KeyError(operation)
    return _INCLUDE.sub(lambda m: _read(m.group(1)), _read(f"{operation}.lua"))


class Scripts:
    """The registered scripts of one Redis client (EVALSHA, reloaded on NOSCRIPT)."""

    def __init__(self, client: Any) -> None:
        self._scripts: dict[str, AsyncScript] = {op: client.register_script(source(op)) for op in OPERATIONS}

    def __getitem__(self, operation: str) -> AsyncScript:
        return self._scripts[operation]

    def sha(self, operation: str) -> str:
        return self._scripts[operation].sha
