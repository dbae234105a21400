"""The demo bundle: heads trained on the project's own made-up sample complaints.

`make serve` builds it when no bundle exists, so a fresh clone has a working
model without the shared data. Its agency head is routed (`model.routing`)
over the sample agency directory. Its duplicate scorer is calibrated on the pairs
the sample data's `duplicate_of` column implies. It is a demo: a few hundred
invented complaints say nothing about accuracy on real ones.

It replaces only an earlier demo bundle (an older or damaged one included),
never another bundle or a folder that is no bundle (`check_demo_output`).
"""

from __future__ import annotations

import json
from pathlib import Path

import data
from data.load import load_complaints
from model.bundle import BUNDLE_FILE, Bundle, BundleError, check_output
from model.dedup import DuplicateFinder
from training import routing
from training.dedup import calibrate_dedup, pairs_from_duplicate_of
from training.heads import HeadTrainConfig, train_heads
from training.lexical import fit_lexical
from training.refit import refit_with_dev
from training.splits import split_data

SAMPLES = Path(data.__file__).resolve().parent / "samples"
SAMPLE_DATA = SAMPLES / "complaints.jsonl"
SAMPLE_DIRECTORY = SAMPLES / "directory.csv"  # the sample data's offices
SAMPLE_REGIONS = SAMPLES / "regions.csv"  # the official regions the sample data names
DEMO_NAME = "demo"  # the demo bundle's name in its bundle.json


def build_demo_bundle(out: str | Path, *, seed: int = 0) -> Bundle:
    """Train agency-type and topic heads on the sample complaints and save the bundle to `out`.

    The agency head learns office types and is routed over the sample directory
    (four cities, national scope), so the demo answers with concrete offices.
    `out` is checked first (`check_demo_output`), before any training.
    """
    out = check_demo_output(out)
    config = HeadTrainConfig(labels=["agency", "topic"], split="random", seed=seed)
    complaints = load_complaints(SAMPLE_DATA, label_columns=config.labels)
    router = routing.build_router(SAMPLE_DIRECTORY, [SAMPLE_REGIONS])
    offices, office_dev = split_data(complaints, config)
    train = routing.label_types(offices, "agency", router.directory)
    dev = routing.label_types(office_dev, "agency", router.directory)
    bundle = train_heads(train, dev, config, name=DEMO_NAME)
    fit_lexical(bundle, train, dev, target_precision=config.target_precision)
    routing.attach(bundle, "agency", router, offices, office_dev)
    refit_with_dev(bundle, train, dev, office_dev=office_dev)
    calibrate_demo_dedup(bundle)
    bundle.save(out, overwrite=True)  # still only over a bundle (`check_output`)
    return bundle


def check_demo_output(out: str | Path) -> Path:
    """Check that the demo bundle may be built at `out`, and return it as a Path.

    `out` may be new, an empty folder or an earlier demo bundle, an older or
    damaged one included (one whose bundle.json is unreadable counts); anything
    else, another bundle above all, is refused with a `BundleError` and never
    replaced. Cheap: run it before building.
    """
    target = check_output(out, overwrite=True)
    try:
        meta = json.loads((target / BUNDLE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # nothing there yet, or a damaged bundle: rebuilt
        return target
    name = meta.get("name", "aduan") if isinstance(meta, dict) else None
    if name != DEMO_NAME:
        raise BundleError(
            f"{target} holds the aduan bundle {name!r}, not the demo bundle; it will not be "
            f"replaced (remove it, or build the demo elsewhere)"
        )
    return target


def calibrate_demo_dedup(bundle: Bundle, *, seed: int = 0) -> None:
    """Calibrate the duplicate scorer on the sample data's `duplicate_of` pairs."""
    samples = load_complaints(SAMPLE_DATA, label_columns=["duplicate_of"])
    vectors = DuplicateFinder(bundle).embed(samples.texts())
    pairs = pairs_from_duplicate_of(samples, vectors, window_days=bundle.dedup.window_days)
    calibrate_dedup(bundle, pairs, documents=samples.texts(), seed=seed)
    bundle.dedup.metrics["source"] = f"{SAMPLE_DATA.name} (duplicate_of)"
