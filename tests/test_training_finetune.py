"""Multi-task fine-tuning on the tiny encoder: learns, keeps the best epoch, is reproducible."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from data.load import load_complaints
from model.bundle import Bundle
from tests.tiny import write_keyword_complaints
from training.finetune import TrainConfig, length_bucketed_batches, train
from training.splits import split_data


def _config(**kw: object) -> TrainConfig:
    base: dict[str, object] = dict(
        labels=["topic", "agency"], split="random", dev_fraction=0.25, epochs=4,
        batch_size=8, lr=5e-4, head_lr=2e-2, bf16=False,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _data(tmp_path: Path, config: TrainConfig):
    data = load_complaints(
        write_keyword_complaints(tmp_path / "d.jsonl"), label_columns=config.labels
    )
    return split_data(data, config)  # type: ignore[arg-type]


def test_finetune_learns_and_records_everything(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    config = _config()
    train_set, dev_set = _data(tmp_path, config)
    epochs_seen: list[int] = []
    bundle = train(
        train_set, dev_set, config, encoder_dir=tiny_encoder_dir, progress=False,
        on_epoch=lambda e, acc: epochs_seen.append(e),
    )  # fmt: skip
    assert epochs_seen == [1, 2, 3, 4]
    topic = bundle.head_specs["topic"]
    assert topic.trained and topic.metrics["accuracy"] >= 0.75
    assert topic.rare_labels == {"Parkir": 1}
    assert bundle.encoder_spec.fine_tuned
    history = bundle.training["history"]
    best = bundle.training["best_epoch"]
    scores = [np.mean(list(h["dev_accuracy"].values())) for h in history]
    assert scores[best - 1] == max(scores), "the best epoch's weights are the ones kept"
    assert bundle.training["config"]["epochs"] == 4
    assert 32 <= bundle.encoder_spec.max_length <= 256, "max length chosen from the data"
    # predict (the serving path, heads with the training scale folded in) agrees with
    # the dev metrics computed during training
    from model.predict import predict

    preds = predict(bundle, dev_set.texts())
    hits = [
        p.heads["topic"].top[0].label == g
        for p, g in zip(preds, dev_set.labels("topic"), strict=True)
    ]
    assert np.mean(hits) == pytest.approx(topic.metrics["accuracy"])


def test_finetune_saves_a_loadable_bundle_that_predicts_the_same(
    tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    from model.predict import predict

    config = _config(epochs=1)
    bundle = train(*_data(tmp_path, config), config, encoder_dir=tiny_encoder_dir, progress=False)
    emb_before = bundle.encoder.bert.get_input_embeddings().weight.detach().clone()
    bundle.save(tmp_path / "b")
    loaded = Bundle.load(tmp_path / "b")
    texts = ["lampu mati tolong pak", "banjir air di kelurahan"]
    a = [p.to_dict() for p in predict(bundle, texts)]
    b = [p.to_dict() for p in predict(loaded, texts)]
    assert a == b
    assert torch.equal(loaded.encoder.bert.get_input_embeddings().weight, emb_before)
    # and training can continue from it
    again = train(*_data(tmp_path, config), config, start_from=tmp_path / "b", progress=False)
    assert again.encoder_spec.source.startswith("fine-tuned from bundle ")


def test_finetune_freezes_the_token_embeddings(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    config = _config(epochs=1, freeze_layers=0)
    base = Bundle.new(tiny_encoder_dir, {"x": ["a", "b"]})
    before = base.encoder.bert.get_input_embeddings().weight.detach().clone()
    bundle = train(*_data(tmp_path, config), config, encoder_dir=tiny_encoder_dir, progress=False)
    after = bundle.encoder.bert.get_input_embeddings().weight
    assert torch.equal(before, after)
    layer0 = bundle.encoder.bert.encoder.layer[0].attention.self.query.weight
    assert not torch.equal(layer0, base.encoder.bert.encoder.layer[0].attention.self.query.weight)


def test_finetune_can_freeze_the_lowest_layers(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    config = _config(epochs=1, freeze_layers=1)
    base = Bundle.new(tiny_encoder_dir, {"x": ["a", "b"]}).encoder.bert
    bundle = train(*_data(tmp_path, config), config, encoder_dir=tiny_encoder_dir, progress=False)
    bert = bundle.encoder.bert

    def same(name: str) -> bool:
        return torch.equal(bert.get_parameter(name), base.get_parameter(name))

    assert same("embeddings.position_embeddings.weight")
    assert same("encoder.layer.0.attention.self.query.weight")
    assert not same("encoder.layer.1.attention.self.query.weight")
    assert bundle.training["frozen_layers"] == 1
    # The tiny encoder has 2 layers: asking for more still leaves the top one to train.
    big = _config(epochs=1, freeze_layers=99)
    bundle = train(*_data(tmp_path, big), big, encoder_dir=tiny_encoder_dir, progress=False)
    assert bundle.training["frozen_layers"] == 1
    with pytest.raises(ValueError, match="freeze_layers must be 0 or more"):
        train(*_data(tmp_path, _config(freeze_layers=-1)), _config(freeze_layers=-1),
              encoder_dir=tiny_encoder_dir, progress=False)  # fmt: skip


def test_finetune_is_reproducible(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    config = _config(epochs=2, seed=7)
    a = train(*_data(tmp_path, config), config, encoder_dir=tiny_encoder_dir, progress=False)
    b = train(*_data(tmp_path, config), config, encoder_dir=tiny_encoder_dir, progress=False)
    assert a.metrics == b.metrics


def test_finetune_max_steps_stops_early(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    config = _config(epochs=10, max_steps=3)
    bundle = train(*_data(tmp_path, config), config, encoder_dir=tiny_encoder_dir, progress=False)
    assert bundle.training["history"][-1]["step"] == 3


def test_finetune_batches_cover_every_row_once_and_group_lengths() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 200, 1000).tolist()
    batches = length_bucketed_batches(lengths, 16, np.random.default_rng(1))
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 30, "batches hold texts of similar length"


def test_finetune_config_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": 2, "lr": 3e-5}))
    assert TrainConfig.from_file(path).epochs == 2
    path.write_text(json.dumps({"epochz": 2}))
    with pytest.raises(ValueError, match="unknown config key.*epochz"):
        TrainConfig.from_file(path)
    for folds in (1, -2, 2.5, True, "3"):
        path.write_text(json.dumps({"refit_mix_folds": folds}))
        with pytest.raises(ValueError, match=r"c\.json: refit_mix_folds must be 0 \(off\)"):
            TrainConfig.from_file(path)
    path.write_text(json.dumps({"refit_mix_folds": 3}))
    assert TrainConfig.from_file(path).refit_mix_folds == 3
    # wrong types and values are named, before any training
    for bad, says in [
        ({"epochs": "3"}, "epochs must be a whole number >= 1, not '3'"),
        ({"epochs": 0}, "epochs must be a whole number >= 1"),
        ({"batch_size": -3}, "batch_size must be a whole number >= 1"),
        ({"lr": -1}, "lr must be a number > 0"),
        ({"labels": "agency"}, "labels must be a non-empty list"),
        ({"labels": []}, "labels must be a non-empty list"),
        ({"lexical_c": -1}, "lexical_c must be a number > 0"),
        ({"lexical_word_features": "many"}, "lexical_word_features must be a whole number"),
        ({"max_length": 0}, "max_length must be a whole number from 8 to 512, or null"),
        ({"bf16": "yes"}, "bf16 must be true, false or null"),
    ]:
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=re.escape(says)):
            TrainConfig.from_file(path)
    path.write_text(json.dumps({"max_length": None, "bf16": None, "lr": 1}))
    assert TrainConfig.from_file(path).lr == 1
    assert TrainConfig().problem() is None
