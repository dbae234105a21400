"""Shared pytest helpers for aduan's tests."""

from __future__ import annotations

import pytest

from data.registry import SHARED_DATA_ENV, resolve_dataset, shared_data_available, shared_data_dir


def skip_without_shared(name: str | None = None) -> None:
    """Skip the calling test, saying why, when a shared data set (or the folder) is absent.

    Call it at the top of a test marked `@pytest.mark.shared_data`. The shared
    data lives outside the repo (`../shared/data` or `$ADUAN_SHARED_DATA`), so
    a fresh clone still passes its tests, while CI, which has the data, runs
    these too. An unknown name fails instead of skipping, so a typo is noticed.
    """
    if shared_data_available(name):
        return
    what = f"shared data set '{name}'" if name else "the shared data folder"
    where = (
        shared_data_dir() / next(iter(resolve_dataset(name).splits.values()))
        if name
        else shared_data_dir()
    )
    pytest.skip(f"{what} not found at {where}; set ${SHARED_DATA_ENV} to the shared data folder")


# Model fixtures (a tiny encoder and bundle built in code) live in tests/fixtures.py.
from tests.fixtures import tiny_bundle, tiny_encoder_dir  # noqa: E402, F401
