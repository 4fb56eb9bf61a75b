"""The Locust load test: its schedule, its signed deliveries, its verdict, and a tiny real run.

The tiny run goes through the same runner as ``make loadtest`` (a private Redis, two
``livedrop serve`` processes, ``locust --headless`` on loadtest/locustfile.py) with a few users
for 14 seconds, and asserts the verdict passes. The verdict tests below it show that the verdict
fails on what it must catch (a ledger that does not replay, a hold a buyer was told about that
the server does not have, an acknowledged webhook that was never applied), so a pass means
something. The verdict reads a real node's host API only; these tests reach into Redis just to
set up (or corrupt) the state it must judge.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from loadtest import run as runner
from loadtest.audit import Auditor
from loadtest.deliveries import Deliveries
from loadtest.hostapi import HostApi
from loadtest.plan import ActionKind, Plan, make_plan
from loadtest.records import RecordWriter
from loadtest.signing import Platform as SenderPlatform
from loadtest.signing import PlatformSecrets
from loadtest.stack import RedisProcess
from loadtest.verdict import judge
from server.platforms.webhooks.config import webhook_settings_from_env
from server.platforms.webhooks.events import Platform
from server.platforms.webhooks.normalize import normalize
from server.platforms.webhooks.signatures import (
    delivery_keys,
    verify_meta,
    verify_shopify,
    verify_standard,
    verify_tiktok,
    verify_woocommerce,
)
from stock import StockEngine
from stock.keys import drop_keys
from tests.support.servers import Node
from tests.support.util import scaled

SECRETS = PlatformSecrets(
    shopify="shpss_x",
    tiktok_app_key="key",
    tiktok="tt",
    meta="meta",
    woocommerce="woo,with;punctuation",
    standard="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
)


def test_plan_fits_the_drops_in_the_show() -> None:
    plan = make_plan("s", show_seconds=60, drops=3, drop_seconds=15, stock=40)
    launches = [a for a in plan.actions if a.kind is ActionKind.LAUNCH]
    assert [a.drop_id for a in launches] == ["s-d1", "s-d2", "s-d3"]
    assert launches[0].at > plan.ramp_seconds  # viewers are in before the first drop
    assert all(a.at + 15 < 60 for a in launches)  # every drop has ended before the show does
    restocks = [a for a in plan.actions if a.kind is ActionKind.RESTOCK]
    assert [(a.drop_id, a.amount) for a in restocks] == [("s-d1", 10), ("s-d2", 10), ("s-d3", 10)]
    assert plan.actions[-1].kind is ActionKind.END_SHOW and plan.actions[-1].at < 60
    assert plan.due(0.0, 0) == [] and plan.due(1000.0, 2) == list(plan.actions[2:])
    assert plan.spawn_rate * plan.ramp_seconds >= plan.users
    with pytest.raises(ValueError, match="do not fit"):
        make_plan("s", show_seconds=10, drops=2, drop_seconds=15)


def test_deliveries_verify_with_the_servers_checks_and_name_their_effects() -> None:
    deliveries = Deliveries(SECRETS, base=42)
    for platform in Platform:
        flow = deliveries.order_flow(SenderPlatform(platform.value), "SKU-1", 2, cancel=True)
        for d in flow:
            match platform:
                case Platform.SHOPIFY:
                    verify_shopify(d.body, d.headers, [SECRETS.shopify])
                case Platform.TIKTOK:
                    verify_tiktok(d.body, d.headers, app_key=SECRETS.tiktok_app_key, secrets=[SECRETS.tiktok])
                case Platform.META:
                    verify_meta(d.body, d.headers, [SECRETS.meta])
                case Platform.WOOCOMMERCE:
                    verify_woocommerce(d.body, d.headers, [SECRETS.woocommerce])
                case Platform.STANDARD:
                    verify_standard(d.body, d.headers, [SECRETS.standard])
            events = normalize(platform, d.body, d.headers)
            assert events and events[0].delivery_id == d.key
            assert delivery_keys(platform, d.body, d.headers)[0] == d.key
        effects = [e for d in flow for e in d.effects]
        if platform in (Platform.TIKTOK, Platform.META):
            assert [e.kind for e in effects] == ["notify"]
        else:
            sales = {e.line for e in effects if e.kind == "sale"}
            cancels = {e.line for e in effects if e.kind == "cancel"}
            assert len(sales) == 1 and sales == cancels  # the same line, sold then cancelled
            assert all(e.qty == 2 for e in effects if e.kind == "sale")
    # Every delivery has its own id (Shopify sends two for one order: orders/create, orders/paid).
    flows = [d.key for p in SenderPlatform for d in deliveries.order_flow(p, "S", 1, cancel=False)]
    assert len(flows) == 6 and len(set(flows)) == 6


def test_tiny_flash_sale_passes_its_verdict(tmp_path: Path) -> None:
    args = runner.build_parser().parse_args(
        [
            "--nodes", "2",
            "--show-seconds", "14",
            "--viewers", "8",
            "--buyers", "8",
            "--platforms", "5",
            "--drops", "2",
            "--stock", "5",
            "--drop-seconds", "4",
            "--hold-seconds", "3",
            "--reports", str(tmp_path),
            "--show-id", "tiny",
        ]
    )  # fmt: skip
    verdict = runner.run(args)
    assert verdict.ok, verdict.render()
    out = tmp_path / "tiny"
    assert (out / "report.html").stat().st_size > 0 and (out / "locust_stats.csv").exists()
    assert json.loads((out / "verdict.json").read_text())["ok"] is True
    figures = verdict.figures
    assert set(figures["webhooks_acknowledged"]) == {p.value for p in Platform}
    assert sum(d["holds_created"] for d in figures["drops"].values()) > 0
    assert figures["requests"]["WS push stock"]["count"] > 0


HOST_TOKEN = "lt-test-host-token"


@pytest.fixture
async def drop(nodes: Callable[..., Node], redis: Redis) -> AsyncIterator[tuple[Auditor, Plan]]:
    """A node with one live drop of a one-drop plan (made through the host API, as the load test
    does) and one hold reserved on it; the auditor reads that node's host API."""
    node = nodes(env={"LIVEDROP_HOST_TOKENS": HOST_TOKEN})
    plan = make_plan("s", show_seconds=30, viewers=0, buyers=0, platforms=0, drops=1, stock=5, drop_seconds=5)
    api = HostApi(node.http, HOST_TOKEN)
    api.ensure_show(plan)
    api.launch("s-d1")
    result = await StockEngine(redis).reserve("s-d1", "c1", 1, "r1")
    assert result.hold_id is not None
    yield Auditor(api), plan


async def test_verdict_passes_on_a_consistent_drop(redis: Redis, drop: tuple[Auditor, Plan], tmp_path: Path) -> None:
    auditor, plan = drop
    hold = (await StockEngine(redis).holds("s-d1"))[0]
    records = RecordWriter(tmp_path)
    records.write("reserved", customer="c1", drop="s-d1", hold=hold.hold_id, qty=1, waitlist=False)
    records.close()
    verdict = judge(auditor, plan, tmp_path, None)
    assert verdict.ok, verdict.render()
    assert verdict.figures["drops"]["s-d1"]["holds_created"] == 1


async def test_verdict_fails_on_a_ledger_that_does_not_replay(
    redis: Redis, drop: tuple[Auditor, Plan], tmp_path: Path
) -> None:
    auditor, plan = drop
    # One unit appears in the ledger from nowhere: the replay no longer gives the counters.
    fields = {"op": "adjust", "dt": 1, "da": 1, "t": 6, "a": 5, "h": 1, "s": 0, "o": 0, "ts": 0}
    await redis.xadd(drop_keys("s-d1").ledger, fields)  # type: ignore[arg-type]
    verdict = judge(auditor, plan, tmp_path, None)
    assert [c.name for c in verdict.checks if not c.ok] == ["ledger invariants"]


async def test_verdict_fails_on_what_clients_were_told_but_the_server_lacks(
    drop: tuple[Auditor, Plan], tmp_path: Path
) -> None:
    auditor, plan = drop
    records = RecordWriter(tmp_path)
    records.write("reserved", customer="c2", drop="s-d1", hold="s-d1.99", qty=1, waitlist=False)
    sale = {"kind": "sale", "line": "shopify|1|2", "qty": 1, "event": "", "platform": "", "order": "", "status": ""}
    records.write("webhook", platform="shopify", key="shopify:webhook:x", answer="accepted", effects=[sale])
    records.close()
    verdict = judge(auditor, plan, tmp_path, None)
    failed = {c.name: c.detail for c in verdict.checks if not c.ok}
    assert set(failed) == {"buyers told the truth", "webhooks applied once"}, verdict.render()
    assert "s-d1.99" in failed["buyers told the truth"]
    assert "recorded 0 times" in failed["webhooks applied once"] and "shopify|1|2" in failed["webhooks applied once"]


@pytest.mark.parametrize(
    "env",
    [
        {"LIVEDROP_SHOPIFY_SECRETS": "old,new", "LIVEDROP_WOOCOMMERCE_SECRETS": '["w,1", "w;2"]'},
        {
            "LIVEDROP_SHOPIFY_SECRETS": '{"*": "any", "Shop-A.myshopify.com": ["a1", "a2"]}',
            "LIVEDROP_WOOCOMMERCE_SECRETS": '{"https://woo.example.com/": "w"}',
            "LIVEDROP_TIKTOK_APP_KEY": "key",
            "LIVEDROP_TIKTOK_SECRETS": "t1,t2",
            "LIVEDROP_META_SECRETS": '["m"]',
            "LIVEDROP_STANDARD_SECRETS": f"whsec_old,{SECRETS.standard}",
        },
    ],
)
def test_secrets_from_the_servers_variables_sign_what_the_server_accepts(env: dict[str, str]) -> None:
    """The load generator parses LIVEDROP_*_SECRETS itself; whatever format the operator chose,
    its deliveries must pass the server's own secret choice and signature checks."""
    secrets = PlatformSecrets.from_env(env)
    settings = webhook_settings_from_env(env)
    assert {p.value for p in secrets.enabled()} == {p.value for p in Platform if settings.enabled(p)}
    deliveries = Deliveries(secrets, base=7)
    for sender in secrets.enabled():
        platform = Platform(sender.value)
        for d in deliveries.order_flow(sender, "SKU-1", 1, cancel=True):
            accepted = settings.secrets_for(platform, d.headers)
            match platform:
                case Platform.SHOPIFY:
                    verify_shopify(d.body, d.headers, accepted)
                case Platform.TIKTOK:
                    verify_tiktok(d.body, d.headers, app_key=settings.tiktok_app_key, secrets=accepted)
                case Platform.META:
                    verify_meta(d.body, d.headers, accepted)
                case Platform.WOOCOMMERCE:
                    verify_woocommerce(d.body, d.headers, accepted)
                case Platform.STANDARD:
                    verify_standard(d.body, d.headers, accepted)


async def test_stack_redis_is_the_public_livedrop_redis_command(tmp_path: Path) -> None:
    """The load test's Redis comes from ``livedrop redis``: it prints a URL that answers, keeps
    its AOF in the given directory, and SIGTERM stops the command and its Redis cleanly."""
    process = RedisProcess(tmp_path / "redis")
    process.start(scaled(30))
    try:
        client = Redis.from_url(process.url)
        assert await client.ping()
        await client.set("k", "v")
        await client.aclose()
        assert (tmp_path / "redis" / "appendonlydir").is_dir()
        proc = process.proc
        assert proc is not None
    finally:
        process.stop()
    assert proc.returncode == 0, process.log_path.read_text()
    client = Redis.from_url(process.url, socket_connect_timeout=1)
    with pytest.raises(RedisConnectionError):
        await client.ping()
    await client.aclose()
