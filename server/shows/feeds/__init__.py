"""Product feeds (Google Merchant Center, Meta catalog, Shopify product CSV) → a run-of-show
import plan. A pure library: the host API and panel call ``parse_feed`` for the preview, and
create drops from the plan once the host confirms. See docs/feeds.md for the rules."""

from server.shows.feeds.errors import FeedError, FileErrorCode
from server.shows.feeds.limits import Limits
from server.shows.feeds.money import Money, PriceError, exponent, parse_price
from server.shows.feeds.options import ImportOptions
from server.shows.feeds.parse import parse_feed
from server.shows.feeds.plan import FeedFormat, ImportPlan, PlannedDrop, PlannedVariant, Refusal, RefusalCode

__all__ = [
    "FeedError",
    "FeedFormat",
    "FileErrorCode",
    "ImportOptions",
    "ImportPlan",
    "Limits",
    "Money",
    "PlannedDrop",
    "PlannedVariant",
    "PriceError",
    "Refusal",
    "RefusalCode",
    "exponent",
    "parse_feed",
    "parse_price",
]
