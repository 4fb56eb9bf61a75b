"""One small exception tree for rejected webhook deliveries.

The HTTP shell maps each class to a status (401 for a bad signature, 400 for the rest) and logs the
machine ``code``; nothing here knows about HTTP. Every rejection happens *before* a delivery is
recorded or acknowledged, so a platform that sent a genuine delivery we wrongly rejected will retry it.
"""

from __future__ import annotations


class WebhookRejected(Exception):
    """A delivery that must not be applied.

    ``code`` is a stable machine string (for logs, metrics and problem responses); ``detail`` is for
    humans and never contains a secret or a signature.
    """

    code: str = "rejected"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, detail={self.detail!r})"


class BadSignature(WebhookRejected):
    """No configured secret produces the signature the delivery carries (or it carries none we can read)."""

    code = "bad_signature"


class StaleTimestamp(WebhookRejected):
    """The signed timestamp is outside the replay window (too old *or* too far in the future)."""

    code = "stale_timestamp"


class MissingHeader(WebhookRejected):
    """A header the scheme needs is absent or empty; ``header`` names it."""

    code = "missing_header"

    def __init__(self, header: str, *, code: str | None = None) -> None:
        super().__init__(f"missing header {header}", code=code)
        self.header = header


class MalformedPayload(WebhookRejected):
    """The delivery is authentic but cannot be read (bad JSON, wrong types, unparsable header value)."""

    code = "malformed_payload"


class TopicMismatch(MalformedPayload):
    """What an unsigned header claims (a Shopify topic, a WooCommerce topic) disagrees with the signed
    body: a genuine body replayed under another topic, so it is refused rather than applied as that
    topic (DESIGN §13)."""

    code = "topic_mismatch"
