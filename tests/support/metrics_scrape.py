"""Reading a real node's ``/metrics`` page in tests."""

from __future__ import annotations

import asyncio
import urllib.request


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def scrape(http: str) -> dict[str, float]:
    """Every sample of ``/metrics`` as ``{'name{labels}': value}``."""
    page = await asyncio.to_thread(_get, http + "/metrics")
    samples: dict[str, float] = {}
    for line in page.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples
