"""Operator feedback: append-only JSONL of labelled cases that `aduan train --data` reads.

Each line is one record in the data schema (`data.schema`): `id`, `text`,
`created_at`, `agency`, `topic`, the location fields, `duplicate_of`, plus
other heads' labels under their own names, and `received_at` / `model_version`
for the audit trail (training ignores unknown columns). A line is written and
fsynced before the API answers 2xx, so acknowledged feedback survives a crash.
A crash mid-write can leave a torn last line; readers skip it with a warning
(and the next append starts on a fresh line).

`export` keeps the latest record per id (the operator's last word) and writes
a JSONL file ready for training.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data.schema import CREATED_AT, ID, LOCATION_FIELDS, TEXT
from model.files import atomic_output, fsync_dir

log = logging.getLogger("aduan.serving.feedback")

FEEDBACK_FILE = "feedback.jsonl"
#: Columns written first, in this order; other heads' labels follow.
COLUMNS = (ID, TEXT, CREATED_AT, "agency", "topic", *LOCATION_FIELDS, "duplicate_of")


class FeedbackStore:
    """Appends feedback records durably; safe to call from several threads."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / FEEDBACK_FILE
        self._lock = threading.Lock()

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            new = not self.path.exists()
            if new:
                self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                size = os.fstat(fd).st_size
                if size and _last_byte(self.path, size) != b"\n":
                    line = b"\n" + line  # a torn line from a crash: keep it apart
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if new:
                fsync_dir(self.folder)


def _last_byte(path: Path, size: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(size - 1)
        return fh.read(1)


def read_feedback(path: Path) -> Iterator[dict[str, Any]]:
    """Records in file order; torn or malformed lines are skipped (counted in a warning)."""
    bad = 0
    with path.open("rb") as fh:
        for raw in fh:
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                bad += 1
                continue
            if isinstance(record, dict) and isinstance(record.get(ID), str):
                yield record
            else:
                bad += 1
    if bad:
        log.warning("%s: skipped %d unreadable line(s)", path, bad)


def latest_per_id(path: Path) -> list[dict[str, Any]]:
    """The latest record of each id, in the order ids first appeared."""
    latest: dict[str, dict[str, Any]] = {}
    for record in read_feedback(path):
        latest[record[ID]] = record
    return list(latest.values())


def export(folder: Path, out: Path) -> int:
    """Write the latest feedback per id to `out` (JSONL, atomically); returns the row count."""
    path = Path(folder) / FEEDBACK_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no feedback stored yet")
    rows = latest_per_id(path)
    with atomic_output(out) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)
