"""The host channel (``/ws/host/shows/{id}``): auth, broadcast frames, host_stats and alerts —
on real nodes with real WebSocket clients, plus the pure parts and the ticker in process."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from websockets.exceptions import ConnectionClosed

from broadcast.hub import Hub, Role
from broadcast.transport import Message, SendResult
from server import keys
from server.host.channel import HostPanels
from server.host.figures import ALERT_SLOW_VIEWERS, drop_figures, host_stats, stream_alert
from server.keys import HOST_TOKENS_KEY
from server.ops.local_redis import LocalRedis
from server.shows.catalog import Catalog, DropInfo, Show
from server.shows.node import ShowNode
from stock import Counters, PlatformSale, StockEngine
from stock.types import DropSnapshot, DropState
from tests.server.viewers.test_viewer_ws import token
from tests.support.servers import Node
from tests.support.util import scaled
from tests.support.viewer_client import Frame, Viewer

NodeFactory = Callable[..., Node]
HOST_TOKEN = "host-channel-token"


def host_url(node: Node, show_id: str, query: str = "") -> str:
    return f"ws://127.0.0.1:{node.port}/ws/host/shows/{show_id}" + (f"?{query}" if query else "")


async def connect_host(node: Node, show_id: str = "s1", secret: str = HOST_TOKEN) -> Viewer:
    host = await Viewer.connect(host_url(node, show_id))
    await host.send({"type": "auth", "token": secret})
    return host


async def closed_with(client: Viewer) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        await client.next()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


@pytest.fixture
async def api(redis: Redis, nodes: NodeFactory) -> AsyncIterator[tuple[httpx.AsyncClient, Node]]:
    node = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN})
    async with httpx.AsyncClient(base_url=node.http, headers={"Authorization": f"Bearer {HOST_TOKEN}"}) as client:
        await client.post("/api/shows", json={"show_id": "s1", "title": "Host show"})
        drop = {"drop_id": "d1", "sku": "SKU-1", "title": "Sneaker", "total": 5, "prices": {"EUR": 1900}}
        await client.post("/api/shows/s1/drops", json=drop)
        yield client, node


async def test_auth_by_frame_or_query_and_refusals(api: tuple[httpx.AsyncClient, Node], redis: Redis) -> None:
    _, node = api
    host = await connect_host(node)
    welcome = await host.next()
    assert welcome["type"] == "welcome" and welcome["show"] == "s1" and welcome["can_reserve"] is False
    await host.send({"type": "ping", "ref": "p1"})
    assert (await host.until("pong"))["ref"] == "p1"
    await host.send({"type": "reserve", "ref": "r1", "drop": "d1"})  # not a host frame
    assert (await host.until("error"))["code"] == "bad_frame"
    await host.close()

    wrong = await connect_host(node, secret="nope")
    assert await closed_with(wrong) == 1008
    first_frame_not_auth = await Viewer.connect(host_url(node, "s1"))
    await first_frame_not_auth.send({"type": "ping"})
    assert await closed_with(first_frame_not_auth) == 1008
    unknown_show = await connect_host(node, "nope")
    assert await closed_with(unknown_show) == 4404

    # A token minted by the CLI (its hash in Redis) works on every node, here in the query.
    minted = "minted-host-token"
    await redis.sadd(HOST_TOKENS_KEY, hashlib.sha256(minted.encode()).hexdigest())
    by_query = await Viewer.connect(host_url(node, "s1", f"token={minted}"))
    assert (await by_query.next())["type"] == "welcome"
    await by_query.close()


async def test_host_gets_broadcasts_and_live_stats(api: tuple[httpx.AsyncClient, Node]) -> None:
    client, node = api
    host = await connect_host(node)
    assert (await host.next())["viewers"] == 0
    stats = await host.until("host_stats", timeout=3)
    assert stats["show"] == "s1" and stats["viewers"] == 0
    assert stats["drops"] == [
        {
            "drop": "d1",
            "state": "draft",
            "total": 5,
            "available": 5,
            "held": 0,
            "sold": 0,
            "oversold": 0,
            "holds_created": 0,
            "holds_confirmed": 0,
            "holds_expired": 0,
            "reservations_per_second": 0.0,
            "sold_per_second": 0.0,
        }
    ]

    viewer = await Viewer.connect(node.ws("s1", token("alice")))
    await viewer.next()
    await client.post("/api/drops/d1/launch", json={"duration_seconds": 60})
    assert (await host.until("drop"))["drop"]["state"] == "live"
    await viewer.until("drop")
    await viewer.send({"type": "reserve", "ref": "r1", "drop": "d1", "qty": 2})
    hold = (await viewer.until("reserved"))["hold_ref"]
    assert (await host.until("stock", available=3))["held"] == 2

    # The reservation shows in a host_stats frame as one hold, at a positive rate.
    rates: list[float] = []
    async with asyncio.timeout(scaled(5)):
        while True:
            frame = await host.until("host_stats", timeout=3)
            d1 = frame["drops"][0]
            rates.append(d1["reservations_per_second"])
            if d1["holds_created"] == 1 and frame["viewers"] == 1 and any(rates):
                break
    assert d1 | {"reservations_per_second": 0} == d1 | {
        "state": "live",
        "available": 3,
        "held": 2,
        "sold": 0,
        "reservations_per_second": 0,
    }

    await client.post(f"/api/holds/{hold}/confirm", json={"order_ref": "o-1"})
    async with asyncio.timeout(scaled(5)):
        while (frame := await host.until("host_stats", timeout=3))["sales"]["units"] != 2:
            pass
    assert frame["sales"] == {"units": 2, "revenue": {"EUR": 3800}}
    await client.post("/api/drops/d1/end", json={})
    assert (await host.until("drop_ended"))["reason"] == "host"
    for client_ in (host, viewer):
        await client_.close()


async def test_alerts_history_and_live(api: tuple[httpx.AsyncClient, Node], redis: Redis) -> None:
    _, node = api
    await redis.xadd(keys.ALERTS, {"kind": "unmatched_hold", "show": "s1", "drop": "d1", "hold": "d1.3", "qty": "1"})
    await redis.xadd(keys.ALERTS, {"kind": "oversold", "show": "other", "drop": "x1", "qty": "1"})
    host = await connect_host(node)
    await host.next()
    history = await host.until("alert")
    assert history["kind"] == "unmatched_hold" and history["drop"] == "d1" and "d1.3" in history["message"]

    await redis.xadd(keys.ALERTS, {"kind": "oversold", "show": "other", "drop": "x1", "qty": "3"})
    await redis.xadd(keys.ALERTS, {"kind": "dead_delivery", "platform": "shopify", "error": "boom"})
    dead = await host.until("alert", timeout=3)
    assert dead["kind"] == "dead_delivery" and "boom" in dead["message"]

    # The oversold counter itself: a platform sells more than is left.
    engine = StockEngine(redis)
    await engine.open("d1")
    await engine.apply_sale(PlatformSale("shopify", "o-9", "1", "d1", 7))
    async with asyncio.timeout(scaled(5)):
        while (alert := await host.until("alert", timeout=3))["kind"] != "drop_oversold":
            pass
    assert alert["drop"] == "d1" and alert["detail"]["oversold"] == "2"
    assert not [f for f in host.frames if f.get("type") == "alert" and f.get("drop") == "x1"]
    await host.close()


def test_token_host_cli_mints_and_revokes(api: tuple[httpx.AsyncClient, Node], redis_server: LocalRedis) -> None:
    _, node = api
    cli = [sys.executable, "-m", "server.cli", "token", "host", "--redis-url", redis_server.url]
    minted = subprocess.run(cli, capture_output=True, text=True, check=True, timeout=scaled(30)).stdout.strip()
    assert len(minted) >= 40
    headers = {"Authorization": f"Bearer {minted}"}
    assert httpx.get(f"{node.http}/api/shows", headers=headers).status_code == 200
    subprocess.run([*cli, "--revoke", minted], capture_output=True, check=True, timeout=scaled(30))
    assert httpx.get(f"{node.http}/api/shows", headers=headers).status_code == 401


# -- pure parts ----------------------------------------------------------------------------------------
def snapshot(drop_id: str, created: int, sold: int, oversold: int = 0) -> DropSnapshot:
    return DropSnapshot(
        drop_id=drop_id,
        show_id="s1",
        state=DropState.LIVE,
        counters=Counters(total=100, available=100 - sold, held=0, sold=sold, oversold=oversold),
        per_customer_limit=0,
        hold_seconds=600,
        ends_at_ms=0,
        end_reason="",
        opened_at_ms=1,
        closed_at_ms=0,
        holds_created=created,
        holds_confirmed=sold,
        holds_released=0,
        holds_expired=0,
        rejected={},
        oversold_lines=0,
    )


def test_drop_figures_rates_and_show_sales() -> None:
    first = drop_figures(snapshot("d1", 10, 4), None, 0.0)
    assert first.reservations_per_second == 0 and first.sold_per_second == 0 and first.sold == 4
    later = drop_figures(snapshot("d1", 40, 10), snapshot("d1", 10, 4), 2.0)
    assert later.reservations_per_second == 15.0 and later.sold_per_second == 3.0
    other = drop_figures(snapshot("d2", 3, 1), snapshot("d2", 0, 0), 2.0)
    stats = host_stats("s1", 7, [later, other], {"d1": {"EUR": 1000, "USD": 1100}, "d2": {"EUR": 500}})
    assert stats.sales.units == 11 and stats.sales.revenue == {"EUR": 10500, "USD": 11000}
    assert stats.reservations_per_second == 16.5 and stats.viewers == 7


def test_stream_alerts_filter_by_show_and_read_well() -> None:
    fields = {"kind": "oversold", "show": "s1", "drop": "d1", "platform": "tiktok", "order": "77", "qty": "2"}
    alert = stream_alert("1795460712261-0", fields, "s1")
    assert alert is not None and alert.at == 1795460712261 and alert.drop == "d1"
    assert alert.message == "Oversold: tiktok order 77 sold 2 unit(s) of d1 that were no longer available"
    assert "show" not in alert.detail and alert.detail["order"] == "77"
    assert stream_alert("1-0", fields, "s2") is None
    anywhere = stream_alert("2-0", {"kind": "dead_delivery", "platform": "meta", "error": "bad json"}, "s2")
    assert anywhere is not None and anywhere.drop is None and "bad json" in anywhere.message


class Recorder:
    """A socket that takes every write, for the ticker's in-process test."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def try_write(self, message: Message) -> SendResult:
        self.frames.append(message.payload)
        return SendResult.SENT

    async def wait_writable(self) -> None:
        return None

    @property
    def buffered(self) -> int:
        return 0

    def close_slow(self, code: int, grace: float) -> None:
        return None


async def test_ticker_reports_slow_viewer_closes_to_hosts_only(redis: Redis) -> None:
    import msgspec

    engine = StockEngine(redis)
    catalog = Catalog(redis, engine)
    await catalog.put_show(Show(show_id="s1", title="Ticker"))
    await catalog.put_drop(DropInfo(drop_id="d1", show_id="s1", sku="SKU-1", title="Sneaker", total=5))
    hub = Hub()
    live = ShowNode(redis=redis, engine=engine, catalog=catalog, hub=hub, node_id="ticker-test")
    hub.on_first, hub.on_last = live.subscribe, live.unsubscribe
    panels = HostPanels(redis=redis, engine=engine, catalog=catalog, hub=hub, live=live, interval=3600)
    host_socket, viewer_socket = Recorder(), Recorder()
    host = await hub.join("s1", host_socket, None, role=Role.HOST)
    audience = await hub.join("s1", viewer_socket, "v1")
    try:
        await panels.attach(host)
        room = panels.rooms["s1"]
        await asyncio.sleep(0)  # the ticker's first round (then it sleeps for an hour)
        hub.stats.slow_closed += 3
        await panels.tick(room)
        frames: list[dict[str, Any]] = [msgspec.json.decode(raw) for raw in host_socket.frames]
        slow: list[Frame] = [f for f in frames if f.get("kind") == ALERT_SLOW_VIEWERS]
        assert len(slow) == 1 and slow[0]["detail"] == {"count": "3"}
        assert any(f["type"] == "host_stats" for f in frames)
        assert not [raw for raw in viewer_socket.frames if b"host_stats" in raw or b'"alert"' in raw]
    finally:
        await panels.detach(host)
        assert panels.rooms == {}
        await hub.leave(audience)
        await hub.leave(host)
        await live.aclose()


async def test_a_host_that_connects_gets_the_channel_strip_at_once_not_at_the_next_tick(redis: Redis) -> None:
    import msgspec

    from server.platforms.channels.base import ChannelName
    from server.platforms.channels.config import ChannelConfig, ChannelSettings, Credentials
    from server.platforms.channels.mapping import Mappings, ShopifyMapping, SkuMapping
    from server.shows.variants import VariantInfo

    engine = StockEngine(redis)
    catalog = Catalog(redis, engine)
    await catalog.put_show(Show(show_id="s1", title="Ticker"))
    sizes = [VariantInfo(id="s41", sku="SNK-41", total=3), VariantInfo(id="s42", sku="SNK-42", total=2)]
    await catalog.put_drop(DropInfo(drop_id="d1", show_id="s1", sku="SNK", title="Sneaker", total=5, variants=sizes))
    await Mappings(redis).put("SNK-42", SkuMapping(shopify=ShopifyMapping(inventory_item_id="42", location_id="9")))
    channels = ChannelSettings(
        channels=(
            ChannelConfig(
                name=ChannelName.SHOPIFY, credentials=Credentials(url="http://127.0.0.1:9", token="t"), buffer=2
            ),
        )
    )
    hub = Hub()
    live = ShowNode(redis=redis, engine=engine, catalog=catalog, hub=hub, node_id="strip-test")
    hub.on_first, hub.on_last = live.subscribe, live.unsubscribe
    # The ticker's first round runs at once, then it sleeps for an hour: any later strip is the join's.
    panels = HostPanels(
        redis=redis, engine=engine, catalog=catalog, hub=hub, live=live, interval=3600, channels=channels
    )
    first_socket, late_socket = Recorder(), Recorder()
    first = await hub.join("s1", first_socket, None, role=Role.HOST)
    late = None
    try:
        await panels.attach(first)
        async with asyncio.timeout(scaled(5)):  # its join's strip and the first round's (then it sleeps)
            while sum(b'"channel_sync"' in raw for raw in first_socket.frames) < 2:
                await asyncio.sleep(0.01)
        late = await hub.join("s1", late_socket, None, role=Role.HOST)
        await panels.attach(late)
        strips = [f for raw in late_socket.frames if (f := msgspec.json.decode(raw))["type"] == "channel_sync"]
        assert len(strips) == 1
        (drop,) = strips[0]["drops"]
        assert drop["drop"] == "d1" and [v["sku"] for v in drop["variants"]] == ["SNK-42"]
        assert [c["channel"] for c in drop["channels"]] == ["shopify"]
        assert drop["variants"][0]["channels"][0]["ids"] == {"inventory_item_id": "42", "location_id": "9"}
    finally:
        for host in (first, late):
            if host is not None:
                await panels.detach(host)
                await hub.leave(host)
        await live.aclose()
