"""Small file helpers shared by the encoder cache, the bundle, the CLI and the API."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fsync_tree(folder: Path) -> None:
    """Flush every file below `folder` to disk before it is renamed into place."""
    for p in folder.rglob("*"):
        if p.is_file():
            with p.open("rb") as fh:
                os.fsync(fh.fileno())


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a new or renamed file in it) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sizes(folder: Path) -> dict[str, int]:
    """Relative path -> size of every file below `folder` (a cheap completeness check)."""
    return {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary file beside `path` for a writer that takes a file name; renamed into
    place when the block completes, removed when it fails, so `path` is never partial."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_output(path: Path) -> Iterator[IO[str]]:
    """Write text to a temporary file beside `path`; fsync and rename it into place when
    the block completes, so readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def make_temp_dir(prefix: str, parent: Path) -> Path:
    """`tempfile.mkdtemp` in `parent`, but with the mode a plain `mkdir` gives (the umask's),
    not mkdtemp's 0700: a folder renamed into place from it (a bundle, the encoder cache)
    must stay readable by another account, such as the one serving it."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    mask = os.umask(0)
    os.umask(mask)
    tmp.chmod(0o777 & ~mask)
    return tmp


def nearest_existing(path: Path) -> Path:
    """`path` if it exists (a dangling link counts), else its nearest ancestor that does:
    the folder in which `path`, and any missing parents, would be made."""
    while not (path.exists() or path.is_symlink()) and path != path.parent:
        path = path.parent
    return path


def probe_writable(folder: Path) -> None:
    """Raise the OSError that creating something in `folder` would raise (by making and
    removing a folder there: unlike `os.access`, this sees read-only filesystems and ACLs
    as the write itself will)."""
    os.rmdir(tempfile.mkdtemp(prefix=".aduan-check-", dir=folder))
