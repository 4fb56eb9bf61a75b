"""Stand-in for Meta's Graph API: catalog ``items_batch`` (asynchronous, polled by handle), the
Order Management API (``commerce_orders``, ``acknowledge_order``) and order notifications
(contracts §1.3).

Access tokens are checked as the Graph API does (``access_token`` parameter or ``Authorization:
Bearer``; a wrong one is error 190). ``items_batch`` takes at most 5,000 requests and a catalog
gets ``calls_per_hour`` batch calls (100 by default, [M-bp]); every answer carries the
``X-Business-Use-Case-Usage`` header, and a call over budget is refused with a throttle error.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from standins.base import Conflict, ControlError, LeakyBucket, StandIn, order_id_of, positive_int
from standins.signing import meta_signature, same

MAX_BATCH_ITEMS = 5000
BATCH_CALLS_PER_HOUR = 100
INVALID_TOKEN = 190
BAD_PARAMETER = 100
CATALOG_THROTTLED = 80014  # the catalog business-use-case throttle; 4, 17, 32 and 613 are the others
USAGE_HEADER = "X-Business-Use-Case-Usage"
_VERSION = re.compile(r"v\d+\.\d+")
ORDER_STATES = ("FB_PROCESSING", "CREATED", "IN_PROGRESS", "COMPLETED", "CANCELLED")


@dataclass
class Batch:
    handle: str
    requests: list[dict[str, Any]]
    polls_left: int
    status: str = "in_progress"
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class MetaOrder:
    id: str
    state: str
    items: list[dict[str, Any]]
    created: float
    updated: float

    def as_json(self) -> dict[str, Any]:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(self.updated))
        return {
            "id": self.id,
            "order_status": {"state": self.state},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(self.created)),
            "last_updated": stamp,
            "channel": "facebook",
            "items": {"data": self.items},
        }


class MetaStandIn(StandIn):
    """One app (secret), one system-user token, one catalog and one commerce account (CMS)."""

    name = "meta"

    def __init__(
        self,
        *,
        access_token: str = "EAAstandin",
        app_secret: str = "meta_standin_secret",
        catalog_id: str = "880000000000001",
        cms_id: str = "990000000000001",
        page_id: str = "112233445566778",
        business_id: str = "770000000000001",
        calls_per_hour: int = BATCH_CALLS_PER_HOUR,
        batch_polls: int = 1,
    ) -> None:
        self.access_token = access_token
        self.catalog_id = catalog_id
        self.cms_id = cms_id
        self.page_id = page_id
        self.business_id = business_id
        self.batch_polls = batch_polls
        self.budget = LeakyBucket(calls_per_hour, calls_per_hour / 3600.0)
        self.items: dict[str, int] = {}
        self.groups: dict[str, str] = {}  # retailer_id -> item_group_id: the variants of one product
        self.batches: dict[str, Batch] = {}
        self.orders: dict[str, MetaOrder] = {}
        self.acknowledged: dict[str, str] = {}  # idempotency key -> order id
        self._order_ids = itertools.count(64_000_841_790_001)
        super().__init__()
        self.emitter.target.secret = app_secret

    def describe(self) -> dict[str, Any]:
        return {
            "platform": self.name,
            "access_token": self.access_token,
            "catalog_id": self.catalog_id,
            "cms_id": self.cms_id,
            "page_id": self.page_id,
            "calls_per_hour": self.budget.capacity,
        }

    def platform_routes(self) -> list[BaseRoute]:
        return [
            Route("/{version}/{node}/items_batch", self.items_batch, methods=["POST"]),
            Route("/{version}/{node}/check_batch_request_status", self.batch_status, methods=["GET"]),
            Route("/{version}/{node}/products", self.products, methods=["GET"]),
            Route("/{version}/{node}/commerce_orders", self.commerce_orders, methods=["GET"]),
            Route("/{version}/{node}/acknowledge_order", self.acknowledge, methods=["POST"]),
        ]

    def fault_response(self, status: int) -> Response:
        return _error(status, 2, "An unexpected error has occurred. Please retry your request later.", "OAuthException")

    # -- Graph API plumbing ----------------------------------------------------------------------

    async def _params(self, request: Request) -> dict[str, Any]:
        """Query, form or JSON body parameters, merged (the Graph API takes all three)."""
        params: dict[str, Any] = dict(request.query_params)
        raw = await request.body()
        kind = request.headers.get("content-type", "")
        if raw and kind.startswith("application/json"):
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            if isinstance(body, dict):
                params.update(body)
        elif raw:
            params.update(dict(parse_qsl(raw.decode("utf-8", "replace"))))
        return params

    def _refusal(self, request: Request, params: dict[str, Any]) -> Response | None:
        """The Graph API's answer to an unversioned path or a wrong token, or None."""
        if not _VERSION.fullmatch(request.path_params["version"]):
            return _error(400, BAD_PARAMETER, "Unknown path components: unsupported API version", "OAuthException")
        bearer = request.headers.get("authorization", "")
        token = bearer[7:] if bearer.lower().startswith("bearer ") else str(params.get("access_token", ""))
        if not same(token, self.access_token):
            return _error(400, INVALID_TOKEN, "Invalid OAuth access token - Cannot parse access token")
        return None

    def _usage(self) -> dict[str, str]:
        used = 100 * (1 - self.budget.available() / self.budget.capacity) if self.budget.capacity else 100
        regain = int(self.budget.seconds_until(1) / 60) + (1 if self.budget.available() < 1 else 0)
        entry = {
            "type": "catalog_management",
            "call_count": int(used),
            "total_cputime": int(used),
            "total_time": int(used),
            "estimated_time_to_regain_access": regain,
        }
        return {USAGE_HEADER: json.dumps({self.business_id: [entry]}, separators=(",", ":"))}

    # -- catalog ---------------------------------------------------------------------------------

    async def items_batch(self, request: Request) -> Response:
        params = await self._params(request)
        if refused := self._refusal(request, params):
            return refused
        if request.path_params["node"] != self.catalog_id:
            return _error(400, BAD_PARAMETER, "Unsupported post request: unknown catalog", "GraphMethodException")
        requests = params.get("requests")
        if isinstance(requests, str):
            try:
                requests = json.loads(requests)
            except ValueError:
                requests = None
        if params.get("item_type") != "PRODUCT_ITEM" or not isinstance(requests, list) or not requests:
            return _error(
                400, BAD_PARAMETER, "(#100) item_type=PRODUCT_ITEM and a non-empty requests list are required"
            )
        if len(requests) > MAX_BATCH_ITEMS:
            return _error(400, BAD_PARAMETER, f"(#100) requests must have at most {MAX_BATCH_ITEMS} items")
        if not self.budget.take(1):
            message = "(#80014) There have been too many calls for this catalog. Wait a bit and try again."
            return _error(400, CATALOG_THROTTLED, message, headers=self._usage())
        handle = uuid.uuid4().hex
        self.batches[handle] = Batch(handle, [r if isinstance(r, dict) else {} for r in requests], self.batch_polls)
        if self.batch_polls == 0:
            self._process(self.batches[handle])
        return JSONResponse({"handles": [handle]}, headers=self._usage())

    def _process(self, batch: Batch) -> None:
        """Apply a batch: each request on its own; a bad one is an error of the batch, not of the call."""
        for line, req in enumerate(batch.requests):
            raw = req.get("data")
            data: dict[str, Any] = raw if isinstance(raw, dict) else {}
            retailer_id = str(data.get("id", ""))
            quantity = data.get("quantity_to_sell_on_facebook")
            if req.get("method") != "UPDATE":
                batch.errors.append({"line": line, "id": retailer_id, "message": "only UPDATE is supported here"})
            elif retailer_id not in self.items:
                batch.errors.append({"line": line, "id": retailer_id, "message": "item not found in catalog"})
            elif quantity is not None and (not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0):
                message = "quantity_to_sell_on_facebook must be a non-negative integer"
                batch.errors.append({"line": line, "id": retailer_id, "message": message})
            elif quantity is not None:
                self.items[retailer_id] = quantity
        batch.status = "finished"

    async def batch_status(self, request: Request) -> Response:
        params = await self._params(request)
        if refused := self._refusal(request, params):
            return refused
        batch = self.batches.get(str(params.get("handle", "")))
        if batch is None:
            return _error(400, BAD_PARAMETER, "(#100) Invalid handle")
        if batch.status != "finished":
            if batch.polls_left <= 0:
                self._process(batch)
            batch.polls_left -= 1
        status = {
            "handle": batch.handle,
            "status": batch.status,
            "errors_total_count": len(batch.errors),
            "errors": batch.errors,
            "warnings": [],
            "ids_of_invalid_requests": [e["id"] for e in batch.errors],
        }
        return JSONResponse({"data": [status]}, headers=self._usage())

    async def products(self, request: Request) -> Response:
        params = await self._params(request)
        if refused := self._refusal(request, params):
            return refused
        data = [{"retailer_id": r, "quantity_to_sell_on_facebook": q} for r, q in self.items.items()]
        return JSONResponse({"data": data}, headers=self._usage())

    # -- orders ----------------------------------------------------------------------------------

    async def commerce_orders(self, request: Request) -> Response:
        """``state`` (comma-separated, default ``CREATED``) and ``updated_after`` (Unix seconds)."""
        params = await self._params(request)
        if refused := self._refusal(request, params):
            return refused
        if request.path_params["node"] != self.cms_id:
            return _error(
                400, BAD_PARAMETER, "Unsupported get request: unknown commerce account", "GraphMethodException"
            )
        states = set(str(params.get("state", "CREATED")).split(","))
        try:
            after = float(params.get("updated_after", 0))
        except ValueError:
            return _error(400, BAD_PARAMETER, "(#100) updated_after must be a Unix time")
        found = [
            o.as_json()
            for o in sorted(self.orders.values(), key=lambda o: o.updated)
            if o.state in states and o.updated > after
        ]
        return JSONResponse({"data": found, "paging": {"cursors": {"before": "", "after": ""}}})

    async def acknowledge(self, request: Request) -> Response:
        """``CREATED`` → ``IN_PROGRESS``; ``idempotency_key`` is required and a repeat is a no-op."""
        params = await self._params(request)
        if refused := self._refusal(request, params):
            return refused
        order = self.orders.get(request.path_params["node"])
        key = str(params.get("idempotency_key", ""))
        if order is None:
            return _error(400, BAD_PARAMETER, "(#100) Unknown order", "GraphMethodException")
        if not key:
            return _error(400, BAD_PARAMETER, "(#100) The parameter idempotency_key is required")
        if self.acknowledged.get(key) == order.id:
            return JSONResponse({"id": order.id, "state": order.state})
        if order.state != "CREATED":
            return _error(400, BAD_PARAMETER, f"(#100) Order is {order.state}, not CREATED")
        order.state, order.updated = "IN_PROGRESS", time.time()
        self.acknowledged[key] = order.id
        return JSONResponse({"id": order.id, "state": order.state})

    # -- control verbs ---------------------------------------------------------------------------

    def seed(self, body: Any) -> Any:
        """``{"items": [{"retailer_id", "quantity", "item_group_id"?}]}``: ``quantity_to_sell_on_facebook``
        per item. A catalog models a product's variants as items sharing an ``item_group_id``; each
        variant keeps its own ``retailer_id`` and quantity."""
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(
            isinstance(i, dict)
            and isinstance(i.get("retailer_id"), str)
            and isinstance(i.get("quantity"), int)
            and isinstance(i.get("item_group_id", ""), str)
            for i in items
        ):
            raise ControlError('expected {"items": [{"retailer_id": str, "quantity": int, "item_group_id"?: str}]}')
        for item in items:
            self.items[item["retailer_id"]] = item["quantity"]
            if item.get("item_group_id"):
                self.groups[item["retailer_id"]] = item["item_group_id"]
            else:
                self.groups.pop(item["retailer_id"], None)
        return self.stock()

    def stock(self) -> Any:
        return {
            "items": [
                {"retailer_id": r, "quantity": q} | ({"item_group_id": self.groups[r]} if r in self.groups else {})
                for r, q in self.items.items()
            ]
        }

    async def sell(self, body: Any) -> Any:
        """A buyer checks out on Facebook/Instagram: ``{"lines": [{"retailer_id", "quantity"}]}``.
        Meta decrements ``quantity_to_sell_on_facebook`` itself and never sells past 0 (409); the
        order waits in ``CREATED`` for ``acknowledge_order`` and a notification is sent."""
        lines = body.get("lines") if isinstance(body, dict) else None
        if not isinstance(lines, list) or not lines or not all(isinstance(x, dict) for x in lines):
            raise ControlError('expected {"lines": [{"retailer_id", "quantity"}]}')
        wanted: dict[str, int] = {}
        for line in lines:
            rid = line.get("retailer_id")
            if not isinstance(rid, str) or rid not in self.items:
                raise ControlError(f"no seeded item for line {line!r}")
            qty = positive_int(line.get("quantity"))
            wanted[rid] = wanted.get(rid, 0) + qty
        for rid, qty in wanted.items():
            if self.items[rid] < qty:
                raise Conflict(f"not enough quantity_to_sell_on_facebook for {rid}")
        for rid, qty in wanted.items():
            self.items[rid] -= qty
        now = time.time()
        order_id = str(next(self._order_ids))
        items = [
            {"id": f"{order_id}{n}", "retailer_id": line["retailer_id"], "quantity": line["quantity"]}
            for n, line in enumerate(lines)
        ]
        self.orders[order_id] = MetaOrder(order_id, "CREATED", items, now, now)
        delivery = await self._notify(order_id, "CREATED")
        return {"order_id": order_id, "delivery": delivery.as_json(), "stock": self.stock()["items"]}

    async def cancel(self, body: Any) -> Any:
        """A buyer's cancellation: Meta puts the units back on ``quantity_to_sell_on_facebook``."""
        order = self.orders.get(order_id_of(body))
        if order is None or order.state == "CANCELLED":
            raise ControlError("unknown or already cancelled order_id")
        for item in order.items:
            self.items[item["retailer_id"]] += item["quantity"]
        order.state, order.updated = "CANCELLED", time.time()
        delivery = await self._notify(order.id, "CANCELLED")
        return {"order_id": order.id, "delivery": delivery.as_json(), "stock": self.stock()["items"]}

    def reset_state(self) -> None:
        self.items.clear()
        self.groups.clear()
        self.batches.clear()
        self.orders.clear()
        self.acknowledged.clear()
        self.budget.reset()

    async def _notify(self, order_id: str, event: str) -> Any:
        """A Graph webhook envelope, ASCII-escaped as Meta sends (and signs) it. The field and value
        keys of a commerce-order change are not documented in the sources (contracts §1.3 [U]);
        they match what LiveDrop's receiver reads today, and the order itself must be pulled."""
        payload = {
            "object": "page",
            "entry": [
                {
                    "id": self.page_id,
                    "time": int(time.time()),
                    "changes": [{"field": "commerce_orders", "value": {"order_id": order_id, "event": event}}],
                }
            ],
        }
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": meta_signature(body, self.emitter.target.secret),
        }
        return await self.emitter.send("commerce_orders", body, headers)


def _error(
    status: int, code: int, message: str, kind: str = "OAuthException", headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "code": code, "fbtrace_id": uuid.uuid4().hex[:11]}}
    return JSONResponse(body, status, headers=headers)
