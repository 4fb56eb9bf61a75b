"""Answers that reach a viewer's connections on other nodes, through the drop's ledger.

A reservation granted or a hold released on one node is an entry in the drop's ledger, which
every node serving the show already reads (``server.shows.tails``): the same path that tells
every tab of a hold that expired or was confirmed (``server.shows.known.fold_ledger``). Here a
node turns such an entry into the ``reserved`` or ``released`` frame its own connections of
that viewer did not get — unless the request came from this node, whose viewer's tabs were
answered directly (``server.viewers.answers.Originated``).

A ``reserved`` needs the hold's signed reference, whose nonce the hot path's ledger entry leaves
out (stock/lua/lib/drop.lua): it is read from the hold, one read per echoed batch, and only when
the viewer has a connection here. Rejections and errors change nothing in Redis and reach only
the answering node's connections (docs/protocol.md, "Who gets which frame").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from redis.exceptions import RedisError

from broadcast.hub import Hub
from broadcast.transport import Message
from server.viewers import protocol as p
from server.viewers.answers import Originated, release_key, reserve_key, state_of
from stock import StockEngine, UnknownHold
from stock.keys import hold_place
from stock.ledger import PACKED_OP, decode_entries
from stock.types import LedgerEntry

logger = logging.getLogger("livedrop.echoes")

RefOfRequest = Callable[[str, str], str | None]  # (customer, request id) -> the viewer's ref
# (show, drop, variant, qty, hold id, hold ref) -> the hold's checkout link (server.checkout)
CheckoutLink = Callable[[str, str, str, int, str, str], Awaitable[str]]


class Echoes:
    def __init__(
        self,
        hub: Hub,
        engine: StockEngine,
        ref_of_request: RefOfRequest,
        now_ms: Callable[[], int],
        checkout_link: Callable[[], CheckoutLink | None] = lambda: None,
    ) -> None:
        self.hub = hub
        self.checkout_link = checkout_link  # read when used: the app sets the node's after start
        self.now_ms = now_ms  # Redis' clock (server.shows.clock)
        self.engine = engine
        self.ref_of_request = ref_of_request
        self.originated = Originated()
        self._tasks: set[asyncio.Task[None]] = set()

    def entry(self, show_id: str, entry_id: Any, raw: Mapping[Any, Any], entry: LedgerEntry) -> None:
        """Look at one ledger entry of a drop the node follows (already folded)."""
        if entry.op == "release":
            customer, hold = entry.fields.get("cust", ""), entry.fields.get("hold", "")
            if customer in self.hub.by_customer and release_key(hold) not in self.originated:
                self._send(customer, p.Released(hold=hold, ref=None))
        elif entry.op in (PACKED_OP, "reserve"):
            if entry.op == PACKED_OP:
                # A burst's batch on every node: look at its customers before expanding it.
                parts = entry.fields.get("b", "").split(",")
                if not any(self._wanted(c, r) for c, r in zip(parts[0::3], parts[2::3], strict=False)):
                    return
                grants = decode_entries(entry_id, raw)
            else:
                grants = [entry]
            wanted = [g for g in grants if self._wanted(g.fields.get("cust", ""), g.fields.get("req", ""))]
            if wanted:
                task = asyncio.get_running_loop().create_task(self._reserved(show_id, wanted), name="echo:reserved")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _wanted(self, customer: str, request: str) -> bool:
        """Whether a grant must be told here: its viewer has a connection on this node, and the
        request did not come through this node (whose connections were answered directly)."""
        return customer in self.hub.by_customer and reserve_key(request) not in self.originated

    async def _reserved(self, show_id: str, grants: list[LedgerEntry]) -> None:
        for grant in grants:
            f = grant.fields
            customer, hold_id = f["cust"], f["hold"]
            ref = self.ref_of_request(customer, f.get("req", ""))
            if ref is None:
                continue  # not a viewer's reservation (the host API, a script)
            try:
                hold = await self.engine.hold(hold_id)
            except (RedisError, UnknownHold, OSError) as exc:
                logger.warning("hold %s not read for its other tabs: %s", hold_id, exc)
                continue
            variant = hold_place(hold_id)[1]
            hold_ref = self.engine.hold_ref(hold.drop_id, hold_id, hold.nonce)
            link, url = self.checkout_link(), ""
            if link is not None:
                try:
                    url = await link(show_id, hold.drop_id, variant, hold.qty, hold_id, hold_ref)
                except (RedisError, OSError) as exc:  # the hold still shows; the cart gets its link later
                    logger.warning("no checkout link for hold %s on its other tabs: %s", hold_id, exc)
            frame = p.Reserved(
                ref=ref,
                drop=hold.drop_id,
                hold=hold_id,
                qty=hold.qty,
                expires_at=hold.expires_at_ms,
                hold_ref=hold_ref,
                state=state_of(hold, self.now_ms()),
                variant=variant or p.UNSET,
                checkout_url=url,
            )
            self._send(customer, frame)

    def _send(self, customer: str, frame: p.Reserved | p.Released) -> None:
        self.hub.send_private(customer, Message(p.server_encoder.encode(frame)))

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except asyncio.CancelledError:
                pass
