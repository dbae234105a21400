"""The lexical companion of the heads: TF-IDF n-grams and a linear model per head.

The fine-tuned encoder reads what a complaint means; exact words carry what
it compresses away (programme and place names, abbreviations such as "PJU",
"MBR", "KTP-el", typo'd spellings). A TF-IDF + logistic-regression model over
word 1–2-grams and character 2–5-grams of the same normalised text makes
different mistakes, and the two together beat either alone
(`bench/accuracy.py` and `bench/routing.py` measure it). For a head with a
fitted mix `(a, b)` (`HeadSpec.lexical_mix`, fitted on dev by
`training.lexical`), `predict` answers

    p(label) = softmax(a · log p_encoder(label) + b · log p_lexical(label))

which is a weighted geometric mean whose weights are also its calibration
(fitted by dev negative log-likelihood, like a temperature). A bundle
without the `lexical/` folder, or a head without a mix, is answered by its
encoder head alone.

Stored as plain data, never pickles: `lexical/vocabulary.json` (the n-grams
in column order; the vectoriser settings are `WORD` and `CHAR` below) and
`lexical/weights.safetensors`
(IDF weights, and per head the coefficients [features, labels] in float16
with float32 intercepts).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

VOCABULARY_FILE = "vocabulary.json"
WEIGHTS_FILE = "weights.safetensors"
FORMAT = "aduan-lexical"

#: The two vectorisers (sklearn TfidfVectorizer arguments); fitting and loading share them.
WORD = {"analyzer": "word", "ngram_range": (1, 2), "sublinear_tf": True}
CHAR = {"analyzer": "char_wb", "ngram_range": (2, 5), "sublinear_tf": True}

#: Log-probability given to a label the lexical model never saw (it had no training rows).
UNSEEN = -30.0


class LexicalError(ValueError):
    """A lexical model that cannot be built or read."""


def make_vectorizer(kind: str, vocabulary: Sequence[str], idf: np.ndarray) -> TfidfVectorizer:
    """A fitted TF-IDF vectoriser from its n-grams (column order) and IDF weights."""
    settings = WORD if kind == "word" else CHAR
    vec = TfidfVectorizer(
        **settings, vocabulary={t: i for i, t in enumerate(vocabulary)}, dtype=np.float32
    )
    vec.idf_ = np.asarray(idf, dtype=np.float64)
    return vec


@dataclass
class LexicalHead:
    """One head's linear model over the TF-IDF features."""

    coef: np.ndarray  # [features, labels] float32: the head's label order
    intercept: np.ndarray  # [labels] float32
    seen: np.ndarray  # [labels] bool: labels the model had training rows for


class LexicalModel:
    """TF-IDF features (word and character n-grams) and a linear model per head."""

    def __init__(
        self,
        word: TfidfVectorizer,
        char: TfidfVectorizer,
        heads: Mapping[str, LexicalHead],
    ) -> None:
        self.word = word
        self.char = char
        self.heads = dict(heads)
        # What `features` needs per part: analyser, n-gram -> column, IDF, column offset.
        self._parts = [
            (vec.build_analyzer(), vec.vocabulary_, np.asarray(vec.idf_, np.float64), offset)
            for vec, offset in ((word, 0), (char, len(word.vocabulary_)))
        ]

    @property
    def n_features(self) -> int:
        return len(self.word.vocabulary_) + len(self.char.vocabulary_)

    def features(self, texts: Sequence[str]) -> sp.csr_matrix:
        """[n, features] TF-IDF rows (each part L2-normalised) of normalised texts.

        The same numbers as the two vectorisers' `transform` (a test checks it),
        computed directly, on every request: `bench/serve.py` times both on single
        Surabaya complaints (session 8: a median 0.52 ms here, 1.35 ms in sklearn).
        """
        indptr, indices, values = [0], [], []
        filled = 0
        for text in texts:
            for analyze, vocabulary, idf, offset in self._parts:
                # Counted and looked up by C loops (Counter, map), not a Python loop
                # over the ~1,000 n-grams of a complaint.
                counts = Counter(analyze(text))
                found = map(vocabulary.get, counts.keys(), repeat(-1))
                cols = np.fromiter(found, np.int64, len(counts))
                known = cols >= 0
                if not known.any():
                    continue
                cols = cols[known]
                tf = np.fromiter(counts.values(), np.float64, len(counts))[known]
                v = (1.0 + np.log(tf)) * idf[cols]  # sublinear tf, then idf
                v /= np.sqrt((v * v).sum())
                indices.append(cols + offset)
                values.append(v)
                filled += len(cols)
            indptr.append(filled)
        cols = np.concatenate(indices) if indices else np.zeros(0, np.int64)
        data = np.concatenate(values).astype(np.float32) if values else np.zeros(0, np.float32)
        shape = (len(indptr) - 1, self.n_features)
        return sp.csr_matrix((data, cols, np.asarray(indptr, np.int64)), shape=shape)

    def log_proba(self, head: str, x: sp.csr_matrix) -> np.ndarray:
        """[n, labels] log-probabilities of `head`'s labels from feature rows `x`."""
        h = self.heads[head]
        z = np.asarray(x @ h.coef, dtype=np.float64) + h.intercept
        z[:, ~h.seen] = -np.inf
        z -= z.max(axis=1, keepdims=True)
        out = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        out[:, ~h.seen] = UNSEEN
        return out

    # -------------------------------------------------------------- save / load
    def save(self, folder: Path) -> None:
        from safetensors.numpy import save_file

        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "word": {"vocabulary": _terms(self.word)},
            "char": {"vocabulary": _terms(self.char)},
            "heads": {h: {"labels": len(m.intercept)} for h, m in self.heads.items()},
        }
        (folder / VOCABULARY_FILE).write_text(json.dumps(meta, ensure_ascii=False), "utf-8")
        tensors = {"idf.word": self.word.idf_.astype(np.float32),
                   "idf.char": self.char.idf_.astype(np.float32)}  # fmt: skip
        for h, m in self.heads.items():
            tensors[f"{h}.coef"] = m.coef.astype(np.float16)
            tensors[f"{h}.intercept"] = m.intercept.astype(np.float32)
            tensors[f"{h}.seen"] = m.seen.astype(np.uint8)
        save_file(tensors, str(folder / WEIGHTS_FILE))

    @classmethod
    def load(cls, folder: Path, head_sizes: Mapping[str, int]) -> LexicalModel:
        """Read a saved model; `head_sizes` (head -> label count) must match its heads."""
        from safetensors.numpy import load_file

        try:
            meta = json.loads((folder / VOCABULARY_FILE).read_text("utf-8"))
            tensors = load_file(str(folder / WEIGHTS_FILE))
        except (OSError, ValueError) as exc:
            raise LexicalError(f"{folder}: cannot be read: {exc}") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise LexicalError(f"{folder / VOCABULARY_FILE}: not an aduan lexical model")
        try:
            word = make_vectorizer("word", meta["word"]["vocabulary"], tensors["idf.word"])
            char = make_vectorizer("char", meta["char"]["vocabulary"], tensors["idf.char"])
            heads = {}
            for h in meta["heads"]:
                coef = tensors[f"{h}.coef"].astype(np.float32)
                intercept = tensors[f"{h}.intercept"].astype(np.float32)
                seen = tensors[f"{h}.seen"].astype(bool)
                if h not in head_sizes or coef.shape != (
                    len(word.vocabulary_) + len(char.vocabulary_),
                    head_sizes[h],
                ):
                    raise LexicalError(f"{folder}: head {h!r} does not match the bundle's heads")
                heads[h] = LexicalHead(coef, intercept, seen)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, LexicalError):
                raise
            raise LexicalError(f"{folder}: damaged lexical model: {exc!r}") from exc
        return cls(word, char, heads)

    def describe(self) -> dict[str, Any]:
        return {"features": self.n_features, "heads": sorted(self.heads)}


def mix(log_p: np.ndarray, log_q: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """softmax(a·log_p + b·log_q) row-wise: the combined probabilities [n, labels]."""
    a, b = weights
    z = a * log_p + b * log_q
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _terms(vec: TfidfVectorizer) -> list[str]:
    terms = [""] * len(vec.vocabulary_)
    for t, i in vec.vocabulary_.items():
        terms[i] = t
    return terms
