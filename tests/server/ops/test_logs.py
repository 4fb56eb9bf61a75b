"""Structured JSON logs: one parseable object per line, exceptions included."""

from __future__ import annotations

import json
import logging
import logging.config
import sys

from server.ops.logs import JsonFormatter, Redact, log_config, redact


def test_json_lines_carry_level_logger_message_and_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("livedrop.test").makeRecord(
            "livedrop.test", logging.ERROR, __file__, 1, "sweep failed after %d tries", (3,), exc_info=sys.exc_info()
        )
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["level"] == "error" and entry["logger"] == "livedrop.test"
    assert entry["message"] == "sweep failed after 3 tries"
    assert "ValueError: boom" in entry["exception"] and entry["ts"].endswith("Z")
    assert "\n" not in line


def test_log_config_is_accepted_by_dictconfig() -> None:
    for json_lines in (True, False):
        config = log_config(json_lines, "warning")
        logging.config.dictConfig(config | {"loggers": {}})  # the handler and formatter build


def test_query_values_and_client_addresses_are_redacted_before_formatting() -> None:
    logger = logging.getLogger("uvicorn.access")
    record = logger.makeRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        (
            "203.0.113.9:51234",
            "GET",
            "/webhooks/meta?hub.mode=subscribe&hub.verify_token=s3cret&hub.challenge=1",
            "1.1",
            200,
        ),
        None,
    )
    assert Redact().filter(record)
    for formatter in (JsonFormatter(), logging.Formatter("%(message)s")):
        line = formatter.format(record)
        assert "s3cret" not in line and "203.0.113.9" not in line
        assert "/webhooks/meta?hub.mode=redacted&hub.verify_token=redacted&hub.challenge=redacted" in line
    socket_line = logger.makeRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("::1:4", "/ws/shows/s1?token=a.b"),
        None,
    )
    Redact().filter(socket_line)
    assert socket_line.getMessage() == '- - "WebSocket /ws/shows/s1?token=redacted" [accepted]'
    # Text without a query string is left as it was, arguments and all.
    plain = logger.makeRecord("livedrop", logging.INFO, __file__, 1, "rejected: platform=%s", ("meta",), None)
    Redact().filter(plain)
    assert plain.args == ("meta",) and redact("a=b c") == "a=b c"


def test_an_exception_text_is_redacted_too() -> None:
    try:
        raise ValueError("bad url /ws/shows/s1?token=abc.def")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), exc_info=sys.exc_info()
        )
    Redact().filter(record)
    assert "abc.def" not in JsonFormatter().format(record) and "abc.def" not in logging.Formatter().format(record)
