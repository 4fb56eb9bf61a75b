"""A drop with sizes on Redis Cluster: two nodes on different masters, a burst of viewers across
both at a few sizes, exactly the units of each size held, per-size counters on both nodes, and the
invariants of each size and of the drop. The variants' keys share the drop's hash tag, so every
script stays on one slot and the nodes' ledger readers follow them in the drop's slot group."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from stock import StockEngine
from tests.e2e.test_scaleout import ClusterNodes, api, cluster_nodes, engine, welcomed
from tests.server.viewers.test_viewer_ws import token
from tests.support.invariants import assert_variant_drop_invariants
from tests.support.viewer_client import Viewer

__all__ = ["cluster_nodes", "engine"]  # the fixtures, shared with the scale-out tests

SIZES = {"s41": 2, "s42": 3, "s43": 1}


async def test_a_burst_on_sizes_across_two_cluster_nodes(cluster_nodes: ClusterNodes, engine: StockEngine) -> None:
    a, b = cluster_nodes.start(), cluster_nodes.start()
    await api(a, "POST", "/api/shows", {"show_id": "s1", "title": "Sizes on a cluster"})
    variants = [{"id": s, "sku": f"C-{s}", "quantity": n, "options": {"size": s[1:]}} for s, n in SIZES.items()]
    body = {"drop_id": "shoe", "title": "Sneaker", "hold_seconds": 300, "variants": variants}
    await api(a, "POST", "/api/shows/s1/drops", body)
    await api(b, "POST", "/api/drops/shoe/launch", {})
    watcher = await Viewer.connect(b.ws("s1"))
    await welcomed(watcher)
    buyers = [await Viewer.connect((a, b)[i % 2].ws("s1", token(f"v{i}"))) for i in range(24)]
    for v in buyers:
        await welcomed(v)
    sizes = list(SIZES)
    await asyncio.gather(
        *(
            v.send({"type": "reserve", "ref": "r", "drop": "shoe", "variant": sizes[i % len(sizes)]})
            for i, v in enumerate(buyers)
        )
    )
    answers: list[dict[str, Any]] = []
    for v in buyers:
        while (frame := await v.next(timeout=10))["type"] not in ("reserved", "rejected"):
            pass
        answers.append(frame)
    held = Counter(f["variant"] for f in answers if f["type"] == "reserved")
    assert held == Counter(SIZES)
    assert {f["reason"] for f in answers if f["type"] == "rejected"} == {"sold_out"}
    each = await assert_variant_drop_invariants(engine, "shoe")
    assert {s: c.held for s, c in each.items()} == SIZES
    while True:
        stock = await watcher.until("stock", drop="shoe", timeout=10)
        if stock["held"] == sum(SIZES.values()):
            break
    assert {s: c["available"] for s, c in stock["variants"].items()} == dict.fromkeys(SIZES, 0)
    for v in [watcher, *buyers]:
        await v.close()
