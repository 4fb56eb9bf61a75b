"""Structured logs: one JSON object per line (``--log-json`` / ``LIVEDROP_LOG_JSON=1``), for log
pipelines that index fields. Messages never carry customer or viewer ids (DESIGN §10), and no
token, secret or client address reaches a log line (DESIGN §13): ``Redact`` sits on the handler,
so it covers uvicorn's access and WebSocket lines as well as ours."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()

REDACTED = "redacted"
# A query string in a logged URL or path: the viewer token (``/ws/shows/s1?token=…``), Meta's
# ``hub.verify_token``, host tokens of old panel links. Keys stay (they say what was asked), values
# go. It stops at whitespace and at the quote uvicorn puts around a request line.
_QUERY_VALUE = re.compile(r"([?&][^=&\s\"?#]*=)[^&\s\"#]*")
# uvicorn's access and WebSocket lines all begin with the client's address: '%s - "GET …'.
_CLIENT_FIRST = '%s - "'


def redact(text: str) -> str:
    """``text`` with every query string value replaced by ``redacted``."""
    if "=" not in text:
        return text
    return _QUERY_VALUE.sub(rf"\g<1>{REDACTED}", text)


class Redact(logging.Filter):
    """Rewrites each record before any formatter sees it: the client address of uvicorn's lines
    becomes ``-`` and query string values are redacted (in the message and the exception text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(record.msg, str) and record.msg.startswith(_CLIENT_FIRST) and isinstance(args, tuple) and args:
            record.args = ("-", *args[1:])
        try:
            message = record.getMessage()
        except Exception:  # a bad format call: the handler reports it (handleError) when it emits
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return _encoder.encode(entry).decode()


def log_config(json_lines: bool, level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn and LiveDrop's own loggers."""
    formatter = (
        {"()": f"{__name__}.JsonFormatter"}
        if json_lines
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "default",
        "stream": "ext://sys.stderr",
        "filters": ["redact"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": f"{__name__}.Redact"}},
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "loggers": {
            "": {"handlers": ["default"], "level": level.upper()},
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            # The channel connectors' HTTP client logs every request at INFO (four platforms, four
            # times a second, URLs with query strings): only its warnings are worth a line.
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }
