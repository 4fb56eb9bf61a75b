"""Demo mode's one extra endpoint, ``POST /demo/checkout``: confirms a viewer's own hold (bearer viewer
token, ownership checked) without payment, so a person can see the ``confirmed`` state."""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.problems import Problem, problem_response
from server.settings import Settings
from server.viewers import tokens
from server.viewers.protocol import HoldId
from stock import HoldNotActive, InvalidArgument, StockEngine, UnknownDrop, UnknownHold, keys
from stock.types import HoldState


# -- demo-mode HTTP: the viewer page's "pay" button --------------------------------------------------
class CheckoutBody(msgspec.Struct, forbid_unknown_fields=True):
    show: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    hold: HoldId  # ``<drop>.<n>``, or ``<drop>~<variant>.<n>`` for a variant's hold


class CheckoutResult(msgspec.Struct):
    hold: str
    qty: int


_encoder: Final = msgspec.json.Encoder()


async def checkout(request: Request) -> Response:
    """``POST /demo/checkout`` with ``Authorization: Bearer <viewer token>``: confirm the viewer's
    own hold as if it had paid. The ``confirmed`` frame then reaches the viewer as usual."""
    state: Any = request.state
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    try:
        body = msgspec.json.decode(await request.body(), type=CheckoutBody)
    except msgspec.DecodeError as exc:
        return problem_response(Problem(422, "invalid-request", "Invalid request body", str(exc)))
    if scheme.lower() != "bearer" or not token:
        return problem_response(Problem(401, "unauthorized", "Unauthorized", "a viewer token is required"))
    try:
        claims = tokens.verify(state.viewer_secret, token, body.show)
    except tokens.BadToken as exc:
        return problem_response(Problem(401, "unauthorized", "Unauthorized", str(exc)))
    engine: StockEngine = state.engine
    try:
        hold = await engine.hold(body.hold)
        snapshot = await engine.snapshot(keys.drop_of_hold(body.hold))
        if hold.customer != claims.viewer or snapshot.show_id != body.show:
            return problem_response(Problem(403, "not-owner", "Not the hold's owner"))
        if hold.state is not HoldState.HELD and hold.state is not HoldState.CONFIRMED:
            return problem_response(Problem(409, "hold-not-active", "Hold is not active", hold.state.value))
        # An order ref is an opaque id, which has no '~': a variant's hold id is spelt with ':'.
        result = await engine.confirm(body.hold, order_ref=f"demo:{body.hold.replace('~', ':')}")
    except (UnknownHold, UnknownDrop, InvalidArgument):
        return problem_response(Problem(404, "unknown-hold", "Unknown hold", body.hold))
    except HoldNotActive as exc:
        return problem_response(Problem(409, "hold-not-active", "Hold is not active", str(exc)))
    except RedisError:
        return problem_response(Problem(503, "unavailable", "Service unavailable", "Redis is unreachable; retry"))
    return Response(_encoder.encode(CheckoutResult(hold=result.hold_id, qty=result.qty)), media_type="application/json")


def demo_routes(settings: Settings) -> list[BaseRoute]:
    """Routes that exist only in demo mode (none otherwise)."""
    if not settings.demo:
        return []

    return [Route("/demo/checkout", checkout, methods=["POST"])]
