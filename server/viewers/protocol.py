"""The viewer WebSocket protocol (docs/protocol.md): JSON text frames, each an object with a
``type``. Client frames are one tagged union decoded by one typed decoder; server frames are
encoded once per node and written to every socket of the show."""

from __future__ import annotations

from typing import Annotated, Any, Final, Generic, TypeVar

import msgspec

from server.viewers.limits import TooDeep, check_depth

T = TypeVar("T")

# -- close codes ----------------------------------------------------------------------------
CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001
CLOSE_UNSUPPORTED_DATA: Final = 1003  # a binary frame: the protocol is JSON text frames
CLOSE_POLICY: Final = 1008  # bad token for a show, banned
CLOSE_TOO_BIG: Final = 1009  # frame over MAX_FRAME_BYTES
CLOSE_RESTART: Final = 1012  # node shutting down: reconnect (to another node) and resume
CLOSE_SLOW: Final = 1013  # stayed over its send bound: reconnect and resume ("try again later")
CLOSE_TOKEN_EXPIRED: Final = 4401  # the token's exp passed on an open connection
CLOSE_UNKNOWN_SHOW: Final = 4404

MAX_FRAME_BYTES: Final = 4096

# -- error codes of `error` frames -------------------------------------------------------------
ERR_BAD_JSON: Final = "bad_json"
ERR_BAD_FRAME: Final = "bad_frame"
ERR_UNAUTHENTICATED: Final = "unauthenticated"
ERR_RATE_LIMITED: Final = "rate_limited"
ERR_UNKNOWN_DROP: Final = "unknown_drop"
ERR_UNKNOWN_HOLD: Final = "unknown_hold"
ERR_NOT_OWNER: Final = "not_owner"
ERR_HOLD_NOT_ACTIVE: Final = "hold_not_active"
ERR_UNAVAILABLE: Final = "unavailable"
ERR_UNKNOWN_VARIANT: Final = "unknown_variant"  # a variant the drop does not have (or a drop without variants)
ERR_VARIANT_REQUIRED: Final = "variant_required"  # a drop with variants is reserved by naming one

# -- states of a hold in `reserved.state` -------------------------------------------------------
HOLD_HELD: Final = "held"
HOLD_RELEASED: Final = "released"
HOLD_EXPIRED: Final = "expired"
HOLD_CONFIRMED: Final = "confirmed"

Ref = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
# A hold id: ``<drop>.<n>``, or ``<drop>~<variant>.<n>`` for a variant's hold (stock/keys.py).
HoldId = Annotated[
    str,
    msgspec.Meta(min_length=3, max_length=120, pattern=r"^[A-Za-z0-9_-]+(~[A-Za-z][A-Za-z0-9_-]{0,31})?\.[0-9]+$"),
]
VariantId = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]
Qty = Annotated[int, msgspec.Meta(ge=1, le=100)]


# -- viewer -> server ---------------------------------------------------------------------------
class Hello(msgspec.Struct, tag="hello", forbid_unknown_fields=True):
    """First frame after a reconnect: the last ``seq`` seen and the stream's ``epoch``."""

    resume_from: Annotated[int, msgspec.Meta(ge=0)] | None = None
    epoch: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class Reserve(msgspec.Struct, tag="reserve", forbid_unknown_fields=True):
    """``variant`` names the variant of a drop with variants (required there, refused elsewhere)."""

    ref: Ref
    drop: Id
    qty: Qty = 1
    variant: VariantId | None = None


class Release(msgspec.Struct, tag="release", forbid_unknown_fields=True):
    hold: HoldId
    ref: Ref | None = None


class Waitlist(msgspec.Struct, tag="waitlist", forbid_unknown_fields=True):
    drop: Id
    qty: Qty = 1
    ref: Ref | None = None
    variant: VariantId | None = None


class Ping(msgspec.Struct, tag="ping", forbid_unknown_fields=True):
    ref: Ref | None = None


ClientFrame = Hello | Reserve | Release | Waitlist | Ping
MAX_FRAME_DEPTH: Final = 8
"""Nesting allowed in a client frame (ours are 1 deep); deeper gets a ``bad_json`` error frame."""


class FrameDecoder(Generic[T]):
    """A typed decoder of client frames within ``MAX_FRAME_DEPTH``: a frame nested deeper (a
    4 KiB frame can nest 2,000 levels, past msgspec's recursion limit) raises ``DecodeError``
    like any other bad JSON, so it gets an error frame and never a traceback."""

    def __init__(self, kind: Any) -> None:  # a union of Structs is no ``type[T]`` to mypy
        self._decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(kind)

    def decode(self, raw: bytes) -> T:
        try:
            check_depth(raw, MAX_FRAME_DEPTH)
            return self._decoder.decode(raw)
        except (TooDeep, RecursionError):
            raise msgspec.DecodeError(f"JSON nested deeper than {MAX_FRAME_DEPTH} levels") from None


client_decoder: Final[FrameDecoder[ClientFrame]] = FrameDecoder(ClientFrame)


# -- server -> viewer ---------------------------------------------------------------------------
# Fields about variants are UNSET, so left out of the frame, for a drop without variants: its
# frames stay byte for byte what they were before variants existed.
UNSET: Final = msgspec.UNSET
Unset = msgspec.UnsetType


class StockBody(msgspec.Struct, frozen=True):
    available: int
    held: int
    sold: int
    total: int


class VariantBody(msgspec.Struct, frozen=True):
    """One variant of a drop: what a picker shows (its options, e.g. size and colour), its SKU,
    its own prices when they differ from the drop's, and its own stock."""

    id: str
    sku: str
    options: dict[str, str]
    stock: StockBody
    prices: dict[str, int] | Unset = UNSET


class DropBody(msgspec.Struct, frozen=True):
    """``stock`` of a drop with variants is the sum of theirs; ``limit_per_variant`` is set when
    ``per_customer_limit`` counts in each variant on its own rather than across them."""

    id: str
    sku: str
    title: str
    image_url: str
    prices: dict[str, int]
    state: str
    ends_at: int
    per_customer_limit: int
    stock: StockBody
    variants: list[VariantBody] | Unset = UNSET
    limit_per_variant: bool | Unset = UNSET


class Welcome(msgspec.Struct, tag="welcome"):
    show: str
    title: str
    state: str
    seq: int
    epoch: str
    server_time: int
    viewers: int
    drops: list[DropBody]
    can_reserve: bool
    reset: bool = False


class DropFrame(msgspec.Struct, tag="drop"):
    seq: int
    drop: DropBody


class StockFrame(msgspec.Struct, tag="stock"):
    """A drop's counters (a drop with variants: their sums, and each variant's in ``variants``)."""

    drop: str
    available: int
    held: int
    sold: int
    total: int
    ts: int
    variants: dict[str, StockBody] | Unset = UNSET


class DropEnded(msgspec.Struct, tag="drop_ended"):
    seq: int
    drop: str
    reason: str


class Viewers(msgspec.Struct, tag="viewers"):
    count: int


class ShowFrame(msgspec.Struct, tag="show"):
    """The show started (or changed title/state)."""

    seq: int
    show: str
    title: str
    state: str


class ShowEnded(msgspec.Struct, tag="show_ended"):
    seq: int


class Reserved(msgspec.Struct, tag="reserved"):
    """``hold`` is the hold's id (what ``release``, ``hold_expired`` and ``confirmed`` name);
    ``hold_ref`` the signed reference a cart, a checkout or a platform order must carry to pay for
    it (docs/webhooks.md): the id alone is guessable and never enough. ``state`` is the hold's
    state when the answer was sent: a retried ``ref`` is answered with the same hold, which may
    have been released, expired or paid since (docs/protocol.md, "Idempotency")."""

    ref: str
    drop: str
    hold: str
    qty: int
    expires_at: int
    from_waitlist: bool = False
    hold_ref: str = ""
    state: str = HOLD_HELD
    variant: str | Unset = UNSET
    # A link into the merchant's store that pays for this hold (docs/checkout.md); "" when the show has none.
    checkout_url: str = ""


class Rejected(msgspec.Struct, tag="rejected"):
    ref: str
    drop: str
    reason: str
    variant: str | Unset = UNSET


class Released(msgspec.Struct, tag="released"):
    hold: str
    ref: str | None = None


class HoldExpired(msgspec.Struct, tag="hold_expired"):
    drop: str
    hold: str
    variant: str | Unset = UNSET


class Confirmed(msgspec.Struct, tag="confirmed"):
    drop: str
    hold: str
    qty: int
    variant: str | Unset = UNSET


class Waitlisted(msgspec.Struct, tag="waitlisted"):
    drop: str
    position: int
    ref: str | None = None
    variant: str | Unset = UNSET


class Error(msgspec.Struct, tag="error"):
    code: str
    message: str
    ref: str | None = None


class Pong(msgspec.Struct, tag="pong"):
    server_time: int
    ref: str | None = None


ServerFrame = (
    Welcome
    | DropFrame
    | StockFrame
    | DropEnded
    | Viewers
    | ShowFrame
    | ShowEnded
    | Reserved
    | Rejected
    | Released
    | HoldExpired
    | Confirmed
    | Waitlisted
    | Error
    | Pong
)
server_encoder: Final = msgspec.json.Encoder()
server_decoder: Final = msgspec.json.Decoder(ServerFrame)  # for clients: `livedrop watch`, tests


def encode(frame: ServerFrame) -> bytes:
    return server_encoder.encode(frame)


def describe_decode_error(exc: msgspec.DecodeError | msgspec.ValidationError) -> tuple[str, str]:
    """(code, message) of an error frame for a client frame that did not decode."""
    if isinstance(exc, msgspec.ValidationError):
        return ERR_BAD_FRAME, str(exc)
    return ERR_BAD_JSON, str(exc)
