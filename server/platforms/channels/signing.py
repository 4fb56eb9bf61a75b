"""TikTok Shop's request signature, as "Sign your API request" documents it (docs/channels.md).

Kept apart from the stand-in's own reading of the same page (``standins.signing``): the tests pin
this one to TikTok's official vector and to a vector with a body, and the stand-in refuses any call
whose sign its own reading does not reproduce.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

UNSIGNED = frozenset({"sign", "access_token"})


def tiktok_sign(secret: str, path: str, params: Mapping[str, str], body: bytes = b"", content_type: str = "") -> str:
    """Lowercase hex HMAC-SHA256, keyed by the app secret, of
    ``secret + path + {key}{value}… (sorted, without sign and access_token) + body + secret``;
    the body is left out for ``multipart/form-data``."""
    message = path + "".join(f"{key}{params[key]}" for key in sorted(params) if key not in UNSIGNED)
    raw = message.encode()
    if not content_type.lower().startswith("multipart/form-data"):
        raw += body
    key = secret.encode()
    return hmac.new(key, key + raw + key, hashlib.sha256).hexdigest()
