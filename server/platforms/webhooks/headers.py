"""Case-insensitive header lookup over any mapping.

Starlette's ``Headers`` is already case-insensitive, but tests, the CLI and replay tools pass plain dicts,
and HTTP/2 senders lower-case every name (Shopify says so explicitly). Header names are ASCII.
"""

from __future__ import annotations

from collections.abc import Mapping

from server.platforms.webhooks.errors import MissingHeader


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` (any case), or None. An empty value counts as absent."""
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    if value is None:
        wanted = name.lower()
        for key, candidate in headers.items():
            if key.lower() == wanted:
                value = candidate
                break
    if value is None:
        return None
    value = value.strip()
    return value or None


def require_header(headers: Mapping[str, str], name: str) -> str:
    """The value of header ``name``; raises ``MissingHeader`` when it is absent or empty."""
    value = header(headers, name)
    if value is None:
        raise MissingHeader(name)
    return value
