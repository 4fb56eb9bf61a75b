"""The webhook endpoints of a real app on real Redis: each platform end to end (verify → record →
apply), every kind of refusal with no effect, Meta's handshake, WooCommerce's ping, duplicate
storms, and what is counted and logged."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable

import msgspec
import pytest
from redis.asyncio import Redis

from server import keys
from server.ops.local_redis import LocalRedis
from server.platforms.webhooks.config import webhook_settings_from_env
from server.platforms.webhooks.events import Platform
from server.platforms.webhooks.signatures import SHOPIFY_HMAC, SHOPIFY_WEBHOOK_ID, sign_meta
from server.settings import from_env
from stock.types import Counters
from tests.support import paths
from tests.support.invariants import assert_drop_invariants
from tests.support.util import RedisServerFactory
from tests.support.webhooks import (
    META_TOKEN,
    SHOPIFY_OLD_SECRET,
    LiveApp,
    define_drop,
    drain,
    meta_headers,
    running_app,
    shopify_headers,
    shopify_order,
    standard_headers,
    standard_order,
    stream,
    tiktok_headers,
    tiktok_note,
    webhook_settings,
    woo_headers,
    woo_order,
)

DATA = paths.DATA / "webhooks"


@pytest.fixture
async def app(redis_server: LocalRedis, redis: Redis) -> AsyncIterator[LiveApp]:
    async with running_app(redis_server.url, webhook_settings()) as live:
        yield live


async def stream_length(redis: Redis) -> int:
    return int(await redis.xlen(keys.STREAM))


async def issues(redis: Redis) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in fields.items()} for fields in await stream(redis, keys.ISSUES)]


def problem_of(response_json: object, status: int, code: str) -> None:
    assert isinstance(response_json, dict)
    assert response_json["status"] == status and response_json["code"] == code, response_json
    assert response_json["type"] == "about:blank" and response_json["title"]


# -- each platform, end to end --------------------------------------------------------------------

Delivery = tuple[Platform, bytes, dict[str, str]]


def shopify_paid() -> Delivery:
    body = shopify_order(5940139491234, [(14417937858594, "GLOW", 2), (14417937891362, "NOT-OURS", 1)])
    return Platform.SHOPIFY, body, shopify_headers(body, "orders/paid")


def woo_processing() -> Delivery:
    body = woo_order(727, "processing", [(315, "GLOW", 2), (316, "NOT-OURS", 1)])
    return Platform.WOOCOMMERCE, body, woo_headers(body)


def standard_paid() -> Delivery:
    body = standard_order(
        "paid",
        "ORD-2026-000731",
        [{"line_id": "1", "sku": "GLOW", "qty": 2}, {"line_id": "2", "sku": "NOT-OURS", "qty": 1}],
    )
    return Platform.STANDARD, body, standard_headers(body)


@pytest.mark.parametrize(
    "make", [shopify_paid, woo_processing, standard_paid], ids=["shopify", "woocommerce", "standard"]
)
async def test_a_paid_order_of_each_platform_sells_its_drop(
    app: LiveApp, redis: Redis, make: Callable[[], Delivery]
) -> None:
    await define_drop(app.state, "d1", "GLOW", 10)
    platform, body, headers = make()
    response = await app.post(platform, body, headers)
    assert response.status_code == 200 and response.json() == {"status": "accepted"}
    assert await stream_length(redis) == 1
    # Recorded, not yet applied: the consumer applies.
    assert await app.state["engine"].counters("d1") == Counters(10, 10, 0, 0, 0)
    assert await drain(app.state) == 1
    assert await assert_drop_invariants(app.state["engine"], "d1") == Counters(10, 8, 0, 2, 0)
    unknown = [i for i in await issues(redis) if i["kind"] == "unknown_sku"]
    assert [(i["platform"], i["sku"], i["qty"]) for i in unknown] == [(platform.value, "NOT-OURS", "1")]


async def test_tiktok_and_meta_notifications_are_recorded_as_needing_a_fetch(app: LiveApp, redis: Redis) -> None:
    # Neither platform sends order lines: nothing may touch stock until the order is read from
    # the platform's API, so the report lists them instead of inventing lines.
    await define_drop(app.state, "d1", "GLOW", 10)
    tiktok = tiktok_note("576486316948490001", "AWAITING_SHIPMENT")
    assert (await app.post(Platform.TIKTOK, tiktok, tiktok_headers(tiktok))).json() == {"status": "accepted"}
    meta = (DATA / "meta_commerce_order.json").read_bytes()
    assert (await app.post(Platform.META, meta, meta_headers(meta))).json() == {"status": "accepted"}
    assert await drain(app.state) == 2
    fetches = sorted((i["platform"], i["order"], i["status"]) for i in await issues(redis))
    assert fetches == [
        ("meta", "64000841790004", "paid"),
        ("meta", "64000841790005", "other"),
        ("tiktok", "576486316948490001", "paid"),
    ]
    assert await assert_drop_invariants(app.state["engine"], "d1") == Counters(10, 10, 0, 0, 0)


# -- refusals: no record, no effect ----------------------------------------------------------------


def forged(platform: Platform) -> Delivery:
    match platform:
        case Platform.SHOPIFY:
            body = shopify_order(1, [(1, "GLOW", 1)])
            return platform, body, shopify_headers(body, "orders/paid", secret="not-the-secret")
        case Platform.TIKTOK:
            body = tiktok_note("1", "CANCEL")
            return platform, body, {**tiktok_headers(body), "Authorization": "ab" * 32}
        case Platform.META:
            body = (DATA / "meta_commerce_order.json").read_bytes()
            return platform, body, {"X-Hub-Signature-256": sign_meta(body, "not-the-secret")}
        case Platform.WOOCOMMERCE:
            body = woo_order(1, "processing", [(1, "GLOW", 1)])
            return platform, body, {**woo_headers(body), "X-WC-Webhook-Signature": "AAAA"}
        case Platform.STANDARD:
            body = standard_order("paid", "o1", [{"line_id": "1", "sku": "GLOW", "qty": 1}])
            headers = standard_headers(body)
            return platform, body, {**headers, "webhook-signature": "v1," + "A" * 44}


@pytest.mark.parametrize("platform", list(Platform))
async def test_a_forged_signature_is_refused_with_401_and_changes_nothing(
    app: LiveApp, redis: Redis, platform: Platform
) -> None:
    await define_drop(app.state, "d1", "GLOW", 10)
    _, body, headers = forged(platform)
    response = await app.post(platform, body, headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"]
    problem_of(response.json(), 401, "bad_signature")
    assert await stream_length(redis) == 0
    assert await redis.keys(keys.seen("*")) == []
    assert await assert_drop_invariants(app.state["engine"], "d1") == Counters(10, 10, 0, 0, 0)


async def test_a_tampered_body_is_refused(app: LiveApp, redis: Redis) -> None:
    await define_drop(app.state, "d1", "GLOW", 10)
    body = shopify_order(1, [(1, "GLOW", 1)])
    headers = shopify_headers(body, "orders/paid")
    tampered = body.replace(b'"quantity": 1', b'"quantity": 9')
    assert tampered != body
    response = await app.post(Platform.SHOPIFY, tampered, headers)
    problem_of(response.json(), 401, "bad_signature")
    assert await stream_length(redis) == 0
    # The genuine delivery with the same ids still goes through afterwards.
    assert (await app.post(Platform.SHOPIFY, body, headers)).json() == {"status": "accepted"}


async def test_a_missing_signature_is_401_and_a_missing_delivery_id_is_400(app: LiveApp, redis: Redis) -> None:
    body = shopify_order(1, [(1, "GLOW", 1)])
    headers = shopify_headers(body, "orders/paid")
    unsigned = {k: v for k, v in headers.items() if k != SHOPIFY_HMAC}
    problem_of((await app.post(Platform.SHOPIFY, body, unsigned)).json(), 401, "missing_header")
    anonymous = {k: v for k, v in headers.items() if k != SHOPIFY_WEBHOOK_ID}
    problem_of((await app.post(Platform.SHOPIFY, body, anonymous)).json(), 400, "missing_header")
    assert await stream_length(redis) == 0


async def test_a_standard_replay_outside_the_tolerance_is_refused(app: LiveApp, redis: Redis) -> None:
    await define_drop(app.state, "d1", "GLOW", 10)
    body = standard_order("paid", "o1", [{"line_id": "1", "sku": "GLOW", "qty": 1}])
    # Genuinely signed, but six minutes old (the window is five): a captured delivery replayed.
    stale = standard_headers(body, timestamp=int(time.time()) - 360)
    problem_of((await app.post(Platform.STANDARD, body, stale)).json(), 400, "stale_timestamp")
    ahead = standard_headers(body, timestamp=int(time.time()) + 360)
    problem_of((await app.post(Platform.STANDARD, body, ahead)).json(), 400, "stale_timestamp")
    assert await stream_length(redis) == 0
    fresh = standard_headers(body, timestamp=int(time.time()) - 200)
    assert (await app.post(Platform.STANDARD, body, fresh)).json() == {"status": "accepted"}


async def test_a_signed_but_unreadable_payload_is_refused_with_400(app: LiveApp, redis: Redis) -> None:
    body = b'{"type": "order.paid", "data": {"order_id": 7}}'  # order_id must be a string
    problem_of((await app.post(Platform.STANDARD, body, standard_headers(body))).json(), 400, "malformed_payload")
    body = b"not json"
    problem_of((await app.post(Platform.TIKTOK, body, tiktok_headers(body))).json(), 400, "malformed_payload")
    assert await stream_length(redis) == 0


async def test_a_body_over_the_limit_is_refused_with_413(redis_server: LocalRedis, redis: Redis) -> None:
    async with running_app(redis_server.url, webhook_settings(max_body_bytes=1024)) as app:
        body = standard_order("paid", "o1", [{"line_id": str(i), "sku": "GLOW", "qty": 1} for i in range(100)])
        assert len(body) > 1024
        problem_of((await app.post(Platform.STANDARD, body, standard_headers(body))).json(), 413, "too_large")
    assert await stream_length(redis) == 0


async def test_a_platform_without_a_secret_is_not_enabled(redis_server: LocalRedis, redis: Redis) -> None:
    async with running_app(redis_server.url, webhook_settings(standard=(), meta_verify_tokens=())) as app:
        body = standard_order("paid", "o1", [{"line_id": "1", "sku": "GLOW", "qty": 1}])
        # Unsigned, or signed with anything: without a configured secret nothing is accepted.
        problem_of((await app.post(Platform.STANDARD, body, {})).json(), 404, "not_enabled")
        problem_of((await app.post(Platform.STANDARD, body, standard_headers(body))).json(), 404, "not_enabled")
        response = await app.client.get("/webhooks/meta", params={"hub.mode": "subscribe", "hub.challenge": "1"})
        problem_of(response.json(), 404, "not_enabled")
    assert await stream_length(redis) == 0


async def test_two_secrets_are_valid_during_rotation_and_shops_are_told_apart(app: LiveApp, redis: Redis) -> None:
    body = shopify_order(1, [(1, "GLOW", 1)])
    old = shopify_headers(body, "orders/paid", secret=SHOPIFY_OLD_SECRET)
    assert (await app.post(Platform.SHOPIFY, body, old)).json() == {"status": "accepted"}
    new = shopify_headers(body, "orders/create")
    assert (await app.post(Platform.SHOPIFY, body, new)).json() == {"status": "accepted"}
    # Another shop, signed with this shop's secret: its secret is not configured.
    other = {**shopify_headers(body, "orders/paid"), "X-Shopify-Shop-Domain": "someone-else.myshopify.com"}
    problem_of((await app.post(Platform.SHOPIFY, body, other)).json(), 401, "unknown_shop")
    assert await stream_length(redis) == 2


# -- unsigned headers must agree with the signed body ------------------------------------------------


async def test_a_captured_order_replayed_as_a_cancellation_is_refused(app: LiveApp, redis: Redis) -> None:
    # Shopify signs the body only: the same body and HMAC under X-Shopify-Topic orders/cancelled,
    # with fresh (unsigned) delivery ids, must not restock the units the order bought.
    await define_drop(app.state, "d1", "GLOW", 10)
    body = shopify_order(7001, [(1, "GLOW", 2)])
    sale = shopify_headers(body, "orders/paid")
    assert (await app.post(Platform.SHOPIFY, body, sale)).json() == {"status": "accepted"}
    await drain(app.state)
    replay = {**sale, "X-Shopify-Topic": "orders/cancelled", "X-Shopify-Webhook-Id": "fresh-1"}
    replay["X-Shopify-Event-Id"] = "fresh-2"
    problem_of((await app.post(Platform.SHOPIFY, body, replay)).json(), 400, "topic_mismatch")
    # A refund body under a sale topic, an order body under refunds/create: refused too.
    refund = (DATA / "shopify_refunds_create.json").read_bytes()
    as_sale = shopify_headers(refund, "orders/paid")
    problem_of((await app.post(Platform.SHOPIFY, refund, as_sale)).json(), 400, "topic_mismatch")
    as_refund = shopify_headers(body, "refunds/create")
    problem_of((await app.post(Platform.SHOPIFY, body, as_refund)).json(), 400, "topic_mismatch")
    assert await stream_length(redis) == 1
    await drain(app.state)
    assert await assert_drop_invariants(app.state["engine"], "d1") == Counters(10, 8, 0, 2, 0)
    scrape = (await app.client.get("/metrics")).text
    assert 'livedrop_webhooks_total{outcome="topic_mismatch",platform="shopify"} 3.0' in scrape
    # The genuine cancellation (the order with cancelled_at) still restocks.
    cancelled = json.dumps({**json.loads(body), "cancelled_at": "2026-03-15T08:00:00-04:00"}).encode()
    ok = await app.post(Platform.SHOPIFY, cancelled, shopify_headers(cancelled, "orders/cancelled"))
    assert ok.json() == {"status": "accepted"}
    await drain(app.state)
    assert await assert_drop_invariants(app.state["engine"], "d1") == Counters(10, 10, 0, 0, 0)


async def test_a_shopify_order_edit_is_acknowledged_and_changes_nothing(app: LiveApp, redis: Redis) -> None:
    # orders/edited carries an order_edit, not an order: refusing it as unreadable made Shopify
    # retry it (and eventually drop the subscription).
    await define_drop(app.state, "d1", "GLOW", 10)
    edit = {"order_edit": {"id": 78, "order_id": 7001, "line_items": {"additions": [], "removals": []}}}
    body = json.dumps(edit).encode()
    assert (await app.post(Platform.SHOPIFY, body, shopify_headers(body, "orders/edited"))).json() == {
        "status": "accepted"
    }
    await drain(app.state)
    assert await assert_drop_invariants(app.state["engine"], "d1") == Counters(10, 10, 0, 0, 0)


async def test_a_woocommerce_order_topic_needs_an_order_body(app: LiveApp, redis: Redis) -> None:
    product = json.dumps({"id": 799, "name": "Glow serum", "status": "publish", "sku": "GLOW"}).encode()
    problem_of((await app.post(Platform.WOOCOMMERCE, product, woo_headers(product))).json(), 400, "topic_mismatch")
    assert await stream_length(redis) == 0


# -- Meta and WooCommerce specifics -----------------------------------------------------------------


async def test_meta_signs_escaped_unicode_and_only_the_raw_bytes_verify(app: LiveApp, redis: Redis) -> None:
    raw = (DATA / "meta_commerce_order.json").read_bytes()
    assert b"\\u00e9" in raw
    response = await app.post(Platform.META, raw, meta_headers(raw))
    assert response.json() == {"status": "accepted"}
    # The same document re-serialised with raw UTF-8, sent with the signature Meta made over the
    # escaped bytes, must fail: only the bytes received are ever verified.
    reencoded = json.dumps(json.loads(raw), ensure_ascii=False).encode()
    assert "Café".encode() in reencoded
    problem_of((await app.post(Platform.META, reencoded, meta_headers(raw))).json(), 401, "bad_signature")
    # Signed over its own UTF-8 bytes it is genuine, and accepted as another delivery.
    assert (await app.post(Platform.META, reencoded, meta_headers(reencoded))).json() == {"status": "accepted"}
    assert await stream_length(redis) == 2


async def test_meta_handshake(app: LiveApp) -> None:
    ok = await app.client.get(
        "/webhooks/meta",
        params={"hub.mode": "subscribe", "hub.verify_token": META_TOKEN, "hub.challenge": "1158201444"},
    )
    assert ok.status_code == 200 and ok.text == "1158201444"
    assert ok.headers["content-type"].startswith("text/plain")
    bad = await app.client.get(
        "/webhooks/meta", params={"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"}
    )
    problem_of(bad.json(), 403, "bad_verify_token")
    malformed = await app.client.get("/webhooks/meta", params={"hub.verify_token": META_TOKEN})
    problem_of(malformed.json(), 400, "bad_handshake")


async def test_woocommerce_creation_ping_is_answered_200_and_recorded_nowhere(app: LiveApp, redis: Redis) -> None:
    response = await app.client.post(
        "/webhooks/woocommerce", content=b"webhook_id=15", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 200 and response.json() == {"status": "ping"}
    assert await stream_length(redis) == 0


# -- duplicates -----------------------------------------------------------------------------------


async def test_a_duplicate_storm_makes_one_entry_and_one_effect(
    app: LiveApp, redis: Redis, redis_server: LocalRedis
) -> None:
    await define_drop(app.state, "d1", "GLOW", 100)
    body = shopify_order(42, [(1, "GLOW", 3)])
    headers = shopify_headers(body, "orders/paid", webhook_id="storm-1")
    # 50 copies at once, half through a second node on the same Redis.
    async with running_app(redis_server.url, webhook_settings(consumer_name="node-2")) as other:
        responses = await asyncio.gather(*(node.post(Platform.SHOPIFY, body, headers) for node in [app, other] * 25))
    assert [r.status_code for r in responses] == [200] * 50
    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses == ["accepted"] + ["duplicate"] * 49
    assert await stream_length(redis) == 1
    await drain(app.state)
    assert await assert_drop_invariants(app.state["engine"], "d1") == Counters(100, 97, 0, 3, 0)
    # A retry a day later is still a duplicate (the key outlives every platform's retries).
    ttl = await redis.ttl(keys.seen("shopify:webhook:storm-1"))
    assert 7 * 24 * 3600 - 60 < ttl <= 7 * 24 * 3600
    assert (await app.post(Platform.SHOPIFY, body, headers)).json() == {"status": "duplicate"}


async def test_shopify_event_id_dedupes_a_second_subscription_but_not_another_topic(app: LiveApp, redis: Redis) -> None:
    body = shopify_order(42, [(1, "GLOW", 3)])
    first = shopify_headers(body, "orders/paid")
    again = {**first, "X-Shopify-Webhook-Id": "another-subscription"}
    other_topic = {**first, "X-Shopify-Webhook-Id": "wh-x", "X-Shopify-Topic": "orders/create"}
    assert (await app.post(Platform.SHOPIFY, body, first)).json() == {"status": "accepted"}
    assert (await app.post(Platform.SHOPIFY, body, again)).json() == {"status": "duplicate"}
    assert (await app.post(Platform.SHOPIFY, body, other_topic)).json() == {"status": "accepted"}
    assert await stream_length(redis) == 2


# -- operations: Redis away, metrics, logs -------------------------------------------------------------


async def test_redis_unreachable_answers_503_so_the_platform_retries(fresh_redis_server: RedisServerFactory) -> None:
    server = fresh_redis_server()
    async with running_app(server.url, webhook_settings()) as app:
        body = standard_order("paid", "o1", [{"line_id": "1", "sku": "GLOW", "qty": 1}])
        headers = standard_headers(body)
        server.kill()
        response = await app.post(Platform.STANDARD, body, headers)
        problem_of(response.json(), 503, "unavailable")
        assert response.headers["retry-after"]
        server.restart()
        # The platform's retry, once Redis is back, is accepted (nothing was recorded before).
        assert (await app.post(Platform.STANDARD, body, headers)).json() == {"status": "accepted"}


async def test_outcomes_are_counted_and_logs_hold_no_payload(app: LiveApp, caplog: pytest.LogCaptureFixture) -> None:
    body = json.dumps(
        {"id": 8123, "email": "jane.doe@example.com", "line_items": [{"id": 1, "sku": "GLOW", "quantity": 1}]}
    ).encode()
    with caplog.at_level(logging.DEBUG, logger="livedrop"):
        await app.post(Platform.SHOPIFY, body, shopify_headers(body, "orders/paid", secret="wrong"))
        await app.post(Platform.SHOPIFY, body, shopify_headers(body, "orders/paid"))
    assert any("bad_signature" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        assert "jane" not in record.getMessage() and "8123" not in record.getMessage()
    scrape = (await app.client.get("/metrics")).text
    assert 'livedrop_webhooks_total{outcome="bad_signature",platform="shopify"} 1.0' in scrape
    assert 'livedrop_webhooks_total{outcome="accepted",platform="shopify"} 1.0' in scrape
    assert 'livedrop_webhook_seconds_count{platform="shopify"} 2.0' in scrape


async def test_a_recorded_delivery_keeps_only_the_headers_that_matter(app: LiveApp, redis: Redis) -> None:
    body = shopify_order(1, [(1, "GLOW", 1)])
    headers = {**shopify_headers(body, "orders/paid"), "X-Forwarded-For": "203.0.113.9", "User-Agent": "Shopify"}
    await app.post(Platform.SHOPIFY, body, headers)
    [fields] = await stream(redis, keys.STREAM)
    assert fields[b"p"] == b"shopify" and fields[b"b"] == body and fields[b"v"] == b"signature"
    kept = msgspec.json.decode(fields[b"h"], type=dict[str, str])
    assert set(kept) == {
        "x-shopify-hmac-sha256",
        "x-shopify-topic",
        "x-shopify-shop-domain",
        "x-shopify-webhook-id",
        "x-shopify-event-id",
    }


async def test_concurrent_records_share_round_trips_and_survive_a_script_flush(app: LiveApp, redis: Redis) -> None:
    log = app.state["webhooks"].log
    bodies = [standard_order("paid", f"o{i}", [{"line_id": "1", "sku": "GLOW", "qty": 1}]) for i in range(40)]
    await redis.script_flush()  # as after a Redis restart: the first pipeline meets NOSCRIPT
    calls = log.round_trips
    responses = await asyncio.gather(*(app.post(Platform.STANDARD, b, standard_headers(b)) for b in bodies))
    assert [r.json() for r in responses] == [{"status": "accepted"}] * 40
    assert log.round_trips - calls < 40  # group commit: fewer round trips than records
    assert await stream_length(redis) == 40


# -- configuration ----------------------------------------------------------------------------------


def test_secrets_come_from_the_environment_as_lists_json_or_per_shop() -> None:
    env = {
        "LIVEDROP_SHOPIFY_SECRETS": '{"Shop-A.myshopify.com": ["old", "new"], "*": "any"}',
        "LIVEDROP_WOOCOMMERCE_SECRETS": '["has,comma", "plain"]',
        "LIVEDROP_STANDARD_SECRETS": "whsec_a, whsec_b ,",
        "LIVEDROP_TIKTOK_SECRETS": "s",
        "LIVEDROP_WEBHOOK_APPLY": "0",
    }
    settings = webhook_settings_from_env(env)
    assert settings.shopify == {"shop-a.myshopify.com": ("old", "new"), "*": ("any",)}
    assert settings.woocommerce == {"*": ("has,comma", "plain")}
    assert settings.standard == ("whsec_a", "whsec_b")
    assert settings.apply is False
    assert settings.secrets_for(Platform.SHOPIFY, {"X-Shopify-Shop-Domain": "shop-a.myshopify.com"}) == ("old", "new")
    assert settings.secrets_for(Platform.SHOPIFY, {"X-Shopify-Shop-Domain": "b.myshopify.com"}) == ("any",)
    # TikTok needs its app key as well as a secret; Meta is off without its app secret.
    assert not settings.enabled(Platform.TIKTOK) and not settings.enabled(Platform.META)
    assert settings.enabled(Platform.STANDARD) and settings.enabled(Platform.WOOCOMMERCE)
    assert "old" not in repr(settings) and "whsec" not in repr(settings)
    with pytest.raises(ValueError):
        webhook_settings_from_env({"LIVEDROP_META_SECRETS": '["unterminated"'})
    with pytest.raises(ValueError):
        webhook_settings_from_env({"LIVEDROP_SHOPIFY_SECRETS": '{"shop": 7}'})
    assert from_env({"LIVEDROP_META_SECRETS": "m"}).webhooks.meta == ("m",)


async def test_an_unusable_secret_answers_500_so_the_platform_retries(redis_server: LocalRedis, redis: Redis) -> None:
    async with running_app(redis_server.url, webhook_settings(standard=("whsec_not*base64",))) as app:
        body = standard_order("paid", "o1", [{"line_id": "1", "sku": "GLOW", "qty": 1}])
        problem_of((await app.post(Platform.STANDARD, body, standard_headers(body))).json(), 500, "misconfigured")
    assert await stream_length(redis) == 0
