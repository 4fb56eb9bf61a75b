"""Prometheus metrics of a node. Names follow Prometheus conventions (``_total``, ``_seconds``);
``docs/operations.md`` says what to alert on.

A node started with ``serve --workers N`` is N processes behind one port, and a scrape reaches
whichever of them accepts it. With ``PROMETHEUS_MULTIPROC_DIR`` set (the CLI sets it for
N > 1) every process writes its samples to files there and ``/metrics`` answers with the sum
over all of them (prometheus_client's multiprocess mode); otherwise each process's own registry.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

if TYPE_CHECKING:
    from broadcast.hub import Hub


class Metrics:
    """One registry per app instance, so tests can run several apps in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.reserve_seconds = Histogram(
            "livedrop_reserve_seconds",
            "Time from a reserve request to its answer.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.reservations = Counter(
            "livedrop_reservations_total", "Reserve answers by outcome.", ["outcome"], registry=r
        )
        self.holds_expired = Counter(
            "livedrop_holds_expired_total", "Holds expired by this node's sweeper.", registry=r
        )
        self.redis_errors = Counter(
            "livedrop_redis_errors_total", "Redis calls that failed, by where.", ["where"], registry=r
        )
        self.sweeps = Counter("livedrop_sweeps_total", "Sweep calls made by this node.", registry=r)
        self.viewer_connections = Gauge(
            "livedrop_viewer_connections",
            "Viewer WebSockets open on this node (all its processes).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.viewer_send_path = Counter(
            "livedrop_viewer_send_path",
            "Viewer connections by send path: sansio (frames written straight to uvicorn's "
            "transport) or asgi (the portable fallback, slower).",
            ["path"],
            registry=r,
        )
        self.viewer_frames_limited = Counter(
            "livedrop_viewer_frames_limited",
            "Viewer frames refused by a per-connection rate limit (kind: any, hello, release), "
            "each answered with a rate_limited error frame.",
            ["kind"],
            registry=r,
        )
        self.viewer_refused = Counter(
            "livedrop_viewer_refused",
            "Viewer WebSocket upgrades refused in the handshake, by the problem's code (invalid_token, "
            "token_expired, forbidden_token, unknown_show, unavailable), and connections closed "
            "because their token expired (closed_token_expired).",
            ["code"],
            registry=r,
        )
        self.host_connections = Gauge(
            "livedrop_host_connections",
            "Host panel WebSockets open on this node (all its processes).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.drops_swept = Gauge(
            "livedrop_drops_swept", "Drops this node's sweeper watches.", registry=r, multiprocess_mode="livemax"
        )
        # Platform webhooks (docs/webhooks.md). outcome: accepted, duplicate, ping, handshake,
        # disabled, unavailable, misconfigured, or the rejection code (bad_signature, ...).
        self.webhooks = Counter(
            "livedrop_webhooks_total",
            "Webhook deliveries by platform and outcome.",
            ["platform", "outcome"],
            registry=r,
        )
        self.webhook_seconds = Histogram(
            "livedrop_webhook_seconds",
            "Time from a webhook request to its answer (verify + record).",
            ["platform"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.webhook_lines = Counter(
            "livedrop_webhook_lines_total",
            "Order lines applied from webhooks, by platform and outcome (sold, oversold, unknown_sku...).",
            ["platform", "outcome"],
            registry=r,
        )
        self.webhook_issues = Counter(
            "livedrop_webhook_issues_total",
            "Issues recorded for the reconciliation report, by kind (unknown_sku, bad_qty, sale_drop_not_live...).",
            ["kind"],
            registry=r,
        )
        self.webhook_applied = Counter(
            "livedrop_webhook_applied_total", "Recorded deliveries applied by this node.", registry=r
        )
        self.webhook_claimed = Counter(
            "livedrop_webhook_claimed_total", "Deliveries taken over from a consumer presumed dead.", registry=r
        )
        self.webhook_pending = Gauge(
            "livedrop_webhook_pending",
            "Deliveries read by a consumer and not yet applied (all nodes).",
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.alerts = Counter(
            "livedrop_alerts_total", "Alerts raised for the host panel, by kind.", ["kind"], registry=r
        )
        # Sales channels (docs/channels.md): stock pushes and pulled orders.
        self.channel_calls = Counter(
            "livedrop_channel_calls_total",
            "Stock push calls to a sales channel, by outcome (ok, error, throttled).",
            ["channel", "outcome"],
            registry=r,
        )
        self.channel_items = Counter(
            "livedrop_channel_items_total",
            "SKU values in stock pushes, by outcome (ok, stale, retry, refused).",
            ["channel", "outcome"],
            registry=r,
        )
        self.channel_throttles = Counter(
            "livedrop_channel_throttles_total",
            "Pushes a channel throttled (429, THROTTLED, 80014).",
            ["channel"],
            registry=r,
        )
        self.channel_errors = Counter(
            "livedrop_channel_errors_total", "Failed pushes by channel and error code.", ["channel", "code"], registry=r
        )
        self.channel_lag = Histogram(
            "livedrop_channel_lag_seconds",
            "From a stock change to the channel acknowledging the value that includes it.",
            ["channel"],
            buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
            registry=r,
        )
        self.channel_orders = Counter(
            "livedrop_channel_orders_pulled_total",
            "Orders read back from a channel's order API, by outcome (applied, not_found, failed).",
            ["channel", "outcome"],
            registry=r,
        )
        # The hub's own plain counters (it knows nothing of Prometheus), copied in by HubExport.
        hub_counter = {
            "frames_sent": "Frames written to viewer sockets.",
            "frames_parked": "Frames parked for viewers whose transport was paused.",
            "frames_conflated": "Parked stock frames replaced by newer ones.",
            "broadcasts": "Messages fanned out to a show's local viewers.",
            "slow_set_aside": "Times a viewer was set aside because its send would wait.",
            "slow_closed": "Viewers closed with 1013 for staying over their send bound.",
            "hub_redis_errors": "Redis errors in the hub's feed, ledger and count loops.",
            "soldout_answers": "Reserves this node answered sold_out without Redis (server/shows/soldout.py).",
            "soldout_arms": "Reads made to arm the node's sold-out short-circuit of a drop.",
        }
        self.hub = {name: Counter(f"livedrop_{name}", doc, registry=r) for name, doc in hub_counter.items()}
        self.shows_subscribed = Gauge(
            "livedrop_shows_subscribed",
            "Shows this node has viewers for (summed over its processes).",
            registry=r,
            multiprocess_mode="livesum",
        )

    def exposition(self) -> bytes:
        """The text a scrape gets: every process of this node in multiprocess mode, else this one."""
        if multiprocess_dir() is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    content_type = CONTENT_TYPE_LATEST


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def process_exited() -> None:
    """Drop this process's live gauges (its connections) from the node's sums."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class HubExport:
    """Copies the hub's counters into Prometheus counters: at every scrape of this process,
    and every second in multiprocess mode, where a scrape is answered by another process."""

    def __init__(
        self,
        metrics: Metrics,
        hub: Hub,
        redis_errors: Callable[[], int],
        soldout: Callable[[], tuple[int, int]] = lambda: (0, 0),
    ) -> None:
        # Callables, not the show node itself: metrics sit below the shows layer.
        self.metrics = metrics
        self.hub = hub
        self.redis_errors = redis_errors
        self.soldout = soldout
        self._seen: dict[str, int] = dict.fromkeys(metrics.hub, 0)

    def sync(self) -> None:
        stats = self.hub.stats
        answers, arms = self.soldout()
        now = {
            "soldout_answers": answers,
            "soldout_arms": arms,
            "frames_sent": stats.frames_sent,
            "frames_parked": stats.frames_parked,
            "frames_conflated": stats.conflated(self.hub),
            "broadcasts": stats.broadcasts,
            "slow_set_aside": stats.slow_set_aside,
            "slow_closed": stats.slow_closed,
            "hub_redis_errors": self.redis_errors(),
        }
        for name, value in now.items():
            if value > self._seen[name]:
                self.metrics.hub[name].inc(value - self._seen[name])
                self._seen[name] = value
        self.metrics.shows_subscribed.set(len(self.hub.channels))

    async def run(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            self.sync()
