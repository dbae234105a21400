"""`aduan evaluate`: metrics through the predict path, the TF-IDF peer, report and plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import model.encoder
from cli.main import run
from tests.tiny import write_keyword_complaints
from training.baseline import TfidfBaseline
from training.evaluate import Scored, coverage_at_precision, precision_at_coverage, score_head


def test_evaluate_coverage_metrics_on_known_case() -> None:
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([True, True, False, True, False])
    assert precision_at_coverage(conf, correct, 0.4) == 1.0
    assert precision_at_coverage(conf, correct, 0.8) == 0.75
    assert coverage_at_precision(conf, correct, 0.95) == 0.4
    assert coverage_at_precision(conf, correct, 0.7) == 0.8
    assert coverage_at_precision(conf, ~correct.astype(bool) & False, 0.5) == 0.0


def test_evaluate_score_head_counts_unknown_labels_as_errors() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    scored = Scored(["A", "B"], probs, abstain=np.array([False, False, True]))
    # C: a label that is pasted complaint text with a phone number (as in LAPOR! 2017)
    c = "C, hubungi 0812-3456-7890"
    m = score_head(scored, ["A", "B", c], {"A": 25, "B": 3}, ["t1", "t2", "t3 0812-3456-7890"],
                   ["1", "2", "3"])  # fmt: skip
    assert m["accuracy"] == pytest.approx(2 / 3)
    # A: 1 right, 1 wrongly predicted for C -> precision 1/2, recall 1, F1 2/3
    assert m["macro_f1_frequent"] == pytest.approx(2 / 3) and m["n_frequent_labels"] == 1
    assert m["abstain_rate"] == pytest.approx(1 / 3) and m["precision_when_answering"] == 1.0
    assert {r["label"] for r in m["per_label"]} == {"A", "B", "C, hubungi [TELEPON]"}
    assert m["misclassified"][0]["id"] == "3"
    assert "0812" not in m["misclassified"][0]["snippet"], "snippets are redacted"
    assert "0812" not in m["misclassified"][0]["gold"], "so are labels"


@pytest.fixture
def keyword_data(tiny_encoder_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keyword complaints on disk, with the CLI's encoder swapped for the tiny one."""
    monkeypatch.setattr(model.encoder, "ensure_encoder", lambda: tiny_encoder_dir)
    return write_keyword_complaints(tmp_path / "d.jsonl")


def test_evaluate_cli_end_to_end_with_baseline(
    keyword_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = keyword_data
    bundle = tmp_path / "b"
    train = ["train", "--data", str(data), "--out", str(bundle), "--label", "topic",
             "--label", "agency", "--split", "random", "--dev-fraction", "0.25",
             "--epochs", "2", "--batch-size", "8"]  # fmt: skip
    assert run(train) == 0
    capsys.readouterr()
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", str(bundle), "--data", str(data), "--out", str(out)]
    assert run([*argv, "--baseline", "tfidf"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["heads"]["topic"]) == {"aduan", "baseline"}
    metrics = json.loads((out / "metrics.json").read_text())
    topic = metrics["heads"]["topic"]
    for system in ("aduan", "baseline"):
        for key in ("accuracy", "top3_accuracy", "macro_f1", "weighted_f1", "ece",
                    "precision_at_80_coverage", "coverage_at_95_precision"):  # fmt: skip
            assert isinstance(topic[system][key], float), (system, key)
        assert topic[system]["per_label"]
    assert topic["baseline"]["accuracy"] > 0.9, "the peer learns the keywords"
    assert "abstain_rate" in topic["aduan"]
    for name in ("topic-reliability.png", "topic-coverage.png", "topic-confusion.png", "report.md"):
        assert (out / name).stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "| accuracy |" in report and "tfidf+linearsvc" in report
    # the bundle learned from its dev rows at the end, and the peer did likewise
    assert "final fit took in its" in report and "refitted with the dev rows" in report
    assert metrics["bundle"]["refit_with_dev"]["dev_rows"] > 0
    assert metrics["bundle"]["runtime"] == "torch"
    # the serving runtime scores nearly the same (int8 weights) and says which it was
    int8_out = tmp_path / "eval-int8"
    monkeypatch.setenv("ADUAN_HOME", str(tmp_path / "home"))
    assert run([*argv[:-1], str(int8_out), "--runtime", "onnx-int8"]) == 0
    int8 = json.loads((int8_out / "metrics.json").read_text())
    assert int8["bundle"]["runtime"] == "onnx-int8"
    assert abs(int8["heads"]["topic"]["aduan"]["accuracy"] - topic["aduan"]["accuracy"]) <= 0.1


def test_peer_refit_with_dev_keeps_its_dev_temperature() -> None:
    """A bundle trained with `refit_with_dev` learned from the dev rows at the end; its
    peer does the same: temperatures fitted on dev by the train-only fit, then the
    models fitted again on train + dev (which teaches them a label only dev has)."""
    train = ["lampu jalan mati", "lampu taman padam", "sampah menumpuk", "sampah dibakar"] * 3
    labels = {"topic": ["lampu", "lampu", "sampah", "sampah"] * 3}
    dev = ["lampu mati lagi", "sampah numpuk", "banjir di gang", "banjir lagi"]
    dev_labels = {"topic": ["lampu", "sampah", "banjir", "banjir"]}
    plain = TfidfBaseline().fit(train, labels, dev, dev_labels)
    refit = TfidfBaseline().fit(train, labels, dev, dev_labels, refit_with_dev=True)
    assert refit.temperatures == plain.temperatures
    assert plain.labels("topic") == ["lampu", "sampah"]
    assert refit.labels("topic") == ["banjir", "lampu", "sampah"]
    probs = refit.predict_proba(["banjir besar di gang"])["topic"]
    assert refit.labels("topic")[int(probs.argmax())] == "banjir"


def test_train_spends_dev_on_the_final_fit_unless_the_config_says_not(
    keyword_data: Path, tmp_path: Path
) -> None:
    from model.bundle import Bundle

    no_refit = tmp_path / "config.json"
    no_refit.write_text('{"refit_with_dev": false}', encoding="utf-8")
    for name, extra in (("plain", ["--config", str(no_refit)]), ("refit", [])):
        assert run(["train", "--data", str(keyword_data), "--out", str(tmp_path / name),
                    "--label", "topic", "--split", "random", "--dev-fraction", "0.25",
                    "--frozen-encoder", *extra]) == 0  # fmt: skip
    plain, refit = Bundle.load(tmp_path / "plain"), Bundle.load(tmp_path / "refit")
    assert "refit_with_dev" not in plain.training
    rows = refit.training["data"]["train"]["rows"] + refit.training["data"]["dev"]["rows"]
    assert refit.training["refit_with_dev"]["lexical"]["rows"] == rows
    # what dev chose is the same either way; only the lexical model learned more rows
    assert plain.head_specs["topic"] == refit.head_specs["topic"]
    assert plain.lexical is not None and refit.lexical is not None
    assert not np.array_equal(plain.lexical.heads["topic"].coef, refit.lexical.heads["topic"].coef)


def test_evaluate_baseline_refuses_changed_training_data(
    keyword_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = keyword_data
    bundle = tmp_path / "b"
    assert run(["train", "--data", str(data), "--out", str(bundle), "--label", "topic",
                "--split", "random", "--max-steps", "1", "--frozen-encoder"]) == 0  # fmt: skip
    write_keyword_complaints(data, n_per_topic=10)  # the file changes after training
    argv = ["evaluate", "--model", str(bundle), "--data", str(data), "--out", str(tmp_path / "e")]
    assert run([*argv, "--baseline", "tfidf"]) == 2
    assert "fingerprint mismatch" in capsys.readouterr().err
