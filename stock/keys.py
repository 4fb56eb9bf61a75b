"""Key names, id rules and retention: the one place that knows how stock lives in Redis.

Every key of a drop carries the hash tag ``{drop:<id>}`` so that each script touches a single
Redis Cluster slot (DESIGN §2). Ids are checked here, before they reach a key or a script,
because an id with ``{``, ``}``, ``|`` or ``#`` in it would silently change which slot or which
record a script works on.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from stock.errors import InvalidArgument

PREFIX = "ld"

# Ids of drops and shows end up inside hash tags and hold ids (``<drop>.<n>``): no dots.
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Customer, request and order ids are opaque ids chosen by the integrator (DESIGN §10): no
# separators we use ourselves ('|', '#', ','), no spaces, nothing that looks like an e-mail.
_OPAQUE_RE = re.compile(r"[A-Za-z0-9_.:/+=-]{1,128}")
# A variant's name starts with a letter, so that ``<drop>~<variant>.<n>`` never reads two ways.
_VARIANT_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
_HOLD_RE = re.compile(r"([A-Za-z0-9_-]{1,64})(?:~([A-Za-z][A-Za-z0-9_-]{0,31}))?\.([0-9]{1,18})")

# Retention. None of the drop's keys carries a TTL: request, hold and order-line records are
# what make retries idempotent, and a retry may come hours later (Shopify retries over four
# hours, a mobile client after a night offline). A TTL would open a window in which a retry
# applies twice, so records live as long as the drop; deleting a finished drop's keys is an
# operator's decision (archive the ledger first), never an expiry.
REQUEST_TTL_SECONDS: int | None = None
# ...except rejections. A rejected reservation changed nothing, so once it is forgotten a retry is
# simply a new attempt, which is safe; kept forever, every `sold_out` of a 10,000-viewer burst
# would stay in Redis for the drop's life. Ten minutes covers a client's retries after a dropped
# connection (seconds to a few minutes) with room to spare. reserve.lua keeps a rejection between
# this and twice this (two generations that take turns).
REJECT_TTL_SECONDS = 600


class DropKeys(NamedTuple):
    """The twelve keys of one drop, in the order every drop script expects them as KEYS."""

    meta: str
    holds: str
    expiry: str
    requests: str
    customers: str
    orders: str
    waitlist: str
    waitqty: str
    ledger: str
    orderrefs: str
    rejects0: str
    rejects1: str


def check_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid drop/show id, else raise InvalidArgument."""
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise InvalidArgument(f"{kind} must be 1-64 characters of A-Z a-z 0-9 _ -, got {value!r:.80}")
    return value


def check_opaque(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid opaque id (customer, request, order, line)."""
    if not isinstance(value, str) or not _OPAQUE_RE.fullmatch(value):
        raise InvalidArgument(f"{kind} must be 1-128 characters of A-Z a-z 0-9 _ . : / + = -, got {value!r:.80}")
    return value


def check_variant(value: str) -> str:
    """Return ``value`` if it is a valid variant name ('' = the drop itself, no variant)."""
    if value == "":
        return value
    if not isinstance(value, str) or not _VARIANT_RE.fullmatch(value):
        raise InvalidArgument(f"variant must be 1-32 characters of A-Z a-z 0-9 _ -, from a letter, got {value!r:.80}")
    return value


def hold_place(hold_id: str) -> tuple[str, str]:
    """(drop, variant) of a hold id: ``<drop>.<n>``, or ``<drop>~<variant>.<n>`` for a variant's
    hold (variant '' for the former)."""
    match = _HOLD_RE.fullmatch(hold_id) if isinstance(hold_id, str) else None
    if match is None:
        raise InvalidArgument(f"not a hold id: {hold_id!r:.80}")
    return match.group(1), match.group(2) or ""


def drop_of_hold(hold_id: str) -> str:
    """The drop a hold id belongs to (a variant's hold belongs to the variant's drop)."""
    return hold_place(hold_id)[0]


def unit_id(drop_id: str, variant: str = "") -> str:
    """What a drop's or a variant's meta calls itself, and its holds' ids start with."""
    return f"{drop_id}~{variant}" if variant else drop_id


@lru_cache(maxsize=4096)
def drop_keys(drop_id: str, variant: str = "") -> DropKeys:
    """All keys of a drop, or of one of its variants: a variant is stocked like a drop of its
    own (counters, holds, waitlist, ledger…) under the drop's hash tag, so that a script on a
    variant stays one Cluster slot; only the per-customer counts are the drop's, shared
    (stock/lua/lib/drop.lua: `cprefix`). Cached: built once, not once per reservation."""
    check_name("drop id", drop_id)
    check_variant(variant)
    base = f"{PREFIX}:{{drop:{drop_id}}}:"
    if not variant:
        return DropKeys(*(base + name for name in DropKeys._fields))
    own = DropKeys(*(f"{base}v:{variant}:{name}" for name in DropKeys._fields))
    return own._replace(customers=base + "customers")


def variants_key(drop_id: str) -> str:
    """Hash of a drop's variants: variant -> msgpack {sku, limit} (written by ``define``)."""
    check_name("drop id", drop_id)
    return f"{PREFIX}:{{drop:{drop_id}}}:variants"


def show_tag(show_id: str) -> str:
    """Prefix of every key of a show (event stream, viewer counts): one Cluster slot per show."""
    check_name("show id", show_id)
    return f"{PREFIX}:{{show:{show_id}}}:"


def drop_meta_pattern() -> str:
    """SCAN pattern that finds every drop's meta hash (for sweeps over all drops and erasure)."""
    return f"{PREFIX}:{{drop:*}}:meta"


def drop_id_of_meta_key(key: str) -> str:
    """Inverse of ``drop_keys(d).meta``."""
    head = f"{PREFIX}:{{drop:"
    return key[len(head) : -len("}:meta")]
