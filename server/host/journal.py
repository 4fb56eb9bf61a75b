"""The host journal: what hosts did to a show through the imports and checkout endpoints, for
audit (who, what, when). Who is the first 12 hex digits of the SHA-256 of the host token, enough
to tell hosts apart and never enough to use; no token, secret or personal id is written."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from starlette.requests import Request

from server import keys
from server.host.audit import page_params
from server.replies import decoded


class JournalEntry(msgspec.Struct, frozen=True):
    entry_id: str
    action: str
    host: str
    fields: dict[str, str]
    at_ms: int


class JournalPage(msgspec.Struct, frozen=True):
    entries: list[JournalEntry]
    next_after: str | None


def host_of(request: Request) -> str:
    """The digest prefix of the request's bearer token (authenticated before this is called)."""
    token = request.headers.get("authorization", "").partition(" ")[2]
    return hashlib.sha256(token.encode()).hexdigest()[:12]


async def record(redis: Any, request: Request, show_id: str, action: str, **fields: str | int) -> None:
    entry = {"action": action, "host": host_of(request), **{k: str(v) for k, v in fields.items()}}
    await redis.xadd(keys.journal_key(show_id), entry, maxlen=keys.JOURNAL_MAXLEN, approximate=True)


async def read(redis: Any, request: Request, show_id: str) -> JournalPage:
    after, count = page_params(request)
    start = after if after == "-" else f"({after}"
    raw = await redis.xrange(keys.journal_key(show_id), min=start, max="+", count=count)
    entries = []
    for entry_id, fields in raw:
        text = {decoded(k): decoded(v) for k, v in fields.items()}
        eid = decoded(entry_id)
        entries.append(
            JournalEntry(
                entry_id=eid,
                action=text.pop("action", ""),
                host=text.pop("host", ""),
                fields=text,
                at_ms=int(eid.split("-", 1)[0]),
            )
        )
    return JournalPage(entries=entries, next_after=entries[-1].entry_id if len(entries) == count else None)
