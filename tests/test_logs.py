"""Structured JSON logs: one parseable object per line, exceptions included."""

from __future__ import annotations

import json
import logging
import logging.config
import sys

from server.logs import JsonFormatter, log_config


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
