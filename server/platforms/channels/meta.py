"""Meta Graph API: catalog ``items_batch`` UPDATE of ``quantity_to_sell_on_facebook``, and the
Order Management API (``commerce_orders``, ``acknowledge_order``).

``items_batch`` is asynchronous: the call answers with a handle, and only
``check_batch_request_status`` says when the batch was applied and which items failed. A push is
acknowledged when the status says ``finished``; an item in its ``errors`` is refused.

Budget. The Batch API allows about 100 calls per catalog per hour (docs/channels.md), reported as
percentages in ``X-Business-Use-Case-Usage``. The busier the catalog's budget, the longer the
spacing between pushes (``spacing_for``); a throttle answer (codes 4, 17, 32, 613, 80014) parks
the channel for ``estimated_time_to_regain_access`` minutes. A SKU going to 0 ignores the spacing
(``Budget.delay``): selling out must reach Meta at once, and the buffer covers the rest.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx

from server.platforms.channels.base import Budget, ChannelName, ItemResult, Outcome, PushItem
from server.platforms.channels.http import AuthFailed, ChannelError, Throttled, json_of, send

MAX_ITEMS = 3000  # 5,000 allowed per call; Meta recommends under 3,000
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80014})
INVALID_TOKEN_CODES = frozenset({102, 190})
USAGE_HEADER = "x-business-use-case-usage"


def spacing_for(percent: float) -> float:
    """Seconds between two batch calls when the catalog has used ``percent`` of its budget: none
    while most of it is left, then up to the sustainable rate (100 calls an hour: 36 s)."""
    if percent >= 90:
        return 36.0
    if percent >= 75:
        return 10.0
    if percent >= 50:
        return 2.0
    return 0.0


def usage_percent(header: str | None) -> tuple[float, float]:
    """(highest usage %, minutes to regain access) over the header's entries; (0, 0) if unreadable."""
    if not header:
        return 0.0, 0.0
    try:
        parsed = json.loads(header)
    except ValueError:
        return 0.0, 0.0
    high, regain = 0.0, 0.0
    if isinstance(parsed, dict):
        for entries in parsed.values():
            for entry in entries if isinstance(entries, list) else ():
                if isinstance(entry, dict):
                    for name in ("call_count", "total_cputime", "total_time"):
                        value = entry.get(name)
                        if isinstance(value, int | float):
                            high = max(high, float(value))
                    wait = entry.get("estimated_time_to_regain_access")
                    if isinstance(wait, int | float):
                        regain = max(regain, float(wait))
    return high, regain


class MetaChannel:
    name = ChannelName.META
    max_batch = MAX_ITEMS
    id_fields: tuple[str, ...] = ("retailer_id",)
    optional_id_fields: tuple[str, ...] = ("catalog_id",)

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        access_token: str,
        catalog_id: str,
        cms_id: str = "",
        api_version: str = "v21.0",
        poll_interval: float = 0.1,
        poll_timeout: float = 60.0,
    ) -> None:
        self.http = http
        self.base = f"{base_url.rstrip('/')}/{api_version}"
        self._token = access_token
        self.catalog_id = catalog_id
        self.cms_id = cms_id
        self.poll_interval = poll_interval
        self.poll_timeout = poll_timeout
        self.budget = Budget()

    def __repr__(self) -> str:
        return f"MetaChannel(base={self.base!r}, catalog_id={self.catalog_id!r})"

    async def call(self, method: str, node_path: str, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self._token}"}
        kwargs: dict[str, Any] = {"headers": headers}
        if method == "GET":
            kwargs["params"] = params
        else:
            kwargs["json"] = params
        response = await send(self.http, method, f"{self.base}/{node_path}", **kwargs)
        percent, regain = usage_percent(response.headers.get(USAGE_HEADER))
        self.budget.spacing = spacing_for(percent)
        answer = json_of(response)
        error = answer.get("error") if isinstance(answer, dict) else None
        if isinstance(error, dict):
            code = error.get("code")
            message = str(error.get("message", ""))
            if code in INVALID_TOKEN_CODES:
                raise AuthFailed(f"Meta refused the access token: {message}")
            if code in THROTTLE_CODES:
                raise Throttled(f"Meta throttled the catalog (code {code})", max(60.0, regain * 60) if regain else 60.0)
            raise ChannelError(f"meta_{code}", message, retry=False)
        if response.status_code != 200:
            raise ChannelError("refused", f"HTTP {response.status_code}", retry=False)
        return answer

    async def push(self, items: Sequence[PushItem]) -> list[ItemResult]:
        requests = [
            {"method": "UPDATE", "data": {"id": i.ids["retailer_id"], "quantity_to_sell_on_facebook": i.value}}
            for i in items
        ]
        answer = await self.call(
            "POST", f"{self.catalog_id}/items_batch", item_type="PRODUCT_ITEM", requests=json.dumps(requests)
        )
        handles = answer.get("handles") or []
        if not handles:
            raise ChannelError("bad_response", "items_batch answered without a handle", retry=True)
        status = await self._wait(str(handles[0]))
        failed = {str(e.get("id", "")): str(e.get("message", "")) for e in status.get("errors") or ()}
        return [
            ItemResult(sku=i.sku, outcome=Outcome.REFUSED, code="unknown_sku", message=failed[i.ids["retailer_id"]])
            if i.ids["retailer_id"] in failed
            else ItemResult(sku=i.sku, outcome=Outcome.OK, value=i.value)
            for i in items
        ]

    async def _wait(self, handle: str) -> dict[str, Any]:
        """Poll the batch until ``finished``; a batch still running after ``poll_timeout`` is a
        retryable failure (the next push sets the latest value anyway)."""
        deadline = time.monotonic() + self.poll_timeout
        delay = self.poll_interval
        while True:
            answer = await self.call("GET", f"{self.catalog_id}/check_batch_request_status", handle=handle)
            data = answer.get("data") or [{}]
            status = data[0] if isinstance(data, list) and data else {}
            if status.get("status") == "finished":
                return dict(status)
            if status.get("status") in ("error", "canceled"):
                raise ChannelError("batch_failed", f"batch {status.get('status')}", retry=True)
            if time.monotonic() > deadline:
                raise ChannelError("batch_timeout", "the batch was not finished in time", retry=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def read(self, item: PushItem) -> int | None:
        answer = await self.call("GET", f"{self.catalog_id}/products")
        for product in answer.get("data") or ():
            if product.get("retailer_id") == item.ids["retailer_id"]:
                value = product.get("quantity_to_sell_on_facebook")
                return int(value) if isinstance(value, int) else None
        return None

    async def orders(self, states: Sequence[str], updated_after: float) -> list[dict[str, Any]]:
        """Orders of the commerce account in ``states`` updated after ``updated_after`` (Unix s)."""
        answer = await self.call(
            "GET", f"{self.cms_id}/commerce_orders", state=",".join(states), updated_after=str(updated_after)
        )
        return list(answer.get("data") or ())

    async def acknowledge(self, order_id: str) -> None:
        """Move a ``CREATED`` order to ``IN_PROGRESS``; the order id is the idempotency key, so a
        repeat after a crash is a no-op."""
        await self.call("POST", f"{order_id}/acknowledge_order", idempotency_key=f"livedrop-ack-{order_id}")

    async def aclose(self) -> None:
        return None
