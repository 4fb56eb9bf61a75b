"""How many viewers a show has across nodes: each node reports its own count for each show it
serves, and reads the sum of every node's fresh report (DESIGN §4, ``viewers``).

Freshness is judged by Redis' clock inside one script (``lua/presence.lua``), and a dead
node's entry is deleted the first time anyone reads after it went stale: a crashed node
neither inflates the count ("viewers at launch", a drop's conversion denominator) nor leaves
fields behind forever.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from broadcast.keys import show_tag
from broadcast.scripts import lua_source

# A node that has not reported for this long is gone. Nodes report every second.
PRESENCE_TTL_MS: Final = 5000


class Audience(NamedTuple):
    total: int
    redis_ms: int  # Redis' clock when it was counted


def presence_keys(show_id: str) -> list[str]:
    base = show_tag(show_id)
    # "viewers_at" is a sorted set on Redis' clock; "viewers_seen", a hash of the nodes' own
    # clocks written by earlier versions, is deleted.
    return [base + "viewers", base + "viewers_at", base + "viewers_seen"]


class Presence:
    def __init__(self, redis: Any, ttl_ms: int = PRESENCE_TTL_MS) -> None:
        self.ttl_ms = ttl_ms
        source = lua_source("broadcast", "presence")
        self._script = redis.register_script(source)

    async def _call(self, show_id: str, node: str, count: str, exclude: str = "") -> Audience:
        total, now = await self._script(keys=presence_keys(show_id), args=[node, count, self.ttl_ms, exclude])
        return Audience(int(total), int(now))

    async def report(self, show_id: str, node: str, count: int) -> Audience:
        """Record ``node``'s count; the show's audience across fresh nodes, this one included."""
        return await self._call(show_id, node, str(max(0, int(count))))

    async def leave(self, show_id: str, node: str) -> Audience:
        """Remove ``node``'s entry (it has no viewers of the show any more)."""
        return await self._call(show_id, node, "leave")

    async def others(self, show_id: str, node: str) -> Audience:
        """The audience on every fresh node but ``node`` (to add ``node``'s count of now)."""
        return await self._call(show_id, node, "", exclude=node)
