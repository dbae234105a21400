"""The heads' lexical companion: fitted on words, mixed with each head by dev likelihood."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from data.load import load_complaints
from model.bundle import Bundle, BundleError
from model.lexical import LexicalError, LexicalModel, mix
from model.predict import predict, predict_proba, preprocess
from tests.tiny import write_keyword_complaints as write_rows
from training.embedding import embed_rows
from training.heads import HeadTrainConfig, train_heads
from training.lexical import (
    _class_weights,
    fit_lexical,
    fit_mix,
    fit_softmax_regression,
    refit_lexical,
)
from training.splits import split_data


@pytest.fixture
def weak_bundle(tiny_encoder_dir: Path, tmp_path: Path) -> tuple[Bundle, object, object]:
    """Trained heads whose topic head then forgets everything (zero weights: uniform
    probabilities), while the words tell the topic exactly."""
    config = HeadTrainConfig(labels=["topic", "agency"], dev_fraction=0.25, steps=50)
    data = load_complaints(write_rows(tmp_path / "rows.jsonl"), label_columns=config.labels)
    train, dev = split_data(data, config)
    bundle = train_heads(train, dev, config, encoder_dir=tiny_encoder_dir)
    layer = bundle.heads.layers["topic"]
    layer.weight.data.zero_()
    layer.bias.data.zero_()
    return bundle, train, dev


def test_lexical_model_rescues_weak_heads_and_survives_a_round_trip(
    weak_bundle: tuple[Bundle, object, object], tmp_path: Path
) -> None:
    bundle, train, dev = weak_bundle
    texts = ["lampu mati tolong pak", "ktp kk sudah lama", "jalan rusak mohon segera"]
    alone = predict(bundle, texts)
    report = fit_lexical(bundle, train, dev)  # type: ignore[arg-type]
    assert bundle.lexical is not None and set(report["heads"]) == {"topic", "agency"}
    topic = report["heads"]["topic"]
    assert topic["dev_head_only"]["accuracy"] < 0.9 <= topic["dev"]["accuracy"]
    a, b = bundle.head_specs["topic"].lexical_mix or (0, 0)
    assert b > 0, "the words carry the topic: the mix leans on them"
    assert bundle.metrics["dev"]["topic"] == topic["dev"] == bundle.head_specs["topic"].metrics
    assert bundle.training["lexical"]["features"] == bundle.lexical.n_features > 0
    mixed = predict(bundle, texts)
    assert [p.heads["topic"].top[0].label for p in mixed] == [
        "Penerangan Jalan Umum", "Administrasi Kependudukan", "Jalan Rusak"
    ]  # fmt: skip
    assert [p.to_dict() for p in mixed] != [p.to_dict() for p in alone]
    # saved and loaded: the same answers (weights are stored as float16)
    bundle.save(tmp_path / "b")
    meta = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert {"lexical/vocabulary.json", "lexical/weights.safetensors"} <= set(meta["files"])
    loaded = Bundle.load(tmp_path / "b", verify_hashes=True)
    assert loaded.lexical is not None
    for x, y in zip(predict(loaded, texts), mixed, strict=True):
        assert x.heads["topic"].top[0].label == y.heads["topic"].top[0].label
        assert x.heads["topic"].top[0].score == pytest.approx(y.heads["topic"].top[0].score, 1e-3)
    # a head without a mix is answered by the head alone
    loaded.head_specs["topic"].lexical_mix = None
    _, probs = predict_proba(loaded, texts)
    bundle.lexical = None
    _, plain = predict_proba(bundle, texts)
    np.testing.assert_allclose(probs["topic"], plain["topic"], atol=1e-6)


def test_refit_on_train_and_dev_keeps_what_dev_chose(
    weak_bundle: tuple[Bundle, object, object],
) -> None:
    bundle, train, dev = weak_bundle
    assert refit_lexical(bundle, train, dev) == {}, "no lexical model: nothing to refit"  # type: ignore[arg-type]
    fit_lexical(bundle, train, dev)  # type: ignore[arg-type]
    before = bundle.lexical
    chosen = {h: copy.deepcopy(s) for h, s in bundle.head_specs.items()}
    both = train.concat(dev)  # type: ignore[attr-defined]
    report = refit_lexical(bundle, train, dev)  # type: ignore[arg-type]
    assert report["rows"] == len(both) and bundle.training["lexical"]["refit"] == report
    assert "mix_folds" not in report
    assert bundle.lexical is not None and bundle.lexical is not before
    assert set(bundle.lexical.heads) == set(before.heads)  # type: ignore[union-attr]
    # the mixes, thresholds and dev metrics are those dev chose
    for h, spec in bundle.head_specs.items():
        assert spec == chosen[h]
    # the regressions learned from more rows: other weights, the same answers here
    topic = bundle.lexical.heads["topic"].coef
    assert not np.array_equal(topic, before.heads["topic"].coef)  # type: ignore[union-attr]
    texts = ["lampu mati tolong pak", "ktp kk sudah lama", "jalan rusak mohon segera"]
    assert [p.heads["topic"].top[0].label for p in predict(bundle, texts)] == [
        "Penerangan Jalan Umum", "Administrasi Kependudukan", "Jalan Rusak"
    ]  # fmt: skip


def test_a_damaged_lexical_model_is_a_clear_bundle_error(
    weak_bundle: tuple[Bundle, object, object], tmp_path: Path
) -> None:
    bundle, train, dev = weak_bundle
    fit_lexical(bundle, train, dev)  # type: ignore[arg-type]
    bundle.save(tmp_path / "b")
    vocab = tmp_path / "b" / "lexical" / "vocabulary.json"
    vocab.write_text(vocab.read_text().replace("aduan-lexical", "aduan-lexicaX"))  # same size
    with pytest.raises(BundleError, match="not an aduan lexical model"):
        Bundle.load(tmp_path / "b")
    assert bundle.lexical is not None
    bundle.lexical.save(tmp_path / "lex")
    with pytest.raises(LexicalError, match="does not match"):
        LexicalModel.load(tmp_path / "lex", {"topic": 99, "agency": 3})


def test_fit_mix_weighs_the_informative_source() -> None:
    rng = np.random.default_rng(0)
    n, k = 400, 4
    gold = rng.integers(0, k, n)
    informative = np.full((n, k), np.log(0.1 / (k - 1)))
    informative[np.arange(n), gold] = np.log(0.9)
    noise = np.log(rng.dirichlet(np.ones(k), n))
    a, b = fit_mix(noise, informative, gold)
    assert b > 0.5 and a < 0.2
    a, b = fit_mix(informative, noise, gold)
    assert a > 0.5 and b < 0.2
    p = mix(informative, noise, [1.0, 0.0])
    np.testing.assert_allclose(p, np.exp(informative) / np.exp(informative).sum(1, keepdims=True))


def test_softmax_regression_matches_sklearn_and_masks_unseen_labels() -> None:
    """The torch L-BFGS fit minimises sklearn's LogisticRegression objective: same
    probabilities, with rare labels weighted; labels without rows are ruled out."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (3, 6))
    y = np.repeat([0, 2, 3], [40, 25, 8])  # label 1 of the head has no training rows
    x = centres[np.searchsorted([0, 2, 3], y)] + rng.normal(0, 1.2, (len(y), 6))
    weights = _class_weights(y, 0.5)
    assert weights is not None
    lr = LogisticRegression(C=2.0, tol=1e-8, max_iter=1000)
    lr.fit(x, y, sample_weight=weights[y])
    head = fit_softmax_regression(
        sp.csr_matrix(x), y, 4, c=2.0, sample_weight=weights[y], tol=1e-7, history=10
    )
    assert head.seen.tolist() == [True, False, True, True]
    model = LexicalModel.__new__(LexicalModel)
    model.heads = {"h": head}
    log_q = model.log_proba("h", x)  # type: ignore[arg-type]
    np.testing.assert_allclose(np.exp(log_q[:, [0, 2, 3]]), lr.predict_proba(x), atol=2e-3)
    assert (log_q[:, 1] < -20).all(), "a label without training rows is all but ruled out"


def test_two_label_heads_keep_both_labels() -> None:
    x = sp.csr_matrix(np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]))
    head = fit_softmax_regression(x, np.array([0, 0, 2, 2]), 3)
    p = head.coef.T[[0, 2]] @ x.toarray().T + head.intercept[[0, 2], None]
    assert head.seen.tolist() == [True, False, True]
    assert (np.argmax(p, axis=0) == [0, 0, 1, 1]).all()


def test_rare_labels_weigh_more_as_in_the_heads_loss() -> None:
    y = np.array([0, 0, 0, 0, 2])
    weights = _class_weights(y, 0.5)
    assert weights is not None and weights.tolist() == [1.0, 0.0, 2.0]
    assert _class_weights(y, 0.0) is None


def test_features_equal_the_vectorisers_transform(
    weak_bundle: tuple[Bundle, object, object],
) -> None:
    bundle, train, dev = weak_bundle
    fit_lexical(bundle, train, dev)  # type: ignore[arg-type]
    lexical = bundle.lexical
    assert lexical is not None
    texts = ["lampu mati tolong pak lampu", "ktp kk", "", "zzz qqq", "jalan rusak, banjir air!",
             "Lampu  MATI\tdi Jl. a b 12 — café lampu lampu"]  # fmt: skip
    ours = lexical.features(texts)
    theirs = sp.hstack([lexical.word.transform(texts), lexical.char.transform(texts)], "csr")
    assert ours.shape == theirs.shape == (6, lexical.n_features)
    np.testing.assert_allclose(ours.toarray(), theirs.toarray(), atol=1e-6)
    assert ours[2].nnz == 0 and lexical.features([]).shape == (0, lexical.n_features)


def test_given_dev_embeddings_are_used_as_they_are(
    weak_bundle: tuple[Bundle, object, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle, train, dev = weak_bundle
    fresh = copy.deepcopy(bundle)
    expected = fit_lexical(fresh, train, dev)  # type: ignore[arg-type]
    embeddings = embed_rows(bundle, dev.texts())  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="one row per dev row"):
        fit_lexical(bundle, train, dev, dev_embeddings=embeddings[:-1])  # type: ignore[arg-type]

    def no_encoder(*args: object, **kwargs: object) -> None:
        raise AssertionError("the dev rows were embedded again")

    monkeypatch.setattr(bundle.encoder, "embed", no_encoder)
    report = fit_lexical(bundle, train, dev, dev_embeddings=embeddings)  # type: ignore[arg-type]
    for head, got in report["heads"].items():
        assert got["mix"] == pytest.approx(expected["heads"][head]["mix"], abs=1e-4)


def test_rows_are_embedded_in_the_precision_the_bundle_trained_in(tiny_bundle: Bundle) -> None:
    texts = ["Lampu PJU mati sejak minggu lalu", "jalan rusak", "KTP belum jadi"]
    plain = tiny_bundle.encoder.embed(preprocess(tiny_bundle, texts))
    np.testing.assert_array_equal(embed_rows(tiny_bundle, texts), plain)  # fp32 training
    tiny_bundle.training["bf16"] = True
    bf16 = embed_rows(tiny_bundle, texts)
    assert bf16.dtype == np.float32 and not np.array_equal(bf16, plain)
    assert np.einsum("ij,ij->i", bf16, plain).min() > 0.99


def test_given_rows_are_taken_by_index_and_checked(tiny_bundle: Bundle) -> None:
    from training.embedding import rows_embedded

    texts = ["Lampu PJU mati sejak minggu lalu", "jalan rusak", "KTP belum jadi"]
    given = embed_rows(tiny_bundle, texts)
    np.testing.assert_array_equal(rows_embedded(tiny_bundle, texts, given, [2, 0]), given[[2, 0]])
    np.testing.assert_allclose(
        rows_embedded(tiny_bundle, texts, None, [2, 0]), given[[2, 0]], atol=1e-6
    )
    with pytest.raises(ValueError, match="one row per dev row"):
        rows_embedded(tiny_bundle, texts, given[:2], [0])


def test_refit_with_mix_folds_fits_the_mixes_again_on_cross_fitted_dev(
    weak_bundle: tuple[Bundle, object, object],
) -> None:
    bundle, train, dev = weak_bundle
    fit_lexical(bundle, train, dev)  # type: ignore[arg-type]
    first = {h: s.lexical_mix for h, s in bundle.head_specs.items()}
    refitted = copy.deepcopy(bundle)
    refit_lexical(refitted, train, dev)  # type: ignore[arg-type]
    report = refit_lexical(bundle, train, dev, mix_folds=3)  # type: ignore[arg-type]
    assert report["mix_folds"] == 3 and set(report["mixes"]) == set(first)
    for h, spec in bundle.head_specs.items():
        assert spec.lexical_mix == report["mixes"][h]
        assert bundle.metrics["dev"][h] == spec.metrics
    # the weak topic head leans on the lexical model: fitted again on other probabilities
    assert bundle.head_specs["topic"].lexical_mix != first["topic"]
    # the final lexical model is the same either way: fitted on train + dev
    assert refitted.lexical is not None and bundle.lexical is not None
    for h in first:
        np.testing.assert_array_equal(bundle.lexical.heads[h].coef, refitted.lexical.heads[h].coef)
    # reproducible: the folds come from the seed
    again = copy.deepcopy(bundle)
    assert refit_lexical(again, train, dev, mix_folds=3) == {  # type: ignore[arg-type]
        **report,
        "seconds": again.training["lexical"]["refit"]["seconds"],
    }
    # too few dev rows for the folds: the mixes stay
    kept = {h: s.lexical_mix for h, s in bundle.head_specs.items()}
    report = refit_lexical(bundle, train, dev, mix_folds=len(dev) + 1)  # type: ignore[arg-type]
    assert "mix_folds" not in report
    assert {h: s.lexical_mix for h, s in bundle.head_specs.items()} == kept
