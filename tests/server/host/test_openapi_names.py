"""OpenAPI component names are what a client generator turns into class names: each must be unique
and human — no module path leaking in (``server.host.api.Restock``) and no bare ``Body``. Pure: the
document is built from the API's types without a server."""

from __future__ import annotations

import re

from server.host.api import build_api


def test_component_names_are_unique_and_human() -> None:
    names = list(build_api().openapi()["components"]["schemas"])
    assert len(names) == len(set(names))
    leaking = [n for n in names if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", n)]
    assert leaking == [], f"component names that leak a module path or are not a type name: {leaking}"
    assert "Body" not in names
    assert {"RestockRequest", "CancellationRestock", "ProblemDetails"} <= set(names)
