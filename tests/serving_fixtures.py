"""Fixtures for the API tests: tiny bundles saved to disk, an app factory, a client.

The bundles use the tiny encoder of tests/fixtures.py (random, 32-dimensional),
with heads marked trained so abstention is decided by thresholds set here, and
a duplicate scorer calibrated by hand on word overlap, so duplicate tests are
deterministic without real embeddings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from model.bundle import Bundle, DedupSpec, EncoderSpec
from model.dedup import FEATURES
from serving.app import create_app
from serving.settings import Settings
from tests.fixtures import AGENCIES, TOPICS

# Invented complaints (no real person); the PII ones use the fake patterns of data/samples.
TEXT_LAMPU = "lampu jalan mati di kelurahan ketintang sudah seminggu mohon segera"
TEXT_JALAN = "jalan rusak parah dekat sekolah tolong pak segera diperbaiki"
TEXT_SAMPAH = "sampah menumpuk di pinggir kali belum diangkut warga resah"
FAKE_NIK = "3578101234567890"
FAKE_PHONE = "0812-3456-7890"
FAKE_EMAIL = "budi.santoso@example.com"
TEXT_PII = f"saya budi nik {FAKE_NIK} hp {FAKE_PHONE} email {FAKE_EMAIL} lampu jalan mati"


MAX_TOKENS = 60


def dedup_spec() -> DedupSpec:
    """A calibrated scorer: duplicates share most content words, filed close in time."""
    weights = dict.fromkeys(FEATURES, 0.0)
    weights.update(exact=8.0, word_overlap=10.0, log_days=-0.5)
    return DedupSpec(
        calibrated=True,
        features=list(FEATURES),
        mean=[0.0] * len(FEATURES),
        scale=[1.0] * len(FEATURES),
        weights=[weights[f] for f in FEATURES],
        bias=-6.0,
        threshold=0.5,
        metrics={"note": "hand-set for tests"},
    )


def build_bundle(
    encoder_dir: Path,
    out: Path,
    *,
    heads: dict[str, list[str]] | None = None,
    seed: int = 0,
    name: str = "tiny",
    trained: bool = True,
    threshold: float | None = None,
    fine_tuned: bool = False,
) -> Path:
    """Save a tiny bundle: heads trained (or not), a fixed abstain threshold, calibrated dedup.

    `fine_tuned=True` gives it its own duplicate embedding id (an index built with
    another bundle must then be re-embedded).
    """
    bundle = Bundle.new(
        encoder_dir,
        heads or {"agency": AGENCIES, "topic": TOPICS},
        seed=seed,
        name=name,
        encoder_spec=EncoderSpec(max_length=MAX_TOKENS),  # the tiny encoder has 64 positions
    )
    for spec in bundle.head_specs.values():
        spec.trained = trained
        spec.abstain_threshold = threshold
    bundle.dedup = dedup_spec()
    bundle.encoder_spec = replace(bundle.encoder_spec, fine_tuned=fine_tuned)
    bundle.training = {"data": {"sha256": "0" * 64, "rows": 0, "source": "tests"}}
    bundle.metrics = {"dev": {"agency": {"accuracy": 0.5}, "topic": {"accuracy": 0.5}}}
    bundle.save(out, overwrite=True)
    return out


@pytest.fixture(scope="session")
def bundle_dir(tiny_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trained heads that never abstain, calibrated dedup."""
    return build_bundle(tiny_encoder_dir, tmp_path_factory.mktemp("bundles") / "confident")


@pytest.fixture(scope="session")
def other_bundle_dir(tiny_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another bundle over the same encoder (same duplicate embedding), heads always abstain."""
    return build_bundle(
        tiny_encoder_dir,
        tmp_path_factory.mktemp("bundles") / "other",
        seed=1,
        name="other",
        threshold=1.01,
    )


AppFactory = Callable[..., FastAPI]


@pytest.fixture
def make_app(tmp_path: Path, bundle_dir: Path) -> AppFactory:
    """create_app with settings for this test (tmp index and feedback folders)."""

    def factory(**overrides: Any) -> FastAPI:
        values: dict[str, Any] = {
            "model": bundle_dir,
            "index": tmp_path / "index",
            "feedback_dir": tmp_path / "feedback",
            "torch_threads": 1,
            "batch_wait_ms": 1.0,
            # exact comparisons with predict(); tests of the fast paths say so
            "runtime": "torch",
            "bf16": False,
        }
        values.update(overrides)
        return create_app(Settings(**values), wait_for_load=True)

    return factory


@pytest.fixture
def client(make_app: AppFactory) -> Iterator[TestClient]:
    with TestClient(make_app(), raise_server_exceptions=False) as c:
        yield c
