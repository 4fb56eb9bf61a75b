"""A small blocking client of the host HTTP API (``/api/...``), on the standard library only.

It is used both by the runner before Locust starts (an ordinary process) and by the shape on
the Locust master, where gevent has patched the socket module so the same calls yield to other
greenlets instead of blocking them.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from loadtest.plan import DropSpec, Plan


class HostApiError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:300]}")
        self.status = status


class HostApi:
    def __init__(self, base_url: str, token: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One request; the decoded JSON answer. Raises ``HostApiError`` on any non-2xx."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise HostApiError(method, path, exc.code, exc.read().decode("utf-8", "replace")) from None
        return json.loads(raw) if raw else None

    def ensure_show(self, plan: Plan, title: str = "Load test flash sale") -> None:
        """Create the show and its drops (idempotent: the API returns what exists) and start it."""
        self.call("POST", "/api/shows", {"show_id": plan.show_id, "title": title})
        for spec in plan.drops:
            self.add_drop(plan.show_id, spec)
        self.call("POST", f"/api/shows/{plan.show_id}/start")

    def add_drop(self, show_id: str, spec: DropSpec) -> Any:
        return self.call(
            "POST",
            f"/api/shows/{show_id}/drops",
            {
                "drop_id": spec.drop_id,
                "sku": spec.sku,
                "title": spec.title,
                "total": spec.total,
                "prices": {"EUR": 1900},
                "per_customer_limit": spec.per_customer_limit,
                "hold_seconds": spec.hold_seconds,
                "duration_seconds": spec.duration_seconds,
            },
        )

    def launch(self, drop_id: str) -> Any:
        return self.call("POST", f"/api/drops/{drop_id}/launch", {})

    def restock(self, drop_id: str, delta: int, request_id: str) -> Any:
        return self.call("POST", f"/api/drops/{drop_id}/restock", {"delta": delta, "request_id": request_id})

    def end_show(self, show_id: str) -> Any:
        return self.call("POST", f"/api/shows/{show_id}/end")

    def show(self, show_id: str) -> Any:
        return self.call("GET", f"/api/shows/{show_id}")

    def viewer_token(self, show_id: str, viewer_id: str, ttl_seconds: float = 3600.0) -> str:
        """A viewer token minted by the server (``POST /api/shows/{show}/tokens``), as an
        integrator's backend gets one, so no client needs the deployment's viewer secret."""
        body = {"viewer_id": viewer_id, "ttl_seconds": ttl_seconds}
        token: str = self.call("POST", f"/api/shows/{show_id}/tokens", body)["token"]
        return token
