"""Who is talking: a display name from the viewer token, a role, and a pseudonym. Pure.

Viewer ids are the integrator's opaque ids (DESIGN §10) and never leave the server in a chat
frame: every message names its author by ``uid``, a keyed hash of the viewer id (the same for all
of one viewer's messages in every show, useless to anyone without the node's secret), which is
how hosts and moderators point at an author to time it out or ban it.
"""

from __future__ import annotations

import hashlib
from typing import Final, NamedTuple

from server.chat import frames as f
from server.chat.limits import MAX_NAME_CHARS
from server.chat.normalise import display_text

HOST_VIEWER: Final = "~host"  # never a viewer id: '~' is outside the opaque-id alphabet
SYSTEM_VIEWER: Final = "~system"


class Identity(NamedTuple):
    customer: str | None  # None: a viewer without a token, who may read but not write
    name: str
    role: str
    uid: str

    @property
    def exempt(self) -> bool:
        """Hosts and moderators are exempt from slow mode, the rate and blocked words."""
        return self.role in (f.ROLE_HOST, f.ROLE_MODERATOR, f.ROLE_SYSTEM)

    def you(self) -> f.ChatYou:
        return f.ChatYou(name=self.name, role=self.role, uid=self.uid)


def uid_of(secret: bytes, viewer: str) -> str:
    return hashlib.blake2b(viewer.encode(), key=secret[:64], digest_size=8, person=b"ld-chat-uid").hexdigest()


def display_name(raw: str) -> str:
    """A name as shown: normalised like a message, at most ``MAX_NAME_CHARS`` characters."""
    return display_text(raw)[:MAX_NAME_CHARS].strip()


def viewer_identity(secret: bytes, customer: str | None, name: str = "", role: str = "") -> Identity:
    """A viewer's identity from its token's claims (none: a watcher who may only read)."""
    if customer is None:
        return Identity(None, "", f.ROLE_VIEWER, "")
    uid = uid_of(secret, customer)
    shown = display_name(name) or f"viewer-{uid[:6]}"
    return Identity(customer, shown, f.ROLE_MODERATOR if role == f.ROLE_MODERATOR else f.ROLE_VIEWER, uid)


def host_identity(secret: bytes, name: str = "") -> Identity:
    return Identity(HOST_VIEWER, display_name(name) or "Host", f.ROLE_HOST, uid_of(secret, HOST_VIEWER))


def system_identity(secret: bytes) -> Identity:
    return Identity(SYSTEM_VIEWER, "LiveDrop", f.ROLE_SYSTEM, uid_of(secret, SYSTEM_VIEWER))
