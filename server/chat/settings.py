"""The chat's settings (``LIVEDROP_CHAT_*``), part of ``server.settings.Settings``."""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec


class ChatSettings(msgspec.Struct, frozen=True, kw_only=True):
    # One chat frame per show per tick: 100 ms is what a reader perceives as instant, and ten
    # frames a second per viewer whatever the number of writers (frames/s is the cost, DESIGN §9).
    tick: float = 0.1
    # Messages sent to a joining or resuming viewer (and kept per show on each node).
    history: int = 200
    # Messages in one tick's frame at most; a busier tick keeps the newest (nobody reads 50
    # messages in 100 ms; Twitch's own client shows a few at a time in busy rooms).
    batch_max: int = 50
    # Days a show's chat is kept after the show ends (DESIGN §10); then Redis drops it.
    retention_days: float = 30.0
    # Chat frames per second this node may send in all (the tick of a show stretches to
    # ``local viewers / frame_budget`` s when that is longer): a quarter of what one node fans out
    # (DESIGN §8, ~80k frames/s), so chat never takes the capacity a drop needs. 10,000 viewers of
    # one show get a chat frame every 0.5 s, 1,000 every 0.1 s.
    frame_budget: float = 20_000.0
    # Messages per second a viewer is sent on average, in bursts of up to ``batch_max``: a busier
    # show's frames keep the newest (no one
    # reads more; Twitch's own client shows ~5 at a time in busy rooms). It bounds the bytes a busy
    # show costs per viewer as the frame budget bounds the frames.
    viewer_messages: float = 20.0
    # Messages per second and burst of one viewer across its connections and nodes (post.lua).
    viewer_rate: float = 1.0
    viewer_burst: float = 5.0
    # Chat frames per second and burst of one connection, before Redis is asked (a flood from one
    # socket is answered locally with chat_rejected rate_limited).
    connection_rate: float = 2.0
    connection_burst: float = 6.0


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    return default if raw in (None, "") else float(raw)


def chat_settings_from_env(env: Mapping[str, str] | None = None) -> ChatSettings:
    env = os.environ if env is None else env
    d = ChatSettings()
    return ChatSettings(
        tick=_float(env, "LIVEDROP_CHAT_TICK", d.tick),
        history=int(_float(env, "LIVEDROP_CHAT_HISTORY", d.history)),
        batch_max=int(_float(env, "LIVEDROP_CHAT_BATCH_MAX", d.batch_max)),
        retention_days=_float(env, "LIVEDROP_CHAT_RETENTION_DAYS", d.retention_days),
        frame_budget=_float(env, "LIVEDROP_CHAT_FRAME_BUDGET", d.frame_budget),
        viewer_messages=_float(env, "LIVEDROP_CHAT_VIEWER_MESSAGES", d.viewer_messages),
        viewer_rate=_float(env, "LIVEDROP_CHAT_VIEWER_RATE", d.viewer_rate),
        viewer_burst=_float(env, "LIVEDROP_CHAT_VIEWER_BURST", d.viewer_burst),
        connection_rate=_float(env, "LIVEDROP_CHAT_CONNECTION_RATE", d.connection_rate),
        connection_burst=_float(env, "LIVEDROP_CHAT_CONNECTION_BURST", d.connection_burst),
    )
