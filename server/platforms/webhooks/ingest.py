"""Recording accepted deliveries in Redis before they are acknowledged.

A delivery is appended to the stream ``ld:{webhooks}`` together with its de-duplication keys, in one
script call (``lua/append_once.lua``): if any key was seen, nothing is written and the delivery is a
duplicate. Only once Redis has answered does the receiver send its 2xx, so an acknowledged delivery
is in Redis (and in its AOF) whatever happens to this process next; the consumer group applies it.

The same script records alerts and reconciliation issues once per subject. Concurrent calls share
round trips (``scripts.BatchedScript``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from server import keys
from server.platforms.webhooks.events import Platform
from server.platforms.webhooks.headers import header
from server.platforms.webhooks.scripts import Arg, BatchedScript
from server.platforms.webhooks.signatures import (
    META_SIGNATURE,
    SHOPIFY_EVENT_ID,
    SHOPIFY_HMAC,
    SHOPIFY_SHOP,
    SHOPIFY_TOPIC,
    SHOPIFY_WEBHOOK_ID,
    SW_ID,
    SW_SIGNATURE,
    SW_TIMESTAMP,
    TIKTOK_SIGNATURE,
    WC_DELIVERY_ID,
    WC_SIGNATURE,
    WC_SOURCE,
    WC_TOPIC,
    WC_WEBHOOK_ID,
)
from server.replies import decoded

# The headers kept with each delivery: those the normalisers and de-duplication read, plus the
# signature, so an auditor can check a stored delivery again. Nothing else (no client address,
# no user agent) is kept.
RECORDED_HEADERS: Mapping[Platform, tuple[str, ...]] = {
    Platform.SHOPIFY: (
        SHOPIFY_HMAC,
        SHOPIFY_WEBHOOK_ID,
        SHOPIFY_EVENT_ID,
        SHOPIFY_TOPIC,
        SHOPIFY_SHOP,
        "X-Shopify-Triggered-At",
        "X-Shopify-API-Version",
    ),
    Platform.TIKTOK: (TIKTOK_SIGNATURE,),
    Platform.META: (META_SIGNATURE,),
    Platform.WOOCOMMERCE: (
        WC_SIGNATURE,
        WC_TOPIC,
        "X-WC-Webhook-Resource",
        "X-WC-Webhook-Event",
        WC_WEBHOOK_ID,
        WC_DELIVERY_ID,
        WC_SOURCE,
    ),
    Platform.STANDARD: (SW_ID, SW_TIMESTAMP, SW_SIGNATURE),
}

VERIFIED = "signature"
"""The verification result stored with a delivery: its signature matched a configured secret."""

_headers_encoder = msgspec.json.Encoder()
_headers_decoder = msgspec.json.Decoder(dict[str, str])


class AppendOnce:
    """``append_once.lua`` on one client, its concurrent calls batched (``scripts.BatchedScript``)."""

    def __init__(self, redis: Any) -> None:
        self.script = BatchedScript(redis, "append_once")

    async def __call__(
        self,
        stream: str,
        seen_keys: Sequence[str],
        fields: Mapping[str, Arg],
        *,
        ttl_seconds: int,
        maxlen: int = 0,
    ) -> tuple[str, bool]:
        """Append ``fields`` to ``stream`` unless a seen key exists. Returns (entry id, duplicate);
        for a duplicate the id is that of the entry first recorded (or '')."""
        args: list[Arg] = [ttl_seconds, maxlen]
        for name, value in fields.items():
            args += (name, value)
        entry_id, duplicate = await self.script([stream, *seen_keys], args)
        return decoded(entry_id), bool(duplicate)


class Delivery(msgspec.Struct, frozen=True):
    """One recorded delivery, as the consumer reads it back."""

    entry_id: str
    platform: Platform
    body: bytes
    headers: dict[str, str]
    delivery_keys: tuple[str, ...]


def recorded_headers(platform: Platform, headers: Mapping[str, str]) -> dict[str, str]:
    """The subset of ``headers`` stored with a delivery (names lower-cased)."""
    kept = {}
    for name in RECORDED_HEADERS[platform]:
        value = header(headers, name)
        if value is not None:
            kept[name.lower()] = value
    return kept


def decode_delivery(entry_id: bytes | str, fields: Mapping[bytes, bytes]) -> Delivery:
    """A stream entry back into a ``Delivery``. Raises KeyError/ValueError on a foreign entry."""
    return Delivery(
        entry_id=decoded(entry_id),
        platform=Platform(fields[b"p"].decode()),
        body=fields[b"b"],
        headers=_headers_decoder.decode(fields[b"h"]),
        delivery_keys=tuple(k for k in fields[b"k"].decode().split("\n") if k),
    )


class WebhookLog:
    """The durable record of accepted deliveries (the receiver's only write). Concurrent records
    share round trips (group commit), each keeping its own atomic check-and-append."""

    def __init__(self, redis: Any, dedupe_ttl_seconds: int) -> None:
        self.redis = redis
        self.dedupe_ttl_seconds = dedupe_ttl_seconds
        self._append = AppendOnce(redis)

    async def record(
        self, platform: Platform, body: bytes, headers: Mapping[str, str], delivery_keys: Sequence[str]
    ) -> tuple[str, bool]:
        """Record a verified delivery unless one of its keys was seen. Returns (entry id,
        duplicate). Raises a ``redis`` error when Redis did not answer: then nothing may be
        acknowledged, and the platform's retry is what recovers the delivery."""
        fields = {
            "p": platform.value,
            "b": body,
            "h": _headers_encoder.encode(recorded_headers(platform, headers)),
            "k": "\n".join(delivery_keys),
            "v": VERIFIED,
        }
        return await self._append(
            keys.STREAM, [keys.seen(k) for k in delivery_keys], fields, ttl_seconds=self.dedupe_ttl_seconds
        )

    @property
    def round_trips(self) -> int:
        """Calls to Redis made so far (fewer than the records when concurrent ones share one)."""
        return self._append.script.calls

    async def aclose(self) -> None:
        """Wait for records in flight (each request is waiting for its own answer)."""
        await self._append.script.aclose()
