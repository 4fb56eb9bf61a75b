"""LiveDrop's stock engine: atomic reservations in Redis Lua. Knows nothing of HTTP or sockets."""

from stock.batcher import ReserveBatcher
from stock.engine import StockEngine
from stock.errors import (
    DropConflict,
    HoldNotActive,
    HoldTaken,
    InsufficientStock,
    InvalidArgument,
    NotOwner,
    StockError,
    UnknownDrop,
    UnknownHold,
)
from stock.holdref import HoldRefs
from stock.types import (
    Counters,
    DropConfig,
    DropState,
    HoldState,
    PlatformCancel,
    PlatformSale,
    RejectReason,
    ReserveResult,
)

__all__ = [
    "Counters",
    "DropConfig",
    "DropConflict",
    "DropState",
    "HoldNotActive",
    "HoldRefs",
    "HoldState",
    "HoldTaken",
    "InsufficientStock",
    "InvalidArgument",
    "NotOwner",
    "PlatformCancel",
    "PlatformSale",
    "RejectReason",
    "ReserveBatcher",
    "ReserveResult",
    "StockEngine",
    "StockError",
    "UnknownDrop",
    "UnknownHold",
]
