"""WooCommerce REST v3: ``products/batch`` and ``products/{parent}/variations/batch``, absolute
``stock_quantity`` only (WooCommerce has no delta API).

Basic auth with the consumer key and secret (over HTTPS in production, docs/channels.md). A batch
holds at most 100 items; each item fails on its own (``{"id", "error"}``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from server.platforms.channels.base import Budget, ChannelName, ItemResult, Outcome, PushItem
from server.platforms.channels.http import AuthFailed, ChannelError, json_of, send

MAX_BATCH = 100  # create + update + delete per batch (woocommerce_rest_batch_items_limit)


class WooCommerceChannel:
    name = ChannelName.WOOCOMMERCE
    max_batch = MAX_BATCH
    id_fields: tuple[str, ...] = ("product_id",)
    optional_id_fields: tuple[str, ...] = ("variation_id",)

    def __init__(self, http: httpx.AsyncClient, *, base_url: str, consumer_key: str, consumer_secret: str) -> None:
        self.http = http
        self.base = f"{base_url.rstrip('/')}/wp-json/wc/v3"
        self._auth = httpx.BasicAuth(consumer_key, consumer_secret)
        self.budget = Budget()

    def __repr__(self) -> str:
        return f"WooCommerceChannel(base={self.base!r})"

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        response = await send(self.http, method, self.base + path, json=body, auth=self._auth)
        if response.status_code in (401, 403):
            raise AuthFailed(f"WooCommerce refused the consumer key or secret (HTTP {response.status_code})")
        answer = json_of(response)
        if response.status_code == 404:
            raise ChannelError("not_found", str(answer.get("message", "not found")), retry=False)
        if response.status_code >= 400:
            message = answer.get("message", "") if isinstance(answer, dict) else ""
            raise ChannelError("refused", f"HTTP {response.status_code}: {message}", retry=False)
        return answer

    async def push(self, items: Sequence[PushItem]) -> list[ItemResult]:
        groups: dict[str, list[PushItem]] = {}
        for item in items:
            parent = item.ids["product_id"] if item.ids.get("variation_id") else ""
            groups.setdefault(parent, []).append(item)
        results: dict[str, ItemResult] = {}
        for parent, group in groups.items():
            path = f"/products/{parent}/variations/batch" if parent else "/products/batch"

            def own_id(i: PushItem) -> str:
                return i.ids["variation_id"] if i.ids.get("variation_id") else i.ids["product_id"]

            body = {"update": [{"id": int(own_id(i)), "stock_quantity": i.value, "manage_stock": True} for i in group]}
            try:
                answer = await self.call("POST", path, body)
            except ChannelError as exc:
                if exc.code != "not_found":
                    raise
                for i in group:
                    results[i.sku] = ItemResult(
                        sku=i.sku, outcome=Outcome.REFUSED, code="unknown_sku", message=exc.message
                    )
                continue
            updated = {str(u.get("id")): u for u in answer.get("update") or () if isinstance(u, dict)}
            for i in group:
                row = updated.get(own_id(i))
                if row is None or row.get("error"):
                    error = (row or {}).get("error") or {}
                    results[i.sku] = ItemResult(
                        sku=i.sku, outcome=Outcome.REFUSED, code="unknown_sku", message=str(error.get("message", ""))
                    )
                else:
                    results[i.sku] = ItemResult(sku=i.sku, outcome=Outcome.OK, value=i.value)
        return [results[i.sku] for i in items]

    async def read(self, item: PushItem) -> int | None:
        variation = item.ids.get("variation_id")
        path = f"/products/{item.ids['product_id']}" + (f"/variations/{variation}" if variation else "")
        try:
            answer = await self.call("GET", path)
        except ChannelError as exc:
            if exc.code == "not_found":
                return None
            raise
        value = answer.get("stock_quantity")
        return int(value) if isinstance(value, int) else None

    async def aclose(self) -> None:
        return None
