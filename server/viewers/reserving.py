"""A viewer's ``reserve`` from its frame to its answer, with the least work per request (issue 17).

A reservation over WebSocket costs the node far more than it costs Redis (docs/benchmarks.md), so
what can be done once is done once: the viewer-scoped part of a request id is computed once per
customer, not once per request; a drop the node knows to be sold out is answered here
(``server.shows.soldout``) without a Redis round trip; the rest joins the drop's next batch
(``stock.batcher``), which validates each request once.
"""

from __future__ import annotations

import hashlib

from server.shows.known import KnownShow
from server.shows.soldout import SoldOut
from stock import ReserveBatcher
from stock.types import ReserveResult

# Digests kept per process: a flash sale's buyers, many times over (about 100 bytes each).
DIGESTS = 100_000


class RequestIds:
    """Request ids of viewers' reservations: viewer-scoped (two viewers may both say ref "1"),
    without the customer id in them (ids in Redis records stay pseudonymous, DESIGN §10). Every
    node and worker with the same secret gives the same id, so a retry through another node is
    still a retry."""

    __slots__ = ("_digests", "_key")

    def __init__(self, secret: bytes) -> None:
        self._key = secret[:64]
        self._digests: dict[str, str] = {}

    def __call__(self, customer: str, ref: str) -> str:
        digest = self._digests.get(customer)
        if digest is None:
            if len(self._digests) >= DIGESTS:
                self._digests.clear()  # cheaper than an LRU, and a miss costs one hash
            digest = hashlib.blake2b(customer.encode(), key=self._key, digest_size=12).hexdigest()
            self._digests[customer] = digest
        return f"{digest}:{ref}"


class Reserving:
    """What a node's viewer endpoint calls for a ``reserve`` frame."""

    def __init__(self, batcher: ReserveBatcher, soldout: SoldOut, shows: dict[str, KnownShow], secret: bytes) -> None:
        self.batcher = batcher
        self.soldout = soldout
        self.shows = shows
        self.request_id = RequestIds(secret)

    async def reserve(
        self, show_id: str, drop_id: str, customer: str, qty: int, request_id: str, variant: str = ""
    ) -> ReserveResult:
        """The engine's answer (``ReserveBatcher.reserve``'s contract and errors), or the node's own
        ``sold_out`` when the drop is provably sold out (never for a ``variant``: it always asks
        Redis). ``request_id`` comes from ``self.request_id``."""
        show = self.shows.get(show_id)
        d = show.drops.get(drop_id) if show is not None else None
        if d is not None:
            answer = self.soldout.answer(d, request_id, variant)
            if answer is not None:
                return answer
        return await self.batcher.reserve(drop_id, customer, qty, request_id, variant)
