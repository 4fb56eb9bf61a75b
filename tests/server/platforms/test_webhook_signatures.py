"""Signature checks and de-duplication keys of platform webhooks (no network, no Redis).

The signing helpers here are written independently of ``server.platforms.webhooks.signatures`` (straight from each
platform's documented recipe), so a mistake shared by signer and verifier would still be caught; the
published vectors and the ``standardwebhooks`` reference library pin the recipes themselves.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.platforms.webhooks import (
    BadSignature,
    MalformedPayload,
    MissingHeader,
    Platform,
    StaleTimestamp,
    WebhookRejected,
    delivery_keys,
    is_woocommerce_ping,
    meta_handshake,
    sign_meta,
    sign_shopify,
    sign_standard,
    sign_tiktok,
    sign_woocommerce,
    verify_meta,
    verify_shopify,
    verify_standard,
    verify_tiktok,
    verify_woocommerce,
)
from tests.support import paths

DATA = paths.DATA / "webhooks"


# --- independent signing helpers (the documented recipes) -------------------------------------------


def _mac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def shopify_headers(body: bytes, secret: str) -> dict[str, str]:
    return {
        "X-Shopify-Hmac-Sha256": base64.b64encode(_mac(secret.encode(), body)).decode(),
        "X-Shopify-Topic": "orders/paid",
        "X-Shopify-Shop-Domain": "demo.myshopify.com",
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
    }


APP_KEY = "abcdef"


def tiktok_headers(body: bytes, secret: str) -> dict[str, str]:
    return {"Authorization": _mac(secret.encode(), APP_KEY.encode() + body).hex()}


def meta_headers(body: bytes, secret: str) -> dict[str, str]:
    return {"X-Hub-Signature-256": "sha256=" + _mac(secret.encode(), body).hex()}


def woo_headers(body: bytes, secret: str) -> dict[str, str]:
    return {
        "X-WC-Webhook-Signature": base64.b64encode(_mac(secret.encode(), body)).decode(),
        "X-WC-Webhook-Topic": "order.updated",
        "X-WC-Webhook-ID": "31",
        "X-WC-Webhook-Delivery-ID": "2b8d5e4f0a9c1d3e5f7a9b1c3d5e7f90",
        "X-WC-Webhook-Source": "https://shop.example.com/",
    }


NOW = 1_773_529_331
FULLWIDTH_DIGITS = "\uff11\uff17\uff17\uff13\uff15\uff12\uff19\uff13\uff13\uff11"
"""str.isdigit() accepts these; a signed timestamp must not."""


def whsec(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


def standard_headers(body: bytes, secret: str, *, ts: int = NOW, msg_id: str = "msg_2KWPBgLlAfxdpx") -> dict[str, str]:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = _mac(key, f"{msg_id}.{ts}.".encode() + body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


Verifier = Callable[[bytes, Mapping[str, str], Sequence[str]], None]


def _tiktok_verify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    verify_tiktok(body, headers, app_key=APP_KEY, secrets=secrets)


def _standard_verify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    verify_standard(body, headers, secrets, now=NOW)


SECRET_A = whsec(b"first-secret-of-at-least-24-bytes!")
SECRET_B = whsec(b"second-secret-of-at-least-24-bytes")

# (name, verifier, header builder, signature header name)
SCHEMES: list[tuple[str, Verifier, Callable[[bytes, str], dict[str, str]], str]] = [
    ("shopify", verify_shopify, shopify_headers, "X-Shopify-Hmac-Sha256"),
    ("tiktok", _tiktok_verify, tiktok_headers, "Authorization"),
    ("meta", verify_meta, meta_headers, "X-Hub-Signature-256"),
    ("woocommerce", verify_woocommerce, woo_headers, "X-WC-Webhook-Signature"),
    ("standard", _standard_verify, standard_headers, "webhook-signature"),
]
SCHEME_IDS = [s[0] for s in SCHEMES]
BODY = (DATA / "shopify_orders_create.json").read_bytes()


# --- published vectors ------------------------------------------------------------------------------

# TikTok Shop Partner Center, "Webhooks overview": app key abcdef, app secret 123, this exact payload.
TIKTOK_VECTOR_BODY = (
    b'{"type":1,"tts_notification_id":"7380066284010030890","shop_id":"7495540735365777507",'
    b'"timestamp":1718305585,"data":{"is_on_hold_order":true,"order_id":"576653688135258178",'
    b'"order_status":"UNPAID","update_time":1718305585}}'
)
TIKTOK_VECTOR_SIGNATURE = "5dec0f11ec2f6783b8deee53c9ffbf8d024302f7c7e7fa55a35d17629031ac05"

# Standard Webhooks reference libraries' signing vector (the spec's own example names no secret).
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TS = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_tiktok_published_vector() -> None:
    assert sign_tiktok(TIKTOK_VECTOR_BODY, app_key="abcdef", secret="123") == TIKTOK_VECTOR_SIGNATURE
    verify_tiktok(TIKTOK_VECTOR_BODY, {"Authorization": TIKTOK_VECTOR_SIGNATURE}, app_key="abcdef", secrets=["123"])
    with pytest.raises(BadSignature):
        verify_tiktok(TIKTOK_VECTOR_BODY, {"Authorization": TIKTOK_VECTOR_SIGNATURE}, app_key="abcdeg", secrets=["123"])


def test_standard_published_vector() -> None:
    assert sign_standard(SW_BODY, msg_id=SW_ID, timestamp=SW_TS, secret=SW_SECRET) == SW_SIGNATURE
    headers = {"webhook-id": SW_ID, "webhook-timestamp": str(SW_TS), "webhook-signature": SW_SIGNATURE}
    verify_standard(SW_BODY, headers, [SW_SECRET], now=SW_TS)
    # The prefix is optional, as in the reference libraries.
    verify_standard(SW_BODY, headers, [SW_SECRET.removeprefix("whsec_")], now=SW_TS)
    # The reference libraries' "invalid signature" case: last base64 character changed.
    forged = dict(headers, **{"webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="})
    with pytest.raises(BadSignature):
        verify_standard(SW_BODY, forged, [SW_SECRET], now=SW_TS)


def test_module_signers_agree_with_the_documented_recipes() -> None:
    assert sign_shopify(BODY, "s3cret") == shopify_headers(BODY, "s3cret")["X-Shopify-Hmac-Sha256"]
    assert sign_tiktok(BODY, app_key=APP_KEY, secret="s3cret") == tiktok_headers(BODY, "s3cret")["Authorization"]
    assert sign_meta(BODY, "s3cret") == meta_headers(BODY, "s3cret")["X-Hub-Signature-256"]
    assert sign_woocommerce(BODY, "s3cret") == woo_headers(BODY, "s3cret")["X-WC-Webhook-Signature"]
    expected = standard_headers(BODY, SECRET_A, msg_id="msg_1", ts=NOW)["webhook-signature"]
    assert sign_standard(BODY, msg_id="msg_1", timestamp=NOW, secret=SECRET_A) == expected


# --- every scheme: genuine, forged, tampered, wrong secret, rotation --------------------------------


@pytest.mark.parametrize(("name", "verify", "make_headers", "sig_header"), SCHEMES, ids=SCHEME_IDS)
def test_genuine_delivery_verifies(
    name: str, verify: Verifier, make_headers: Callable[[bytes, str], dict[str, str]], sig_header: str
) -> None:
    verify(BODY, make_headers(BODY, SECRET_A), [SECRET_A])
    # Header names are matched case-insensitively (HTTP/2 lower-cases them).
    lowered = {k.lower(): v for k, v in make_headers(BODY, SECRET_A).items()}
    verify(BODY, lowered, [SECRET_A])


@pytest.mark.parametrize(("name", "verify", "make_headers", "sig_header"), SCHEMES, ids=SCHEME_IDS)
def test_forged_signature_is_rejected(
    name: str, verify: Verifier, make_headers: Callable[[bytes, str], dict[str, str]], sig_header: str
) -> None:
    headers = make_headers(BODY, SECRET_A)
    # A well-formed signature of another body: right shape, wrong value.
    headers[sig_header] = make_headers(b"{}", SECRET_A)[sig_header]
    with pytest.raises(BadSignature) as caught:
        verify(BODY, headers, [SECRET_A])
    assert caught.value.code == "bad_signature"
    # Garbage that is not even base64/hex is a bad signature too, not a crash.
    headers[sig_header] = "v1,%%%not-base64%%%" if name == "standard" else "sha256=zz" if name == "meta" else "%%%"
    with pytest.raises(BadSignature):
        verify(BODY, headers, [SECRET_A])


@pytest.mark.parametrize(("name", "verify", "make_headers", "sig_header"), SCHEMES, ids=SCHEME_IDS)
def test_one_byte_of_tampering_is_rejected(
    name: str, verify: Verifier, make_headers: Callable[[bytes, str], dict[str, str]], sig_header: str
) -> None:
    headers = make_headers(BODY, SECRET_A)
    tampered = BODY.replace(b'"quantity": 2', b'"quantity": 3', 1)
    assert len(tampered) == len(BODY) and tampered != BODY
    with pytest.raises(BadSignature):
        verify(tampered, headers, [SECRET_A])


@pytest.mark.parametrize(("name", "verify", "make_headers", "sig_header"), SCHEMES, ids=SCHEME_IDS)
def test_wrong_secret_is_rejected(
    name: str, verify: Verifier, make_headers: Callable[[bytes, str], dict[str, str]], sig_header: str
) -> None:
    with pytest.raises(BadSignature):
        verify(BODY, make_headers(BODY, SECRET_A), [SECRET_B])


@pytest.mark.parametrize(("name", "verify", "make_headers", "sig_header"), SCHEMES, ids=SCHEME_IDS)
def test_rotation_accepts_either_configured_secret(
    name: str, verify: Verifier, make_headers: Callable[[bytes, str], dict[str, str]], sig_header: str
) -> None:
    configured = [SECRET_A, SECRET_B]
    verify(BODY, make_headers(BODY, SECRET_A), configured)
    verify(BODY, make_headers(BODY, SECRET_B), configured)


@pytest.mark.parametrize(("name", "verify", "make_headers", "sig_header"), SCHEMES, ids=SCHEME_IDS)
def test_missing_signature_header(
    name: str, verify: Verifier, make_headers: Callable[[bytes, str], dict[str, str]], sig_header: str
) -> None:
    headers = make_headers(BODY, SECRET_A)
    del headers[sig_header]
    with pytest.raises(MissingHeader) as caught:
        verify(BODY, headers, [SECRET_A])
    assert caught.value.header.lower() == sig_header.lower()
    assert caught.value.code == "missing_header"
    assert isinstance(caught.value, WebhookRejected)


@pytest.mark.parametrize(("name", "verify", "make_headers", "sig_header"), SCHEMES, ids=SCHEME_IDS)
def test_misconfigured_secrets_are_a_server_error_not_a_rejection(
    name: str, verify: Verifier, make_headers: Callable[[bytes, str], dict[str, str]], sig_header: str
) -> None:
    headers = make_headers(BODY, SECRET_A)
    with pytest.raises(TypeError):
        verify(BODY, headers, SECRET_A)  # a bare string would be iterated character by character
    with pytest.raises(ValueError):
        verify(BODY, headers, [])


# --- property: our own signatures verify, and any single-byte flip fails ------------------------------


@pytest.mark.parametrize(("name", "verify", "make_headers", "sig_header"), SCHEMES, ids=SCHEME_IDS)
@settings(max_examples=60, deadline=None)
@given(body=st.binary(min_size=1, max_size=400), key=st.binary(min_size=1, max_size=64), data=st.data())
def test_property_sign_then_flip_one_byte(
    name: str,
    verify: Verifier,
    make_headers: Callable[[bytes, str], dict[str, str]],
    sig_header: str,
    body: bytes,
    key: bytes,
    data: st.DataObject,
) -> None:
    # Platform secrets are text; Standard Webhooks keys are bytes behind whsec_.
    secret = whsec(key) if name == "standard" else key.hex()
    headers = make_headers(body, secret)
    verify(body, headers, [secret])
    index = data.draw(st.integers(0, len(body) - 1), label="index")
    flip = data.draw(st.integers(1, 255), label="xor")
    flipped = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    with pytest.raises(BadSignature):
        verify(flipped, headers, [secret])


# --- Standard Webhooks: timestamps and signature lists -----------------------------------------------


@pytest.mark.parametrize("offset", [-300, -299, 0, 299, 300])
def test_standard_timestamp_within_tolerance_is_accepted(offset: int) -> None:
    headers = standard_headers(BODY, SECRET_A, ts=NOW + offset)
    verify_standard(BODY, headers, [SECRET_A], now=NOW)


@pytest.mark.parametrize("offset", [-301, -3600, 301, 86_400])
def test_standard_timestamp_beyond_tolerance_is_rejected(offset: int) -> None:
    headers = standard_headers(BODY, SECRET_A, ts=NOW + offset)
    with pytest.raises(StaleTimestamp) as caught:
        verify_standard(BODY, headers, [SECRET_A], now=NOW)
    assert caught.value.code == "stale_timestamp"


def test_standard_stale_timestamp_is_rejected_even_with_a_valid_signature() -> None:
    # A replay of a genuine delivery an hour later: signature fine, timestamp not.
    headers = standard_headers(BODY, SECRET_A, ts=NOW)
    with pytest.raises(StaleTimestamp):
        verify_standard(BODY, headers, [SECRET_A], now=NOW + 3600)


@pytest.mark.parametrize("value", ["1773529331.5", "abc", "-1773529331", FULLWIDTH_DIGITS, ""])
def test_standard_timestamp_must_be_integer_seconds(value: str) -> None:
    headers = standard_headers(BODY, SECRET_A)
    headers["webhook-timestamp"] = value
    with pytest.raises(MalformedPayload if value else MissingHeader):
        verify_standard(BODY, headers, [SECRET_A], now=NOW)


def test_standard_several_signatures_only_one_valid() -> None:
    good = standard_headers(BODY, SECRET_A)["webhook-signature"]
    other = standard_headers(BODY, SECRET_B)["webhook-signature"]
    _, _, good_b64 = good.partition(",")
    headers = standard_headers(BODY, SECRET_A)
    headers["webhook-signature"] = " ".join(
        [
            other,  # signed with a key we do not hold
            "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==",
            "v2," + good_b64,  # the right MAC under an unknown version must not count
            "garbage-without-comma",
            good,
        ]
    )
    verify_standard(BODY, headers, [SECRET_A], now=NOW)
    headers["webhook-signature"] = " ".join([other, "v2," + good_b64, "v1a," + good_b64])
    with pytest.raises(BadSignature):
        verify_standard(BODY, headers, [SECRET_A], now=NOW)


def test_standard_missing_headers() -> None:
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        headers = standard_headers(BODY, SECRET_A)
        del headers[name]
        with pytest.raises(MissingHeader) as caught:
            verify_standard(BODY, headers, [SECRET_A], now=NOW)
        assert caught.value.header == name


def test_standard_secret_must_be_base64() -> None:
    with pytest.raises(ValueError):
        verify_standard(BODY, standard_headers(BODY, SECRET_A), ["whsec_***"], now=NOW)


def test_standard_default_clock_is_the_wall_clock() -> None:
    headers = standard_headers(BODY, SECRET_A, ts=int(datetime.now(tz=UTC).timestamp()))
    verify_standard(BODY, headers, [SECRET_A])


# --- Standard Webhooks: cross-check with the reference library ----------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    body=st.text(max_size=300),
    key=st.binary(min_size=24, max_size=64),
    msg_id=st.from_regex(r"msg_[A-Za-z0-9]{1,27}", fullmatch=True),
    ts=st.integers(1_000_000_000, 4_000_000_000),
)
def test_standard_signatures_match_the_reference_library(body: str, key: bytes, msg_id: str, ts: int) -> None:
    reference = pytest.importorskip("standardwebhooks.webhooks")
    secret = whsec(key)
    theirs = reference.Webhook(secret).sign(msg_id=msg_id, timestamp=datetime.fromtimestamp(ts, tz=UTC), data=body)
    assert sign_standard(body.encode(), msg_id=msg_id, timestamp=ts, secret=secret) == theirs


def test_reference_library_and_we_accept_each_others_deliveries() -> None:
    reference = pytest.importorskip("standardwebhooks.webhooks")
    now = int(datetime.now(tz=UTC).timestamp())
    body = '{"type":"order.paid","data":{"order_id":"ORD-1","lines":[]},"note":"café ☕"}'
    ours = {
        "webhook-id": "msg_ours",
        "webhook-timestamp": str(now),
        "webhook-signature": sign_standard(body.encode(), msg_id="msg_ours", timestamp=now, secret=SECRET_A),
    }
    assert reference.Webhook(SECRET_A).verify(body.encode(), ours)["note"] == "café ☕"
    theirs = reference.Webhook(SECRET_A).sign(
        msg_id="msg_theirs", timestamp=datetime.fromtimestamp(now, tz=UTC), data=body
    )
    headers = {"webhook-id": "msg_theirs", "webhook-timestamp": str(now), "webhook-signature": theirs}
    verify_standard(body.encode(), headers, [SECRET_A], now=now)
    with pytest.raises(reference.WebhookVerificationError):
        reference.Webhook(SECRET_B).verify(body.encode(), ours)


# --- Meta: escaped unicode and the subscription handshake ---------------------------------------------


def test_meta_signs_the_escaped_unicode_bytes_it_sends() -> None:
    document = {
        "object": "page",
        "entry": [{"id": "1", "changes": [{"field": "x", "value": {"note": "Café à la crème"}}]}],
    }
    sent = json.dumps(document, separators=(",", ":")).encode()  # ensure_ascii: "Caf\u00e9"
    assert b"\\u00e9" in sent
    headers = meta_headers(sent, "app-secret")
    verify_meta(sent, headers, ["app-secret"])
    # What a handler gets if it parses and re-serialises the body: same JSON, different bytes.
    reserialised = json.dumps(json.loads(sent), separators=(",", ":"), ensure_ascii=False).encode()
    assert json.loads(reserialised) == json.loads(sent) and reserialised != sent
    with pytest.raises(BadSignature):
        verify_meta(reserialised, headers, ["app-secret"])


def test_meta_fixture_verifies_only_as_raw_bytes() -> None:
    sent = (DATA / "meta_commerce_order.json").read_bytes()
    headers = meta_headers(sent, "app-secret")
    verify_meta(sent, headers, ["app-secret"])
    reserialised = json.dumps(json.loads(sent), indent=2, ensure_ascii=False).encode()
    with pytest.raises(BadSignature):
        verify_meta(reserialised, headers, ["app-secret"])


def test_meta_requires_the_sha256_scheme() -> None:
    headers = {"X-Hub-Signature-256": meta_headers(BODY, "s")["X-Hub-Signature-256"].replace("sha256=", "sha1=")}
    with pytest.raises(BadSignature):
        verify_meta(BODY, headers, ["s"])


def test_meta_handshake_returns_the_challenge_only_for_our_token() -> None:
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": "meatyhamhock"}
    assert meta_handshake(query, ["old-token", "meatyhamhock"]) == "1158201444"
    with pytest.raises(BadSignature) as caught:
        meta_handshake(dict(query, **{"hub.verify_token": "guess"}), ["meatyhamhock"])
    assert caught.value.code == "bad_verify_token"
    with pytest.raises(BadSignature):
        meta_handshake({k: v for k, v in query.items() if k != "hub.verify_token"}, ["meatyhamhock"])
    with pytest.raises(MalformedPayload):
        meta_handshake(dict(query, **{"hub.mode": "unsubscribe"}), ["meatyhamhock"])
    with pytest.raises(MissingHeader):
        meta_handshake({k: v for k, v in query.items() if k != "hub.challenge"}, ["meatyhamhock"])
    with pytest.raises(ValueError):
        meta_handshake(query, [])


# --- WooCommerce ping ---------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"webhook_id=31", b"webhook_id=7\n", b"  webhook_id=123456 "])
def test_woocommerce_ping_is_recognised(body: bytes) -> None:
    assert is_woocommerce_ping(body)


@pytest.mark.parametrize(
    "body",
    [b"", b"webhook_id=", b"webhook_id=31&order=1", b'{"webhook_id":31}', BODY, b"webhook_id=31x"],
)
def test_woocommerce_non_pings(body: bytes) -> None:
    assert not is_woocommerce_ping(body)


# --- de-duplication keys -------------------------------------------------------------------------------


def test_shopify_keys_keep_both_webhook_and_event_ids_scoped_by_topic() -> None:
    headers = shopify_headers(BODY, "s")
    keys = delivery_keys(Platform.SHOPIFY, BODY, headers)
    assert keys == (
        "shopify:webhook:b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "shopify:event:orders/paid:98880550-7158-44d4-b7cd-2c97c8a091b5",
    )
    # One merchant action, two topics, same event id: neither may shadow the other.
    create = dict(headers, **{"X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": "other"})
    assert not set(keys) & set(delivery_keys(Platform.SHOPIFY, BODY, create))
    without_event = {k: v for k, v in headers.items() if k != "X-Shopify-Event-Id"}
    assert delivery_keys(Platform.SHOPIFY, BODY, without_event) == keys[:1]
    with pytest.raises(MissingHeader):
        delivery_keys(Platform.SHOPIFY, BODY, {"X-Shopify-Topic": "orders/paid"})


def test_tiktok_key_is_the_notification_id() -> None:
    assert delivery_keys(Platform.TIKTOK, TIKTOK_VECTOR_BODY, {}) == ("tiktok:notification:7380066284010030890",)
    no_id = b'{"type":1,"shop_id":"1","data":{"order_id":"2","order_status":"UNPAID"}}'
    (key,) = delivery_keys(Platform.TIKTOK, no_id, {})
    assert key == "tiktok:body:" + hashlib.sha256(no_id).hexdigest()
    with pytest.raises(MalformedPayload):
        delivery_keys(Platform.TIKTOK, b"not json", {})


def test_woocommerce_key_survives_two_deliveries_in_the_same_second() -> None:
    headers = woo_headers(BODY, "s")
    other_body = BODY.replace(b"5940139491234", b"5940139491235")
    first = delivery_keys(Platform.WOOCOMMERCE, BODY, headers)
    assert first != delivery_keys(Platform.WOOCOMMERCE, other_body, headers)
    assert first == delivery_keys(Platform.WOOCOMMERCE, BODY, headers)


def test_meta_and_standard_keys() -> None:
    assert delivery_keys(Platform.META, BODY, {}) == ("meta:body:" + hashlib.sha256(BODY).hexdigest(),)
    assert delivery_keys(Platform.STANDARD, BODY, standard_headers(BODY, SECRET_A, msg_id="msg_9")) == (
        "standard:msg_9",
    )
    with pytest.raises(MissingHeader):
        delivery_keys(Platform.STANDARD, BODY, {})
