"""LiveDrop's TikTok Shop signing, pinned to the documented vectors (contracts §1.2): the official
walkthrough's and one with a body. The stand-in refuses anything else (test_channel_connectors)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.platforms.channels.signing import tiktok_sign
from standins.signing import tiktok_request_sign

SECRET = "e59af819cc"
BASE = {"app_key": "29a39d", "timestamp": "1623812664"}


def test_the_official_vector() -> None:
    assert (
        tiktok_sign(SECRET, "/authorization/202309/shops", BASE)
        == "b596b73e0cc6de07ac26f036364178ab16b0a907af13d43f0a0cd2345f582dc8"
    )


def test_the_vector_with_a_body() -> None:
    body = b'{"skus":[{"id":"1729592969712272549","inventory":[{"warehouse_id":"7068517275539719942","quantity":5}]}]}'
    path = "/product/202309/products/1729592969712207013/inventory/update"
    params = {**BASE, "shop_cipher": "ROW_test"}
    assert (
        tiktok_sign(SECRET, path, params, body, "application/json")
        == "ca033285e1d38c2624cba0f4ee45e71d96177647d8f677ea2d560aabc1cec9ec"
    )


def test_sign_and_access_token_are_not_signed_and_multipart_bodies_are_left_out() -> None:
    path = "/authorization/202309/shops"
    with_extra = {**BASE, "sign": "whatever", "access_token": "t"}
    assert tiktok_sign(SECRET, path, with_extra) == tiktok_sign(SECRET, path, BASE)
    assert tiktok_sign(SECRET, path, BASE, b"file", "multipart/form-data; boundary=x") == tiktok_sign(
        SECRET, path, BASE
    )


@given(
    params=st.dictionaries(st.text("abcdefghij_", min_size=1, max_size=8), st.text(max_size=20), max_size=6),
    body=st.binary(max_size=200),
    path=st.text(min_size=1, max_size=40),
)
def test_two_independent_readings_of_the_documentation_agree(params: dict[str, str], body: bytes, path: str) -> None:
    assert tiktok_sign(SECRET, path, params, body, "application/json") == tiktok_request_sign(
        secret=SECRET, path=path, params=params, body=body, content_type="application/json"
    )
