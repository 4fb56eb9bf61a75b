"""Stand-in for Shopify's Admin GraphQL API (inventory) and its order webhooks (contracts §1.1).

``POST /admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token``. Queries are parsed,
validated and executed by graphql-core against an SDL subset of the Admin schema
(``shopify_schema``); nothing is matched with regular expressions.

Refused as Shopify refuses: a wrong or missing token (401), an unknown API version (404), a query
over the single-query cost cap (``MAX_COST_EXCEEDED``), an input array over 250 items
(``MAX_INPUT_SIZE_EXCEEDED``), a call the leaky bucket cannot pay for (``THROTTLED``), and from
2026-04 a mutation without ``@idempotent`` or a quantity without ``changeFromQuantity``. A stale
``changeFromQuantity`` is the userError ``CHANGE_FROM_QUANTITY_STALE`` and nothing is applied.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLResolveInfo,
    execute_sync,
    get_directive_values,
    parse,
    validate,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from standins.base import Conflict, ControlError, LeakyBucket, StandIn, compact, order_id_of, positive_int
from standins.shopify_schema import query_cost, schema_for
from standins.shopify_store import storefront_routes
from standins.signing import same, shopify_webhook_hmac

MAX_INPUT_ARRAY = 250
MAX_QUERY_COST = 1000
MAX_QUANTITY = 1_000_000_000
CAS_MANDATORY_FROM = "2026-04"
OLDEST_VERSION = "2026-01"
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
REASONS = frozenset(
    {
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_canceled",
        "movement_created",
        "movement_received",
        "movement_updated",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    }
)
"""Reasons documented for inventory changes; anything else is ``INVALID_REASON``."""
_VERSION = re.compile(r"\d{4}-(01|04|07|10)")
Info = GraphQLResolveInfo[Any]


def gid(kind: str, value: str | int) -> str:
    """Shopify's global id, accepting one already made (``gid://shopify/Kind/1``) or a bare id."""
    text = str(value)
    return text if text.startswith("gid://") else f"gid://shopify/{kind}/{text}"


@dataclass
class Level:
    """One inventory item at one location. ``on_hand`` = ``available`` + ``committed``."""

    sku: str
    available: int
    committed: int = 0
    updated_at: float = field(default_factory=time.time)
    variant_id: str = ""  # what a cart permalink names (/cart/<variant_id>:<qty>)


@dataclass
class ShopifyOrder:
    id: int
    lines: list[dict[str, Any]]
    note_attributes: list[dict[str, Any]]
    cancelled: bool = False


class ShopifyStandIn(StandIn):
    """One shop with one app installed: one access token, one webhook (client) secret."""

    name = "shopify"

    def __init__(
        self,
        *,
        shop: str = "standin-shop.myshopify.com",
        access_token: str = "shpat_standin",
        webhook_secret: str = "shpss_standin",
        restore_rate: float = 100.0,
        bucket_size: float = MAX_QUERY_COST,
        throttled_status: int = 200,
    ) -> None:
        self.shop = shop
        self.access_token = access_token
        self.bucket = LeakyBucket(bucket_size, restore_rate)
        # Shopify's documentation shows the THROTTLED body but not its status; replies say 429.
        self.throttled_status = throttled_status
        self.levels: dict[tuple[str, str], Level] = {}
        self.locations: set[str] = set()
        self.orders: dict[int, ShopifyOrder] = {}
        self.idempotency: dict[str, tuple[str, dict[str, Any]]] = {}
        self._order_ids = itertools.count(5_940_139_491_001)
        self._line_ids = itertools.count(14_417_937_858_001)
        super().__init__()
        self.emitter.target.secret = webhook_secret

    def describe(self) -> dict[str, Any]:
        return {
            "platform": self.name,
            "shop": self.shop,
            "access_token": self.access_token,
            "graphql_path": "/admin/api/{version}/graphql.json",
            "versions": f">= {OLDEST_VERSION}",
            "throttle": {"maximumAvailable": self.bucket.capacity, "restoreRate": self.bucket.rate},
        }

    def platform_routes(self) -> list[BaseRoute]:
        return [
            Route("/admin/api/{version}/graphql.json", self.graphql, methods=["POST"]),
            *storefront_routes(self),  # standins/shopify_store.py: cart permalinks and a checkout that pays
        ]

    def fault_response(self, status: int) -> Response:
        return JSONResponse({"errors": "Internal Server Error" if status >= 500 else "Bad Request"}, status)

    # -- the GraphQL endpoint --------------------------------------------------------------------

    async def graphql(self, request: Request) -> Response:
        if not same(request.headers.get("x-shopify-access-token", ""), self.access_token):
            return JSONResponse({"errors": INVALID_TOKEN}, 401)
        version = request.path_params["version"]
        if not _VERSION.fullmatch(version) or version < OLDEST_VERSION:
            return JSONResponse({"errors": "Not Found"}, 404)
        try:
            payload = json.loads(await request.body())
            query = payload["query"]
            variables = payload.get("variables") or {}
            if not isinstance(query, str) or not isinstance(variables, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"errors": "Bad Request: expected a JSON object with a query string"}, 400)
        schema = schema_for(version >= CAS_MANDATORY_FROM)
        try:
            document = parse(query)
        except GraphQLError as exc:
            return JSONResponse({"errors": [exc.formatted]})
        invalid = validate(schema, document)
        if invalid:
            return JSONResponse({"errors": [e.formatted for e in invalid]})
        cost = query_cost(schema, document)
        if cost > MAX_QUERY_COST:
            error = {
                "message": f"Query cost is {cost}, which exceeds the single query max cost limit ({MAX_QUERY_COST}).",
                "extensions": {"code": "MAX_COST_EXCEEDED", "cost": cost, "maxCost": MAX_QUERY_COST},
            }
            return JSONResponse({"errors": [error], "extensions": self._cost(cost, None)})
        if not self.bucket.take(cost):
            throttled = {"message": "Throttled", "extensions": {"code": "THROTTLED"}}
            return JSONResponse({"errors": [throttled], "extensions": self._cost(cost, None)}, self.throttled_status)
        context = {"version": version}
        result = execute_sync(schema, document, root_value=self, variable_values=variables, context_value=context)
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = [e.formatted for e in result.errors]
        if result.data is not None:  # None: refused before execution (variables), so no "data" (GraphQL spec)
            body["data"] = result.data
        body["extensions"] = self._cost(cost, cost)
        return JSONResponse(body)

    def _cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        status = {
            "maximumAvailable": float(self.bucket.capacity),
            "currentlyAvailable": int(self.bucket.available()),
            "restoreRate": float(self.bucket.rate),
        }
        return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": status}}

    # -- resolvers (graphql-core's default resolver calls these root methods) ---------------------

    def inventoryItem(self, info: Info, id: str) -> dict[str, Any] | None:
        item = next((key[0] for key in self.levels if key[0] == id), None)
        return None if item is None else self._item(item)

    def location(self, info: Info, id: str) -> dict[str, Any] | None:
        return {"id": id, "name": id.rsplit("/", 1)[-1]} if id in self.locations else None

    def _item(self, item: str) -> dict[str, Any]:
        sku = next(level.sku for key, level in self.levels.items() if key[0] == item)

        def level(info: Info, locationId: str) -> dict[str, Any] | None:
            found = self.levels.get((item, locationId))
            return None if found is None else self._level(item, locationId, found)

        return {"id": item, "sku": sku, "tracked": True, "inventoryLevel": level}

    def _level(self, item: str, location: str, level: Level) -> dict[str, Any]:
        def quantities(info: Info, names: list[str]) -> list[dict[str, Any]]:
            values = {
                "available": level.available,
                "committed": level.committed,
                "on_hand": level.available + level.committed,
            }
            stamp = datetime.fromtimestamp(level.updated_at, UTC).isoformat().replace("+00:00", "Z")
            return [
                {
                    "id": f"{item}?location={location}&name={n}",
                    "name": n,
                    "quantity": values.get(n, 0),
                    "updatedAt": stamp,
                }
                for n in names
            ]

        return {
            "id": f"gid://shopify/InventoryLevel/{item.rsplit('/', 1)[-1]}?inventory_item_id={item}",
            "item": self._item_ref(item),
            "location": {"id": location, "name": location.rsplit("/", 1)[-1]},
            "quantities": quantities,
        }

    def _item_ref(self, item: str) -> dict[str, Any]:
        return {"id": item, "sku": self.levels[next(k for k in self.levels if k[0] == item)].sku, "tracked": True}

    def inventorySetQuantities(self, info: Info, input: dict[str, Any]) -> dict[str, Any]:
        version: str = info.context["version"]
        cas_only = version >= CAS_MANDATORY_FROM
        directive = info.schema.get_directive("idempotent")
        assert directive is not None
        key = (get_directive_values(directive, info.field_nodes[0], info.variable_values) or {}).get("key")
        if key is None and cas_only:
            raise GraphQLError(
                "The @idempotent directive is required for this mutation as of API version 2026-04.",
                extensions={"code": "IDEMPOTENCY_KEY_REQUIRED"},
            )
        quantities: list[dict[str, Any]] = input["quantities"]
        if len(quantities) > MAX_INPUT_ARRAY:
            raise GraphQLError(
                f"The input array size of {len(quantities)} is greater than the maximum allowed of {MAX_INPUT_ARRAY}.",
                extensions={"code": "MAX_INPUT_SIZE_EXCEEDED"},
            )
        if cas_only:
            missing = [i for i, q in enumerate(quantities) if "changeFromQuantity" not in q]
            if missing:
                raise GraphQLError(
                    "changeFromQuantity is required on every quantity as of API version 2026-04 "
                    "(pass null explicitly to opt out of the compare-and-swap check).",
                    extensions={"code": "BAD_USER_INPUT", "quantities": missing},
                )
        fingerprint = json.dumps(input, sort_keys=True)
        if key is not None and key in self.idempotency:
            recorded_fingerprint, recorded = self.idempotency[key]
            if recorded_fingerprint != fingerprint:
                message = "The same idempotency key cannot be used with different operation parameters."
                return _failed([_user_error("IDEMPOTENCY_KEY_PARAMETER_MISMATCH", message, [])])
            return recorded  # Shopify answers a repeat with the original result, applying nothing
        result = self._set(input, cas_only)
        if key is not None:
            self.idempotency[key] = (fingerprint, result)
        return result

    def _set(self, input: dict[str, Any], cas_only: bool) -> dict[str, Any]:
        """Check every quantity first, then apply all of them or none."""
        name, reason = input["name"], input["reason"]
        errors: list[dict[str, Any]] = []
        if name not in ("available", "on_hand"):
            errors.append(
                _user_error(
                    "INVALID_NAME", "The quantity name must be either 'available' or 'on_hand'.", ["input", "name"]
                )
            )
        if reason not in REASONS:
            errors.append(_user_error("INVALID_REASON", "The specified reason is invalid.", ["input", "reason"]))
        uri = input.get("referenceDocumentUri")
        if uri is not None and (not uri.startswith("gid://") or uri.startswith("gid://shopify/")):
            errors.append(
                _user_error(
                    "INVALID_REFERENCE_DOCUMENT",
                    "The specified reference document is invalid.",
                    ["input", "referenceDocumentUri"],
                )
            )
        seen: set[tuple[str, str]] = set()
        for i, q in enumerate(input["quantities"]):
            where = ["input", "quantities", str(i)]
            pair = (q["inventoryItemId"], q["locationId"])
            level = self.levels.get(pair)
            current = (
                None
                if level is None
                else (level.available if name == "available" else level.available + level.committed)
            )
            if pair in seen:
                errors.append(
                    _user_error("NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR", "Duplicate item and location.", where)
                )
            seen.add(pair)
            if not any(k[0] == pair[0] for k in self.levels):
                errors.append(
                    _user_error(
                        "INVALID_INVENTORY_ITEM",
                        "The specified inventory item could not be found.",
                        [*where, "inventoryItemId"],
                    )
                )
            elif pair[1] not in self.locations:
                errors.append(
                    _user_error(
                        "INVALID_LOCATION", "The specified location could not be found.", [*where, "locationId"]
                    )
                )
            elif level is None:
                errors.append(
                    _user_error(
                        "ITEM_NOT_STOCKED_AT_LOCATION",
                        "The specified inventory item is not stocked at the location.",
                        where,
                    )
                )
            if q["quantity"] < 0:
                errors.append(
                    _user_error("INVALID_QUANTITY_NEGATIVE", "The quantity can't be negative.", [*where, "quantity"])
                )
            if q["quantity"] > MAX_QUANTITY:
                errors.append(
                    _user_error(
                        "INVALID_QUANTITY_TOO_HIGH",
                        "The total quantity can't be higher than 1,000,000,000.",
                        [*where, "quantity"],
                    )
                )
            if current is None:
                continue
            if "changeFromQuantity" in q:
                expected = q["changeFromQuantity"]
                if expected is not None and expected != current:
                    message = "The changeFromQuantity value does not match persisted value."
                    errors.append(_user_error("CHANGE_FROM_QUANTITY_STALE", message, [*where, "changeFromQuantity"]))
            elif not cas_only and not input.get("ignoreCompareQuantity"):
                compare = q.get("compareQuantity")
                if compare is None:
                    message = (
                        "The compareQuantity argument must be given to each quantity "
                        "or ignored using ignoreCompareQuantity."
                    )
                    errors.append(_user_error("COMPARE_QUANTITY_REQUIRED", message, [*where, "compareQuantity"]))
                elif compare != current:
                    message = "The compareQuantity value does not match persisted value."
                    errors.append(_user_error("COMPARE_QUANTITY_STALE", message, [*where, "compareQuantity"]))
        if errors:
            return _failed(errors)
        changes = []
        for q in input["quantities"]:
            level = self.levels[(q["inventoryItemId"], q["locationId"])]
            before = level.available if name == "available" else level.available + level.committed
            level.available += q["quantity"] - before
            level.updated_at = time.time()
            changes.append(
                {
                    "name": name,
                    "delta": q["quantity"] - before,
                    "quantityAfterChange": q["quantity"],
                    "item": self._item_ref(q["inventoryItemId"]),
                    "location": {"id": q["locationId"], "name": q["locationId"].rsplit("/", 1)[-1]},
                }
            )
        group = {
            "id": f"gid://shopify/InventoryAdjustmentGroup/{uuid.uuid4().int % 10**12}",
            "createdAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "reason": reason,
            "referenceDocumentUri": uri,
            "changes": lambda info, quantityNames=None: [
                c for c in changes if quantityNames is None or c["name"] in quantityNames
            ],
        }
        return {"inventoryAdjustmentGroup": group, "userErrors": []}

    # -- control verbs ---------------------------------------------------------------------------

    def seed(self, body: Any) -> Any:
        """``{"items": [{"inventory_item_id", "location_id", "sku", "available", "variant_id"?}]}`` (ids
        bare or gid; ``variant_id`` is what the storefront's cart permalinks name)."""
        items = _items(body)
        parsed = []
        for item in items:
            try:
                key = (gid("InventoryItem", item["inventory_item_id"]), gid("Location", item["location_id"]))
                sku, available = str(item["sku"]), item["available"]
            except (KeyError, TypeError):
                raise ControlError("each item needs inventory_item_id, location_id, sku and available") from None
            if not isinstance(available, int) or isinstance(available, bool):
                raise ControlError("available must be an integer")
            parsed.append((key, sku, available, str(item.get("variant_id", ""))))
        for key, sku, available, variant_id in parsed:
            self.levels[key] = Level(sku, available, variant_id=variant_id)
            self.locations.add(key[1])
        return self.stock()

    def stock(self) -> Any:
        return {
            "items": [
                {
                    "inventory_item_id": item,
                    "location_id": location,
                    "sku": level.sku,
                    "available": level.available,
                    "committed": level.committed,
                    "on_hand": level.available + level.committed,
                }
                for (item, location), level in self.levels.items()
            ]
        }

    async def sell(self, body: Any) -> Any:
        """A buyer checks out on Shopify: ``{"lines": [{"sku"|"inventory_item_id", "quantity",
        "hold"?}], "hold"?, "oversell"?: bool, "topic"?: "orders/create"|"orders/paid"}``.

        Shopify refuses to sell an untracked-out item unless the merchant lets it "continue
        selling when out of stock", where ``available`` goes negative: ``oversell`` models that.
        """
        lines = _lines(body)
        picked: list[tuple[tuple[str, str], Level, int, str | None]] = []
        for line in lines:
            key = self._find(line)
            qty = positive_int(line.get("quantity"))
            hold = line.get("hold")
            picked.append((key, self.levels[key], qty, None if hold is None else str(hold)))
        notes = [{"name": "livedrop_hold", "value": str(body["hold"])}] if body.get("hold") else []
        topic = str(body.get("topic", "orders/create"))
        return await self.place(picked, notes, bool(body.get("oversell", False)), topic)

    async def place(
        self,
        picked: list[tuple[tuple[str, str], Level, int, str | None]],
        note_attributes: list[dict[str, Any]],
        oversell: bool = False,
        topic: str = "orders/create",
    ) -> dict[str, Any]:
        """An order of ``picked`` lines (level key, level, quantity, line hold property), paid,
        and its webhook sent: what the control API's ``sell`` and the storefront's checkout do."""
        for key, level, qty, _ in picked:
            if level.available < qty and not oversell:
                raise Conflict(f"not enough stock of {key[0]} at {key[1]}: {level.available} < {qty}")
        order = ShopifyOrder(next(self._order_ids), [], list(note_attributes))
        for key, level, qty, hold in picked:
            level.available -= qty
            level.committed += qty
            properties = [{"name": "livedrop_hold", "value": hold}] if hold else []
            order.lines.append(
                {
                    "id": next(self._line_ids),
                    "sku": level.sku,
                    "quantity": qty,
                    "properties": properties,
                    "_key": list(key),
                }
            )
        self.orders[order.id] = order
        delivery = await self._emit(topic, order)
        return {"order_id": order.id, "delivery": delivery.as_json(), "stock": self.stock()["items"]}

    async def cancel(self, body: Any) -> Any:
        """Cancel an order with restock (``{"order_id"}``): units go back to available."""
        wanted = order_id_of(body)
        order = next((o for o in self.orders.values() if str(o.id) == wanted), None)
        if order is None:
            raise ControlError("unknown order_id")
        if order.cancelled:
            raise ControlError("order already cancelled")
        order.cancelled = True
        for line in order.lines:
            level = self.levels[(line["_key"][0], line["_key"][1])]
            level.available += line["quantity"]
            level.committed -= line["quantity"]
        delivery = await self._emit("orders/cancelled", order)
        return {"order_id": order.id, "delivery": delivery.as_json(), "stock": self.stock()["items"]}

    def reset_state(self) -> None:
        self.levels.clear()
        self.locations.clear()
        self.orders.clear()
        self.idempotency.clear()
        self.bucket.reset()

    def _find(self, line: dict[str, Any]) -> tuple[str, str]:
        if "inventory_item_id" in line:
            item = gid("InventoryItem", line["inventory_item_id"])
            found = [
                k
                for k in self.levels
                if k[0] == item and ("location_id" not in line or k[1] == gid("Location", line["location_id"]))
            ]
        else:
            found = [k for k, level in self.levels.items() if level.sku == line.get("sku")]
        if not found:
            raise ControlError(f"no seeded item for line {line!r}")
        return found[0]

    async def _emit(self, topic: str, order: ShopifyOrder) -> Any:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        payload = {
            "id": order.id,
            "admin_graphql_api_id": f"gid://shopify/Order/{order.id}",
            "name": f"#{order.id % 100000}",
            "created_at": now,
            "updated_at": now,
            "cancelled_at": now if order.cancelled else None,
            "financial_status": "paid",
            "note_attributes": order.note_attributes,
            "line_items": [{k: v for k, v in line.items() if not k.startswith("_")} for line in order.lines],
        }
        body = compact(payload)
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": shopify_webhook_hmac(body, self.emitter.target.secret),
            "X-Shopify-Shop-Domain": self.shop,
            "X-Shopify-API-Version": CAS_MANDATORY_FROM,
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "X-Shopify-Event-Id": str(uuid.uuid4()),
            "X-Shopify-Triggered-At": now,
        }
        return await self.emitter.send(topic, body, headers)


def _user_error(code: str, message: str, where: list[str]) -> dict[str, Any]:
    return {"code": code, "field": where, "message": message}


def _failed(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"inventoryAdjustmentGroup": None, "userErrors": errors}


def _items(body: Any) -> list[dict[str, Any]]:
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ControlError('expected {"items": [...]}')
    return items


def _lines(body: Any) -> list[dict[str, Any]]:
    lines = body.get("lines") if isinstance(body, dict) else None
    if not isinstance(lines, list) or not lines or not all(isinstance(i, dict) for i in lines):
        raise ControlError('expected {"lines": [...]} with at least one line')
    return lines
