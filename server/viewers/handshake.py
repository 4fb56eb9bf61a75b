"""Whether a viewer's WebSocket upgrade is admitted, decided before it is accepted.

A refusal after the upgrade (a close frame right after ``accept``) fires the browser's ``onopen``
first, and clients showed "connected" before being thrown out. So a bad token, a token for
another show and an unknown show are refused in the handshake itself, with an HTTP status and an
RFC 9457 problem body, through the ASGI WebSocket Denial Response extension (uvicorn's protocols
offer it; Starlette's ``WebSocket.send_denial_response``). Close codes stay for what happens
after a connection was admitted (docs/protocol.md, "Refusals and close codes").

A browser does not show a refused handshake's status to the page (``onclose`` with 1006, no
``onopen``), so the same verdict is served at the same URL over plain HTTP
(``GET /ws/shows/{show_id}`` with ``Authorization: Bearer <token>``): a client that saw its
handshake fail asks it why (``@livedrop/client`` does).
"""

from __future__ import annotations

import re
from typing import Any, Final, NamedTuple

from redis.exceptions import RedisError
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from server.problems import Problem, problem_response
from server.shows.node import ShowNode
from server.viewers import protocol as p
from server.viewers.tokens import BadToken, ExpiredToken, ForbiddenToken, ViewerClaims, verify
from stock.errors import InvalidArgument

DENIAL_EXTENSION = "websocket.http.response"
_SEQ = re.compile(r"[0-9]{1,15}")  # a seq below 2**53: what every client's numbers hold exactly
_EPOCH = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Position(NamedTuple):
    """Where a reconnecting viewer asks to resume: after ``after``, in stream ``epoch``."""

    after: int
    epoch: str


BAD_POSITION: Final = Position(-1, "")
"""A ``resume_from``/``epoch`` that does not parse: the viewer gets a welcome marked reset."""


def resume_position(query: QueryParams) -> Position | None:
    """The resume position a handshake's query asks for: None (a fresh connection), a
    ``Position``, or ``BAD_POSITION`` for anything malformed (``-1``, ``abc``, ``²``, a seq past
    2**53, a missing or malformed ``epoch``, a parameter given twice)."""
    seqs, epochs = query.getlist("resume_from"), query.getlist("epoch")
    if not seqs:
        return None
    if len(seqs) > 1 or len(epochs) != 1 or not _SEQ.fullmatch(seqs[0]) or not _EPOCH.fullmatch(epochs[0]):
        return BAD_POSITION
    return Position(int(seqs[0]), epochs[0])


class Refused(Problem):
    """A handshake refused: its problem, and the close code a server without the denial
    extension sends instead (after accepting)."""

    def __init__(self, status: int, code: str, title: str, detail: str, close_code: int) -> None:
        super().__init__(status, code, title, detail)
        self.close_code = close_code


def token_refusal(exc: BadToken) -> Refused:
    if isinstance(exc, ForbiddenToken):
        return Refused(403, "forbidden_token", "This token does not open this show", str(exc), p.CLOSE_POLICY)
    if isinstance(exc, ExpiredToken):
        return Refused(401, "token_expired", "The viewer token has expired", str(exc), p.CLOSE_POLICY)
    return Refused(401, "invalid_token", "The viewer token is not valid", str(exc), p.CLOSE_POLICY)


async def admit(live: ShowNode, secret: bytes, show_id: str, token: str | None) -> ViewerClaims | None:
    """The viewer's claims (None: a viewer without a token, who may watch), or ``Refused``.

    A show the node already serves needs no Redis read: a reconnect storm is admitted from
    memory. An unknown show's name is not kept anywhere (it costs one read per attempt)."""
    claims = None
    if token:
        try:
            claims = verify(secret, token, show_id)
        except BadToken as exc:
            raise token_refusal(exc) from None
    if show_id not in live.shows:
        try:
            show = await live.catalog.get_show(show_id)
        except InvalidArgument:  # not even a show id (``a:b``): no such show
            show = None
        except (RedisError, OSError):
            raise Refused(503, "unavailable", "Try again", "Redis is unreachable", p.CLOSE_RESTART) from None
        if show is None:
            raise Refused(404, "unknown_show", "No such show", show_id, p.CLOSE_UNKNOWN_SHOW)
    return claims


def _response(refused: Refused) -> Response:
    headers = {"Retry-After": "1"} if refused.body.status == 503 else None
    return problem_response(refused, headers)


async def refuse(websocket: WebSocket, refused: Refused, subprotocol: str | None) -> None:
    """Answer the upgrade with the refusal's status and problem body; a server without the
    denial extension gets the old way, the close code right after the upgrade."""
    extensions: dict[str, Any] = websocket.scope.get("extensions") or {}
    if DENIAL_EXTENSION in extensions:
        await websocket.send_denial_response(_response(refused))
    else:
        await websocket.accept(subprotocol=subprotocol)
        await websocket.close(refused.close_code, refused.body.title)


async def check_endpoint(request: Request) -> Response:
    """``GET /ws/shows/{show_id}`` over plain HTTP: what the upgrade would answer, 204 when it
    would be admitted. The token goes in ``Authorization: Bearer``, never in the URL."""
    state: Any = request.state
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else None
    try:
        await admit(state.live, state.viewer_secret, request.path_params["show_id"], token or None)
    except Refused as refused:
        return _response(refused)
    return Response(status_code=204, headers={"Cache-Control": "no-store"})
