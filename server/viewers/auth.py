"""Where a viewer's token comes from, kept out of every URL a proxy or server logs. Pure.

A client offers two WebSocket subprotocols in the handshake's ``Sec-WebSocket-Protocol`` header:
``livedrop.v1`` and ``livedrop.token.<viewer token>`` (a token is base64url and dots, all allowed
in a subprotocol name). The server accepts ``livedrop.v1``; it never echoes the token. Browsers
can send this header (``new WebSocket(url, [...])``) where they cannot send ``Authorization``.

``?token=`` in the URL still works for old clients, but a URL is what access logs and proxies
record, so it is the fallback: the header wins when both are given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

SUBPROTOCOL: Final = "livedrop.v1"
"""The protocol the server accepts; a client that offers subprotocols must offer this one."""
TOKEN_PREFIX: Final = "livedrop.token."
"""Prefix of the subprotocol that carries a viewer token."""


def subprotocols(token: str | None) -> list[str]:
    """The subprotocols a client offers: the protocol, and its token if it has one."""
    return [SUBPROTOCOL, f"{TOKEN_PREFIX}{token}"] if token else [SUBPROTOCOL]


def credentials(query_token: str | None, offered: Sequence[str]) -> tuple[str | None, str | None]:
    """(viewer token or None, subprotocol to accept or None) of a handshake that offered the
    subprotocols ``offered`` and carried ``query_token`` in its URL."""
    token = next((p[len(TOKEN_PREFIX) :] for p in offered if p.startswith(TOKEN_PREFIX)), None)
    accepted = SUBPROTOCOL if SUBPROTOCOL in offered else None
    return token or query_token or None, accepted
