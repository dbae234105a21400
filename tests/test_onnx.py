"""The ONNX Runtime fast path gives the same embeddings and predictions as torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
