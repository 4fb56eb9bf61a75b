"""Every Redis key the server owns, in one place (the drop's own stock keys live in ``stock.keys``,
the show's event streams in ``broadcast.keys``).

Keys that belong to one drop carry the drop's hash tag, and keys of one show the show's, so a
script or a pipeline over them stays on one Redis Cluster slot (DESIGN §2).
"""

from __future__ import annotations

from stock import keys as stock_keys


def _drop_base(drop_id: str) -> str:
    """``ld:{drop:<id>}:`` — the drop's own prefix, shared with the engine's keys (same slot)."""
    return stock_keys.drop_keys(drop_id).meta.removesuffix("meta")


def launch_key(drop_id: str) -> str:
    """Hash of the audience at a drop's launch (``viewers``, ``at``): the conversion's denominator."""
    return _drop_base(drop_id) + "launch"
