"""The right to deletion for webhook bodies: remove every recorded delivery that names a person.

Two ways in: an operator runs ``livedrop erase`` (server/cli.py), and Shopify's ``customers/redact``
compliance webhook is applied by the consumer as an erasure of the customer and orders it names.

Platform bodies carry the buyer's data (e-mail, phone, name, address, the platform's customer id),
which the stock engine's ``erase_customer`` never sees: it rewrites LiveDrop's own customer ids. So
an erasure names the person as the platforms know them — identifiers such as an e-mail, a phone
number, a platform customer id or an order id — and every delivery, applied or dead-lettered, whose
body holds one of them as a value is deleted (XDEL).

A value matches when it is a string equal to an identifier (case-insensitive, as e-mails are), or an
integer equal to one of at least ``MIN_NUMERIC_ID`` digits: platform ids are long, and a short one
would match quantities and prices. A delivery not yet applied is left alone (deleting it would lose
its effect on stock) and counted as ``deferred``: it is applied within moments, and the erasure is
run again for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import msgspec

from server import keys
from server.replies import decoded
from server.viewers.limits import MAX_WEBHOOK_DEPTH, TooDeep, check_depth

MIN_NUMERIC_ID = 6
"""Digits an all-digit identifier needs before an integer value in a body can match it."""
_PAGE = 500


class ErasureResult(msgspec.Struct, frozen=True):
    """What an erasure did: deliveries deleted, and deliveries matched but not applied yet."""

    erased: int
    deferred: int


SHOPIFY_REDACT_TOPIC = "customers/redact"
"""Shopify's mandatory compliance webhook: erase what the shop's app holds about a customer."""


class _RedactCustomer(msgspec.Struct):
    id: int | str | None = None
    email: str | None = None
    phone: str | None = None


class _ShopifyRedact(msgspec.Struct):
    customer: _RedactCustomer | None = None
    orders_to_redact: list[int | str] = msgspec.field(default_factory=list)


def shopify_redact_identifiers(body: bytes) -> list[str]:
    """The identifiers a ``customers/redact`` body names: the customer's id, e-mail and phone, and
    the ids of the orders to redact. Empty for a body that is not one."""
    try:
        check_depth(body, MAX_WEBHOOK_DEPTH)
        request = msgspec.json.decode(body, type=_ShopifyRedact)
    except (msgspec.DecodeError, TooDeep, RecursionError):
        return []
    found = [str(order) for order in request.orders_to_redact]
    if request.customer is not None:
        found += [str(v) for v in (request.customer.id, request.customer.email, request.customer.phone) if v]
    return [text for text in found if text.strip()]


def _values(document: Any) -> Iterator[Any]:
    """Every scalar of a decoded JSON document."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            yield item


def _needles(identifiers: Iterable[str]) -> tuple[frozenset[str], frozenset[int]]:
    texts = {i.strip().casefold() for i in identifiers if i.strip()}
    numbers = {int(t) for t in texts if t.isdigit() and len(t) >= MIN_NUMERIC_ID}
    return frozenset(texts), frozenset(numbers)


def names_anyone(body: bytes, texts: frozenset[str], numbers: frozenset[int]) -> bool:
    """Whether ``body`` (JSON; anything else never matches) holds one of the identifiers."""
    try:
        check_depth(body, MAX_WEBHOOK_DEPTH)
        document = msgspec.json.decode(body)
    except (msgspec.DecodeError, TooDeep, RecursionError):
        return False
    for value in _values(document):
        if isinstance(value, str) and value.strip().casefold() in texts:
            return True
        if isinstance(value, int) and not isinstance(value, bool) and value in numbers:
            return True
    return False


def _id(value: bytes | str) -> tuple[int, int]:
    ms, _, seq = decoded(value).partition("-")
    return int(ms), int(seq or 0)


async def _unapplied(redis: Any, entry_id: str, delivered: tuple[int, int] | None) -> bool:
    if delivered is None or _id(entry_id) > delivered:
        return True  # never handed to a consumer yet
    pending = await redis.xpending_range(keys.STREAM, keys.GROUP, min=entry_id, max=entry_id, count=1)
    return bool(pending)


async def erase_deliveries(redis: Any, identifiers: Sequence[str]) -> ErasureResult:
    """Delete the applied and dead-lettered deliveries whose bodies name one of ``identifiers``."""
    texts, numbers = _needles(identifiers)
    if not texts:
        return ErasureResult(0, 0)
    delivered: tuple[int, int] | None = None
    if await redis.exists(keys.STREAM):
        for group in await redis.xinfo_groups(keys.STREAM):
            if decoded(group["name"]) == keys.GROUP:
                delivered = _id(group["last-delivered-id"])
    erased = deferred = 0
    for stream in (keys.STREAM, keys.DEAD):
        start = "-"
        while True:
            page = await redis.xrange(stream, start, "+", count=_PAGE)
            for raw_id, fields in page:
                entry_id = decoded(raw_id)
                if not names_anyone(fields.get(b"b", b""), texts, numbers):
                    continue
                if stream == keys.STREAM and await _unapplied(redis, entry_id, delivered):
                    deferred += 1
                    continue
                erased += int(await redis.xdel(stream, entry_id))
            if len(page) < _PAGE:
                break
            start = "(" + decoded(page[-1][0])
    return ErasureResult(erased, deferred)
