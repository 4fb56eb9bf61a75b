"""``/client/``: the JavaScript viewer client (``clients/js/src``) as static ES modules.

The demo viewer page imports it from there, and so can an integrator's page served by the same
origin: no build step, no bundler. The package lives outside the Python packages (it is an npm
package of its own), so it is looked up in the source checkout and then under the working
directory (the container image copies it to ``/app/clients/js/src``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

logger = logging.getLogger(__name__)

CLIENT_PATH = "/client"


def client_dir() -> Path | None:
    """Where ``clients/js/src`` is, or None when this installation has no copy of it."""
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        candidate = root / "clients" / "js" / "src"
        if (candidate / "index.js").is_file():
            return candidate
    return None


def client_routes() -> list[BaseRoute]:
    """The ``/client`` mount, or none (with a warning: the demo viewer page needs it)."""
    directory = client_dir()
    if directory is None:
        logger.warning("clients/js/src not found: %s/ is not served and the demo viewer page cannot run", CLIENT_PATH)
        return []
    return [Mount(CLIENT_PATH, StaticFiles(directory=directory), name="client")]
