"""Hold references: what a buyer's client carries to name its hold (DESIGN §13).

A hold id (``<drop>.<n>``) is a sequence number: anyone can guess the next one, so it must never
be what an order or a checkout names a hold by. What viewers get, and what carts, checkouts and
platform orders carry, is a *reference*::

    <drop>.<n>.<nonce>.<mac>        e.g.  d1.7.3f0c…(32 hex).Yq1…(22 base64url)

* ``nonce``: 128 bits drawn for this hold when it is created: by ``StockEngine.reserve_many`` from
  ``os.urandom`` for a reservation; for a waitlist hand-out, made inside a script, SHA-1 of the
  drop's secret salt, the hold id, its customer and Redis' clock (``lib/drop.lua``; the salt is 128
  random bits from ``secrets``, drawn in Python when the drop is defined and never leaving Redis).
  It is stored in the hold record, so it binds the reference to this hold *and its viewer*: a
  reference matches one hold, created once, for one customer, even if a hold id is ever reissued
  (a drop defined again after its keys were deleted, a Redis that lost its last writes).
* ``mac``: HMAC-SHA256 over (drop, hold id, nonce), 128 bits, with a key derived from the server's
  viewer secret under its own label, so every node and worker sharing that secret can verify it and
  nobody without it can make one.

Verification is two checks, and a reference must pass both: the MAC here, in constant time, before
anything reaches Redis; then the script that uses the hold compares the nonce with the stored one.
A reference that fails either is "no hold" — never another hold.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import NamedTuple

_LABEL = b"livedrop hold reference v1"
_REF_RE = re.compile(
    r"([A-Za-z0-9_-]{1,64})((?:~[A-Za-z][A-Za-z0-9_-]{0,31})?)\.([0-9]{1,18})\.([0-9a-f]{32})\.([A-Za-z0-9_-]{22})"
)
MAX_REF_LENGTH = 64 + 33 + 1 + 18 + 1 + 32 + 1 + 22
"""Longest possible reference (a checkout or order field must hold this many characters)."""

# The key used when a caller gives none: one per process, so two engines of one process (the
# app's and the webhook consumer's) agree. A deployment of several nodes or workers must pass a
# key derived from the shared viewer secret instead (server/app.py does).
_PROCESS_SECRET = secrets.token_bytes(32)


class HoldRef(NamedTuple):
    """A verified reference: the hold it names and the nonce the hold must have."""

    drop_id: str
    hold_id: str
    nonce: str


class HoldRefs:
    """Mints and verifies hold references with a key derived from ``secret``."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._key = hmac.new(_PROCESS_SECRET if not secret else secret, _LABEL, hashlib.sha256).digest()

    def _mac(self, drop_id: str, hold_id: str, nonce: str) -> str:
        message = f"{drop_id}\0{hold_id}\0{nonce}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def mint(self, drop_id: str, hold_id: str, nonce: str) -> str:
        """The reference of a hold; "" when the hold has no nonce (made before references existed)."""
        if not nonce:
            return ""
        return f"{hold_id}.{nonce}.{self._mac(drop_id, hold_id, nonce)}"

    def verify(self, ref: object) -> HoldRef | None:
        """The hold a reference names, or None if it is malformed or its MAC is wrong. The caller
        must still have the script compare ``nonce`` with the hold's (``StockEngine`` does)."""
        if not isinstance(ref, str) or len(ref) > MAX_REF_LENGTH:
            return None
        match = _REF_RE.fullmatch(ref)
        if match is None:
            return None
        drop_id, variant, seq, nonce, mac = match.groups()
        hold_id = f"{drop_id}{variant}.{seq}"
        if not hmac.compare_digest(mac, self._mac(drop_id, hold_id, nonce)):
            return None
        return HoldRef(drop_id, hold_id, nonce)
