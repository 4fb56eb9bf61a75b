"""``strip_frame``, the pure half of the panel's channel strip: a drop without variants keeps its
one chip per channel; a drop with variants gets each size's chips and one summary per channel."""

from __future__ import annotations

import msgspec

from server.host.channel_strip import ChannelChip, strip_frame, summary_chip
from server.platforms.channels.base import ChannelName
from server.platforms.channels.mapping import MetaMapping, ShopifyMapping, SkuMapping
from server.platforms.channels.status import ChannelsStatus, ChannelStatus, SkuSync, Sync
from server.shows.catalog import DropInfo
from server.shows.variants import VariantInfo

NOW = 1_800_000_000_000


def sku(
    name: str,
    sync: Sync = Sync.IN_SYNC,
    value: int | None = 5,
    at: int = NOW - 1000,
    pending_since_ms: int | None = None,
    error: str = "",
    error_message: str = "",
) -> SkuSync:
    return SkuSync(
        sku=name,
        sync=sync,
        available=value,
        value=value,
        at_ms=at,
        lag_ms=None,
        pending_since_ms=pending_since_ms,
        error=error,
        error_message=error_message,
    )


def status(**channels: list[SkuSync]) -> ChannelsStatus:
    return ChannelsStatus(
        now_ms=NOW,
        channels=[
            ChannelStatus(channel=ChannelName(name), buffer=2, pushing=True, sync=Sync.IN_SYNC, skus=skus)
            for name, skus in channels.items()
        ],
    )


GLOW = DropInfo(drop_id="d1", show_id="s1", sku="GLOW", title="Glow", total=10)
SNEAKER = DropInfo(
    drop_id="d2",
    show_id="s1",
    sku="SNK",
    title="Sneaker",
    total=30,
    variants=[
        VariantInfo(id="s41", sku="SNK-41", total=10),
        VariantInfo(id="s42", sku="SNK-42", total=10),
        VariantInfo(id="s43", sku="SNK-43", total=10),
    ],
)


def test_a_drop_without_variants_keeps_its_one_chip_per_channel() -> None:
    mappings = {"GLOW": SkuMapping(shopify=ShopifyMapping(inventory_item_id="1", location_id="9"))}
    frame = strip_frame("s1", status(shopify=[sku("GLOW", value=8)]), {"d1": GLOW}, mappings)
    encoded = msgspec.json.decode(msgspec.json.encode(frame))
    assert encoded == {
        "type": "channel_sync",
        "show": "s1",
        "server_time": NOW,
        "drops": [
            {
                "drop": "d1",
                "sku": "GLOW",
                "channels": [
                    {
                        "channel": "shopify",
                        "sync": "in_sync",
                        "value": 8,
                        "at": NOW - 1000,
                        "pending_since": None,
                        "error": "",
                        "message": "",
                        "ids": {"inventory_item_id": "1", "location_id": "9"},
                    }
                ],
            }
        ],
    }


def test_a_drop_with_variants_reports_each_size_and_a_summary_per_channel() -> None:
    shopify = [
        sku("SNK-41", value=8, at=NOW - 3000),
        sku("SNK-42", Sync.CATCHING_UP, value=2, at=NOW - 9000, pending_since_ms=NOW - 500),
        sku("SNK-43", value=0, at=NOW - 1000),
    ]
    meta = [
        sku("SNK-41", value=6),
        sku("SNK-42", Sync.FAILING, value=None, at=0, error="auth", error_message="Meta refused the token"),
        sku("SNK-43", Sync.CATCHING_UP, value=4, pending_since_ms=NOW - 200),
    ]
    mappings = {f"SNK-4{n}": SkuMapping(meta=MetaMapping(retailer_id=f"SNK-4{n}")) for n in (1, 2, 3)}
    frame = strip_frame("s1", status(shopify=shopify, meta=meta), {"d1": GLOW, "d2": SNEAKER}, mappings)

    assert [d.drop for d in frame.drops] == ["d2"]  # no channel sells GLOW here
    drop = frame.drops[0]
    assert drop.sku == "SNK"
    assert [(v.variant, v.sku) for v in drop.variants] == [("s41", "SNK-41"), ("s42", "SNK-42"), ("s43", "SNK-43")]
    s42 = {c.channel: c for c in drop.variants[1].channels}
    assert s42["shopify"].sync == "catching_up" and s42["shopify"].pending_since == NOW - 500
    assert s42["meta"].sync == "failing" and s42["meta"].ids == {"retailer_id": "SNK-42"}

    summary = {c.channel: c for c in drop.channels}
    assert list(summary) == ["shopify", "meta"]
    assert summary["shopify"] == ChannelChip(
        channel="shopify", sync="catching_up", value=10, at=NOW - 9000, pending_since=NOW - 500
    )
    # Failing beats catching up; a size never acknowledged makes the oldest acknowledgement "never".
    assert summary["meta"] == ChannelChip(
        channel="meta",
        sync="failing",
        value=10,
        at=0,
        pending_since=NOW - 200,
        error="auth",
        message="SNK-42: Meta refused the token",
    )


def test_a_summary_only_covers_the_sizes_a_channel_sells() -> None:
    frame = strip_frame("s1", status(woocommerce=[sku("SNK-43", value=3)]), {"d2": SNEAKER})
    (drop,) = frame.drops
    assert [v.variant for v in drop.variants] == ["s43"]
    assert drop.channels == [ChannelChip(channel="woocommerce", sync="in_sync", value=3, at=NOW - 1000)]
    # The frame of a drop with variants carries them; one without does not (the field is omitted).
    assert "variants" in msgspec.json.decode(msgspec.json.encode(drop))
    plain = strip_frame("s1", status(woocommerce=[sku("GLOW")]), {"d1": GLOW}).drops[0]
    assert "variants" not in msgspec.json.decode(msgspec.json.encode(plain))


def test_summary_chip_all_in_sync_keeps_the_oldest_acknowledgement() -> None:
    chips = [
        ("A", ChannelChip(channel="tiktok", sync="in_sync", value=1, at=NOW - 10)),
        ("B", ChannelChip(channel="tiktok", sync="in_sync", value=None, at=NOW - 20)),
    ]
    assert summary_chip("tiktok", chips) == ChannelChip(channel="tiktok", sync="in_sync", value=1, at=NOW - 20)
