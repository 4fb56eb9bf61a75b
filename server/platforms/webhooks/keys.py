"""Redis key names of webhook ingestion, alerts and reconciliation, with their retention.

The delivery stream and its de-duplication keys share the hash tag ``{webhooks}`` because one
script checks the keys and appends to the stream atomically (Redis Cluster runs a script on one
slot); alerts and their de-duplication keys share ``{alerts}`` for the same reason. Webhook traffic
is a few thousand deliveries per second at most, well within one shard.
"""

from __future__ import annotations

import hashlib

from stock import keys as stock_keys

PREFIX = stock_keys.PREFIX

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
    return stock_keys.show_tag(show_id) + "sale_holds"


def report(show_id: str) -> str:
    """The latest reconciliation report of a show (JSON), written by the periodic reconciler."""
    return stock_keys.show_tag(show_id) + "reconciliation"


def reconcile_lock(show_id: str) -> str:
    """Held by the node that reconciles a show in this interval, so N nodes do it once."""
    return stock_keys.show_tag(show_id) + "reconcile_lock"
