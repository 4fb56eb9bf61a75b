"""``livedrop demo``: the bots' decisions (pure), the seeded show, the autopilot's choice, and the
whole command end to end — a real process whose printed links work and whose bots really shop."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from broadcast.hub import Hub
from server.chat.claims import ClaimDrop, ClaimVariant, Resolved, parse, resolve
from server.demo.bots import BotBrain, Checkout, SendFrame
from server.demo.command import choose_port
from server.demo.seed import PRODUCTS, next_to_launch, seed_show
from server.ops.local_redis import LocalRedis, free_port
from server.shows.actions import HostActions
from server.shows.catalog import Catalog
from server.shows.node import ShowNode
from stock import StockEngine
from tests.support.servers import Node
from tests.support.util import scaled
from tests.support.viewer_client import Viewer

NodeFactory = Callable[..., Node]


def welcome(*drops: tuple[str, str, int]) -> dict[str, object]:
    return {
        "type": "welcome",
        "drops": [{"id": d, "state": state, "stock": {"available": available}} for d, state, available in drops],
    }


def brain(checkout_share: float = 0.6, release_share: float = 0.2, waitlist_share: float = 0.3) -> BotBrain:
    bot = BotBrain(
        "b1",
        random.Random(7),
        interval=1.0,
        checkout_share=checkout_share,
        release_share=release_share,
        waitlist_share=waitlist_share,
    )
    bot.start(0.0)
    return bot


def reserve_frames(actions: list[SendFrame | Checkout]) -> list[dict[str, object]]:
    return [a.frame for a in actions if isinstance(a, SendFrame) and a.frame["type"] == "reserve"]


def test_bot_reserves_only_live_drops_with_stock() -> None:
    bot = brain()
    bot.on_frame(welcome(("live", "live", 3), ("draft", "draft", 5), ("gone", "closed", 9), ("empty", "live", 0)), 0.0)
    asked = [f for t in range(1, 200) for f in reserve_frames(bot.due(float(t)))]
    assert asked and {f["drop"] for f in asked} == {"live"}
    assert len({f["ref"] for f in asked}) == len(asked)  # a new ref for each tap on Buy
    bot.on_frame({"type": "stock", "drop": "live", "available": 0}, 300.0)
    assert not [f for t in range(301, 400) for f in reserve_frames(bot.due(float(t)))]
    bot.on_frame({"type": "drop", "drop": {"id": "draft", "state": "live", "stock": {"available": 5}}}, 400.0)
    assert {f["drop"] for t in range(401, 600) for f in reserve_frames(bot.due(float(t)))} == {"draft"}


def test_bot_checks_out_releases_or_lets_expire() -> None:
    pays = brain(checkout_share=1.0, release_share=0.0)
    pays.on_frame({"type": "reserved", "hold": "d1.4", "drop": "d1"}, 0.0)
    when, _ = pays.plans["d1.4"]
    assert 2.0 <= when <= 10.0 and pays.next_wake() <= when
    assert pays.due(when - 0.01) == [] or all(not isinstance(a, Checkout) for a in pays.due(when - 0.01))
    assert Checkout("d1.4") in pays.due(when)
    assert "d1.4" not in pays.plans

    releases = brain(checkout_share=0.0, release_share=1.0)
    releases.on_frame({"type": "reserved", "hold": "d1.5", "drop": "d1"}, 0.0)
    frames = [a.frame for a in releases.due(11.0) if isinstance(a, SendFrame)]
    assert {"type": "release", "hold": "d1.5"}.items() <= frames[0].items()

    waits = brain(checkout_share=0.0, release_share=0.0)
    waits.on_frame({"type": "reserved", "hold": "d1.6", "drop": "d1"}, 0.0)
    assert not [a for a in waits.due(11.0) if isinstance(a, Checkout) or a.frame["type"] == "release"]
    waits.on_frame({"type": "hold_expired", "hold": "d1.6", "drop": "d1"}, 12.0)
    assert waits.plans == {}


def test_bot_waitlists_on_sold_out_and_respects_its_limit() -> None:
    bot = brain(waitlist_share=1.0)
    bot.on_frame(welcome(("d1", "live", 5), ("d2", "live", 5)), 0.0)
    actions = bot.on_frame({"type": "rejected", "ref": "b1-1", "drop": "d1", "reason": "sold_out"}, 0.0)
    assert [a.frame["type"] for a in actions if isinstance(a, SendFrame)] == ["waitlist"]
    bot.on_frame({"type": "rejected", "ref": "b1-2", "drop": "d1", "reason": "limit_exceeded"}, 0.0)
    assert {f["drop"] for t in range(1, 200) for f in reserve_frames(bot.due(float(t)))} == {"d2"}


def test_autopilot_launches_the_next_draft_after_a_pause() -> None:
    states = [("a", "closed"), ("b", "draft"), ("c", "draft")]
    assert next_to_launch(states, idle_for=20, idle=15) == "b"
    assert next_to_launch(states, idle_for=5, idle=15) is None
    assert next_to_launch([("a", "live"), ("b", "draft")], idle_for=99, idle=15) is None
    assert next_to_launch([("a", "closed")], idle_for=99, idle=15) is None


def test_choose_port_falls_back_only_when_not_asked_for() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = choose_port("127.0.0.1", port, explicit=False)
        assert other != port
        with pytest.raises(SystemExit):
            choose_port("127.0.0.1", port, explicit=True)


async def test_seed_show_is_complete_and_idempotent(redis: Redis) -> None:
    engine = StockEngine(redis)
    catalog = Catalog(redis, engine)
    host = HostActions(engine, catalog, ShowNode(redis=redis, engine=engine, catalog=catalog, hub=Hub(), node_id="t"))
    drops = await seed_show(host, "demo-x", "Demo")
    again = await seed_show(host, "demo-x", "Demo")
    assert [d.drop_id for d in drops] == [d.drop_id for d in again] == await catalog.drop_ids("demo-x")
    assert len(drops) == len(PRODUCTS) >= 4
    states = [(await engine.snapshot(d.drop_id)).state.value for d in drops]
    assert states == ["live"] + ["draft"] * (len(drops) - 1)
    show = await catalog.get_show("demo-x")
    assert show is not None and show.state == "live"
    for drop in drops:
        assert drop.image_url.startswith("/static/demo/products/") and drop.prices and drop.total > 0
        name = drop.image_url.rsplit("/", 1)[1]
        assert resources.files("server").joinpath("static", "demo", "products", name).is_file()


# -- the command, end to end ---------------------------------------------------------------------------
class DemoProcess:
    def __init__(self, proc: subprocess.Popen[str], log: Path) -> None:
        self.proc = proc
        self.log = log
        self.output = ""

    def read_links(self) -> tuple[str, str]:
        """The panel and viewer URLs the command printed (it prints them once it serves). Blocks:
        run it in a thread under a timeout; the fixture's kill ends it if nothing comes."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output += line
            found = re.search(r"Control panel\s+(\S+)\s+Viewer page\s+(\S+)", self.output)
            if found:
                return found.group(1), found.group(2)
        raise AssertionError(f"no links printed: {self.output!r} {self.log.read_text()[-2000:]}")


@pytest.fixture
def demo(redis_server: LocalRedis, tmp_path: Path) -> Iterator[Callable[..., DemoProcess]]:
    started: list[DemoProcess] = []

    def start(*args: str) -> DemoProcess:
        log = tmp_path / "demo.log"
        env = {**os.environ, "REDIS_URL": redis_server.url, "LIVEDROP_DATA_DIR": str(tmp_path / "data")}
        env.pop("LIVEDROP_PORT", None)
        with log.open("w") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "demo", *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        started.append(DemoProcess(proc, log))
        return started[-1]

    try:
        yield start
    finally:
        for d in started:
            if d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
            if d.proc.stdout is not None:
                d.proc.stdout.close()


async def test_demo_command_serves_a_show_with_shopping_bots(redis: Redis, demo: Callable[..., DemoProcess]) -> None:
    port = free_port()
    process = demo("--port", str(port), "--show", "demo-e2e", "--bots", "6", "--bot-interval", "0.5")
    panel_url, viewer_url = await asyncio.wait_for(asyncio.to_thread(process.read_links), scaled(30))
    base = f"http://127.0.0.1:{port}"
    assert panel_url.startswith(f"{base}/panel#token=") and panel_url.endswith("&show=demo-e2e")
    host_token = panel_url.split("#token=", 1)[1].split("&", 1)[0]
    viewer_token = viewer_url.split("#token=", 1)[1]
    assert viewer_url.startswith(f"{base}/demo/shows/demo-e2e#token=")

    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {host_token}"}) as api:
        page = await api.get("/panel")
        assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
        viewer_page = await api.get("/demo/shows/demo-e2e")
        assert 'data-checkout="on"' in viewer_page.text
        assert (await api.get("/static/demo/products/sneaker.svg")).headers["content-type"].startswith("image/svg")
        show = (await api.get("/api/shows/demo-e2e")).json()
        first = show["drops"][0]["info"]["drop_id"]
        assert show["show"]["state"] == "live" and len(show["drops"]) == len(PRODUCTS)
        assert show["drops"][0]["stock"]["state"] == "live"
        # The first drop, the sneaker, comes in sizes: a drop with variants that `make demo` shows.
        sizes = [v["id"] for v in show["drops"][0]["info"]["variants"]]
        assert len(sizes) == len(PRODUCTS[0].sizes) and sizes[0] == f"s{PRODUCTS[0].sizes[0][0]}"

        # The bots reserve, and check some of their holds out.
        async with asyncio.timeout(scaled(30)):
            while True:
                stats = (await api.get(f"/api/drops/{first}/stats")).json()
                if stats["holds_created"] >= 3 and stats["holds_confirmed"] >= 1:
                    break
                await asyncio.sleep(0.2)

        # The four stand-in sales channels hold each product, less their buffers.
        buffers = {"shopify": 2, "tiktok": 3, "meta": 4, "woocommerce": 3}
        tote = next(p for p in PRODUCTS if p.sku == "TOTE-CANVAS")
        async with asyncio.timeout(scaled(30)):
            while True:
                status = (await api.get("/api/channels")).json()["channels"]
                values = {c["channel"]: {s["sku"]: s["value"] for s in c["skus"]} for c in status}
                if all(values.get(name, {}).get(tote.sku) == tote.total - b for name, b in buffers.items()):
                    break
                await asyncio.sleep(0.2)
        # And each size of the sneaker, under its own SKU.
        size_skus = {f"{PRODUCTS[0].sku}-{size}" for size, _ in PRODUCTS[0].sizes}
        assert all(size_skus <= set(values[name]) for name in buffers), values

        # The printed viewer link buys, and pays through the demo checkout.
        person = await Viewer.connect(f"ws://127.0.0.1:{port}/ws/shows/demo-e2e?token={viewer_token}")
        assert (await person.until("welcome"))["can_reserve"]
        await person.send({"type": "reserve", "ref": "me-0", "drop": first})
        assert (await person.until("error", timeout=10))["code"] == "variant_required"
        await person.send({"type": "reserve", "ref": "me-1", "drop": first, "variant": "s42"})
        reserved = await person.until("reserved", timeout=10)
        hold = reserved["hold"]
        assert reserved["variant"] == "s42" and hold.startswith(f"{first}~s42.")
        paid = await api.post(
            "/demo/checkout",
            json={"show": "demo-e2e", "hold": hold},
            headers={"Authorization": f"Bearer {viewer_token}"},
        )
        assert paid.status_code == 200 and paid.json() == {"hold": hold, "qty": 1}
        assert (await person.until("confirmed", timeout=10))["hold"] == hold
        bots_hold = next(h["hold_id"] for h in (await api.get(f"/api/drops/{first}/holds")).json()["holds"])
        someone_else = await api.post(
            "/demo/checkout",
            json={"show": "demo-e2e", "hold": bots_hold},
            headers={"Authorization": f"Bearer {viewer_token}"},
        )
        assert someone_else.status_code in (403, 409) and hold != bots_hold
        forged = await api.post(
            "/demo/checkout", json={"show": "demo-e2e", "hold": hold}, headers={"Authorization": "Bearer x.y"}
        )
        assert forged.status_code == 401

        # And through the demo's shop (the stand-in Shopify store): the reserved answer's checkout
        # link is a cart permalink; paying there sends the store's webhook, which confirms the hold.
        await person.send({"type": "reserve", "ref": "me-2", "drop": first, "variant": "s42"})
        reserved = await person.until("reserved", timeout=10)
        assert reserved["checkout_url"].startswith("http://127.0.0.1:") and "/cart/" in reserved["checkout_url"]
        async with httpx.AsyncClient(timeout=scaled(10)) as browser:
            assert "Pay now" in (await browser.get(reserved["checkout_url"])).text
            assert "Thank you" in (await browser.post(reserved["checkout_url"])).text
        assert (await person.until("confirmed", timeout=scaled(15)))["hold"] == reserved["hold"]
        await person.close()

    process.proc.send_signal(signal.SIGINT)
    code = await asyncio.to_thread(process.proc.wait, scaled(20))
    assert code == 0, process.log.read_text()[-2000:]


async def test_demo_checkout_does_not_exist_outside_demo_mode(nodes: NodeFactory) -> None:
    node = nodes()
    async with httpx.AsyncClient(base_url=node.http) as client:
        assert (await client.post("/demo/checkout", json={"show": "s", "hold": "d.1"})).status_code in (404, 405)
        page = await client.get("/demo/shows/s1")
        assert page.status_code == 200 and 'data-checkout="off"' in page.text


def test_bots_chat_and_sometimes_claim_by_comment() -> None:
    bot = BotBrain("b2", random.Random(3), interval=1.0, chat_interval=2.0, claim_share=0.5)
    bot.start(0.0)
    bot.on_frame(welcome(("d1", "live", 50)), 0.0)
    bot.on_frame({"type": "chat_history", "messages": [], "codes": {"d1": "A"}}, 0.0)
    sent = [a.frame for now in range(1, 200) for a in bot.due(float(now)) if isinstance(a, SendFrame)]
    chats = [f for f in sent if f["type"] == "chat_send"]
    claims = [f for f in chats if str(f["text"]).startswith("SOLD A")]
    assert claims and len(chats) > len(claims) and any(f["type"] == "reserve" for f in sent)
    assert len({f["ref"] for f in sent}) == len(sent)


def test_bots_claiming_a_drop_with_sizes_by_comment_name_a_size_on_sale() -> None:
    """A claim comment on a drop with sizes names one (``SOLD C 42``), as a buyer in a sneaker show
    would: a claim without a size would only be refused (docs/chat.md)."""
    bot = BotBrain("b3", random.Random(5), interval=1.0, chat_interval=1000.0, claim_share=1.0)
    bot.start(0.0)
    sizes: list[dict[str, Any]] = [
        {"id": "s41", "options": {"size": "41"}, "stock": {"available": 0}},
        {"id": "s42", "options": {"size": "42"}, "stock": {"available": 5}},
        {"id": "red-m", "options": {"colour": "Red", "size": "M"}, "stock": {"available": 5}},
    ]
    shoe = {"id": "d3", "state": "live", "stock": {"available": 10}, "variants": sizes}
    bot.on_frame({"type": "welcome", "drops": [shoe]}, 0.0)
    bot.on_frame({"type": "chat_history", "messages": [], "codes": {"d3": "C"}}, 0.0)
    sent = [a.frame for now in range(1, 100) for a in bot.due(float(now)) if isinstance(a, SendFrame)]
    claims = [str(f["text"]) for f in sent if f["type"] == "chat_send" and str(f["text"]).startswith("SOLD")]
    assert claims and {c.split()[2] for c in claims} == {"42", "Red-M"}  # never the sold-out 41
    # Each says what the bot meant, read by the server's own resolution.
    drop = ClaimDrop("d3", "C", True, tuple(ClaimVariant(v["id"], tuple(v["options"].values())) for v in sizes))
    for text in claims:
        parsed = parse(text)
        assert parsed is not None
        found = resolve(parsed, [drop])
        assert isinstance(found, Resolved) and found.variant in ("s42", "red-m"), (text, found)


def channel_urls(process: DemoProcess) -> dict[str, str]:
    """The stand-in platforms' URLs the command printed after its links. Blocks, like ``read_links``."""
    assert process.proc.stdout is not None
    while not (found := re.search(r"Channels\s+(.+)\n", process.output)):
        line = process.proc.stdout.readline()
        if not line:
            raise AssertionError(f"no channels printed: {process.output!r}")
        process.output += line
    return dict(pair.split(" ") for pair in found.group(1).split(", "))


def standin_holds(urls: dict[str, str]) -> dict[str, dict[str, int]]:
    """What each stand-in platform holds per SKU, read from its control API."""

    def get(name: str) -> Any:
        return httpx.get(f"{urls[name]}/_standin/stock", timeout=scaled(5)).json()

    tiktok = get("tiktok")["skus"]
    return {
        "shopify": {i["sku"]: i["available"] for i in get("shopify")["items"]},
        "tiktok": {s["seller_sku"]: sum(s["stock"].values()) for s in tiktok},
        "meta": {i["retailer_id"]: i["quantity"] for i in get("meta")["items"]},
        "woocommerce": {p["sku"]: p["stock_quantity"] for p in get("woocommerce")["products"]},
    }


async def test_a_second_demo_run_on_the_same_redis_pushes_every_size_to_its_own_platforms(
    redis: Redis, demo: Callable[..., DemoProcess]
) -> None:
    """`make demo` twice with the data kept: the second run's stand-ins start empty, and each must
    get every SKU's stock (the first run's acknowledged values are not theirs)."""
    skus = {f"{p.sku}-{size}" for p in PRODUCTS for size, _ in p.sizes} | {p.sku for p in PRODUCTS if not p.sizes}
    buffers = {"shopify": 2, "tiktok": 3, "meta": 4, "woocommerce": 3}
    for run in (1, 2):
        port = free_port()
        process = demo("--port", str(port), "--show", f"demo-run{run}", "--bots", "0", "--no-autopilot")
        panel_url, _ = await asyncio.wait_for(asyncio.to_thread(process.read_links), scaled(30))
        urls = await asyncio.wait_for(asyncio.to_thread(channel_urls, process), scaled(10))
        host_token = panel_url.split("#token=", 1)[1].split("&", 1)[0]
        headers = {"Authorization": f"Bearer {host_token}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as api:
            holds: dict[str, dict[str, int]] = {}
            wanted: dict[str, dict[str, int]] = {}
            try:
                async with asyncio.timeout(scaled(30)):
                    while True:
                        status = (await api.get("/api/channels")).json()["channels"]
                        available = {c["channel"]: {s["sku"]: s["available"] for s in c["skus"]} for c in status}
                        wanted = {
                            name: {sku: max(0, (available[name].get(sku) or 0) - b) for sku in skus}
                            for name, b in buffers.items()
                        }
                        holds = await asyncio.to_thread(standin_holds, urls)
                        # Every SKU, and none but the demo's, on each platform and in the status.
                        seen = all(set(available[n]) == skus and None not in available[n].values() for n in buffers)
                        if seen and holds == wanted:
                            break
                        await asyncio.sleep(0.2)
            except TimeoutError:
                raise AssertionError(f"run {run}: the platforms hold {holds}, not {wanted}") from None
        process.proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(process.proc.wait, scaled(20)) == 0, process.log.read_text()[-2000:]
