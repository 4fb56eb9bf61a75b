"""RFC 9457 problem responses for the host API: one exception, one body type, one encoder."""

from __future__ import annotations

import msgspec
from starlette.responses import Response

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://livedrop.dev/problems/"


class ProblemDetails(msgspec.Struct, omit_defaults=True):
    """The RFC 9457 body (named so in the OpenAPI document, where a nested ``Body`` said nothing)."""

    type: str
    title: str
    status: int
    detail: str = ""
    code: str = ""


class Problem(Exception):
    """Raise it from a handler: it becomes a problem+json response."""

    Body = ProblemDetails  # the body type, for callers that name it through the exception

    def __init__(self, status: int, code: str, title: str, detail: str = "") -> None:
        super().__init__(detail or title)
        self.body = ProblemDetails(type=TYPE_BASE + code, title=title, status=status, detail=detail, code=code)


_encoder = msgspec.json.Encoder()


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    return Response(
        _encoder.encode(problem.body), status_code=problem.body.status, media_type=PROBLEM_JSON, headers=headers
    )
