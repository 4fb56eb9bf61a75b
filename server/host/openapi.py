"""A tiny route table for JSON endpoints whose request and response bodies are msgspec types,
so that one declaration validates requests, encodes responses and generates the OpenAPI
document (``/openapi.json``) — the schema can never drift from what the code accepts."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.problems import Problem, problem_response
from server.viewers import limits

Handler = Callable[..., Awaitable[Any]]
_encoder = msgspec.json.Encoder()
_PARAM = re.compile(r"{(\w+)}")


@dataclass
class Endpoint:
    method: str
    path: str
    handler: Handler
    body: Any  # a msgspec type, or a union of tagged ones
    response: Any
    summary: str
    status: int
    auth: bool
    tag: str
    raw_body: tuple[str, ...] = ()


async def read_body(request: Request, kind: type[Any]) -> Any:
    """The request body decoded as ``kind``, within ``limits.MAX_API_BODY`` bytes (413) and
    ``limits.MAX_DEPTH`` levels of nesting (400); 422 when it is not a valid ``kind``. The body is
    read no further than the limit, whatever Content-Length claims."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limits.MAX_API_BODY:
            raise Problem(413, "too-large", "Request body too large", f"at most {limits.MAX_API_BODY} bytes")
    try:
        return limits.decode(bytes(body) or b"{}", kind)
    except limits.TooDeep as exc:
        raise Problem(400, "too-deep", "Request body nested too deeply", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise Problem(422, "invalid-request", "Invalid request body", str(exc)) from exc


class Api:
    """Collects endpoints; ``routes()`` gives Starlette routes, ``openapi()`` the document."""

    def __init__(self, title: str, version: str, authenticate: Callable[[Request], Awaitable[None]]) -> None:
        self.title = title
        self.version = version
        self.authenticate = authenticate
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        response: Any = None,
        summary: str,
        status: int = 200,
        auth: bool = True,
        tag: str = "host",
        raw_body: tuple[str, ...] = (),
    ) -> Callable[[Handler], Handler]:
        """``raw_body``: the media types of a body the handler reads itself (a file upload),
        for the OpenAPI document only."""

        def register(handler: Handler) -> Handler:
            self.endpoints.append(Endpoint(method, path, handler, body, response, summary, status, auth, tag, raw_body))
            return handler

        return register

    def routes(self) -> list[Route]:
        by_path: dict[str, list[Endpoint]] = {}
        for endpoint in self.endpoints:
            by_path.setdefault(endpoint.path, []).append(endpoint)
        return [Route(path, self._dispatch(eps), methods=[e.method for e in eps]) for path, eps in by_path.items()]

    def _dispatch(self, endpoints: list[Endpoint]) -> Callable[[Request], Awaitable[Response]]:
        table = {e.method: e for e in endpoints}

        async def dispatch(request: Request) -> Response:
            endpoint = table[request.method]
            try:
                if endpoint.auth:
                    await self.authenticate(request)
                args: list[Any] = [request]
                if endpoint.body is not None:
                    args.append(await read_body(request, endpoint.body))
                result = await endpoint.handler(*args)
            except Problem as problem:
                return problem_response(problem)
            if isinstance(result, Response):
                return result
            return Response(_encoder.encode(result), status_code=endpoint.status, media_type="application/json")

        return dispatch

    def openapi(self) -> dict[str, Any]:
        types: list[Any] = [Problem.Body]
        for e in self.endpoints:
            types += [t for t in (e.body, e.response) if t is not None]
        schemas, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
        lookup = dict(zip(types, schemas, strict=True))
        paths: dict[str, dict[str, Any]] = {}
        for e in self.endpoints:
            operation: dict[str, Any] = {
                "summary": e.summary,
                "operationId": e.handler.__name__,
                "tags": [e.tag],
                "responses": {
                    str(e.status): {
                        "description": "OK",
                        **(
                            {"content": {"application/json": {"schema": lookup[e.response]}}}
                            if e.response is not None
                            else {}
                        ),
                    },
                    "default": {
                        "description": "A problem (RFC 9457)",
                        "content": {"application/problem+json": {"schema": lookup[Problem.Body]}},
                    },
                },
            }
            params = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in _PARAM.findall(e.path)
            ]
            if params:
                operation["parameters"] = params
            if e.body is not None:
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": lookup[e.body]}},
                }
            elif e.raw_body:
                binary = {"schema": {"type": "string", "format": "binary"}}
                operation["requestBody"] = {"required": True, "content": {t: binary for t in e.raw_body}}
            if e.auth:
                operation["security"] = [{"hostToken": []}]
            paths.setdefault(e.path, {})[e.method.lower()] = operation
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": self.version},
            "paths": paths,
            "components": {
                "schemas": components,
                "securitySchemes": {"hostToken": {"type": "http", "scheme": "bearer"}},
            },
        }
