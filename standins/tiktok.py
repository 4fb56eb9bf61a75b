"""Stand-in for the TikTok Shop Partner API (inventory, orders) and its order webhooks (contracts §1.2).

Every call must carry ``app_key``, a 10-digit ``timestamp`` within 5 minutes of the stand-in's
clock and a ``sign`` computed exactly as "Sign your API request" says (``signing.tiktok_request_sign``,
pinned by the official vectors), the ``x-tts-access-token`` header, and for shop calls the
``shop_cipher``. Answers use TikTok's envelope ``{code, message, request_id, data}``.

The numeric error codes below are the stand-in's own (TikTok's table was not in the sources,
contracts §1.2 [U]); a client must branch on ``code != 0`` and on the HTTP status, never on a
specific number.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from standins.base import Conflict, ControlError, LeakyBucket, StandIn, compact, order_id_of, positive_int
from standins.signing import same, tiktok_request_sign, tiktok_webhook_signature

TIMESTAMP_TOLERANCE = 300
MAX_QUANTITY = 99999  # exclusive: 0 <= quantity < 99999
MAX_ORDER_IDS = 50
MAX_PAGE_SIZE = 100

OK = 0
BAD_PARAMS = 40006
BAD_APP_KEY = 106001
STALE_TIMESTAMP = 106002
BAD_SIGN = 106003
BAD_TOKEN = 105002
BAD_SHOP_CIPHER = 106004
NOT_FOUND = 12052001
SKU_NOT_LIVE = 12052002
BAD_WAREHOUSE = 12052003
TOO_MANY = 36009003
INJECTED = 36009999

ORDER_STATUSES = frozenset(
    {
        "UNPAID",
        "ON_HOLD",
        "PARTIALLY_SHIPPING",
        "AWAITING_SHIPMENT",
        "AWAITING_COLLECTION",
        "IN_TRANSIT",
        "DELIVERED",
        "COMPLETED",
        "CANCELLED",
    }
)


@dataclass
class Sku:
    product_id: str
    seller_sku: str
    stock: dict[str, int]  # warehouse id -> quantity
    status: str = "LIVE"
    price: str = "10.00"


@dataclass
class TikTokOrder:
    id: str
    status: str
    line_items: list[dict[str, Any]]
    create_time: int
    update_time: int
    paid_time: int | None = None
    cancel_time: int | None = None
    taken: list[tuple[str, str, int]] = field(default_factory=list)  # (sku, warehouse, qty) to give back

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "create_time": self.create_time,
            "update_time": self.update_time,
            "paid_time": self.paid_time,
            "cancel_time": self.cancel_time,
            "is_on_hold_order": self.status == "ON_HOLD",
            "payment": {"currency": "USD", "total_amount": f"{10 * len(self.line_items):.2f}"},
            "line_items": self.line_items,
        }


class Refusal(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class TikTokStandIn(StandIn):
    """One app (key + secret) authorised on one shop (access token, shop cipher, shop id)."""

    name = "tiktok"

    def __init__(
        self,
        *,
        app_key: str = "standin_app_key",
        app_secret: str = "standin_app_secret",
        access_token: str = "TTP_standin_token",
        shop_cipher: str = "ROW_standin",
        shop_id: str = "7494049642642441621",
        clock: Callable[[], float] = time.time,
        requests_per_second: float | None = None,
    ) -> None:
        self.app_key = app_key
        # TikTok does not publish its limits (contracts §1.2 [U]): off unless a test asks for one.
        self.bucket = None if requests_per_second is None else LeakyBucket(requests_per_second, requests_per_second)
        self.app_secret = app_secret
        self.access_token = access_token
        self.shop_cipher = shop_cipher
        self.shop_id = shop_id
        self.clock = clock
        self.skus: dict[str, Sku] = {}
        self.orders: dict[str, TikTokOrder] = {}
        self._order_ids = itertools.count(576_486_316_948_490_001)
        self._line_ids = itertools.count(577_000_000_000_000_001)
        super().__init__()
        self.emitter.target.secret = app_secret

    def describe(self) -> dict[str, Any]:
        return {
            "platform": self.name,
            "app_key": self.app_key,
            "app_secret": self.app_secret,
            "access_token": self.access_token,
            "shop_cipher": self.shop_cipher,
            "shop_id": self.shop_id,
        }

    def platform_routes(self) -> list[BaseRoute]:
        return [
            Route("/product/202309/products/{product_id}/inventory/update", self.update_inventory, methods=["POST"]),
            Route("/product/202309/products/{product_id}", self.get_product, methods=["GET"]),
            Route("/order/202309/orders", self.get_orders, methods=["GET"]),
            Route("/order/202309/orders/search", self.search_orders, methods=["POST"]),
        ]

    def fault_response(self, status: int) -> Response:
        return _envelope(INJECTED, "injected fault", None, status)

    # -- checks shared by every call -------------------------------------------------------------

    async def _check(self, request: Request, *, shop: bool = True) -> bytes:
        """The raw body once the request is authenticated; raises ``Refusal`` otherwise."""
        params = dict(request.query_params)
        body = await request.body()
        if not same(params.get("app_key", ""), self.app_key):
            raise Refusal(401, BAD_APP_KEY, "Invalid app_key")
        stamp = params.get("timestamp", "")
        if not (stamp.isdigit() and len(stamp) == 10):
            raise Refusal(400, STALE_TIMESTAMP, "timestamp must be a 10-digit Unix time in seconds")
        if abs(int(stamp) - self.clock()) > TIMESTAMP_TOLERANCE:
            raise Refusal(401, STALE_TIMESTAMP, "timestamp is more than 5 minutes away from server time")
        expected = tiktok_request_sign(
            secret=self.app_secret,
            path=request.url.path,
            params=params,
            body=body,
            content_type=request.headers.get("content-type", ""),
        )
        if not same(params.get("sign", ""), expected):
            raise Refusal(401, BAD_SIGN, "Invalid sign")
        if not same(request.headers.get("x-tts-access-token", ""), self.access_token):
            raise Refusal(401, BAD_TOKEN, "Invalid access token")
        if shop and not same(params.get("shop_cipher", ""), self.shop_cipher):
            raise Refusal(400, BAD_SHOP_CIPHER, "Invalid shop_cipher")
        if self.bucket is not None and not self.bucket.take(1):
            raise Refusal(429, TOO_MANY, "Too many requests")
        return body

    async def _answer(self, request: Request, handler: Callable[[bytes], Any]) -> Response:
        request_id = uuid.uuid4().hex
        try:
            body = await self._check(request)
            data = handler(body)
        except Refusal as refusal:
            return _envelope(refusal.code, refusal.message, None, refusal.status, request_id)
        return _envelope(OK, "Success", data, 200, request_id)

    # -- Partner API routes ------------------------------------------------------------------------

    async def update_inventory(self, request: Request) -> Response:
        product_id = request.path_params["product_id"]
        return await self._answer(request, lambda body: self._update(product_id, body))

    def _update(self, product_id: str, raw: bytes) -> dict[str, Any]:
        """Absolute quantities per SKU and warehouse. A malformed request changes nothing; a SKU
        that cannot be updated (not live, unknown warehouse) is reported in ``data.errors`` and the
        others are applied, as the documented partial-failure shape implies."""
        if not any(s.product_id == product_id for s in self.skus.values()):
            raise Refusal(404, NOT_FOUND, f"product {product_id} not found")
        try:
            body = json.loads(raw)
            skus = body["skus"]
            if not isinstance(skus, list) or not skus:
                raise TypeError
            updates = [(str(s["id"]), [(w.get("warehouse_id"), w["quantity"]) for w in s["inventory"]]) for s in skus]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise Refusal(
                400, BAD_PARAMS, "body must be {skus: [{id, inventory: [{warehouse_id?, quantity}]}]}"
            ) from None
        for _, inventory in updates:
            for _, quantity in inventory:
                if not isinstance(quantity, int) or isinstance(quantity, bool) or not 0 <= quantity < MAX_QUANTITY:
                    raise Refusal(400, BAD_PARAMS, f"quantity must be an integer with 0 <= quantity < {MAX_QUANTITY}")
        errors: list[dict[str, Any]] = []
        for sku_id, inventory in updates:
            sku = self.skus.get(sku_id)
            if sku is None or sku.product_id != product_id:
                errors.append(_sku_error(NOT_FOUND, "SKU not found in this product", sku_id, []))
                continue
            if sku.status != "LIVE":
                errors.append(_sku_error(SKU_NOT_LIVE, "only SKUs in live status can be updated", sku_id, []))
                continue
            bad = []
            resolved: list[tuple[str, int]] = []
            for warehouse, quantity in inventory:
                if warehouse is None:
                    if len(sku.stock) != 1:
                        bad.append({"warehouse_id": "", "code": BAD_WAREHOUSE, "message": "warehouse_id is required"})
                        continue
                    warehouse = next(iter(sku.stock))
                if str(warehouse) not in sku.stock:
                    bad.append({"warehouse_id": str(warehouse), "code": BAD_WAREHOUSE, "message": "unknown warehouse"})
                    continue
                resolved.append((str(warehouse), quantity))
            if bad:
                errors.append(_sku_error(BAD_WAREHOUSE, "inventory update failed", sku_id, bad))
                continue
            for warehouse, quantity in resolved:
                sku.stock[warehouse] = quantity
        return {"errors": errors} if errors else {}

    async def get_product(self, request: Request) -> Response:
        product_id = request.path_params["product_id"]

        def read(_: bytes) -> dict[str, Any]:
            skus = [(sku_id, s) for sku_id, s in self.skus.items() if s.product_id == product_id]
            if not skus:
                raise Refusal(404, NOT_FOUND, f"product {product_id} not found")
            return {
                "id": product_id,
                "skus": [
                    {
                        "id": sku_id,
                        "seller_sku": s.seller_sku,
                        "status_info": {"status": s.status},
                        "inventory": [{"warehouse_id": w, "quantity": q} for w, q in s.stock.items()],
                    }
                    for sku_id, s in skus
                ],
            }

        return await self._answer(request, read)

    async def get_orders(self, request: Request) -> Response:
        """Get Order Detail: ``ids`` is a comma-separated list of at most 50 order ids."""
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]

        def read(_: bytes) -> dict[str, Any]:
            if not ids:
                raise Refusal(400, BAD_PARAMS, "ids is required")
            if len(ids) > MAX_ORDER_IDS:
                raise Refusal(400, BAD_PARAMS, f"at most {MAX_ORDER_IDS} ids per call")
            return {"orders": [self.orders[i].as_json() for i in ids if i in self.orders]}

        return await self._answer(request, read)

    async def search_orders(self, request: Request) -> Response:
        """Search Orders over a ``create_time``/``update_time`` window, oldest update first,
        paged by ``page_size`` (1..100) and an opaque ``page_token``."""
        size, token = request.query_params.get("page_size", ""), request.query_params.get("page_token", "")

        def read(raw: bytes) -> dict[str, Any]:
            if not size.isdigit() or not 1 <= int(size) <= MAX_PAGE_SIZE:
                raise Refusal(400, BAD_PARAMS, f"page_size must be 1..{MAX_PAGE_SIZE}")
            try:
                offset = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
                body = json.loads(raw) if raw else {}
                if not isinstance(body, dict):
                    raise TypeError
                window = {
                    k: body[k]
                    for k in ("create_time_ge", "create_time_lt", "update_time_ge", "update_time_lt")
                    if k in body
                }
                if not all(isinstance(v, int) for v in window.values()):
                    raise TypeError
            except (ValueError, TypeError):
                raise Refusal(400, BAD_PARAMS, "bad page_token or body") from None
            status = body.get("order_status")
            found = sorted(
                (
                    o
                    for o in self.orders.values()
                    if (status is None or o.status == status)
                    and o.create_time >= window.get("create_time_ge", 0)
                    and o.create_time < window.get("create_time_lt", 2**62)
                    and o.update_time >= window.get("update_time_ge", 0)
                    and o.update_time < window.get("update_time_lt", 2**62)
                ),
                key=lambda o: (o.update_time, o.id),
            )
            page = found[offset : offset + int(size)]
            more = offset + int(size) < len(found)
            next_token = base64.urlsafe_b64encode(str(offset + int(size)).encode()).decode() if more else ""
            return {"orders": [o.as_json() for o in page], "next_page_token": next_token, "total_count": len(found)}

        return await self._answer(request, read)

    # -- control verbs -----------------------------------------------------------------------------

    def seed(self, body: Any) -> Any:
        """``{"skus": [{"product_id", "sku_id", "seller_sku", "stock": {"<warehouse>": n}, "status"?}]}``."""
        entries = body.get("skus") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise ControlError('expected {"skus": [...]}')
        parsed = {}
        for entry in entries:
            try:
                stock = {str(w): int(q) for w, q in entry["stock"].items()}
                sku = Sku(
                    str(entry["product_id"]), str(entry.get("seller_sku", "")), stock, str(entry.get("status", "LIVE"))
                )
                parsed[str(entry["sku_id"])] = sku
            except (KeyError, TypeError, ValueError, AttributeError):
                raise ControlError("each SKU needs product_id, sku_id and stock {warehouse: quantity}") from None
        self.skus.update(parsed)
        return self.stock()

    def stock(self) -> Any:
        return {
            "skus": [
                {
                    "sku_id": i,
                    "product_id": s.product_id,
                    "seller_sku": s.seller_sku,
                    "status": s.status,
                    "stock": s.stock,
                }
                for i, s in self.skus.items()
            ]
        }

    async def sell(self, body: Any) -> Any:
        """A buyer orders: ``{"lines": [{"sku_id"|"seller_sku", "quantity", "warehouse_id"?,
        "combined"?: [{"sku_id", "sku_count"}]}], "status"?: "AWAITING_SHIPMENT"}``.

        TikTok does not sell what it does not have: a line beyond stock is refused (409), and
        nothing is taken. Each unit is one ``line_items`` row (the API has no quantity field); a
        combined listing row takes ``sku_count`` units of each component SKU.
        """
        lines = body.get("lines") if isinstance(body, dict) else None
        status = body.get("status", "AWAITING_SHIPMENT") if isinstance(body, dict) else None
        if (
            not isinstance(lines, list)
            or not lines
            or not isinstance(status, str)
            or status not in ORDER_STATUSES - {"CANCELLED"}
        ):
            raise ControlError('expected {"lines": [...], "status"?: an open order status}')
        takes: list[tuple[str, str, int]] = []
        rows: list[dict[str, Any]] = []
        for line in lines:
            listing = self._find(line)
            qty = positive_int(line.get("quantity"))
            components = line.get("combined") or []
            if not isinstance(components, list):
                raise ControlError("combined must be a list of {sku_id, sku_count}")
            parts = [(self._find(c), positive_int(c.get("sku_count", 1), "sku_count")) for c in components] or [
                (listing, 1)
            ]
            for sku_id, count in parts:
                takes.append((sku_id, str(line.get("warehouse_id") or ""), count * qty))
            for _ in range(qty):
                rows.append(self._row(listing, [(sku_id, count) for sku_id, count in parts] if components else []))
        needed: dict[tuple[str, str], int] = {}
        resolved: list[tuple[str, str, int]] = []
        for sku_id, warehouse, qty in takes:
            sku = self.skus[sku_id]
            warehouse = warehouse or max(sku.stock, key=lambda w: sku.stock[w])
            if warehouse not in sku.stock:
                raise ControlError(f"SKU {sku_id} has no warehouse {warehouse}")
            needed[(sku_id, warehouse)] = needed.get((sku_id, warehouse), 0) + qty
            resolved.append((sku_id, warehouse, qty))
        for (sku_id, warehouse), qty in needed.items():
            if self.skus[sku_id].stock[warehouse] < qty:
                raise Conflict(f"not enough stock of {sku_id} in warehouse {warehouse}")
        for sku_id, warehouse, qty in resolved:
            self.skus[sku_id].stock[warehouse] -= qty
        now = int(self.clock())
        order = TikTokOrder(str(next(self._order_ids)), status, rows, now, now, None if status == "UNPAID" else now)
        order.taken = resolved
        self.orders[order.id] = order
        delivery = await self._notify(order, status)
        return {"order_id": order.id, "delivery": delivery.as_json(), "stock": self.stock()["skus"]}

    async def cancel(self, body: Any) -> Any:
        """Cancel an order (``{"order_id"}``): its units go back to stock and a ``CANCEL`` status
        notification is sent (the webhook page's name; the order API says ``CANCELLED``)."""
        order = self.orders.get(order_id_of(body))
        if order is None or order.status == "CANCELLED":
            raise ControlError("unknown or already cancelled order_id")
        for sku_id, warehouse, qty in order.taken:
            self.skus[sku_id].stock[warehouse] += qty
        now = int(self.clock())
        order.status, order.update_time, order.cancel_time = "CANCELLED", now, now
        delivery = await self._notify(order, "CANCEL")
        return {"order_id": order.id, "delivery": delivery.as_json(), "stock": self.stock()["skus"]}

    def reset_state(self) -> None:
        self.skus.clear()
        self.orders.clear()
        if self.bucket is not None:
            self.bucket.reset()

    def _find(self, line: Any) -> str:
        if not isinstance(line, dict):
            raise ControlError("a line is an object")
        if isinstance(line.get("sku_id"), int | str) and str(line["sku_id"]) in self.skus:
            return str(line["sku_id"])
        for sku_id, sku in self.skus.items():
            if "seller_sku" in line and sku.seller_sku == line["seller_sku"]:
                return sku_id
        raise ControlError(f"no seeded SKU for {line!r}")

    def _row(self, sku_id: str, combined: list[tuple[str, int]]) -> dict[str, Any]:
        sku = self.skus[sku_id]
        row: dict[str, Any] = {
            "id": str(next(self._line_ids)),
            "sku_id": sku_id,
            "seller_sku": sku.seller_sku,
            "product_id": sku.product_id,
            "sale_price": sku.price,
            "display_status": "AWAITING_SHIPMENT",
            "sku_type": "NORMAL",
        }
        if combined:
            row["combined_listing_skus"] = [
                {
                    "sku_id": c,
                    "sku_count": n,
                    "product_id": self.skus[c].product_id,
                    "seller_sku": self.skus[c].seller_sku,
                }
                for c, n in combined
            ]
        return row

    async def _notify(self, order: TikTokOrder, status: str) -> Any:
        now = int(self.clock())
        payload = {
            "type": 1,
            "tts_notification_id": str(uuid.uuid4().int % 10**19),
            "shop_id": self.shop_id,
            "timestamp": now,
            "data": {
                "order_id": order.id,
                "order_status": status,
                "is_on_hold_order": status == "ON_HOLD",
                "update_time": now,
            },
        }
        body = compact(payload)
        signature = tiktok_webhook_signature(body, app_key=self.app_key, secret=self.emitter.target.secret)
        return await self.emitter.send(
            "order_status_change", body, {"Content-Type": "application/json", "Authorization": signature}
        )


def _envelope(code: int, message: str, data: Any, status: int, request_id: str | None = None) -> JSONResponse:
    body = {
        "code": code,
        "message": message,
        "request_id": request_id or uuid.uuid4().hex,
        "data": data if data is not None else {},
    }
    return JSONResponse(body, status)


def _sku_error(code: int, message: str, sku_id: str, extra: list[dict[str, Any]]) -> dict[str, Any]:
    return {"code": code, "message": message, "detail": {"sku_id": sku_id, "extra_errors": extra}}
