"""TikTok Shop Partner API: Update Inventory, Get Order Detail and Search Orders, each call signed.

Every request carries ``app_key``, a 10-digit ``timestamp``, ``shop_cipher`` and the ``sign``
(``signing.tiktok_sign``) in its query, and the access token in ``x-tts-access-token``. Answers are
``{code, message, request_id, data}``: ``code != 0`` is a refusal whatever the HTTP status.

Inventory is set per product (the path names it), with an absolute quantity per SKU and
warehouse; SKUs of one product share a call. A SKU the platform refuses comes back in
``data.errors[].detail.sku_id`` while the others are applied.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from server.platforms.channels.base import Budget, ChannelName, ItemResult, Outcome, PushItem
from server.platforms.channels.http import AuthFailed, ChannelError, json_of, send
from server.platforms.channels.signing import tiktok_sign

MAX_QUANTITY = 99_999  # quantities are 0 <= q < 99999 (UpdateInventory)
MAX_ORDER_IDS = 50  # Get Order Detail takes at most 50 ids


class TikTokChannel:
    name = ChannelName.TIKTOK
    max_batch = 100  # SKUs of one product per call; a product has far fewer
    id_fields: tuple[str, ...] = ("product_id", "sku_id")
    optional_id_fields: tuple[str, ...] = ("warehouse_id",)

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        app_key: str,
        app_secret: str,
        access_token: str,
        shop_cipher: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.app_key = app_key
        self._secret = app_secret
        self._token = access_token
        self.shop_cipher = shop_cipher
        self.clock = clock
        self.budget = Budget()

    def __repr__(self) -> str:
        return f"TikTokChannel(base_url={self.base_url!r}, app_key={self.app_key!r})"

    async def call(self, method: str, path: str, *, query: dict[str, str] | None = None, body: Any = None) -> Any:
        """One signed call; returns ``data``. Raises ``ChannelError`` (``AuthFailed`` on 401)."""
        params = {"app_key": self.app_key, "timestamp": str(int(self.clock())), "shop_cipher": self.shop_cipher}
        params.update(query or {})
        raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        content_type = "application/json"
        params["sign"] = tiktok_sign(self._secret, path, params, raw, content_type)
        headers = {"x-tts-access-token": self._token, "content-type": content_type}
        response = await send(
            self.http, method, self.base_url + path, params=params, content=raw or None, headers=headers
        )
        answer = json_of(response)
        code = answer.get("code") if isinstance(answer, dict) else None
        if response.status_code == 401:
            raise AuthFailed(f"TikTok Shop refused the credentials or the sign: {answer.get('message', '')}")
        if response.status_code == 404:
            raise ChannelError("not_found", str(answer.get("message", "not found")), retry=False)
        if code != 0 or response.status_code != 200:
            message = answer.get("message", "") if isinstance(answer, dict) else ""
            raise ChannelError("refused", f"HTTP {response.status_code} code {code}: {message}", retry=False)
        return answer.get("data") or {}

    async def push(self, items: Sequence[PushItem]) -> list[ItemResult]:
        by_product: dict[str, list[PushItem]] = {}
        for item in items:
            by_product.setdefault(item.ids["product_id"], []).append(item)
        results: list[ItemResult] = []
        for product_id, group in by_product.items():
            results += await self._push_product(product_id, group)
        return results

    async def _push_product(self, product_id: str, items: list[PushItem]) -> list[ItemResult]:
        skus = []
        for item in items:
            entry: dict[str, Any] = {"quantity": min(item.value, MAX_QUANTITY - 1)}
            if item.ids.get("warehouse_id"):
                entry["warehouse_id"] = item.ids["warehouse_id"]
            skus.append({"id": item.ids["sku_id"], "inventory": [entry]})
        path = f"/product/202309/products/{product_id}/inventory/update"
        try:
            data = await self.call("POST", path, body={"skus": skus})
        except ChannelError as exc:
            if exc.code == "not_found":  # the product is unknown: every SKU of it is
                return [
                    ItemResult(sku=i.sku, outcome=Outcome.REFUSED, code="unknown_sku", message=exc.message)
                    for i in items
                ]
            raise
        failed: dict[str, str] = {}
        for error in data.get("errors") or ():
            detail = error.get("detail") or {}
            extra = "; ".join(str(e.get("message", "")) for e in detail.get("extra_errors") or ())
            failed[str(detail.get("sku_id", ""))] = f"{error.get('message', '')} {extra}".strip()
        results = []
        for item in items:
            if item.ids["sku_id"] in failed:
                results.append(
                    ItemResult(
                        sku=item.sku, outcome=Outcome.REFUSED, code="unknown_sku", message=failed[item.ids["sku_id"]]
                    )
                )
            else:
                results.append(ItemResult(sku=item.sku, outcome=Outcome.OK, value=min(item.value, MAX_QUANTITY - 1)))
        return results

    async def read(self, item: PushItem) -> int | None:
        try:
            data = await self.call("GET", f"/product/202309/products/{item.ids['product_id']}")
        except ChannelError as exc:
            if exc.code == "not_found":
                return None
            raise
        for sku in data.get("skus") or ():
            if str(sku.get("id")) == item.ids["sku_id"]:
                return sum(int(w.get("quantity", 0)) for w in sku.get("inventory") or ())
        return None

    async def order_details(self, order_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Get Order Detail for at most 50 ids; orders the platform does not know are left out."""
        if len(order_ids) > MAX_ORDER_IDS:
            raise ValueError(f"at most {MAX_ORDER_IDS} order ids per call")
        data = await self.call("GET", "/order/202309/orders", query={"ids": ",".join(order_ids)})
        return list(data.get("orders") or ())

    async def search_orders(
        self, update_time_ge: int, update_time_lt: int, page_token: str = ""
    ) -> tuple[list[dict[str, Any]], str]:
        """One page of orders updated in ``[ge, lt)``, oldest first; returns (orders, next token)."""
        query = {"page_size": "100"}
        if page_token:
            query["page_token"] = page_token
        body = {"update_time_ge": update_time_ge, "update_time_lt": update_time_lt}
        data = await self.call("POST", "/order/202309/orders/search", query=query, body=body)
        return list(data.get("orders") or ()), str(data.get("next_page_token") or "")

    async def aclose(self) -> None:
        return None
