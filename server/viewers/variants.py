"""Which variant a viewer's ``reserve`` or ``waitlist`` names, checked against the node's snapshot
of the show (no Redis): a drop with variants is sold by naming one, a drop without variants
is sold as before and names none (docs/protocol.md, "Drops with variants")."""

from __future__ import annotations

from server.shows.node import ShowNode
from server.viewers import protocol as p
from stock import InvalidArgument, keys


def drop_of_hold(hold_id: str) -> str:
    """The drop a hold id names ('' for an id the engine would refuse), so that a viewer's
    ``release`` of ``<drop>~<variant>.<n>`` is checked against the show's drops like any other."""
    try:
        return keys.drop_of_hold(hold_id)
    except InvalidArgument:
        return ""


def variant_error(live: ShowNode, show_id: str, drop_id: str, variant: str | None, ref: str | None) -> p.Error | None:
    """The error frame for a variant the drop cannot sell, or None when the request may go on.
    Call it once the drop is known to be in the show."""
    show = live.shows.get(show_id)
    known = show.drops.get(drop_id) if show else None
    if known is None:
        return None  # the caller checked the drop; the engine answers for anything else
    ids = [v.id for v in known.info.variants]
    if variant is None:
        if ids:
            return p.Error(
                code=p.ERR_VARIANT_REQUIRED,
                message=f"drop {drop_id} has variants: name one of {', '.join(ids)}",
                ref=ref,
            )
        return None
    if variant not in ids:
        return p.Error(code=p.ERR_UNKNOWN_VARIANT, message=f"drop {drop_id} has no variant {variant}", ref=ref)
    return None
