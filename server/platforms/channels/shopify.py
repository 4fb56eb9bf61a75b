"""Shopify Admin GraphQL: ``inventorySetQuantities`` with compare-and-swap and an idempotency key.

* **CAS.** Each quantity carries ``changeFromQuantity``: the value Shopify held when LiveDrop last
  set it. Shopify's own orders decrement ``available`` between two pushes; a set that ignored them
  would hand those units back. On ``CHANGE_FROM_QUANTITY_STALE`` the call changed nothing (it is all
  or nothing), so the connector reads the current quantities and answers ``STALE`` with what it
  found; the push loop counts the difference as units Shopify sold that LiveDrop may not know yet,
  and pushes again (``push``).
* **Idempotency.** ``@idempotent(key:)`` on every call (mandatory from 2026-04). The key is derived
  from the call's input and each item's attempt, so a retry after a timeout replays the same key,
  and a new value never reuses one.
* **Throttling.** Every answer's ``extensions.cost.throttleStatus`` moves the budget: when the
  bucket cannot pay for the next call, the loop waits until it has refilled enough. ``THROTTLED``
  waits the same way.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from server.platforms.channels.base import Budget, ChannelName, ItemResult, Outcome, PushItem
from server.platforms.channels.http import AuthFailed, ChannelError, Throttled, json_of, send

MAX_QUANTITIES = 250  # input arrays hold at most 250 items
SET_COST = 13  # mutation 10 + three objects in the selection below

SET = """mutation LiveDropSet($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { reason changes(quantityNames: ["available"]) { name quantityAfterChange } }
    userErrors { code field message }
  }
}"""

READ = """query LiveDropRead($item: ID!, $location: ID!) {
  inventoryItem(id: $item) {
    inventoryLevel(locationId: $location) { quantities(names: ["available"]) { name quantity } }
  }
}"""

REFUSED_CODES = frozenset(
    {"INVALID_INVENTORY_ITEM", "INVALID_LOCATION", "ITEM_NOT_STOCKED_AT_LOCATION", "NON_MUTABLE_INVENTORY_ITEM"}
)


def gid(kind: str, value: str) -> str:
    return value if value.startswith("gid://") else f"gid://shopify/{kind}/{value}"


def idempotency_key(quantities: list[dict[str, Any]], attempts: Sequence[str]) -> str:
    digest = hashlib.sha256(json.dumps([quantities, list(attempts)], sort_keys=True).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16]))


class ShopifyChannel:
    name = ChannelName.SHOPIFY
    max_batch = MAX_QUANTITIES
    id_fields: tuple[str, ...] = ("inventory_item_id", "location_id")
    optional_id_fields: tuple[str, ...] = ()

    def __init__(
        self, http: httpx.AsyncClient, *, base_url: str, access_token: str, api_version: str = "2026-04"
    ) -> None:
        self.http = http
        self.url = f"{base_url.rstrip('/')}/admin/api/{api_version}/graphql.json"
        self._token = access_token
        self.budget = Budget()

    def __repr__(self) -> str:
        return f"ShopifyChannel(url={self.url!r})"

    async def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """One GraphQL call; returns ``data``. Reads the cost extension into the budget."""
        response = await send(
            self.http,
            "POST",
            self.url,
            json={"query": query, "variables": variables},
            headers={"X-Shopify-Access-Token": self._token},
        )
        if response.status_code in (401, 403):
            raise AuthFailed(f"Shopify refused the access token (HTTP {response.status_code})")
        if response.status_code == 404:
            raise ChannelError("not_found", "Shopify does not know this shop or API version", retry=False, wait=60.0)
        answer = json_of(response)
        cost = ((answer.get("extensions") or {}).get("cost") or {}) if isinstance(answer, dict) else {}
        status = cost.get("throttleStatus") or {}
        available, restore = status.get("currentlyAvailable"), status.get("restoreRate")
        needed = 2 * SET_COST
        if isinstance(available, int | float) and isinstance(restore, int | float) and restore > 0:
            if available < needed:
                self.budget.wait_for((needed - available) / restore)
        errors = answer.get("errors") if isinstance(answer, dict) else None
        if errors:
            codes = [str((e.get("extensions") or {}).get("code", "")) for e in errors if isinstance(e, dict)]
            if "THROTTLED" in codes:
                wait = (needed - available) / restore if isinstance(available, int | float) and restore else 1.0
                raise Throttled("Shopify THROTTLED", max(0.1, wait))
            message = "; ".join(str(e.get("message", "")) for e in errors if isinstance(e, dict))
            raise ChannelError(codes[0].lower() or "graphql", f"Shopify refused the call: {message}", retry=False)
        if response.status_code != 200:
            raise ChannelError("refused", f"HTTP {response.status_code}", retry=False)
        return dict(answer.get("data") or {})

    async def push(self, items: Sequence[PushItem]) -> list[ItemResult]:
        known = [i for i in items if i.previous is not None]
        results: dict[str, ItemResult] = {}
        # Never set before: read what Shopify holds, so the set can compare against it.
        for item in items:
            if item.previous is None:
                current = await self.read(item)
                if current is None:
                    results[item.sku] = ItemResult(
                        sku=item.sku, outcome=Outcome.REFUSED, code="unknown_sku", message="not stocked in Shopify"
                    )
                else:
                    results[item.sku] = ItemResult(sku=item.sku, outcome=Outcome.STALE, observed=current)
        if known:
            for item, result in zip(known, await self._set(known), strict=True):
                results[item.sku] = result
        return [results[i.sku] for i in items]

    async def _set(self, items: Sequence[PushItem]) -> list[ItemResult]:
        quantities = [
            {
                "inventoryItemId": gid("InventoryItem", i.ids["inventory_item_id"]),
                "locationId": gid("Location", i.ids["location_id"]),
                "quantity": i.value,
                "changeFromQuantity": i.previous,
            }
            for i in items
        ]
        variables = {
            "input": {
                "name": "available",
                "reason": "correction",
                "referenceDocumentUri": "gid://livedrop/StockSync/1",
                "quantities": quantities,
            },
            "key": idempotency_key(quantities, [i.attempt for i in items]),
        }
        data = await self.graphql(SET, variables)
        payload = data.get("inventorySetQuantities") or {}
        errors = payload.get("userErrors") or []
        if not errors:
            return [ItemResult(sku=i.sku, outcome=Outcome.OK, value=i.value) for i in items]
        # All or nothing: nothing was applied. Say which items are at fault, and why.
        faults: dict[int, tuple[str, str]] = {}
        for error in errors:
            field = error.get("field") or []
            index = int(field[2]) if len(field) > 2 and str(field[2]).isdigit() else -1
            faults[index] = (str(error.get("code") or ""), str(error.get("message") or ""))
        results = []
        for n, item in enumerate(items):
            code, message = faults.get(n, ("", ""))
            if code in ("CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"):
                observed = await self.read(item)
                results.append(ItemResult(sku=item.sku, outcome=Outcome.STALE, observed=observed, code="stale"))
            elif code in REFUSED_CODES:
                results.append(ItemResult(sku=item.sku, outcome=Outcome.REFUSED, code="unknown_sku", message=message))
            elif code:
                results.append(ItemResult(sku=item.sku, outcome=Outcome.REFUSED, code=code.lower(), message=message))
            else:
                results.append(ItemResult(sku=item.sku, outcome=Outcome.RETRY, code="batch_refused"))
        if -1 in faults:  # an error naming no item: the whole input is at fault
            code, message = faults[-1]
            raise ChannelError(code.lower() or "refused", f"Shopify refused the set: {message}", retry=False)
        return results

    async def read(self, item: PushItem) -> int | None:
        data = await self.graphql(
            READ,
            {
                "item": gid("InventoryItem", item.ids["inventory_item_id"]),
                "location": gid("Location", item.ids["location_id"]),
            },
        )
        level = (data.get("inventoryItem") or {}).get("inventoryLevel")
        if not level:
            return None
        for quantity in level.get("quantities") or ():
            if quantity.get("name") == "available":
                return int(quantity["quantity"])
        return None

    async def aclose(self) -> None:
        return None
