"""Short-lived signed viewer tokens: ``<payload>.<signature>``, both base64url, the payload a
JSON object {show, viewer, exp}, the signature HMAC-SHA256 with the node's viewer secret.

A viewer without a token may watch; reserving needs one, because the token is what says which
customer a hold belongs to. The integrator's backend mints tokens (``POST /api/.../tokens``
or ``livedrop token viewer``) for its logged-in users; viewer ids are opaque (DESIGN §10).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import msgspec

from stock.errors import InvalidArgument
from stock.keys import check_opaque


class ViewerClaims(msgspec.Struct, frozen=True, omit_defaults=True):
    """``name`` is the display name in the chat (set by the integrator); ``role`` is ``moderator``
    for a token a host minted for a chat moderator of the show, else empty. Both are left out of
    the payload when empty, so tokens without them are the same bytes as before."""

    show: str
    viewer: str
    exp: int
    name: str = ""
    role: str = ""


class BadToken(Exception):
    """The token is malformed, forged, expired or for another show."""


class ExpiredToken(BadToken):
    """A genuine token past its ``exp``: the integrator's backend mints a fresh one."""


class ForbiddenToken(BadToken):
    """A genuine token that does not open this show: minted for another one, or naming a viewer
    id LiveDrop refuses. A new token from the same code would be refused the same way."""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ViewerClaims)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint(
    secret: bytes,
    show_id: str,
    viewer_id: str,
    ttl: float = 3600,
    now: float | None = None,
    *,
    name: str = "",
    role: str = "",
) -> str:
    """A token for ``viewer_id`` in ``show_id``; raises InvalidArgument for an id the stock engine
    would refuse (1-128 of A-Z a-z 0-9 _ . : / + = -), so no token names one."""
    check_opaque("viewer id", viewer_id)
    claims = ViewerClaims(show_id, viewer_id, int((time.time() if now is None else now) + ttl), name=name, role=role)
    payload = _b64(_encoder.encode(claims))
    signature = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}"


def verify(secret: bytes, token: str, show_id: str, now: float | None = None) -> ViewerClaims:
    """The claims of a valid token for ``show_id``; raises BadToken otherwise."""
    payload, _, signature = token.partition(".")
    if not payload or not signature or len(token) > 1024:
        raise BadToken("malformed token")
    expected = hmac.new(secret, payload.encode(), hashlib.sha256).digest()
    try:
        given = _unb64(signature)
        claims = _decoder.decode(_unb64(payload))
    except (ValueError, msgspec.DecodeError) as exc:
        raise BadToken("malformed token") from exc
    if not hmac.compare_digest(expected, given):
        raise BadToken("bad signature")
    if claims.exp < (time.time() if now is None else now):
        raise ExpiredToken("expired token")
    if claims.show != show_id:
        raise ForbiddenToken("token is for another show")
    # Integrators mint tokens with their own code too: an id the stock engine does not accept
    # (``a@b``) is refused here, at the edge, rather than at the first reservation.
    try:
        check_opaque("viewer id", claims.viewer)
    except InvalidArgument as exc:
        raise ForbiddenToken("token names an invalid viewer id") from exc
    return claims
