"""Run-of-show imports through the host API: a feed in (upload or URL), a preview out, then a
confirm that creates every proposed drop or none (docs/feeds.md, "Importing into a show").

* ``POST /api/shows/{id}/imports`` — the feed is the raw request body (any of the text, CSV,
  TSV or XML content types; the format is read from the content), options in the query string.
  The body is read no further than ``import_max_bytes``, whatever ``Content-Length`` claims.
* ``POST /api/shows/{id}/imports/url`` — the server fetches ``url`` (server/host/fetch.py).
* ``GET /api/shows/{id}/imports/{import_id}`` — the preview again.
* ``POST /api/shows/{id}/imports/{import_id}/confirm`` — create it all (server/shows/bulk.py).

A preview is kept in Redis for ``IMPORT_TTL_SECONDS``: the confirm creates exactly what the host
saw, with the ids it showed. Every step is written to the show's journal (server/host/journal.py).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from redis.exceptions import RedisError
from starlette.requests import Request

from server import keys
from server.host import journal
from server.host.fetch import FetchPolicy, FetchRefused, fetch
from server.host.openapi import Api
from server.problems import Problem
from server.settings import Settings
from server.shows import bulk
from server.shows.catalog import Catalog, DropInfo
from server.shows.feeds import FeedError, FeedFormat, ImportOptions, Limits, Refusal, parse_feed
from server.shows.importer import ProposedDrop, propose
from stock import DropConflict, InvalidArgument, StockError

T = TypeVar("T")
Stock = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
ImportId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]

# What an upload may be labelled. The content decides the format; the label only has to say
# "a file": a form, JSON or an image is a client mistake worth a clear 415. Spreadsheet programs
# on Windows label CSV files application/vnd.ms-excel, so that one is taken too.
UPLOAD_TYPES = frozenset(
    {
        "",
        "text/csv",
        "text/tab-separated-values",
        "text/plain",
        "text/xml",
        "application/xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/csv",
        "application/octet-stream",
        "application/vnd.ms-excel",
    }
)


class ImportQuery(msgspec.Struct, forbid_unknown_fields=True):
    """The options of an upload, from its query string."""

    currency: Currency | None = None
    default_stock: Stock | None = None
    ignore_feed_stock: bool = False
    format: FeedFormat | None = None


class ImportFromUrl(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    currency: Currency | None = None
    default_stock: Stock | None = None
    ignore_feed_stock: bool = False
    format: FeedFormat | None = None


class ConfirmImport(msgspec.Struct, forbid_unknown_fields=True):
    """``default_stock``: starting stock of every drop or variant the feed gave none (required
    when the preview's ``missing_stock`` is not 0). The rules apply to every drop created."""

    default_stock: Stock | None = None
    per_customer_limit: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 0
    hold_seconds: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 600.0


class ImportPreview(msgspec.Struct, frozen=True, kw_only=True):
    """What the import would create, and every row it left out and why. ``missing_stock``:
    drops or variants without a starting stock (the confirm must then give ``default_stock``).
    ``state`` becomes ``confirmed`` (with ``created``) once created."""

    import_id: str
    show_id: str
    source: Literal["upload", "url"]
    format: FeedFormat
    rows_read: int
    drops: list[ProposedDrop]
    refused: list[Refusal]
    missing_stock: int
    expires_at: int
    state: Literal["preview", "confirmed"] = "preview"
    created: list[str] = msgspec.field(default_factory=list)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ImportPreview)


def _problem_for_feed(error: FeedError) -> Problem:
    return Problem(422, "feed-" + error.code.value.replace("_", "-"), "The feed cannot be imported", str(error))


def _query(request: Request) -> ImportQuery:
    raw: dict[str, Any] = dict(request.query_params)
    try:
        return msgspec.convert(raw, ImportQuery, strict=False)
    except msgspec.ValidationError as exc:
        raise Problem(422, "invalid-request", "Invalid import options", str(exc)) from None


def _options(settings: Settings, q: ImportQuery | ImportFromUrl) -> ImportOptions:
    return ImportOptions(
        currency=q.currency,
        default_stock=q.default_stock,
        ignore_feed_stock=q.ignore_feed_stock and q.default_stock is not None,
        format=q.format,
        limits=Limits(max_bytes=settings.import_max_bytes),
    )


async def read_upload(request: Request, cap: int) -> bytes:
    """The raw body, at most ``cap`` bytes: a declared length over it is refused before reading,
    and the stream is abandoned as soon as it passes it (413 either way)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in UPLOAD_TYPES:
        raise Problem(
            415,
            "unsupported-media-type",
            "Send the feed file itself as the body",
            f"not a feed file type: {media!r:.80}",
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise Problem(413, "too-large", "Feed too large", f"at most {cap:,} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise Problem(413, "too-large", "Feed too large", f"at most {cap:,} bytes")
    return bytes(body)


async def _taken_ids(catalog: Catalog, candidates: list[str]) -> set[str]:
    """Which of ``candidates`` (and their suffixed forms the proposal may try) exist already."""
    return {drop_id for drop_id in candidates if await bulk.drop_exists(catalog, drop_id)}


async def _preview(request: Request, show_id: str, data: bytes, options: ImportOptions, source: str) -> ImportPreview:
    st = request.state
    try:
        plan = parse_feed(data, options)
    except FeedError as error:
        await journal.record(st.redis, request, show_id, "import_refused", source=source, code=error.code.value)
        raise _problem_for_feed(error) from None
    catalog: Catalog = st.catalog
    proposed = propose(plan, set())
    taken = await _taken_ids(catalog, [d.drop_id for d in proposed])
    if taken:  # rare: name again around the ids that exist, then check the new ones too
        while True:
            proposed = propose(plan, taken)
            more = await _taken_ids(catalog, [d.drop_id for d in proposed if d.drop_id not in taken])
            if not more:
                break
            taken |= more
    import_id = secrets.token_urlsafe(12)
    preview = ImportPreview(
        import_id=import_id,
        show_id=show_id,
        source="url" if source == "url" else "upload",
        format=plan.format,
        rows_read=plan.rows_read,
        drops=proposed,
        refused=plan.refused,
        missing_stock=sum(d.missing_stock() for d in proposed),
        expires_at=int(time.time()) + keys.IMPORT_TTL_SECONDS,
    )
    await st.redis.set(keys.import_key(show_id, import_id), _encoder.encode(preview), ex=keys.IMPORT_TTL_SECONDS)
    await journal.record(
        st.redis,
        request,
        show_id,
        "import_previewed",
        import_id=import_id,
        source=source,
        format=plan.format.value,
        drops=len(proposed),
        refused=len(plan.refused),
    )
    return preview


async def _require_show(request: Request, show_id: str) -> None:
    if await request.state.catalog.get_show(show_id) is None:
        raise Problem(404, "not-found", "Not found", f"no show {show_id}")


async def _load(request: Request, show_id: str, import_id: str) -> ImportPreview:
    try:
        msgspec.convert(import_id, ImportId)
    except msgspec.ValidationError:
        raise Problem(404, "not-found", "Not found", "no such import") from None
    raw = await request.state.redis.get(keys.import_key(show_id, import_id))
    if raw is None:
        raise Problem(404, "not-found", "Not found", "no such import (previews expire after an hour)")
    preview: ImportPreview = _decoder.decode(raw)
    return preview


def drop_infos(preview: ImportPreview, body: ConfirmImport) -> list[DropInfo]:
    """What the confirm creates: each proposed drop as the catalog describes drops."""
    return [
        bulk.drop_info(preview.show_id, d, body.default_stock, body.per_customer_limit, body.hold_seconds)
        for d in preview.drops
    ]


async def guarded(awaitable: Awaitable[T]) -> T:
    """Redis down is a 503 to retry; an id LiveDrop's key rules refuse is a 422."""
    try:
        return await awaitable
    except RedisError as exc:
        raise Problem(503, "unavailable", "Service unavailable", "Redis is unreachable; retry") from exc
    except InvalidArgument as exc:
        raise Problem(422, "invalid-request", "Invalid request", str(exc)) from exc


def add_import_routes(api: Api) -> None:
    """The import endpoints, on the host API (bearer host token, problem+json errors)."""

    @api.route(
        "POST",
        "/api/shows/{show_id}/imports",
        response=ImportPreview,
        status=201,
        summary="Preview an import of a product feed (the raw file as the body)",
        raw_body=tuple(sorted(t for t in UPLOAD_TYPES if t)),
    )
    async def upload_import(request: Request) -> ImportPreview:
        return await guarded(_upload(request))

    @api.route(
        "POST",
        "/api/shows/{show_id}/imports/url",
        body=ImportFromUrl,
        response=ImportPreview,
        status=201,
        summary="Preview an import of a product feed the server fetches",
    )
    async def url_import(request: Request, body: ImportFromUrl) -> ImportPreview:
        return await guarded(_from_url(request, body))

    @api.route("GET", "/api/shows/{show_id}/imports/{import_id}", response=ImportPreview, summary="An import's preview")
    async def get_import(request: Request) -> ImportPreview:
        return await guarded(_load(request, request.path_params["show_id"], request.path_params["import_id"]))

    @api.route(
        "POST",
        "/api/shows/{show_id}/imports/{import_id}/confirm",
        body=ConfirmImport,
        response=ImportPreview,
        summary="Create every drop of a previewed import, or none",
    )
    async def confirm_import(request: Request, body: ConfirmImport) -> ImportPreview:
        return await guarded(_confirm(request, body))

    @api.route(
        "GET", "/api/shows/{show_id}/journal", response=journal.JournalPage, summary="A page of the show's journal"
    )
    async def get_journal(request: Request) -> journal.JournalPage:
        return await guarded(journal.read(request.state.redis, request, request.path_params["show_id"]))


async def _upload(request: Request) -> ImportPreview:
    show_id = request.path_params["show_id"]
    await _require_show(request, show_id)
    query = _query(request)
    settings: Settings = request.state.settings
    data = await read_upload(request, settings.import_max_bytes)
    return await _preview(request, show_id, data, _options(settings, query), "upload")


async def _from_url(request: Request, body: ImportFromUrl) -> ImportPreview:
    show_id = request.path_params["show_id"]
    settings: Settings = request.state.settings
    await _require_show(request, show_id)
    policy = FetchPolicy(
        max_bytes=settings.import_max_bytes,
        timeout=settings.import_fetch_timeout,
        allow_private=settings.import_allow_private_urls,
    )
    try:
        fetched = await fetch(body.url, policy)
    except FetchRefused as refused:
        await journal.record(request.state.redis, request, show_id, "import_refused", source="url", code=refused.code)
        status = 413 if refused.code == "too_large" else 422
        code = "fetch-" + refused.code.replace("_", "-")
        raise Problem(status, code, "The feed URL was not fetched", str(refused)) from None
    return await _preview(request, show_id, fetched.body, _options(settings, body), "url")


async def _confirm(request: Request, body: ConfirmImport) -> ImportPreview:
    show_id, import_id = request.path_params["show_id"], request.path_params["import_id"]
    st = request.state
    await _require_show(request, show_id)
    preview = await _load(request, show_id, import_id)
    if preview.state == "confirmed":
        return preview  # a retried confirm gets the first one's answer
    if preview.missing_stock and body.default_stock is None:
        raise Problem(
            422,
            "stock-required",
            "Starting stock required",
            f"{preview.missing_stock} drop(s) or variant(s) have no stock in the feed: give default_stock",
        )
    lock = keys.import_lock_key(show_id, import_id)
    if not await st.redis.set(lock, "1", nx=True, ex=60):
        raise Problem(409, "import-in-progress", "This import is being confirmed", import_id)
    try:
        infos = drop_infos(preview, body)
        try:
            await bulk.create_all(st.catalog, infos)
        except StockError as exc:
            await journal.record(st.redis, request, show_id, "import_failed", import_id=import_id, error=str(exc)[:200])
            status = 409 if isinstance(exc, DropConflict) else 422
            raise Problem(status, "import-failed", "Nothing was created", str(exc)) from exc
        done = msgspec.structs.replace(preview, state="confirmed", created=[i.drop_id for i in infos])
        await st.redis.set(keys.import_key(show_id, import_id), _encoder.encode(done), ex=keys.IMPORT_TTL_SECONDS)
        units = sum(i.total for i in infos)
        await journal.record(
            st.redis, request, show_id, "import_confirmed", import_id=import_id, drops=len(infos), units=units
        )
        return done
    finally:
        await st.redis.delete(lock)
