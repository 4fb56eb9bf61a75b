"""The hosts' HTTP API (``/api/...``): shows, drops, run of show, launch/end/restock, holds
for a trusted checkout, viewer tokens, stats and ledgers. Bearer host tokens, compared in
constant time; bodies validated by the msgspec types that also make ``/openapi.json``."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Annotated, Any, Literal

import msgspec
from redis.exceptions import RedisError
from starlette.requests import Request

from server.chat import api as chat_api
from server.checkout.routes import add_checkout_routes
from server.host import audit
from server.host.channel_routes import add_channel_routes
from server.host.imports import add_import_routes
from server.host.openapi import Api
from server.host.variants import (
    CreateVariant,
    LimitScope,
    VariantName,
    VariantStock,
    check_variants,
    pick_variant,
    query_variant,
    variant_stock,
)
from server.keys import HOST_TOKENS_KEY
from server.platforms.reconcile.read import build_report
from server.platforms.reconcile.report import ReconciliationReport
from server.problems import Problem
from server.settings import Settings
from server.shows.actions import HostActions
from server.shows.catalog import DropInfo, Show, UnknownShow
from server.shows.stats import DropStats, ShowStats, drop_stats, show_stats
from server.viewers import tokens
from stock import (
    DropConflict,
    HoldNotActive,
    HoldTaken,
    InsufficientStock,
    InvalidArgument,
    NotOwner,
    StockError,
    UnknownDrop,
    UnknownHold,
)
from stock.types import ConfirmResult, DropSnapshot, LedgerEntry, ReleaseResult, StateChange

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Opaque = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:/+=-]+$")]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class CreateShow(msgspec.Struct, forbid_unknown_fields=True):
    show_id: Id
    title: Title


class CreateDrop(msgspec.Struct, forbid_unknown_fields=True):
    """A drop without ``variants`` needs ``sku`` and ``total``. A drop with variants is stocked by
    them (``total``, if given, must be their sum; ``sku`` names the product and defaults to the
    drop's id); ``limit_scope`` says whether ``per_customer_limit`` counts across its variants
    (``drop``) or in each on its own (``variant``)."""

    drop_id: Id
    title: Title
    sku: Opaque | None = None
    total: Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)] | None = None
    image_url: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    prices: dict[Currency, Annotated[int, msgspec.Meta(ge=0, le=10**12)]] = msgspec.field(default_factory=dict)
    per_customer_limit: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 0
    hold_seconds: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 600.0
    duration_seconds: Annotated[float, msgspec.Meta(gt=0, le=86_400)] | None = None
    variants: Annotated[list[CreateVariant], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=list)
    limit_scope: LimitScope = "drop"


class Reorder(msgspec.Struct, forbid_unknown_fields=True):
    drop_ids: Annotated[list[Id], msgspec.Meta(max_length=1000)]


class Launch(msgspec.Struct, forbid_unknown_fields=True):
    duration_seconds: Annotated[float, msgspec.Meta(gt=0, le=86_400)] | None = None


class EndDrop(msgspec.Struct, forbid_unknown_fields=True):
    reason: Literal["host", "sold_out", "time"] = "host"


class RestockRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``variant`` names the variant to restock: required on a drop with variants."""

    delta: Annotated[int, msgspec.Meta(ge=-1_000_000_000, le=1_000_000_000)]
    request_id: Opaque
    variant: VariantName | None = None


class Confirm(msgspec.Struct, forbid_unknown_fields=True):
    order_ref: Annotated[str, msgspec.Meta(max_length=128, pattern=r"^[A-Za-z0-9_.:/+=-]*$")] = ""


class MintViewerToken(msgspec.Struct, forbid_unknown_fields=True):
    viewer_id: Opaque
    ttl_seconds: Annotated[float, msgspec.Meta(gt=0, le=7 * 86_400)] = 3600.0
    # The viewer's display name in the chat (docs/chat.md); empty: a name derived from its pseudonym.
    name: Annotated[str, msgspec.Meta(max_length=40)] = ""


class ViewerToken(msgspec.Struct):
    token: str
    expires_at: int


class DropView(msgspec.Struct):
    """``stock`` of a drop with variants is summed over them; ``variants`` has each one's."""

    info: DropInfo
    stock: DropSnapshot
    variants: list[VariantStock] = msgspec.field(default_factory=list)


class ShowView(msgspec.Struct):
    show: Show
    drops: list[DropView]


class LedgerPage(msgspec.Struct):
    entries: list[LedgerEntry]
    next_after: str | None


class OrderView(msgspec.Struct):
    drop_ids: list[str]


class Published(msgspec.Struct):
    seq: int


async def host_token_valid(settings: Settings, redis: Any, given: str) -> bool:
    """A configured host token, compared in constant time, or one minted by ``livedrop token
    host`` (its SHA-256 in Redis). The API's header check and the host channel both use it.
    Raises RedisError when Redis is down."""
    ok = False
    for candidate in settings.host_tokens:
        ok |= hmac.compare_digest(candidate.encode(), given.encode())
    if not ok:
        ok = bool(await redis.sismember(HOST_TOKENS_KEY, hashlib.sha256(given.encode()).hexdigest()))
    return ok


async def authenticate(request: Request) -> None:
    """Bearer host token: one of the configured ones, or one minted by the CLI (stored as a
    hash in Redis, so every node accepts it). Compared in constant time."""
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise Problem(401, "unauthorized", "Unauthorized", "Authorization: Bearer <host token> is required")
    try:
        ok = await host_token_valid(request.state.settings, request.state.redis, given)
    except RedisError as exc:
        raise Problem(503, "unavailable", "Service unavailable", "Redis is unreachable") from exc
    if not ok:
        raise Problem(401, "unauthorized", "Unauthorized", "unknown host token")


def _host(request: Request) -> HostActions:
    host: HostActions = request.state.host
    return host


def _stock_problem(exc: Exception) -> Problem:
    match exc:
        case UnknownDrop() | UnknownShow():
            return Problem(404, "not-found", "Not found", str(exc))
        case UnknownHold():
            return Problem(404, "unknown-hold", "Unknown hold", str(exc))
        case DropConflict():
            return Problem(409, "drop-conflict", "Drop exists with other settings", str(exc))
        case HoldNotActive():
            return Problem(409, "hold-not-active", "Hold is not active", str(exc))
        case HoldTaken():
            # Two payments for one hold: the first order keeps it; this one needs a refund.
            return Problem(409, "hold-taken", "Hold is confirmed with another order", str(exc))
        case NotOwner():
            return Problem(403, "not-owner", "Not the hold's owner", str(exc))
        case InsufficientStock():
            return Problem(409, "insufficient-stock", "Not enough stock", str(exc))
        case InvalidArgument():
            return Problem(422, "invalid-request", "Invalid request", str(exc))
        case RedisError():
            return Problem(503, "unavailable", "Service unavailable", "Redis is unreachable; retry")
    return Problem(500, "internal", "Internal error")


async def _guard(awaitable: Any) -> Any:
    try:
        return await awaitable
    except (StockError, UnknownShow, RedisError) as exc:
        raise _stock_problem(exc) from exc


async def _drop_info(request: Request, drop_id: str) -> DropInfo:
    info: DropInfo | None = await _guard(_host(request).catalog.get_drop(drop_id))
    if info is None:
        raise Problem(404, "not-found", "Not found", f"no drop {drop_id}")
    return info


def build_api() -> Api:
    api = Api("LiveDrop host API", "1", authenticate)

    @api.route("GET", "/api/shows", response=list[Show], summary="List shows")
    async def list_shows(request: Request) -> list[Show]:
        shows: list[Show] = await _guard(_host(request).catalog.shows())
        return shows

    @api.route("POST", "/api/shows", body=CreateShow, response=Show, status=201, summary="Create a show")
    async def create_show(request: Request, body: CreateShow) -> Show:
        existing = await _guard(_host(request).catalog.get_show(body.show_id))
        if existing is not None:
            return Show(show_id=existing.show_id, title=existing.title, state=existing.state)
        show: Show = await _guard(_host(request).create_show(Show(show_id=body.show_id, title=body.title)))
        return show

    async def _show_view(request: Request, show_id: str) -> ShowView:
        host = _host(request)
        show = await _guard(host.catalog.get_show(show_id))
        if show is None:
            raise Problem(404, "not-found", "Not found", f"no show {show_id}")
        drops = [
            DropView(
                info=info,
                stock=await _guard(host.engine.snapshot(info.drop_id)),
                variants=await _guard(variant_stock(host.engine, info)),
            )
            for info in await _guard(host.catalog.drops(show_id))
        ]
        return ShowView(show=show, drops=drops)

    @api.route("GET", "/api/shows/{show_id}", response=ShowView, summary="A show with its drops and their stock")
    async def get_show(request: Request) -> ShowView:
        return await _show_view(request, request.path_params["show_id"])

    @api.route("POST", "/api/shows/{show_id}/start", response=Published, summary="Start a show")
    async def start_show(request: Request) -> Published:
        return Published(seq=await _guard(_host(request).live.start_show(request.path_params["show_id"])))

    @api.route("POST", "/api/shows/{show_id}/end", response=Published, summary="End a show")
    async def end_show(request: Request) -> Published:
        show_id = request.path_params["show_id"]
        if await _guard(_host(request).catalog.get_show(show_id)) is None:
            raise Problem(404, "not-found", "Not found", f"no show {show_id}")
        return Published(seq=await _guard(_host(request).live.end_show(show_id)))

    @api.route(
        "POST", "/api/shows/{show_id}/drops", body=CreateDrop, response=DropInfo, status=201, summary="Add a drop"
    )
    async def create_drop(request: Request, body: CreateDrop) -> DropInfo:
        show_id = request.path_params["show_id"]
        if await _guard(_host(request).catalog.get_show(show_id)) is None:
            raise Problem(404, "not-found", "Not found", f"no show {show_id}")
        existing = await _guard(_host(request).catalog.get_drop(body.drop_id))
        if existing is not None and existing.show_id != show_id:
            raise Problem(409, "drop-conflict", "Drop exists in another show", body.drop_id)
        sku, total, variants = check_variants(
            body.variants, drop_id=body.drop_id, drop_sku=body.sku, total=body.total, scope=body.limit_scope
        )
        fields = msgspec.structs.asdict(body) | {"sku": sku, "total": total, "variants": variants}
        del fields["limit_scope"]
        info = DropInfo(show_id=show_id, limit_per_variant=body.limit_scope == "variant", **fields)
        result: DropInfo = await _guard(_host(request).add_drop(info))
        return result

    @api.route("GET", "/api/shows/{show_id}/order", response=OrderView, summary="Run-of-show order")
    async def get_order(request: Request) -> OrderView:
        return OrderView(drop_ids=await _guard(_host(request).catalog.drop_ids(request.path_params["show_id"])))

    @api.route("PUT", "/api/shows/{show_id}/order", body=Reorder, response=OrderView, summary="Reorder the run of show")
    async def reorder(request: Request, body: Reorder) -> OrderView:
        try:
            ids = await _guard(_host(request).catalog.reorder(request.path_params["show_id"], body.drop_ids))
        except KeyError as exc:
            raise Problem(422, "invalid-request", "Unknown drops", str(exc)) from exc
        return OrderView(drop_ids=ids)

    @api.route(
        "POST", "/api/shows/{show_id}/tokens", body=MintViewerToken, response=ViewerToken, summary="Mint a viewer token"
    )
    async def mint_token(request: Request, body: MintViewerToken) -> ViewerToken:
        show_id = request.path_params["show_id"]
        if await _guard(_host(request).catalog.get_show(show_id)) is None:
            raise Problem(404, "not-found", "Not found", f"no show {show_id}")
        token = tokens.mint(request.state.viewer_secret, show_id, body.viewer_id, ttl=body.ttl_seconds, name=body.name)
        return ViewerToken(token=token, expires_at=int(time.time() + body.ttl_seconds))

    @api.route("GET", "/api/shows/{show_id}/stats", response=ShowStats, summary="KPIs of a show and its drops")
    async def get_show_stats(request: Request) -> ShowStats:
        stats: ShowStats = await _guard(show_stats(_host(request), request.path_params["show_id"]))
        return stats

    @api.route(
        "GET",
        "/api/shows/{show_id}/reconciliation",
        response=ReconciliationReport,
        summary="Reconciliation of live checkout and platform orders",
    )
    async def reconciliation(request: Request) -> ReconciliationReport:
        st = request.state
        if await _guard(st.catalog.get_show(request.path_params["show_id"])) is None:
            raise Problem(404, "not-found", "Not found", f"no show {request.path_params['show_id']}")
        report: ReconciliationReport = await _guard(
            build_report(
                st.redis,
                st.engine,
                st.catalog,
                request.path_params["show_id"],
                grace_seconds=st.settings.webhooks.reconcile_grace_seconds,
            )
        )
        return report

    @api.route("GET", "/api/drops/{drop_id}", response=DropView, summary="A drop and its stock")
    async def get_drop(request: Request) -> DropView:
        host = _host(request)
        drop_id = request.path_params["drop_id"]
        info = await _guard(host.catalog.get_drop(drop_id))
        if info is None:
            raise Problem(404, "not-found", "Not found", f"no drop {drop_id}")
        return DropView(
            info=info,
            stock=await _guard(host.engine.snapshot(drop_id)),
            variants=await _guard(variant_stock(host.engine, info)),
        )

    @api.route("POST", "/api/drops/{drop_id}/launch", body=Launch, response=StateChange, summary="Launch a drop")
    async def launch(request: Request, body: Launch) -> StateChange:
        change: StateChange = await _guard(_host(request).launch(request.path_params["drop_id"], body.duration_seconds))
        return change

    @api.route("POST", "/api/drops/{drop_id}/end", body=EndDrop, response=StateChange, summary="End a drop")
    async def end(request: Request, body: EndDrop) -> StateChange:
        change: StateChange = await _guard(_host(request).end(request.path_params["drop_id"], body.reason))
        return change

    @api.route(
        "POST", "/api/drops/{drop_id}/restock", body=RestockRequest, response=DropSnapshot, summary="Restock/adjust"
    )
    async def restock(request: Request, body: RestockRequest) -> DropSnapshot:
        drop_id = request.path_params["drop_id"]
        variant = pick_variant(await _drop_info(request, drop_id), body.variant)
        await _guard(_host(request).restock(drop_id, body.delta, body.request_id, variant))
        snapshot: DropSnapshot = await _guard(_host(request).engine.snapshot(drop_id))
        return snapshot

    @api.route("GET", "/api/drops/{drop_id}/stats", response=DropStats, summary="KPIs of a drop")
    async def get_drop_stats(request: Request) -> DropStats:
        stats: DropStats = await _guard(drop_stats(_host(request), request.path_params["drop_id"]))
        return stats

    @api.route("GET", "/api/drops/{drop_id}/ledger", response=LedgerPage, summary="A page of a drop's ledger")
    async def ledger(request: Request) -> LedgerPage:
        after = request.query_params.get("after", "-")
        try:
            count = min(1000, max(1, int(request.query_params.get("count", "200"))))
        except ValueError as exc:
            raise Problem(422, "invalid-request", "count must be an integer") from exc
        # ASCII digits: str.isdigit also takes "²", which Redis refuses as a stream id (a 500).
        if after != "-" and not all(part.isascii() and part.isdigit() for part in after.split("-", 1)):
            raise Problem(422, "invalid-request", "after must be a ledger entry id")
        drop_id = request.path_params["drop_id"]
        variant = (
            query_variant(request, await _drop_info(request, drop_id)) if "variant" in request.query_params else ""
        )
        entries = await _guard(_host(request).engine.ledger(drop_id, after, count, variant))
        return LedgerPage(entries=entries, next_after=entries[-1].entry_id if len(entries) == count else None)

    # A checkout names a hold by the reference the buyer's cart carried (the ``hold_ref`` of the
    # viewer's ``reserved`` frame), never by its id: the reference is verified (MAC, then the
    # hold's nonce), and one that fails is an unknown hold (404), whichever hold it claims to be.
    @api.route(
        "POST",
        "/api/holds/{hold_ref}/confirm",
        body=Confirm,
        response=ConfirmResult,
        summary="Confirm a hold by its reference (checkout); 409 hold-taken if confirmed with another order",
    )
    async def confirm(request: Request, body: Confirm) -> ConfirmResult:
        result: ConfirmResult = await _guard(
            _host(request).engine.confirm_ref(request.path_params["hold_ref"], body.order_ref)
        )
        return result

    @api.route(
        "POST", "/api/holds/{hold_ref}/release", response=ReleaseResult, summary="Release a hold by its reference"
    )
    async def release(request: Request) -> ReleaseResult:
        result: ReleaseResult = await _guard(_host(request).engine.release_ref(request.path_params["hold_ref"]))
        return result

    # -- read-only audit views (server/host/audit.py): invariants checkable over HTTP, no Redis access --

    @api.route("GET", "/api/drops/{drop_id}/holds", response=audit.DropHolds, summary="A drop's holds and waitlist")
    async def get_drop_holds(request: Request) -> audit.DropHolds:
        found: audit.DropHolds = await _guard(audit.drop_holds(_host(request).engine, request.path_params["drop_id"]))
        return found

    @api.route("GET", "/api/webhooks/intake", response=audit.WebhookIntake, summary="Webhook appliers' progress")
    async def get_webhook_intake(request: Request) -> audit.WebhookIntake:
        intake: audit.WebhookIntake = await _guard(audit.webhook_intake(request.state.redis))
        return intake

    @api.route("GET", "/api/webhooks/deliveries", response=audit.DeliveryPage, summary="A page of recorded webhooks")
    async def get_webhook_deliveries(request: Request) -> audit.DeliveryPage:
        after, count = audit.page_params(request)
        page: audit.DeliveryPage = await _guard(audit.deliveries(request.state.redis, after, count))
        return page

    @api.route("GET", "/api/alerts", response=audit.AlertPage, summary="A page of the alerts stream")
    async def get_alerts(request: Request) -> audit.AlertPage:
        after, count = audit.page_params(request)
        page: audit.AlertPage = await _guard(audit.alerts(request.state.redis, after, count))
        return page

    add_channel_routes(api)
    chat_api.register(api)  # /api/shows/{show_id}/chat/...: moderation (server/chat/api.py)
    add_import_routes(api)  # server/host/imports.py: run-of-show imports from product feeds
    add_checkout_routes(api)  # server/checkout/routes.py: the show's checkout hand-off
    return api
