"""What the load generator was told, written as it happens and read back by the verdict.

Each Locust process appends JSON lines to its own file in the record directory (one file per
process: no locking between the processes of a distributed run). A line is written once the
server has answered, so the verdict compares the server's state with what clients were really
told: the holds buyers got, the confirmations and releases answered, the webhooks acknowledged.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class RecordWriter:
    """Appends records to ``<dir>/records-<pid>.jsonl``; a writer with no directory drops them
    (a distributed run in docker-compose has no verdict to feed)."""

    def __init__(self, directory: str | os.PathLike[str] | None) -> None:
        self._file = None
        # A gevent-patched lock under Locust: greenlets of one process share the file.
        self._lock = threading.Lock()
        if directory:
            path = Path(directory)
            path.mkdir(parents=True, exist_ok=True)
            self._file = (path / f"records-{os.getpid()}.jsonl").open("a", encoding="utf-8")

    def write(self, kind: str, **fields: Any) -> None:
        if self._file is None:
            return
        line = json.dumps({"k": kind, **fields}, separators=(",", ":"))
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read_records(directory: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Every record of every process, file by file. A torn last line (a process killed while
    writing) is skipped: it was never a complete answer."""
    for path in sorted(Path(directory).glob("records-*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict):
                    yield record
