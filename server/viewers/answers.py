"""Who gets the answer to a viewer's request (docs/protocol.md, "Who gets which frame").

A shopper often has a show open in two tabs, or on a phone and a laptop: a hold taken in one
must show in the other, or the other still offers Buy. So an answer that carries the request's
``ref`` goes to every connection of that viewer on the node (``Hub.send_private``), and the
node's ledger reader tells its connections on other nodes of a granted hold or a release
(``server.shows.echoes``). Only what concerns one socket stays there: its ``pong`` (a clock
sample of that socket), its ``welcome`` and the errors about a frame that had no readable ``ref``.

The ``ref`` of a frame that fails validation is read from the raw frame when it can be
(``ref_of``), so a client matches the error to its request instead of retrying blindly.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from typing import Any, Final

import msgspec
from redis.exceptions import RedisError

from broadcast.hub import Connection, Hub
from broadcast.transport import Message
from server.viewers import protocol as p
from stock import StockEngine, UnknownHold
from stock.types import Hold, HoldState

_REF = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class _RefOnly(msgspec.Struct):
    """Any JSON object: only its ``ref`` is read, whatever else it has or lacks."""

    ref: Any = None


_ref_decoder: Final = msgspec.json.Decoder(_RefOnly)


def ref_of(raw: bytes) -> str | None:
    """The ``ref`` of a client frame that did not validate, if it has a well-formed one. Call it
    only on a frame within the depth limit (``protocol.client_decoder`` checked it): it decodes
    once more."""
    try:
        ref = _ref_decoder.decode(raw).ref
    except (msgspec.DecodeError, RecursionError):
        return None
    return ref if isinstance(ref, str) and _REF.fullmatch(ref) else None


def to_every_tab(frame: msgspec.Struct) -> bool:
    """Whether ``frame`` goes to every connection of the viewer (not only the asking one): an
    answer to a request, which carries its ``ref``; never a ``pong``."""
    return getattr(frame, "ref", None) is not None and not isinstance(frame, p.Pong)


def answer(hub: Hub, viewer: Connection, frame: msgspec.Struct) -> None:
    """Send ``frame``, an answer to what ``viewer`` sent, to whoever must get it."""
    message = Message(p.server_encoder.encode(frame))
    if viewer.customer is not None and to_every_tab(frame) and viewer in hub.by_customer.get(viewer.customer, ()):
        hub.send_private(viewer.customer, message)
    else:
        hub.deliver(viewer, message)


class Originated:
    """What this node asked of the stock engine on behalf of its own viewers, for a while: its
    ledger reader must not tell the same connections twice (they got the answer directly).

    Keys are marked *before* the engine is called, since the ledger entry may be read before the
    call's answer is. Kept ``keep`` seconds (a ledger read lags by milliseconds, a backlog by a
    few seconds) and at most ``limit`` keys: an entry forgotten early only costs a repeated frame,
    which clients drop (the same hold, the same state)."""

    def __init__(self, keep: float = 60.0, limit: int = 100_000) -> None:
        self.keep = keep
        self.limit = limit
        self._keys: OrderedDict[str, float] = OrderedDict()

    def mark(self, key: str) -> None:
        now = time.monotonic()
        self._keys[key] = now
        self._keys.move_to_end(key)
        while self._keys and (len(self._keys) > self.limit or next(iter(self._keys.values())) < now - self.keep):
            self._keys.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._keys


def reserve_key(request: str) -> str:
    """What ``Originated`` remembers of a reservation this node sent (its request id)."""
    return f"reserve:{request}"


def release_key(hold_id: str) -> str:
    """What ``Originated`` remembers of a release this node sent (its hold)."""
    return f"release:{hold_id}"


def request_id(secret: bytes, customer: str, ref: str) -> str:
    """A reservation's request id: viewer-scoped (two viewers may both say ref "1"), without
    the customer id in it (ids in Redis records stay pseudonymous, DESIGN §10)."""
    digest = hashlib.blake2b(customer.encode(), key=secret[:64], digest_size=12).hexdigest()
    return f"{digest}:{ref}"


def ref_of_request(secret: bytes, customer: str, request: str) -> str | None:
    """The viewer's ``ref`` behind a request id that ``request_id`` made for ``customer``, or
    None for a request id made otherwise (by the host API, a test, another customer)."""
    prefix = request_id(secret, customer, "")
    ref = request[len(prefix) :] if request.startswith(prefix) else ""
    return ref if _REF.fullmatch(ref) else None


def state_of(hold: Hold, now_ms: int) -> str:
    """What ``reserved.state`` says of ``hold`` at ``now_ms`` (Redis' clock): a hold past its
    deadline is expired, even before the sweeper has recorded it (nothing can pay for it)."""
    if hold.state is HoldState.HELD and hold.expires_at_ms <= now_ms:
        return p.HOLD_EXPIRED
    return hold.state.value


async def current_state(engine: StockEngine, hold_id: str, expires_at_ms: int, now_ms: int) -> str:
    """The state of a hold a retried ``ref`` names, read now (one read, on retries only). If
    Redis cannot say, the deadline does."""
    try:
        return state_of(await engine.hold(hold_id), now_ms)
    except (RedisError, OSError, UnknownHold):
        return p.HOLD_EXPIRED if expires_at_ms <= now_ms else p.HOLD_HELD
