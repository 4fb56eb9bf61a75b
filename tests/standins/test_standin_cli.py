"""``livedrop stand-in PLATFORM`` serves a stand-in until SIGTERM and prints the LiveDrop settings
that accept its webhooks."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx

from server.ops.local_redis import free_port
from tests.support.util import scaled


def test_the_command_serves_a_stand_in_and_prints_the_livedrop_settings() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.cli",
            "stand-in",
            "tiktok",
            "--port",
            str(port),
            "--livedrop",
            "http://127.0.0.1:1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + scaled(20)
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                described = httpx.get(f"http://127.0.0.1:{port}/_standin").json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the stand-in did not start"
                time.sleep(0.05)
        assert described["platform"] == "tiktok" and described["app_key"] == "standin_app_key"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=scaled(15))
    assert proc.returncode == 0, err
    assert "LIVEDROP_TIKTOK_APP_KEY='standin_app_key'" in out.decode()
    assert f"stand-in tiktok: http://127.0.0.1:{port}" in err.decode()
