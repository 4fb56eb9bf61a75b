"""Prometheus metrics of a node. Names follow Prometheus conventions (``_total``, ``_seconds``);
``docs/operations.md`` says what to alert on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from broadcast.hub import Hub
    from server.live import Live


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
            "livedrop_viewer_connections", "Viewer WebSockets open on this process.", registry=r
        )
        self.viewer_send_path = Counter(
            "livedrop_viewer_send_path",
            "Viewer connections by send path: sansio (frames written straight to uvicorn's "
            "transport) or asgi (the portable fallback, slower).",
            ["path"],
            registry=r,
        )
        self.host_connections = Gauge(
            "livedrop_host_connections", "Host panel WebSockets open on this process.", registry=r
        )
        self.drops_swept = Gauge("livedrop_drops_swept", "Drops this node's sweeper watches.", registry=r)
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
        self.webhook_applied = Counter(
            "livedrop_webhook_applied_total", "Recorded deliveries applied by this node.", registry=r
        )
        self.webhook_claimed = Counter(
            "livedrop_webhook_claimed_total", "Deliveries taken over from a consumer presumed dead.", registry=r
        )
        self.webhook_pending = Gauge(
            "livedrop_webhook_pending", "Deliveries read by a consumer and not yet applied (all nodes).", registry=r
        )
        self.alerts = Counter(
            "livedrop_alerts_total", "Alerts raised for the host panel, by kind.", ["kind"], registry=r
        )


class HubCollector(Collector):
    """Exports the hub's plain counters at scrape time (the hub knows nothing of Prometheus)."""

    def __init__(self, hub: Hub, live: Live) -> None:
        self.hub = hub
        self.live = live

    def collect(self) -> Iterator[Metric]:
        stats = self.hub.stats
        for name, doc, value in (
            ("livedrop_frames_sent", "Frames written to viewer sockets.", stats.frames_sent),
            ("livedrop_frames_parked", "Frames parked for viewers whose transport was paused.", stats.frames_parked),
            ("livedrop_frames_conflated", "Parked stock frames replaced by newer ones.", stats.conflated(self.hub)),
            ("livedrop_broadcasts", "Messages fanned out to a show's local viewers.", stats.broadcasts),
            (
                "livedrop_slow_set_aside",
                "Times a viewer was set aside because its send would wait.",
                stats.slow_set_aside,
            ),
            ("livedrop_slow_closed", "Viewers closed with 1013 for staying over their send bound.", stats.slow_closed),
            (
                "livedrop_hub_redis_errors",
                "Redis errors in the hub's feed, ledger and count loops.",
                self.live.redis_errors,
            ),
        ):
            counter = CounterMetricFamily(name, doc)
            counter.add_metric([], value)
            yield counter
        shows = GaugeMetricFamily("livedrop_shows_subscribed", "Shows this process has viewers for.")
        shows.add_metric([], len(self.hub.channels))
        yield shows
