"""Where aduan writes caches and outputs.

Everything aduan writes on its own (the converted encoder, demo bundles, the
duplicate index) goes under `$ADUAN_HOME` (default `~/.cache/aduan`), never next
to input data: the shared data folder is read-only in CI.
"""

from __future__ import annotations

import os
from pathlib import Path


def aduan_home() -> Path:
    """The root folder for aduan's caches, created on first use."""
    home = Path(os.environ.get("ADUAN_HOME") or Path.home() / ".cache" / "aduan").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home
