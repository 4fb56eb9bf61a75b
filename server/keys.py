"""Every Redis key the server owns, with its retention, in one place (the engine's drop keys live in
``stock.keys``, the hub's show streams in ``broadcast.keys``).

Keys of one drop carry the drop's hash tag and keys of one show the show's, so a script or a
pipeline over them stays on one Redis Cluster slot (DESIGN §2). The webhook delivery stream and its
de-duplication keys share the hash tag ``{webhooks}`` because one script checks the keys and appends
to the stream atomically; alerts and their de-duplication keys share ``{alerts}`` for the same
reason. Webhook traffic is a few thousand deliveries per second at most, well within one shard.
"""

from __future__ import annotations

import hashlib
from typing import Final

from broadcast import keys as broadcast_keys
from stock import keys as stock_keys

PREFIX: Final = stock_keys.PREFIX


def show_tag(show_id: str) -> str:
    """``ld:{show:<id>}:`` after checking the id as every host input is checked (``InvalidArgument``,
    a 4xx problem at the API), so a bad id never reaches the hub's own check."""
    return broadcast_keys.show_tag(stock_keys.check_name("show id", show_id))


def _drop_base(drop_id: str) -> str:
    """``ld:{drop:<id>}:`` — the drop's own prefix, shared with the engine's keys (same slot)."""
    return stock_keys.drop_keys(drop_id).meta.removesuffix("meta")


# -- shows and drops (catalog, stats, sweeper, host tokens) ---------------------------------------

SHOWS_KEY: Final = f"{PREFIX}:shows"
"""Set of every show id."""
LAUNCHED_KEY: Final = f"{PREFIX}:sweep:launched"
"""Sorted set drop id → launch time (Redis clock): drops every node's sweeper must watch at once."""
HOST_TOKENS_KEY: Final = f"{PREFIX}:host_tokens"
"""Set of sha256 hex digests of host tokens minted by ``livedrop token host`` (never the tokens)."""


def show_info_key(show_id: str) -> str:
    """The show's description (JSON)."""
    return show_tag(show_id) + "info"


def show_drops_key(show_id: str) -> str:
    """The show's run of drops, in order."""
    return show_tag(show_id) + "drops"


def drop_info_key(drop_id: str) -> str:
    """The drop's description (JSON), beside the engine's keys of the drop."""
    return _drop_base(drop_id) + "info"


def sku_key(sku: str) -> str:
    """SKU → the drop currently selling it (webhook lines name SKUs, not drops)."""
    return f"{PREFIX}:sku:{sku}"


def wake_key(tag: str, node_id: str) -> str:
    """A node's wake-up stream for its blocking reads of the streams under hash tag ``tag``: an
    entry there ends the node's XREAD BLOCK at once (a new stream to follow), in the same slot."""
    return f"{PREFIX}:{{{tag}}}:wake:{node_id}"


def launch_key(drop_id: str) -> str:
    """Hash of the audience at a drop's launch (``viewers``, ``at``): the conversion's denominator."""
    return _drop_base(drop_id) + "launch"


# -- run-of-show imports, checkout links and the host journal ------------------------------------

# A previewed import waits this long for the host's confirm: long enough to read a preview of a
# few hundred drops and fix the stock, short enough that a forgotten one does not linger.
IMPORT_TTL_SECONDS = 3600
# The host journal keeps the newest entries of a show (approximate MAXLEN, as for alerts).
JOURNAL_MAXLEN = 10_000


def import_key(show_id: str, import_id: str) -> str:
    """A previewed import (JSON: the proposed drops, the refused rows, the options), then its
    outcome once confirmed; expires after ``IMPORT_TTL_SECONDS``."""
    return show_tag(show_id) + f"import:{import_id}"


def import_lock_key(show_id: str, import_id: str) -> str:
    """Held while one confirm of an import runs, so two clicks create nothing twice."""
    return show_tag(show_id) + f"import:{import_id}:lock"


def journal_key(show_id: str) -> str:
    """Stream of what hosts did to a show through the imports and checkout endpoints (who, as a
    token digest prefix; what; when): the show's audit trail."""
    return show_tag(show_id) + "journal"


def checkout_key(show_id: str) -> str:
    """The show's checkout hand-off settings (JSON, server.checkout.config)."""
    return show_tag(show_id) + "checkout"


# -- webhooks, alerts and reconciliation ----------------------------------------------------------

STREAM = f"{PREFIX}:{{webhooks}}"
"""Every accepted delivery: raw body, the headers that matter, platform, verification result."""
GROUP = "apply"
"""The consumer group whose members apply deliveries to stock."""
DEAD = f"{PREFIX}:{{webhooks}}:dead"
"""Deliveries that could not be applied after several attempts (their fields plus the error)."""
ISSUES = f"{PREFIX}:{{webhooks}}:issues"
"""Things reconciliation must show that belong to no drop: unknown SKUs, events needing a fetch."""
ALERTS = f"{PREFIX}:{{alerts}}"
"""Alerts for the host panel: oversold lines, unmatched holds, dead deliveries."""

# Capped lists: the newest entries are what a host or an operator looks at; older ones are in
# the logs and metrics. MAXLEN is approximate (``~``), which lets Redis trim whole nodes cheaply.
ISSUES_MAXLEN = 10_000
ALERTS_MAXLEN = 10_000
DEAD_MAXLEN = 100_000

# An alert or issue is raised once per subject for this long (a replayed delivery, a report run
# every minute, must not raise it again). A week is longer than any show and its late webhooks.
ONCE_TTL_SECONDS = 7 * 24 * 3600

# Which drop each line of a platform order went to, so that a cancellation that names no lines
# (TikTok Shop, WooCommerce deletions, Standard "order.cancelled" with no lines) can restock each
# one. Kept for 90 days: longer than the cancellation and return windows of the platforms (30
# days is usual), refreshed on every write. The engine's own line records never expire, so a
# later cancellation that does name its lines still applies.
ORDER_TTL_SECONDS = 90 * 24 * 3600

# Keys longer than this are hashed: a delivery key is sender-chosen text.
_MAX_KEY_PART = 200


def _bounded(text: str) -> str:
    if len(text) <= _MAX_KEY_PART:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def seen(delivery_key: str) -> str:
    """The de-duplication key of one delivery key (``delivery_keys`` gives them)."""
    return f"{PREFIX}:{{webhooks}}:seen:{_bounded(delivery_key)}"


def issue_seen(subject: str) -> str:
    """Marks an issue as recorded (one record per subject)."""
    return f"{PREFIX}:{{webhooks}}:issue:{_bounded(subject)}"


def alert_seen(subject: str) -> str:
    """Marks an alert as raised (one alert per subject)."""
    return f"{PREFIX}:{{alerts}}:seen:{_bounded(subject)}"


def order(platform: str, order_id: str) -> str:
    """Hash of one platform order: ``l:<line id>`` → drop id, ``cancelled`` → the cancel event."""
    return f"{PREFIX}:order:{platform}:{order_id}"


def sale_holds(show_id: str) -> str:
    """Hash ``platform|order|line`` → why the hold a sale named could not pay for it."""
    return show_tag(show_id) + "sale_holds"


def report(show_id: str) -> str:
    """The latest reconciliation report of a show (JSON), written by the periodic reconciler."""
    return show_tag(show_id) + "reconciliation"


def reconcile_lock(show_id: str) -> str:
    """Held by the node that reconciles a show in this interval, so N nodes do it once."""
    return show_tag(show_id) + "reconcile_lock"


# -- sales channels (server.platforms.channels) ----------------------------------------------------
# Every key of the push loop shares the hash tag ``{channels}``: its scripts compare a cursor, mark
# dirty SKUs and record acknowledgements atomically on one Cluster slot. The traffic is a few
# calls per channel per flush interval, well within one shard. None carries a TTL: the dirty
# marks and acknowledged values are what make the loop resume after a restart, and they are a
# handful of fields per mapped SKU.

CHANNELS = f"{PREFIX}:{{channels}}"
CHANNEL_MAP = f"{CHANNELS}:map"
"""Hash drop SKU -> JSON of its ids on each channel."""
CHANNEL_CURSOR = f"{CHANNELS}:cursor"
"""Hash drop id -> id of the last ledger entry whose change was marked dirty."""
CHANNEL_STOCK = f"{CHANNELS}:stock"
"""Hash SKU -> "<available> <ms>" as of the last marked ledger entry."""
DEMO_CHANNEL_SKUS = f"{CHANNELS}:demo"
"""Hash SKU -> unit the demo mapped on its stand-in platforms, so its next run forgets them first."""
FETCH_QUEUE = f"{PREFIX}:{{webhooks}}:fetch"
"""Sorted set "<platform>|<order id>" -> ms first queued: thin orders waiting to be read."""
FETCHED = f"{PREFIX}:{{webhooks}}:fetched"
"""Hash "<platform>|<order id>" -> "ok" once read and applied, else why it could not be read."""
# A fetched or unfetchable order is remembered as long as issues are (a report reads both).
FETCHED_TTL_SECONDS = ONCE_TTL_SECONDS


def channel_reverse(channel: str) -> str:
    """Hash channel id (TikTok sku_id, Meta retailer_id…) -> drop SKU, for pulled orders."""
    return f"{CHANNELS}:rev:{channel}"


def channel_dirty(channel: str) -> str:
    """Hash SKU -> "<generation> <first unpushed change ms>": what the channel must be told."""
    return f"{CHANNELS}:dirty:{channel}"


def channel_state(channel: str) -> str:
    """Hash SKU -> JSON of the last value the channel acknowledged, when, the lag, the last error."""
    return f"{CHANNELS}:state:{channel}"


def channel_unapplied(channel: str) -> str:
    """Hash SKU -> units the channel sold (seen by compare-and-swap) not yet applied from its orders."""
    return f"{CHANNELS}:unapplied:{channel}"


def channel_lease(channel: str) -> str:
    """The node pushing ``channel`` now (a token, with a TTL: the lease)."""
    return f"{CHANNELS}:lease:{channel}"


def channel_pull_cursor(channel: str) -> str:
    """Unix seconds up to which ``channel``'s order list has been pulled."""
    return f"{CHANNELS}:pull:{channel}"
