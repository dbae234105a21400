"""Head training on a frozen (tiny) encoder: it learns, calibrates and records what it did."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data.load import load_complaints
from data.schema import DataError
from model.bundle import Bundle
from model.predict import predict
from tests.tiny import write_keyword_complaints as write_rows
from training.heads import HeadTrainConfig, train_heads
from training.splits import split_data


def test_training_heads_learn_and_calibrate(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    config = HeadTrainConfig(labels=["topic", "agency"], dev_fraction=0.25, steps=200)
    data = load_complaints(write_rows(tmp_path / "train.jsonl"), label_columns=config.labels)
    train, dev = split_data(data, config)
    bundle = train_heads(train, dev, config, encoder_dir=tiny_encoder_dir)
    topic = bundle.head_specs["topic"]
    assert topic.trained and bundle.untrained_heads == []
    assert topic.rare_labels == {"Parkir": 1}, "labels below min_count are set aside, recorded"
    assert "Parkir" not in topic.labels
    assert topic.metrics["accuracy"] >= 0.75 > 0.25, "well above the majority class (1/4)"
    assert topic.temperature > 0 and topic.abstain_threshold is not None
    assert bundle.training["data"]["train"]["rows"] == len(train)
    assert bundle.training["config"]["steps"] == 200
    # The saved bundle predicts what the trained one did.
    bundle.save(tmp_path / "b")
    loaded = Bundle.load(tmp_path / "b")
    texts = ["lampu mati tolong pak", "ktp kk sudah lama"]
    assert [p.to_dict() for p in predict(loaded, texts)] == [
        p.to_dict() for p in predict(bundle, texts)
    ]


def test_training_heads_are_reproducible(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    config = HeadTrainConfig(labels=["topic"], dev_fraction=0.25, steps=60, seed=3)
    data = load_complaints(write_rows(tmp_path / "t.jsonl"), label_columns=config.labels)
    a = train_heads(*split_data(data, config), config, encoder_dir=tiny_encoder_dir)
    b = train_heads(*split_data(data, config), config, encoder_dir=tiny_encoder_dir)
    assert a.metrics == b.metrics
    assert a.head_specs["topic"].temperature == b.head_specs["topic"].temperature


def test_training_heads_need_two_labels(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text(
        "".join(json.dumps({"id": str(i), "text": "x y", "topic": "A"}) + "\n" for i in range(9))
    )
    config = HeadTrainConfig(labels=["topic"])
    data = load_complaints(path, label_columns=["topic"])
    with pytest.raises(DataError, match="needs two or more"):  # a user error (exit 2)
        train_heads(*split_data(data, config), config, encoder_dir=tiny_encoder_dir)
