"""The hosts' chat endpoints (``/api/shows/{show_id}/chat/...``): every moderation action, the
chat's state and its audit, moderator tokens. Bodies are msgspec types (the OpenAPI document is
made from them); errors are problem+json. The panel uses these; so can an integrator's tools."""

from __future__ import annotations

import time
from typing import Annotated, Literal

import msgspec
from redis.exceptions import RedisError
from starlette.requests import Request

from server.chat import frames as f
from server.chat import keys as ck
from server.chat.identity import Identity, host_identity
from server.chat.limits import (
    MAX_BLOCKED_WORD_CHARS,
    MAX_BLOCKED_WORDS,
    MAX_KEYWORD_CHARS,
    MAX_NAME_CHARS,
    MAX_SLOW_SECONDS,
    MAX_TEXT_CHARS,
    MAX_TIMEOUT_SECONDS,
)
from server.chat.moderation import ModerationError, Target
from server.chat.node import ChatNode
from server.chat.room import Room
from server.host.audit import page_params
from server.host.openapi import Api
from server.problems import Problem
from server.shows.catalog import Catalog
from server.viewers import tokens

Opaque = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:/+=-]+$")]
Reason = Annotated[str, msgspec.Meta(max_length=500)]
Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME_CHARS)]


class ChatTarget(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Whom an action is about: exactly one of a message of theirs, their ``uid`` (the pseudonym
    in their messages) or their viewer id."""

    message: f.MessageId | None = None
    uid: f.Uid | None = None
    viewer: Opaque | None = None


class HostPost(msgspec.Struct, forbid_unknown_fields=True):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT_CHARS * 4)]
    name: Name = ""


class PostAnswer(msgspec.Struct):
    id: str
    status: str


class Reasoned(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason = ""


class TimeoutRequest(msgspec.Struct, forbid_unknown_fields=True):
    target: ChatTarget
    seconds: Annotated[int, msgspec.Meta(ge=1, le=MAX_TIMEOUT_SECONDS)]
    reason: Reason = ""


class BanRequest(msgspec.Struct, forbid_unknown_fields=True):
    target: ChatTarget
    scope: Literal["show", "deployment"] = "show"
    # Also refuse the viewer's connections to the show (watching and buying) while banned.
    disconnect: bool = False
    reason: Reason = ""


class UnbanRequest(msgspec.Struct, forbid_unknown_fields=True):
    target: ChatTarget
    scope: Literal["show", "deployment"] = "show"


class Restricted(msgspec.Struct):
    """``until``: epoch ms a timeout ends; -1 for a ban; 0 when lifted."""

    until: int


class ChatSettingsBody(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Only the fields given change. ``slow_seconds`` 0 turns slow mode off."""

    slow_seconds: Annotated[int, msgspec.Meta(ge=0, le=MAX_SLOW_SECONDS)] | None = None
    keyword: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_KEYWORD_CHARS, pattern=r"^[A-Za-z]+$")] | None = (
        None
    )
    blocked_words: (
        Annotated[
            list[Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_BLOCKED_WORD_CHARS)]],
            msgspec.Meta(max_length=MAX_BLOCKED_WORDS),
        ]
        | None
    ) = None
    blocked_action: Literal["hold", "drop"] | None = None


class ChatSettingsView(msgspec.Struct):
    slow_seconds: int
    keyword: str
    blocked_words: list[str]
    blocked_action: str


class ChatView(msgspec.Struct):
    messages: list[f.ChatMessage]
    pinned: f.ChatMessage | None
    settings: ChatSettingsView
    codes: dict[str, str]
    held: list[f.HeldMessage]


class PinRequest(msgspec.Struct, forbid_unknown_fields=True):
    message: f.MessageId


class Removed(msgspec.Struct):
    removed: int


class Cleared(msgspec.Struct):
    upto: int


class Done(msgspec.Struct):
    ok: bool = True


class MintModerator(msgspec.Struct, forbid_unknown_fields=True):
    viewer_id: Opaque
    name: Name = ""
    ttl_seconds: Annotated[float, msgspec.Meta(gt=0, le=7 * 86_400)] = 4 * 3600.0


class ModeratorToken(msgspec.Struct):
    token: str
    expires_at: int


class AuditRecord(msgspec.Struct):
    """One moderation action: who (``actor``, their ``role``), what, on whom (``target_name``,
    ``target_uid``), why or how long (``detail``), when (``at_ms``)."""

    entry_id: str
    at_ms: int
    actor: str
    role: str
    action: str
    target_uid: str
    target_name: str
    detail: str


class AuditPage(msgspec.Struct):
    records: list[AuditRecord]
    next_after: str | None


def _chat(request: Request) -> ChatNode:
    node: ChatNode = request.state.chat
    return node


def _host(request: Request) -> Identity:
    return host_identity(request.state.viewer_secret)


async def _show(request: Request) -> str:
    show_id: str = request.path_params["show_id"]
    try:
        ck.chat_keys(show_id)
    except Exception as exc:
        raise Problem(404, "not-found", "Not found", "no such show") from exc
    catalog: Catalog = request.state.catalog
    try:
        found = await catalog.get_show(show_id)
    except RedisError as exc:
        raise Problem(503, "unavailable", "Service unavailable", "Redis is unreachable; retry") from exc
    if found is None:
        raise Problem(404, "not-found", "Not found", f"no show {show_id}")
    return show_id


def _problem(exc: Exception) -> Problem:
    if isinstance(exc, ModerationError):
        if exc.code == f.REFUSED_NOT_FOUND:
            return Problem(404, "not-found", "Not found", str(exc))
        return Problem(422, "invalid-request", "Invalid request", str(exc))
    return Problem(503, "unavailable", "Service unavailable", "Redis is unreachable; retry")


async def _target(request: Request, show_id: str, target: ChatTarget) -> Target:
    return await _chat(request).moderation.target(show_id, message=target.message, uid=target.uid, viewer=target.viewer)


def register(api: Api) -> None:
    """Add the chat endpoints to the host API."""
    base = "/api/shows/{show_id}/chat"

    @api.route("GET", base, response=ChatView, summary="The show's chat: history, pin, settings, held", tag="chat")
    async def get_chat(request: Request) -> ChatView:
        show_id = await _show(request)
        chat = _chat(request)
        try:
            room = Room(show_id, limit=chat.settings.history)
            room.load(
                await chat.store.tail(show_id, ck.LOG_MAXLEN),
                await chat.store.state(show_id),
                await chat.store.restricted(show_id),
            )
            codes = {k: v for k, v in (await request.state.redis.hgetall(ck.chat_keys(show_id).codes)).items()}
            held = await chat.store.held(show_id)
        except RedisError as exc:
            raise _problem(exc) from exc
        s = room.settings
        return ChatView(
            messages=list(room.history),
            pinned=room.pinned,
            settings=ChatSettingsView(s.slow_seconds, s.keyword, list(s.words), s.word_action),
            codes={k.decode(): v.decode() for k, v in codes.items() if not k.startswith(b"@")},
            held=held,
        )

    @api.route(
        "POST",
        base + "/messages",
        body=HostPost,
        response=PostAnswer,
        status=201,
        summary="Post as the host",
        tag="chat",
    )
    async def host_post(request: Request, body: HostPost) -> PostAnswer:
        show_id = await _show(request)
        chat = _chat(request)
        who = host_identity(request.state.viewer_secret, body.name)
        from server.chat.normalise import display_text

        text = display_text(body.text)
        if not text or len(text) > MAX_TEXT_CHARS:
            raise Problem(422, "invalid-request", "Invalid message", f"a message is 1-{MAX_TEXT_CHARS} characters")
        try:
            result = await chat.store.post(
                show_id,
                viewer=who.customer or "",
                dedupe=f"host:{time.time_ns()}",
                uid=who.uid,
                name=who.name,
                role=who.role,
                text=text,
                exempt=True,
            )
        except RedisError as exc:
            raise _problem(exc) from exc
        return PostAnswer(id=result.id, status=result.code)

    @api.route("DELETE", base + "/messages/{message_id}", response=Removed, summary="Delete a message", tag="chat")
    async def delete_message(request: Request) -> Removed:
        show_id = await _show(request)
        message_id = request.path_params["message_id"]
        try:
            msgspec.convert(message_id, f.MessageId)
        except msgspec.ValidationError as exc:
            raise Problem(404, "not-found", "Not found", "no such message") from exc
        try:
            removed = await _chat(request).moderation.delete(show_id, [message_id], _host(request))
        except (ModerationError, RedisError) as exc:
            raise _problem(exc) from exc
        return Removed(removed=removed)

    @api.route("POST", base + "/clear", body=Reasoned, response=Cleared, summary="Clear the chat", tag="chat")
    async def clear(request: Request, body: Reasoned) -> Cleared:
        show_id = await _show(request)
        try:
            return Cleared(upto=await _chat(request).moderation.clear(show_id, _host(request), body.reason))
        except RedisError as exc:
            raise _problem(exc) from exc

    @api.route(
        "POST", base + "/timeouts", body=TimeoutRequest, response=Restricted, summary="Time a viewer out", tag="chat"
    )
    async def timeout(request: Request, body: TimeoutRequest) -> Restricted:
        show_id = await _show(request)
        m = _chat(request).moderation
        try:
            who = await _target(request, show_id, body.target)
            return Restricted(until=await m.timeout(show_id, who, body.seconds, _host(request), body.reason))
        except (ModerationError, RedisError) as exc:
            raise _problem(exc) from exc

    @api.route(
        "POST", base + "/bans", body=BanRequest, response=Restricted, summary="Ban a viewer from chat", tag="chat"
    )
    async def ban(request: Request, body: BanRequest) -> Restricted:
        show_id = await _show(request)
        m = _chat(request).moderation
        try:
            who = await _target(request, show_id, body.target)
            until = await m.ban(
                show_id, who, _host(request), scope=body.scope, disconnect=body.disconnect, reason=body.reason
            )
        except (ModerationError, RedisError) as exc:
            raise _problem(exc) from exc
        return Restricted(until=until if body.scope == "show" else -1)

    @api.route(
        "POST", base + "/unbans", body=UnbanRequest, response=Restricted, summary="Lift a ban or timeout", tag="chat"
    )
    async def unban(request: Request, body: UnbanRequest) -> Restricted:
        show_id = await _show(request)
        m = _chat(request).moderation
        try:
            who = await _target(request, show_id, body.target)
            await m.unban(show_id, who, _host(request), scope=body.scope)
        except (ModerationError, RedisError) as exc:
            raise _problem(exc) from exc
        return Restricted(until=0)

    @api.route(
        "PUT",
        base + "/settings",
        body=ChatSettingsBody,
        response=Done,
        summary="Slow mode, keyword, blocked words",
        tag="chat",
    )
    async def settings(request: Request, body: ChatSettingsBody) -> Done:
        show_id = await _show(request)
        m = _chat(request).moderation
        who = _host(request)
        try:
            if body.slow_seconds is not None:
                await m.slow(show_id, body.slow_seconds, who)
            await m.configure(
                show_id, who, keyword=body.keyword, words=body.blocked_words, word_action=body.blocked_action
            )
        except (ModerationError, RedisError) as exc:
            raise _problem(exc) from exc
        return Done()

    @api.route("PUT", base + "/pin", body=PinRequest, response=Done, summary="Pin a message", tag="chat")
    async def pin(request: Request, body: PinRequest) -> Done:
        show_id = await _show(request)
        try:
            await _chat(request).moderation.pin(show_id, body.message, _host(request))
        except (ModerationError, RedisError) as exc:
            raise _problem(exc) from exc
        return Done()

    @api.route("DELETE", base + "/pin", response=Done, summary="Unpin", tag="chat")
    async def unpin(request: Request) -> Done:
        show_id = await _show(request)
        try:
            await _chat(request).moderation.pin(show_id, None, _host(request))
        except (ModerationError, RedisError) as exc:
            raise _problem(exc) from exc
        return Done()

    async def _resolve(request: Request, approve: bool) -> PostAnswer:
        show_id = await _show(request)
        held_id = request.path_params["held_id"]
        if not (held_id.isalnum() and len(held_id) <= 32):
            raise Problem(404, "not-found", "Not found", "no such held message")
        try:
            posted = await _chat(request).moderation.resolve_held(show_id, held_id, approve, _host(request))
        except (ModerationError, RedisError) as exc:
            raise _problem(exc) from exc
        return PostAnswer(id=posted, status="approved" if approve else "rejected")

    @api.route("POST", base + "/held/{held_id}/approve", response=PostAnswer, summary="Post a held message", tag="chat")
    async def approve(request: Request) -> PostAnswer:
        return await _resolve(request, True)

    @api.route("DELETE", base + "/held/{held_id}", response=PostAnswer, summary="Reject a held message", tag="chat")
    async def reject(request: Request) -> PostAnswer:
        return await _resolve(request, False)

    @api.route(
        "POST",
        base + "/moderators",
        body=MintModerator,
        response=ModeratorToken,
        status=201,
        summary="Mint a moderator token",
        tag="chat",
    )
    async def mint_moderator(request: Request, body: MintModerator) -> ModeratorToken:
        show_id = await _show(request)
        token = tokens.mint(
            request.state.viewer_secret, show_id, body.viewer_id, ttl=body.ttl_seconds, name=body.name, role="moderator"
        )
        return ModeratorToken(token=token, expires_at=int(time.time() + body.ttl_seconds))

    @api.route("GET", base + "/audit", response=AuditPage, summary="Moderation actions, oldest first", tag="chat")
    async def audit(request: Request) -> AuditPage:
        show_id = await _show(request)
        after, count = page_params(request)
        try:
            found = await _chat(request).store.audit(show_id, after, count)
        except RedisError as exc:
            raise _problem(exc) from exc
        records = [
            AuditRecord(
                entry_id=e.id,
                at_ms=int(e.id.split("-", 1)[0]),
                actor=e.fields.get("actor", ""),
                role=e.fields.get("role", ""),
                action=e.fields.get("action", ""),
                target_uid=e.fields.get("tu", ""),
                target_name=e.fields.get("tn", ""),
                detail=e.fields.get("detail", ""),
            )
            for e in found
        ]
        return AuditPage(records=records, next_after=found[-1].id if len(found) == count else None)
