"""The ONNX Runtime fast path gives the same embeddings and predictions as torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model.bundle import Bundle
from model.onnx import enable_onnx
from model.predict import predict

TEXTS = [
    "Lampu PJU di Jl. Ketintang Baru mati sudah seminggu, mohon segera diperbaiki",
    "jalan rusak",
    "Saya sudah 3 bulan tidak menerima bantuan PKH padahal terdaftar di DTKS, mohon dicek",
]


def test_onnx_embeddings_match_torch(tiny_bundle: Bundle, tmp_path: Path) -> None:
    reference = tiny_bundle.encoder.embed(TEXTS, batch_size=2)  # padded batches too
    expected = predict(tiny_bundle, TEXTS)
    path = enable_onnx(tiny_bundle, threads=1, cache=tmp_path)
    assert path.is_file() and tiny_bundle.encoder.onnx is not None
    got = tiny_bundle.encoder.embed(TEXTS, batch_size=2)
    np.testing.assert_allclose(got, reference, atol=1e-5)
    single = tiny_bundle.encoder.embed(TEXTS[:1], batch_size=1)  # another batch shape
    np.testing.assert_allclose(single, reference[:1], atol=1e-5)
    for a, b in zip(predict(tiny_bundle, TEXTS), expected, strict=True):
        for head, result in a.heads.items():
            assert [s.label for s in result.top] == [s.label for s in b.heads[head].top]


def test_onnx_export_is_cached_and_rebuilt_when_damaged(
    tiny_bundle: Bundle, tmp_path: Path
) -> None:
    path = enable_onnx(tiny_bundle, threads=1, cache=tmp_path)
    stamp = path.stat().st_mtime_ns
    assert enable_onnx(tiny_bundle, threads=1, cache=tmp_path) == path
    assert path.stat().st_mtime_ns == stamp  # reused, not exported again
    path.write_bytes(b"not an onnx file")
    enable_onnx(tiny_bundle, threads=1, cache=tmp_path)
    assert path.stat().st_size > 1000
    assert tiny_bundle.encoder.embed(TEXTS[:1]).shape == (1, tiny_bundle.encoder.dim)
    assert not list(tmp_path.glob("*.tmp"))


def test_training_never_uses_the_onnx_session(tiny_bundle: Bundle, tmp_path: Path) -> None:
    enable_onnx(tiny_bundle, threads=1, cache=tmp_path)
    batch = tiny_bundle.encoder.tokenize(TEXTS[:2])
    out = tiny_bundle.encoder(batch["input_ids"], batch["attention_mask"])
    assert out.requires_grad  # the torch graph, so gradients reach the encoder
    with torch.no_grad():
        fast = tiny_bundle.encoder(batch["input_ids"], batch["attention_mask"])
    np.testing.assert_allclose(fast.numpy(), out.detach().numpy(), atol=1e-5)


def test_int8_variant_is_close_to_fp32_and_cached(tiny_bundle: Bundle, tmp_path: Path) -> None:
    reference = tiny_bundle.encoder.embed(TEXTS, batch_size=2)
    path = enable_onnx(tiny_bundle, threads=1, cache=tmp_path, int8=True)
    assert path.name.endswith("-int8-v2.onnx") and path.is_file()
    fp32 = tmp_path / path.name.replace("-int8-v2.onnx", ".onnx")
    assert fp32.is_file()  # made from the fp32 export, which is kept for the fp32 runtime
    assert path.stat().st_size < fp32.stat().st_size  # int8 weights
    got = tiny_bundle.encoder.embed(TEXTS, batch_size=2)
    assert got.shape == reference.shape
    cosines = np.einsum("ij,ij->i", got, reference)
    assert cosines.min() > 0.9, cosines  # close, not equal: weights are rounded to int8
    assert not np.allclose(got, reference, atol=1e-6)
    stamp = path.stat().st_mtime_ns
    assert enable_onnx(tiny_bundle, threads=1, cache=tmp_path, int8=True) == path
    assert path.stat().st_mtime_ns == stamp
    path.write_bytes(b"damaged")
    enable_onnx(tiny_bundle, threads=1, cache=tmp_path, int8=True)
    assert tiny_bundle.encoder.embed(TEXTS[:1]).shape == (1, tiny_bundle.encoder.dim)
    assert not list(tmp_path.glob("*.tmp"))


def test_int8_runtime_has_its_own_embedding_space(tiny_bundle: Bundle, tmp_path: Path) -> None:
    from model.dedup import DuplicateFinder

    plain = DuplicateFinder(tiny_bundle).embedding_id
    enable_onnx(tiny_bundle, threads=1, cache=tmp_path)
    assert DuplicateFinder(tiny_bundle).embedding_id == plain  # fp32 ONNX: the same vectors
    enable_onnx(tiny_bundle, threads=1, cache=tmp_path, int8=True)
    int8 = DuplicateFinder(tiny_bundle).embedding_id
    assert int8 != plain  # an index gets re-embedded
    enable_onnx(tiny_bundle, threads=1, cache=tmp_path, int8=True, fuse_layer_norm=True)
    assert DuplicateFinder(tiny_bundle).embedding_id not in (plain, int8)


def _op_types(path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_int8_graph_keeps_layer_norms_unfused(tiny_bundle: Bundle, tmp_path: Path) -> None:
    fused = enable_onnx(tiny_bundle, threads=1, cache=tmp_path, int8=True, fuse_layer_norm=True)
    fused_emb = tiny_bundle.encoder.embed(TEXTS)
    assert {"SkipLayerNormalization", "BiasGelu"} <= _op_types(fused)  # the BERT fusions apply
    path = enable_onnx(tiny_bundle, threads=1, cache=tmp_path, int8=True)
    assert path != fused
    ops = _op_types(path)
    assert "SkipLayerNormalization" not in ops and "BiasGelu" not in ops
    assert "LayerNormalization" in ops and ops & {"QAttention", "Attention"}
    emb = tiny_bundle.encoder.embed(TEXTS)
    assert np.einsum("ij,ij->i", emb, fused_emb).min() > 0.99  # the same weights, other kernels


def test_onnx_runtime_is_kept_from_fusing_them_again(
    tiny_bundle: Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime as ort

    from model.onnx import UNFUSED

    path = enable_onnx(tiny_bundle, threads=1, cache=tmp_path, int8=True)

    def ops_as_loaded(disabled: list[str]) -> set[str]:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / "as-loaded.onnx")
        providers = ["CPUExecutionProvider"]
        ort.InferenceSession(str(path), options, providers, disabled_optimizers=disabled)
        return _op_types(tmp_path / "as-loaded.onnx")

    assert "SkipLayerNormalization" in ops_as_loaded([])  # what loading would do by default
    kept = ops_as_loaded(list(UNFUSED.values()))
    assert "SkipLayerNormalization" not in kept and "BiasGelu" not in kept

    seen: dict[str, object] = {}
    real = ort.InferenceSession

    def spy(*args: object, **kwargs: object) -> object:
        seen[Path(str(args[0])).name] = kwargs.get("disabled_optimizers")
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    enable_onnx(tiny_bundle, threads=1, cache=tmp_path, int8=True)
    fused = enable_onnx(tiny_bundle, threads=1, cache=tmp_path, int8=True, fuse_layer_norm=True)
    assert seen[path.name] == list(UNFUSED.values())
    assert seen[fused.name] is None
