"""Keeping the duplicate index in the served model's vector space.

An index folder holds vectors of one duplicate embedding (`embedding_id`);
vectors of another model cannot be compared with them. When the served
bundle's embedding differs from the index folder's (a fine-tuned bundle, a
new dedup prompt), the API **re-embeds** the stored texts
(`iter_complaints` gives them back) with the new bundle into a fresh sibling
folder `<index>.reembed-<hash>`, then swaps folders: the old one is kept as
`<index>.previous` (one generation; delete it freely) and the new one takes
the configured name. Bundles that keep the pretrained encoder share the
embedding id, so retraining heads never triggers this.

- At startup the server is not ready (`/readyz` answers 503 with
  "re-embedding i/n complaints") until the new folder is complete.
- On a reload the old model keeps serving from the old index while the new
  folder is filled; writes made meanwhile are journaled by the engine and
  replayed at the swap, which runs on the model worker thread (no write can
  slip in between).
- An interrupted re-embedding resumes: the sibling folder keeps what was done
  and only the missing complaints are embedded again.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from model.dedup import DuplicateFinder
from model.index import (
    ComplaintIndex,
    ComplaintIndexError,
    open_index,
    read_index_identity,
)

log = logging.getLogger("aduan.serving.reindex")

Progress = Callable[[int, int], None]


class Cancelled(Exception):
    """The server is shutting down; a re-embedding stopped (it resumes next time)."""


def sibling(path: Path, embedding_id: str) -> Path:
    tag = hashlib.sha256(embedding_id.encode("utf-8")).hexdigest()[:12]
    return path.with_name(f"{path.name}.reembed-{tag}")


def backup_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.previous")


def reembed(
    source: ComplaintIndex,
    target: ComplaintIndex,
    finder: DuplicateFinder,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    chunk: int = 256,
) -> int:
    """Embed every complaint of `source` missing from `target` with `finder`; how many."""
    total, done, added = len(source), 0, 0
    for complaints in source.iter_complaints(batch=chunk):
        if cancel is not None and cancel.is_set():
            raise Cancelled
        have = target.get([c.id for c in complaints])
        todo = [c for c in complaints if c.id not in have]
        if todo:
            target.add(todo, finder.embed([c.text for c in todo]))
            added += len(todo)
        done += len(complaints)
        if progress is not None:
            progress(done, total)
    return added


def replay(
    source: ComplaintIndex, target: ComplaintIndex, finder: DuplicateFinder, ids: Iterable[str]
) -> int:
    """Make `target` agree with `source` on `ids` (written during a re-embedding)."""
    wanted = sorted(set(ids))
    if not wanted:
        return 0
    now = source.get(wanted)
    gone = [i for i in wanted if i not in now]
    if gone:
        target.remove(gone)
    present = list(now.values())
    if present:
        target.add(present, finder.embed([c.text for c in present]))
    return len(wanted)


def swap_folders(path: Path, fresh: Path) -> None:
    """Put `fresh` in place of `path`, keeping the old folder as `<path>.previous`."""
    backup = backup_path(path)
    if backup.exists():
        shutil.rmtree(backup)
    if path.exists():
        path.rename(backup)
    fresh.rename(path)


def open_for(
    path: Path,
    finder: DuplicateFinder,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> tuple[ComplaintIndex, int | None]:
    """Open the index at `path` for `finder`'s embedding, re-embedding it first if needed.

    Returns the index and how many complaints were re-embedded (None: none needed).
    """
    identity = read_index_identity(path)
    if identity is None or identity == (finder.embedding_id, finder.dim):
        return open_index(path, dim=finder.dim, embedding_id=finder.embedding_id), None
    old_id, old_dim = identity
    log.warning(
        "index %s was built with another duplicate embedding; re-embedding it for this model",
        path,
    )
    fresh_path = sibling(path, finder.embedding_id)
    source = open_index(path, dim=old_dim, embedding_id=old_id, create=False)
    try:
        fresh = open_index(fresh_path, dim=finder.dim, embedding_id=finder.embedding_id)
        try:
            n = reembed(source, fresh, finder, progress=progress, cancel=cancel)
        finally:
            fresh.close()
    finally:
        source.close()
    swap_folders(path, fresh_path)
    index = open_index(path, dim=finder.dim, embedding_id=finder.embedding_id, create=False)
    log.warning("index %s re-embedded (%d complaints)", path, len(index))
    return index, n


__all__ = [
    "Cancelled",
    "ComplaintIndexError",
    "open_for",
    "reembed",
    "replay",
    "sibling",
    "swap_folders",
]
