"""What the host decides for one import, beside the file itself."""

from __future__ import annotations

import datetime

import msgspec

from server.shows.feeds.limits import MAX_STOCK, Limits
from server.shows.feeds.plan import FeedFormat


class ImportOptions(msgspec.Struct, frozen=True, kw_only=True):
    """``currency``: the shop's currency, needed for Shopify CSV (its prices carry none).
    ``default_stock``: starting stock for variants whose feed row gives no quantity.
    ``ignore_feed_stock``: use ``default_stock`` even where the feed has a quantity.
    ``format``: skip sniffing (the file must still be XML for an XML format, text otherwise).
    ``now``: the clock for ``sale_price_effective_date`` (tests pass one; default: UTC now)."""

    currency: str | None = None
    default_stock: int | None = None
    ignore_feed_stock: bool = False
    format: FeedFormat | None = None
    now: datetime.datetime | None = None
    limits: Limits = msgspec.field(default_factory=Limits)

    def __post_init__(self) -> None:
        if self.default_stock is not None and not 0 <= self.default_stock <= MAX_STOCK:
            raise ValueError(f"default_stock must be 0..{MAX_STOCK}")
        if self.now is not None and self.now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
