"""Host API routes of the sales channels (``/api/channels…``): their sync status, and each drop
SKU's ids on every channel. Kept apart from ``api.py`` so the channel feature stays in one place."""

from __future__ import annotations

import msgspec
from redis.exceptions import RedisError
from starlette.requests import Request

from server.host.openapi import Api
from server.platforms.channels.mapping import Mappings, SkuMapping
from server.platforms.channels.service import ChannelService
from server.platforms.channels.status import ChannelsStatus, channels_status
from server.problems import Problem
from stock import keys as stock_keys
from stock.errors import InvalidArgument


class MappingView(msgspec.Struct):
    sku: str
    mapping: SkuMapping


def _sku(request: Request) -> str:
    sku = str(request.path_params["sku"])
    try:
        return stock_keys.check_opaque("sku", sku)
    except InvalidArgument as exc:
        raise Problem(422, "invalid-request", "Invalid request", str(exc)) from None


def _unavailable(exc: RedisError) -> Problem:
    return Problem(503, "unavailable", "Service unavailable", "Redis is unreachable; retry")


def add_channel_routes(api: Api) -> None:
    @api.route("GET", "/api/channels", response=ChannelsStatus, summary="Sync status of every sales channel")
    async def get_channels(request: Request) -> ChannelsStatus:
        service: ChannelService = request.state.channels
        try:
            return await channels_status(request.state.redis, service.settings)
        except RedisError as exc:
            raise _unavailable(exc) from exc

    @api.route("GET", "/api/channels/mappings/{sku}", response=MappingView, summary="A drop SKU's ids on each channel")
    async def get_mapping(request: Request) -> MappingView:
        sku = _sku(request)
        try:
            mapping = await Mappings(request.state.redis).get(sku)
        except RedisError as exc:
            raise _unavailable(exc) from exc
        if mapping is None:
            raise Problem(404, "not-found", "Not found", f"no channel mapping for SKU {sku}")
        return MappingView(sku=sku, mapping=mapping)

    @api.route(
        "PUT",
        "/api/channels/mappings/{sku}",
        body=SkuMapping,
        response=MappingView,
        summary="Set a drop SKU's ids on each channel (replaces the mapping; the SKU is pushed again)",
    )
    async def put_mapping(request: Request, body: SkuMapping) -> MappingView:
        sku = _sku(request)
        service: ChannelService = request.state.channels
        try:
            await service.mappings.put(sku, body)
            await service.touch(sku)
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return MappingView(sku=sku, mapping=body)
