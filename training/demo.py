"""The demo bundle: heads trained on the project's own made-up sample complaints.

`make serve` builds it when no bundle exists, so a fresh clone has a working
model without the shared data. Its duplicate scorer is calibrated on the pairs
the sample data's `duplicate_of` column implies. It is a demo: a few hundred
invented complaints say nothing about accuracy on real ones.
"""

from __future__ import annotations

from pathlib import Path

import data
from data.load import load_complaints
from model.bundle import Bundle
from model.dedup import DuplicateFinder
from training.dedup import calibrate_dedup, pairs_from_duplicate_of
from training.heads import HeadTrainConfig, train_heads
from training.splits import split_data

SAMPLE_DATA = Path(data.__file__).resolve().parent / "samples" / "complaints.jsonl"


def build_demo_bundle(out: str | Path, *, seed: int = 0) -> Bundle:
    """Train agency and topic heads on the sample complaints and save the bundle to `out`."""
    config = HeadTrainConfig(labels=["agency", "topic"], split="random", seed=seed)
    complaints = load_complaints(SAMPLE_DATA, label_columns=config.labels)
    train, dev = split_data(complaints, config)
    bundle = train_heads(train, dev, config, name="demo")
    calibrate_demo_dedup(bundle)
    bundle.save(out, overwrite=True)
    return bundle


def calibrate_demo_dedup(bundle: Bundle, *, seed: int = 0) -> None:
    """Calibrate the duplicate scorer on the sample data's `duplicate_of` pairs."""
    samples = load_complaints(SAMPLE_DATA, label_columns=["duplicate_of"])
    vectors = DuplicateFinder(bundle).embed(samples.texts())
    pairs = pairs_from_duplicate_of(samples, vectors, window_days=bundle.dedup.window_days)
    calibrate_dedup(bundle, pairs, seed=seed)
    bundle.dedup.metrics["source"] = f"{SAMPLE_DATA.name} (duplicate_of)"
