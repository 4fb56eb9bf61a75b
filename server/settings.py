"""Run-time settings, read once from the environment (and CLI flags) into one typed object.

Everything an operator may change lives here with its default, so the operations guide and
``livedrop serve --help`` can be checked against one place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

from server.chat.settings import ChatSettings, chat_settings_from_env
from server.platforms.channels.config import ChannelSettings, channel_settings_from_env
from server.platforms.webhooks.config import WebhookSettings, webhook_settings_from_env


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """LiveDrop's settings. ``redis_url`` None means "start a local Redis" (CLI only)."""

    redis_url: str | None = None
    # REDIS_URL names one node of a Redis Cluster (LIVEDROP_REDIS_CLUSTER=1).
    redis_cluster: bool = False
    # Size of the Redis connection pool per process. redis-py's default pool raises at once
    # past its limit (DESIGN §9); the batcher keeps one call per drop in flight, so the pool
    # only needs to cover drops in flight + reads + the bus.
    redis_pool_size: int = 64
    # Connections for blocking stream reads (XREAD BLOCK, server.shows.tails). On one Redis a process
    # reads every stream it follows in one XREAD: one connection. On a Cluster a read names
    # keys of one slot only, and each show and drop has its own: one read per followed slot,
    # up to this many per cluster node.
    redis_blocking_pool_size: int = 256
    # How often each node looks for due holds. Reserve expires lazily too, so this bounds how
    # long units stay held after their deadline when nobody is reserving.
    sweep_interval: float = 0.25
    # How often each node re-lists every drop to find those it must sweep. A launch enlists
    # its drop on every node at once (server.shows.sweeper), so this is the backstop, not the delay
    # of a new drop. Keep it under LAUNCHED_KEEP_MS (10 min).
    drop_scan_interval: float = 5.0
    # Make full garbage collections rare (see server.app.tune_gc); off for embedding.
    gc_tuning: bool = True
    log_json: bool = False
    log_level: str = "info"
    # Signs viewer tokens. Every node (and worker) of a deployment must share it; the CLI
    # generates one per run when it is unset, so tokens do not outlive a restart then.
    viewer_secret: str = ""
    # Bearer tokens of hosts (LIVEDROP_HOST_TOKENS, comma-separated); `livedrop token host`
    # mints more, stored hashed in Redis.
    host_tokens: list[str] = msgspec.field(default_factory=list)
    # Stock frames per drop go out at most this often (conflation, DESIGN §4).
    stock_interval: float = 0.1
    # Reserve/waitlist requests a viewer connection may make per second, and its burst.
    reserve_rate: float = 5.0
    reserve_burst: float = 10.0
    # Slow viewers: bytes parked per viewer before it is closed, and how long it may stay
    # paused. 256 KiB is ~1,000 stock frames; 5 s is what a phone on a bad cell survives.
    outbox_limit: int = 256 * 1024
    slow_after: float = 5.0
    # Platform webhooks: secrets per platform/shop, consumer and reconciliation (docs/webhooks.md).
    webhooks: WebhookSettings = msgspec.field(default_factory=WebhookSettings)
    # Sales channels the stock is pushed to, and whose orders are pulled (docs/channels.md).
    channels: ChannelSettings = msgspec.field(default_factory=ChannelSettings)
    # Live chat: tick, history, retention, rates (docs/chat.md).
    chat: ChatSettings = msgspec.field(default_factory=ChatSettings)
    # Demo mode (`livedrop demo` sets it): adds `POST /demo/checkout`, which confirms a viewer's
    # own hold without payment. Never enable it on a server that sells real goods.
    demo: bool = False
    # Run-of-show imports (docs/feeds.md): the largest feed taken by upload or URL, how long a
    # URL fetch may take in all, and whether a feed URL may lead to a private address (a feed
    # server on the host's own network; off by default: the server would fetch inside).
    import_max_bytes: int = 20 * 1024 * 1024
    import_fetch_timeout: float = 20.0
    import_allow_private_urls: bool = False
    # Checkout links (docs/checkout.md) must be https; this allows http for a local store.
    checkout_allow_http: bool = False


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    return default if raw in (None, "") else float(raw)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    return default if raw in (None, "") else int(raw)


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``LIVEDROP_*`` variables and ``REDIS_URL``."""
    env = os.environ if env is None else env
    return Settings(
        redis_url=env.get("REDIS_URL") or None,
        redis_cluster=env.get("LIVEDROP_REDIS_CLUSTER", "") in ("1", "true", "yes"),
        redis_pool_size=_int(env, "LIVEDROP_REDIS_POOL_SIZE", 64),
        redis_blocking_pool_size=_int(env, "LIVEDROP_REDIS_BLOCKING_POOL_SIZE", 256),
        sweep_interval=_float(env, "LIVEDROP_SWEEP_INTERVAL", 0.25),
        drop_scan_interval=_float(env, "LIVEDROP_DROP_SCAN_INTERVAL", 5.0),
        log_json=env.get("LIVEDROP_LOG_JSON", "") in ("1", "true", "yes"),
        gc_tuning=env.get("LIVEDROP_GC_TUNING", "1") not in ("0", "false", "no"),
        log_level=env.get("LIVEDROP_LOG_LEVEL", "info"),
        viewer_secret=env.get("LIVEDROP_VIEWER_SECRET", ""),
        host_tokens=[t.strip() for t in env.get("LIVEDROP_HOST_TOKENS", "").split(",") if t.strip()],
        stock_interval=_float(env, "LIVEDROP_STOCK_INTERVAL", 0.1),
        reserve_rate=_float(env, "LIVEDROP_RESERVE_RATE", 5.0),
        reserve_burst=_float(env, "LIVEDROP_RESERVE_BURST", 10.0),
        outbox_limit=_int(env, "LIVEDROP_OUTBOX_LIMIT", 256 * 1024),
        slow_after=_float(env, "LIVEDROP_SLOW_AFTER", 5.0),
        webhooks=webhook_settings_from_env(env),
        channels=channel_settings_from_env(env),
        chat=chat_settings_from_env(env),
        demo=env.get("LIVEDROP_DEMO", "") in ("1", "true", "yes"),
        import_max_bytes=_int(env, "LIVEDROP_IMPORT_MAX_BYTES", 20 * 1024 * 1024),
        import_fetch_timeout=_float(env, "LIVEDROP_IMPORT_FETCH_TIMEOUT", 20.0),
        import_allow_private_urls=env.get("LIVEDROP_IMPORT_ALLOW_PRIVATE_URLS", "") in ("1", "true", "yes"),
        checkout_allow_http=env.get("LIVEDROP_CHECKOUT_ALLOW_HTTP", "") in ("1", "true", "yes"),
    )
