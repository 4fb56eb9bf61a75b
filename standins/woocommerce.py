"""Stand-in for the WooCommerce REST API v3 (products, variations, batches) and its order webhooks
(contracts §1.4).

Authentication is HTTP Basic with the consumer key and secret (or the ``consumer_key`` /
``consumer_secret`` query parameters, for servers that strip ``Authorization``), answered with
WordPress' error shape ``{code, message, data: {status}}``. A batch of more than 100 create +
update + delete items is refused with 413 ``woocommerce_rest_request_entity_too_large``, as
``check_batch_limit`` does. Stock is only ever set absolutely (``stock_quantity``): WooCommerce
has no delta API, and its own sales decrement stock underneath any client's push.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from standins.base import Conflict, ControlError, StandIn, order_id_of, positive_int
from standins.signing import same, woocommerce_signature
from standins.woocommerce_store import Sessions, storefront_routes

BATCH_LIMIT = 100
API = "/wp-json/wc/v3"


@dataclass
class Product:
    """A simple product or a variation (``parent`` is the variable product's id)."""

    id: int
    sku: str
    stock_quantity: int | None
    parent: int | None = None
    manage_stock: bool = True
    backorders: str = "no"

    def as_json(self) -> dict[str, Any]:
        in_stock = not self.manage_stock or (self.stock_quantity or 0) > 0 or self.backorders != "no"
        return {
            "id": self.id,
            "sku": self.sku,
            "type": "variation" if self.parent else "simple",
            "parent_id": self.parent or 0,
            "manage_stock": self.manage_stock,
            "stock_quantity": self.stock_quantity,
            "stock_status": "instock" if in_stock else "outofstock",
            "backorders": self.backorders,
        }


@dataclass
class WooOrder:
    id: int
    status: str
    lines: list[dict[str, Any]]
    meta_data: list[dict[str, Any]]


class WooCommerceStandIn(StandIn):
    """One site, one REST key pair, one webhook secret."""

    name = "woocommerce"

    def __init__(
        self,
        *,
        site: str = "https://standin-shop.example.com",
        consumer_key: str = "ck_standin",
        consumer_secret: str = "cs_standin",
        webhook_secret: str = "woo standin secret",
        webhook_id: int = 12,
    ) -> None:
        self.site = site
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.webhook_id = webhook_id
        self.products: dict[int, Product] = {}
        self.orders: dict[int, WooOrder] = {}
        self._order_ids = itertools.count(727)
        self._line_ids = itertools.count(315)
        self.sessions = Sessions()
        super().__init__()
        self.emitter.target.secret = webhook_secret

    def describe(self) -> dict[str, Any]:
        return {
            "platform": self.name,
            "site": self.site,
            "consumer_key": self.consumer_key,
            "consumer_secret": self.consumer_secret,
            "api": API,
        }

    def platform_routes(self) -> list[BaseRoute]:
        return [
            Route(f"{API}/products/batch", self.batch, methods=["POST"]),
            Route(f"{API}/products/{{pid:int}}/variations/batch", self.batch, methods=["POST"]),
            Route(f"{API}/products/{{pid:int}}/variations/{{id:int}}", self.one, methods=["GET", "PUT", "PATCH"]),
            Route(f"{API}/products/{{id:int}}", self.one, methods=["GET", "PUT", "PATCH"]),
            *storefront_routes(self, self.sessions),  # standins/woocommerce_store.py: add-to-cart and checkout
        ]

    def fault_response(self, status: int) -> Response:
        return _error("internal_server_error", "There has been a critical error on this website.", status)

    # -- REST routes -----------------------------------------------------------------------------

    def _refusal(self, request: Request) -> Response | None:
        """WooCommerce's answer to a request it does not authenticate, or None."""
        key, secret = request.query_params.get("consumer_key"), request.query_params.get("consumer_secret")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                key, _, secret = base64.b64decode(auth[6:], validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                key = secret = None
        if not key:
            return _error("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.", 401)
        if not same(key, self.consumer_key):
            return _error("woocommerce_rest_authentication_error", "Consumer key is invalid.", 401)
        if not same(secret or "", self.consumer_secret):
            return _error("woocommerce_rest_authentication_error", "Consumer secret is invalid.", 401)
        return None

    async def one(self, request: Request) -> Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        product = self.products.get(request.path_params["id"])
        pid = request.path_params.get("pid")
        if product is None or (pid is not None and product.parent != pid) or (pid is None and product.parent):
            code = (
                "woocommerce_rest_product_variation_invalid_id"
                if pid is not None
                else "woocommerce_rest_product_invalid_id"
            )
            return _error(code, "Invalid ID.", 404)
        if request.method == "GET":
            return JSONResponse(product.as_json())
        try:
            changes = json.loads(await request.body())
            if not isinstance(changes, dict):
                raise ValueError
        except ValueError:
            return _error("rest_invalid_json", "Invalid JSON body passed.", 400)
        problem = _invalid(changes)
        if problem:
            return _error("rest_invalid_param", f"Invalid parameter(s): {problem}", 400)
        _apply(product, changes)
        return JSONResponse(product.as_json())

    async def batch(self, request: Request) -> Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        try:
            body = json.loads(await request.body())
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            return _error("rest_invalid_json", "Invalid JSON body passed.", 400)
        groups = {k: body.get(k) or [] for k in ("create", "update", "delete")}
        if not all(isinstance(g, list) for g in groups.values()):
            return _error("rest_invalid_param", "create, update and delete must be arrays", 400)
        if sum(len(g) for g in groups.values()) > BATCH_LIMIT:
            message = f"Unable to accept more than {BATCH_LIMIT} items for this request."
            return _error("woocommerce_rest_request_entity_too_large", message, 413)
        pid = request.path_params.get("pid")
        answer: dict[str, list[Any]] = {"create": [], "update": [], "delete": []}
        for _ in groups["create"]:
            answer["create"].append(
                _item_error(0, "woocommerce_rest_cannot_create", "The stand-in does not create products.", 400)
            )
        for raw_id in groups["delete"]:
            answer["delete"].append(
                _item_error(raw_id, "woocommerce_rest_cannot_delete", "The stand-in does not delete products.", 400)
            )
        for item in groups["update"]:
            item_id = item.get("id") if isinstance(item, dict) else None
            product = self.products.get(item_id) if isinstance(item_id, int) else None
            if product is None or product.parent != pid:
                answer["update"].append(_item_error(item_id, "woocommerce_rest_product_invalid_id", "Invalid ID.", 400))
                continue
            problem = _invalid(item)
            if problem:
                answer["update"].append(
                    _item_error(item_id, "rest_invalid_param", f"Invalid parameter(s): {problem}", 400)
                )
                continue
            _apply(product, item)
            answer["update"].append(product.as_json())
        return JSONResponse({k: v for k, v in answer.items() if groups[k]})

    # -- control verbs ---------------------------------------------------------------------------

    def seed(self, body: Any) -> Any:
        """``{"products": [{"id", "sku", "stock_quantity", "parent_id"?, "backorders"?}]}``
        (a ``parent_id`` makes it a variation of that product)."""
        entries = body.get("products") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise ControlError('expected {"products": [...]}')
        parsed = []
        for e in entries:
            if not (isinstance(e, dict) and isinstance(e.get("id"), int) and isinstance(e.get("stock_quantity"), int)):
                raise ControlError("each product needs an integer id and stock_quantity")
            parent = e.get("parent_id") or None
            if parent is not None and (not isinstance(parent, int) or isinstance(parent, bool)):
                raise ControlError("parent_id must be the integer id of the variable product")
            parsed.append(
                Product(
                    e["id"], str(e.get("sku", "")), e["stock_quantity"], parent, True, str(e.get("backorders", "no"))
                )
            )
        for product in parsed:
            self.products[product.id] = product
        return self.stock()

    def stock(self) -> Any:
        return {"products": [p.as_json() for p in self.products.values()]}

    async def sell(self, body: Any) -> Any:
        """A checkout: ``{"lines": [{"product_id"|"sku", "quantity", "hold"?}], "status"?: "processing"}``.
        WooCommerce refuses to sell beyond stock unless the product allows backorders, when stock
        goes negative (409 otherwise, nothing taken). An ``order.created`` webhook is sent."""
        lines = body.get("lines") if isinstance(body, dict) else None
        status = str(body.get("status", "processing")) if isinstance(body, dict) else ""
        if not isinstance(lines, list) or not lines or not all(isinstance(x, dict) for x in lines):
            raise ControlError('expected {"lines": [{"product_id"|"sku", "quantity"}]}')
        picked: list[tuple[Product, int]] = []
        holds: list[str | None] = []
        for line in lines:
            product = self._find(line)
            picked.append((product, positive_int(line.get("quantity"))))
            hold = line.get("hold")
            holds.append(None if hold is None else str(hold))
        return await self.place(picked, [], status=status, holds=holds)

    async def place(
        self,
        picked: list[tuple[Product, int]],
        meta_data: list[dict[str, Any]],
        *,
        status: str = "processing",
        holds: Sequence[str | None] = (),
    ) -> dict[str, Any]:
        """An order of ``picked`` (product, quantity) with order ``meta_data`` (``{key, value}``) and
        optional line ``holds`` (line meta ``livedrop_hold``), and its ``order.created`` webhook:
        what the control API's ``sell`` and the storefront's "Place order" do. Nothing is taken when
        a line is short of stock (409)."""
        for product, qty in picked:
            if product.manage_stock and product.backorders == "no" and (product.stock_quantity or 0) < qty:
                raise Conflict(f"not enough stock of product {product.id}")
        meta = [{"id": next(self._line_ids), "key": str(m["key"]), "value": m["value"]} for m in meta_data]
        order = WooOrder(next(self._order_ids), status, [], meta)
        for i, (product, qty) in enumerate(picked):
            hold = holds[i] if i < len(holds) else None
            if product.manage_stock:
                product.stock_quantity = (product.stock_quantity or 0) - qty
            order.lines.append(
                {
                    "id": next(self._line_ids),
                    "product_id": product.parent or product.id,
                    "variation_id": product.id if product.parent else 0,
                    "sku": product.sku,
                    "quantity": qty,
                    "meta_data": [{"id": next(self._line_ids), "key": "livedrop_hold", "value": hold}] if hold else [],
                }
            )
        self.orders[order.id] = order
        delivery = await self._emit("order.created", order)
        return {"order_id": order.id, "delivery": delivery.as_json(), "stock": self.stock()["products"]}

    async def cancel(self, body: Any) -> Any:
        """Set an order ``cancelled``: WooCommerce restocks its lines; ``order.updated`` is sent."""
        wanted = order_id_of(body)
        order = next((o for o in self.orders.values() if str(o.id) == wanted), None)
        if order is None or order.status == "cancelled":
            raise ControlError("unknown or already cancelled order_id")
        order.status = "cancelled"
        for line in order.lines:
            product = self.products[line["variation_id"] or line["product_id"]]
            if product.manage_stock:
                product.stock_quantity = (product.stock_quantity or 0) + line["quantity"]
        delivery = await self._emit("order.updated", order)
        return {"order_id": order.id, "delivery": delivery.as_json(), "stock": self.stock()["products"]}

    def reset_state(self) -> None:
        self.products.clear()
        self.orders.clear()
        self.sessions.clear()

    def _find(self, line: dict[str, Any]) -> Product:
        if isinstance(line.get("product_id"), int) and line["product_id"] in self.products:
            return self.products[line["product_id"]]
        for product in self.products.values():
            if "sku" in line and product.sku == line["sku"]:
                return product
        raise ControlError(f"no seeded product for {line!r}")

    async def _emit(self, topic: str, order: WooOrder) -> Any:
        """The order resource as WooCommerce posts it: ``wp_json_encode`` output, which escapes
        ``/`` and non-ASCII text, signed over those exact bytes."""
        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        payload = {
            "id": order.id,
            "status": order.status,
            "date_created_gmt": now,
            "date_modified_gmt": now,
            "meta_data": order.meta_data,
            "line_items": order.lines,
        }
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode()
        resource, _, event = topic.partition(".")
        headers = {
            "Content-Type": "application/json",
            "X-WC-Webhook-Source": self.site.rstrip("/") + "/",
            "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Resource": resource,
            "X-WC-Webhook-Event": event,
            "X-WC-Webhook-Signature": woocommerce_signature(body, self.emitter.target.secret),
            "X-WC-Webhook-ID": str(self.webhook_id),
            "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex,
        }
        return await self.emitter.send(topic, body, headers)


def _invalid(changes: dict[str, Any]) -> str:
    """The first invalid stock field of an update, or ""."""
    if "stock_quantity" in changes and changes["stock_quantity"] is not None:
        value = changes["stock_quantity"]
        if not isinstance(value, int) or isinstance(value, bool):
            return "stock_quantity is not of type integer."
    if "manage_stock" in changes and not isinstance(changes["manage_stock"], bool):
        return "manage_stock is not of type boolean."
    return ""


def _apply(product: Product, changes: dict[str, Any]) -> None:
    if "manage_stock" in changes:
        product.manage_stock = changes["manage_stock"]
    if "stock_quantity" in changes:
        product.stock_quantity = changes["stock_quantity"]


def _error(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "data": {"status": status}}, status)


def _item_error(item_id: Any, code: str, message: str, status: int) -> dict[str, Any]:
    return {"id": item_id, "error": {"code": code, "message": message, "data": {"status": status}}}
