"""``PUT``/``GET``/``DELETE /api/shows/{id}/checkout``: a show's checkout settings, validated by the
msgspec types of server/checkout/config.py (which also make the OpenAPI schema), then by the
rules msgspec cannot say (https, placeholders). Every change goes to the show's journal."""

from __future__ import annotations

import msgspec
from starlette.requests import Request

from server.checkout.config import CheckoutInvalid, CheckoutSettings, CustomCheckout, validate
from server.checkout.store import CheckoutStore
from server.host import journal
from server.host.imports import guarded
from server.host.openapi import Api
from server.problems import Problem
from server.settings import Settings
from server.shows.catalog import Catalog
from stock.keys import unit_id


class CheckoutView(msgspec.Struct, frozen=True):
    """The settings, and the show's units (drops, variants) that have no product id in them: those
    get no checkout link."""

    settings: CheckoutSettings
    unmapped: list[str]


class Deleted(msgspec.Struct, frozen=True):
    deleted: bool


async def _units(catalog: Catalog, show_id: str) -> list[str]:
    units = []
    for info in await catalog.drops(show_id):
        variants = getattr(info, "variants", [])
        units += [unit_id(info.drop_id, v.id) for v in variants] if variants else [info.drop_id]
    return units


async def _view(request: Request, show_id: str, settings: CheckoutSettings) -> CheckoutView:
    if isinstance(settings, CustomCheckout):
        return CheckoutView(settings=settings, unmapped=[])
    units = await _units(request.state.catalog, show_id)
    return CheckoutView(settings=settings, unmapped=[u for u in units if u not in settings.products])


async def _require_show(request: Request, show_id: str) -> None:
    if await request.state.catalog.get_show(show_id) is None:
        raise Problem(404, "not-found", "Not found", f"no show {show_id}")


def add_checkout_routes(api: Api) -> None:
    @api.route(
        "PUT",
        "/api/shows/{show_id}/checkout",
        body=CheckoutSettings,
        response=CheckoutView,
        summary="Set the show's checkout hand-off (Shopify, WooCommerce or a URL template)",
    )
    async def put_checkout(request: Request, body: CheckoutSettings) -> CheckoutView:
        show_id = request.path_params["show_id"]
        settings: Settings = request.state.settings
        try:
            validate(body, settings.checkout_allow_http)
        except CheckoutInvalid as exc:
            raise Problem(422, "invalid-request", "Invalid checkout settings", str(exc)) from None

        async def put() -> CheckoutView:
            await _require_show(request, show_id)
            store: CheckoutStore = request.state.checkout
            await store.put(show_id, body)
            await journal.record(request.state.redis, request, show_id, "checkout_set", platform=_platform(body))
            return await _view(request, show_id, body)

        return await guarded(put())

    @api.route("GET", "/api/shows/{show_id}/checkout", response=CheckoutView, summary="The show's checkout hand-off")
    async def get_checkout(request: Request) -> CheckoutView:
        show_id = request.path_params["show_id"]

        async def get() -> CheckoutView:
            await _require_show(request, show_id)
            found = await request.state.checkout.get(show_id)
            if found is None:
                raise Problem(404, "not-found", "Not found", f"show {show_id} has no checkout settings")
            return await _view(request, show_id, found)

        return await guarded(get())

    @api.route("DELETE", "/api/shows/{show_id}/checkout", response=Deleted, summary="Remove the show's checkout")
    async def delete_checkout(request: Request) -> Deleted:
        show_id = request.path_params["show_id"]

        async def delete() -> Deleted:
            await _require_show(request, show_id)
            deleted = await request.state.checkout.delete(show_id)
            if deleted:
                await journal.record(request.state.redis, request, show_id, "checkout_deleted")
            return Deleted(deleted=deleted)

        return await guarded(delete())


def _platform(settings: CheckoutSettings) -> str:
    return str(type(settings).__struct_config__.tag)
