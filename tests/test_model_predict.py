"""The one predict path: shapes, probabilities, abstention, margin."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.bundle import Bundle
from model.predict import predict


def test_predict_untrained_heads_run_and_abstain(tiny_bundle: Bundle) -> None:
    preds = predict(tiny_bundle, ["jalan rusak parah", "ktp belum jadi"], top_k=2)
    assert len(preds) == 2
    for p in preds:
        assert set(p.heads) == {"agency", "topic"}
        assert all(len(r.top) == 2 and r.abstain for r in p.heads.values())


def test_predict_scores_are_sorted_probabilities(tiny_bundle: Bundle) -> None:
    with torch.no_grad():
        tiny_bundle.heads.layers["topic"].weight.normal_(
            0, 5, generator=torch.Generator().manual_seed(1)
        )
    p = predict(tiny_bundle, ["lampu mati di jalan"], top_k=10)[0].heads["topic"]
    scores = [s.score for s in p.top]
    assert len(scores) == 4, "top_k is capped at the number of labels"
    assert scores == sorted(scores, reverse=True)
    assert np.isclose(sum(scores), 1.0, atol=1e-5)
    assert np.isclose(p.margin, scores[0] - scores[1])


def test_predict_leaves_the_unlisted_share_to_labels_the_head_does_not_know(
    tiny_bundle: Bundle,
) -> None:
    full = predict(tiny_bundle, ["lampu mati di jalan"], top_k=10)[0].heads["topic"]
    tiny_bundle.head_specs["topic"].unlisted = 0.25
    scaled = predict(tiny_bundle, ["lampu mati di jalan"], top_k=10)[0].heads["topic"]
    assert [s.label for s in scaled.top] == [s.label for s in full.top]
    assert np.allclose([s.score for s in scaled.top], [0.75 * s.score for s in full.top])
    assert np.isclose(sum(s.score for s in scaled.top), 0.75, atol=1e-5)


def test_predict_abstains_below_the_threshold(tiny_bundle: Bundle) -> None:
    spec = tiny_bundle.head_specs["agency"]
    spec.trained = True
    top = predict(tiny_bundle, ["bantuan sosial"])[0].heads["agency"].top[0].score
    spec.abstain_threshold = top + 1e-3
    assert predict(tiny_bundle, ["bantuan sosial"])[0].heads["agency"].abstain
    spec.abstain_threshold = top - 1e-3
    assert not predict(tiny_bundle, ["bantuan sosial"])[0].heads["agency"].abstain


def test_predict_temperature_flattens_probabilities(tiny_bundle: Bundle) -> None:
    with torch.no_grad():
        tiny_bundle.heads.layers["agency"].bias.copy_(torch.tensor([2.0, 0.0, -2.0]))
    sharp = predict(tiny_bundle, ["x"])[0].heads["agency"].top[0].score
    tiny_bundle.head_specs["agency"].temperature = 4.0
    flat = predict(tiny_bundle, ["x"])[0].heads["agency"].top[0].score
    assert flat < sharp


def test_predict_order_and_batching_do_not_change_results(tiny_bundle: Bundle) -> None:
    texts = ["a", "jalan rusak di kota surabaya dan tidak sudah", "ktp", "mohon segera pak bu"]
    one = [p.to_dict() for p in predict(tiny_bundle, texts, batch_size=1)]
    many = [p.to_dict() for p in predict(tiny_bundle, texts, batch_size=3)]
    for a, b in zip(one, many, strict=True):
        for head in a["heads"]:
            sa = [s["score"] for s in a["heads"][head]["top"]]
            sb = [s["score"] for s in b["heads"][head]["top"]]
            assert np.allclose(sa, sb, atol=1e-5)


def test_predict_normalises_text_like_training(tiny_bundle: Bundle) -> None:
    messy = predict(tiny_bundle, ["  jalan\u200b rusak\n\n di   kota "], with_embeddings=True)[0]
    clean = predict(tiny_bundle, ["jalan rusak di kota"], with_embeddings=True)[0]
    assert messy.embedding is not None and clean.embedding is not None
    assert np.allclose(messy.embedding, clean.embedding, atol=1e-6)


def test_predict_rejects_top_k_zero(tiny_bundle: Bundle) -> None:
    with pytest.raises(ValueError, match="top_k"):
        predict(tiny_bundle, ["x"], top_k=0)


def test_embedding_is_deterministic_and_keeps_the_training_mode(tiny_bundle: Bundle) -> None:
    encoder = tiny_bundle.encoder
    texts = ["lampu jalan mati di jl. ketintang", "sampah menumpuk"]
    assert not encoder.training and not encoder.bert.training  # loaded for inference
    reference = encoder.embed(texts)
    encoder.train()  # as during fine-tuning: dropout on for the forward pass
    try:
        np.testing.assert_allclose(encoder.embed(texts), reference, atol=1e-6)  # no dropout
        assert encoder.training and encoder.bert.training  # back in training mode
    finally:
        encoder.eval()


def test_tokenize_gives_the_ids_of_the_transformers_tokenizer(tiny_bundle: Bundle) -> None:
    encoder = tiny_bundle.encoder
    encoder.max_length = 12  # so that the long text below is truncated
    assert encoder._rust_tokenizer() is not None  # the direct path is the one tested
    texts = ["jalan rusak", "lampu mati di jalan kelurahan ketintang sudah seminggu " * 3, "", "kk"]
    for prompt in (None, "passage: "):
        # the wrapper shares the Rust core and leaves its own options on it
        encoder.tokenizer(texts, padding="max_length", max_length=20, truncation=True)
        ours = encoder.tokenize(texts, prompt=prompt)
        theirs = encoder.tokenizer(
            [(encoder.prompt if prompt is None else prompt) + t for t in texts],
            padding=True,
            truncation=True,
            max_length=12,
            return_tensors="pt",
        )
        assert set(ours) == {"input_ids", "attention_mask"}
        assert ours["input_ids"].shape[1] == 12  # truncated, and the others padded to it
        for key in ours:
            assert ours[key].dtype == torch.int64
            assert torch.equal(ours[key], theirs[key]), key
    encoder.max_length = 5  # a changed max length is followed
    assert encoder.tokenize(texts)["input_ids"].shape == (4, 5)
    assert encoder.tokenize([])["input_ids"].shape == (0, 0)
