"""The hosts' pages: ``/panel`` and ``/demo/shows/{show_id}``, plain HTML + ES modules shipped as
package data under ``server/static`` (no build step), sent with a strict Content-Security-Policy
(scripts from this origin only) since the panel keeps a host token in ``sessionStorage``; plus the
route of the host channel."""

from __future__ import annotations

from importlib import resources
from typing import Final

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from server.host.channel import host_endpoint
from server.settings import Settings

# -- pages -----------------------------------------------------------------------------------------
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https: http:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def static_text(*path: str) -> str:
    return resources.files("server").joinpath("static", *path).read_text(encoding="utf-8")


def page(html: str) -> Response:
    return HTMLResponse(html, headers=PAGE_HEADERS)


def panel_routes(settings: Settings) -> list[BaseRoute]:
    """``/panel``, ``/demo/shows/{show_id}``, ``/static/…`` and the host channel. The demo
    viewer page is served in every mode: it speaks only the public viewer protocol, and buys
    only with a viewer token an integrator (or the panel, or ``livedrop demo``) gave it. Its
    "pay" button needs the demo's checkout, which exists only in demo mode (``server.demo.command``)."""
    panel_html = static_text("panel", "index.html")
    demo_html = static_text("demo", "index.html").replace(
        'data-checkout="off"', f'data-checkout="{"on" if settings.demo else "off"}"'
    )

    async def panel_page(request: Request) -> Response:
        return page(panel_html)

    async def demo_page(request: Request) -> Response:
        return page(demo_html)

    return [
        Route("/panel", panel_page),
        Route("/demo/shows/{show_id}", demo_page),
        Mount("/static", StaticFiles(packages=[("server", "static")]), name="static"),
        WebSocketRoute("/ws/host/shows/{show_id}", host_endpoint),
    ]
