"""One exception tree for the stock domain; the server maps each to an error frame or a
problem response. Each error means nothing was changed by the call that raised it."""

from __future__ import annotations


class StockError(Exception):
    """Base of every error the stock engine raises on purpose."""

    code = "stock_error"


class InvalidArgument(StockError, ValueError):
    """An argument is malformed (qty ≤ 0, an id too long or with forbidden characters)."""

    code = "invalid"


class UnknownDrop(StockError, LookupError):
    """No drop with that id has been defined."""

    code = "unknown_drop"


class UnknownHold(StockError, LookupError):
    """No hold with that id exists in its drop."""

    code = "unknown_hold"


class DropConflict(StockError):
    """A drop with that id exists with other settings."""

    code = "drop_conflict"


class HoldNotActive(StockError):
    """The hold is no longer live: it expired, was released, or (for release) was confirmed."""

    code = "hold_not_active"

    def __init__(self, hold_id: str, state: str) -> None:
        super().__init__(f"hold {hold_id} is {state}")
        self.hold_id = hold_id
        self.state = state


class HoldTaken(StockError):
    """The hold was confirmed with another order reference: a second payment for one hold is a
    conflict for a person to sort out, never a duplicate of the first."""

    code = "hold_taken"

    def __init__(self, hold_id: str) -> None:
        super().__init__(f"hold {hold_id} is confirmed with another order")
        self.hold_id = hold_id


class NotOwner(StockError):
    """The hold belongs to another customer."""

    code = "not_owner"


class InsufficientStock(StockError):
    """An adjustment would take stock below what is already held or sold."""

    code = "insufficient_stock"
