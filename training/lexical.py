"""Fit the heads' lexical companion (`model.lexical`) and how much each head trusts it.

1. On the training rows: TF-IDF over word 1–2-grams and character 2–5-grams
   of the normalised texts (the most frequent `word_features` /
   `char_features` n-grams that occur in at least 2 rows), and one
   multinomial logistic regression per trained head, on the same labels,
   with rare labels weighted up as the heads' own loss weights them.
   `fit_softmax_regression` minimises the objective of sklearn's
   `LogisticRegression` (weighted log-loss + L2 of strength 1/C) with torch's
   L-BFGS in float32 and a short history: on the Surabaya topic head (211
   labels × 60,000 n-grams) sklearn's float64 L-BFGS took 151 s and 4.0 GB
   above the process's earlier peak; this fit took 70 s and 1.5 GB, with the
   same dev accuracy (0.5930 vs 0.5920) and log-loss (1.902 vs 1.901).
2. On the dev rows: per head, the mix (a, b) of
   `softmax(a·log p_head + b·log p_lexical)` with the lowest negative
   log-likelihood. (1, 0) is the head alone, so the mix never fits dev worse
   than the head's own calibration; the weights are both the combination and
   its calibration.
3. With the mixed dev probabilities, each head's abstain threshold and dev
   metrics are chosen again, as `training.calibration` does for the head alone.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import minimize
from sklearn.feature_extraction.text import TfidfVectorizer

from data.load import Complaints
from model.bundle import Bundle
from model.lexical import CHAR, WORD, LexicalHead, LexicalModel, mix
from model.predict import head_probabilities, preprocess
from training.calibration import set_decisions
from training.embedding import rows_embedded
from training.metrics import head_metrics
from training.splits import label_indices

log = logging.getLogger("aduan.training")


@dataclass(frozen=True)
class LexicalConfig:
    """Settings of the lexical companion (`TrainConfig.lexical_*` in `aduan train`)."""

    word_features: int = 20_000  # most frequent word 1-2-grams kept
    char_features: int = 40_000  # most frequent character 2-5-grams kept
    c: float = 10.0  # inverse L2 strength of each logistic regression
    max_iter: int = 500  # L-BFGS iterations at most
    tol: float = 2e-5  # stop when no gradient entry exceeds this
    history: int = 5  # L-BFGS memory: each step kept costs 2 x features x labels floats
    # Row weight ~ (label count / largest count)^-power, as the heads' loss weights
    # (`TrainConfig.class_weight_power`); 0 = unweighted.
    class_weight_power: float = 0.5


def fit_mix(log_p: np.ndarray, log_q: np.ndarray, gold: np.ndarray) -> list[float]:
    """The (a, b) in [0, 20]² minimising the NLL of softmax(a·log_p + b·log_q) on `gold`."""
    rows = np.arange(len(gold))

    def nll(w: np.ndarray) -> float:
        z = w[0] * log_p + w[1] * log_q
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[rows, gold] - np.log(np.exp(z).sum(axis=1))).mean())

    best = minimize(nll, np.array([1.0, 0.0]), method="L-BFGS-B", bounds=[(0.0, 20.0)] * 2)
    return [round(float(v), 6) for v in best.x]


def fit_lexical(
    bundle: Bundle,
    train: Complaints,
    dev: Complaints,
    config: LexicalConfig | None = None,
    *,
    target_precision: float = 0.95,
    dev_embeddings: np.ndarray | None = None,
) -> dict[str, Any]:
    """Give `bundle` a lexical model fitted on `train` and a mix per head fitted on `dev`.

    The label columns are the bundle's head names (a routed head's labels are
    agency types, as the head learned them). Heads that are untrained, or
    whose training rows have fewer than two labels, are left alone.
    `dev_embeddings` are `dev`'s rows as `training.embedding.embed_rows` gives
    them, when the caller has them already. Returns what
    `bundle.training["lexical"]` records: settings, seconds, and per head the
    dev metrics without and with the lexical model.
    """
    config = config or LexicalConfig()
    started = time.perf_counter()
    lexical = fit_lexical_model(bundle, train, config)
    if lexical is None:
        return {}
    heads = lexical.heads

    x_dev = lexical.features(preprocess(bundle, dev.texts()))
    log_q = {h: lexical.log_proba(h, x_dev) for h in heads}
    report = fit_mixes(bundle, dev, log_q, target_precision, dev_embeddings)
    bundle.lexical = lexical
    out = {
        "config": asdict(config),
        "features": lexical.n_features,
        "seconds": round(time.perf_counter() - started, 1),
        "heads": report,
    }
    bundle.training["lexical"] = out
    return out


def fit_mixes(
    bundle: Bundle,
    dev: Complaints,
    log_q: dict[str, np.ndarray],
    target_precision: float,
    dev_embeddings: np.ndarray | None = None,
) -> dict[str, Any]:
    """Steps 2 and 3 for the heads in `log_q` (each head's lexical log-probabilities of
    the dev rows): fit the mix on dev, then the abstain threshold and dev metrics with
    the mixed probabilities. Returns per head the mix and the dev metrics without and
    with the lexical model."""
    saved, bundle.lexical = bundle.lexical, None  # dev probabilities of the heads alone
    try:
        embeddings = rows_embedded(bundle, dev.texts(), dev_embeddings)
        alone = head_probabilities(bundle, torch.from_numpy(embeddings))
    finally:
        bundle.lexical = saved
    report: dict[str, Any] = {}
    for h, log_q_h in log_q.items():
        spec = bundle.head_specs[h]
        values: list[str | None] = dev.labels(h) if h in dev.label_columns else [None] * len(dev)
        labelled = np.array([v is not None for v in values])
        gold = label_indices(values, spec.labels)
        known = gold >= 0
        if not known.any():
            continue
        log_p = np.log(np.maximum(alone[h], 1e-30))
        spec.lexical_mix = fit_mix(log_p[known], log_q_h[known], gold[known])
        y = gold[labelled]
        before = head_metrics(alone[h][labelled], y)
        set_decisions(spec, mix(log_p, log_q_h, spec.lexical_mix)[labelled], y, target_precision)
        bundle.metrics.setdefault("dev", {})[h] = spec.metrics
        report[h] = {"mix": spec.lexical_mix, "dev_head_only": before, "dev": spec.metrics}
    return report


def refit_lexical(
    bundle: Bundle,
    train: Complaints,
    dev: Complaints,
    *,
    mix_folds: int = 0,
    target_precision: float = 0.95,
    dev_embeddings: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit `bundle`'s lexical model again on `train` and `dev` together, with the
    settings `fit_lexical` recorded.

    Why: the dev rows are the latest (`--split time`), the nearest to what the bundle
    will be asked; once dev has made its choices they are better spent as training
    rows. But the mixes were fitted for a lexical model that had not seen dev, and
    one fitted on more (and later) rows is more sure of itself. With `mix_folds`
    k >= 2 the mixes, abstain thresholds and dev metrics are fitted again on
    cross-fitted dev probabilities: the dev rows are cut into k folds, and each
    fold is scored by a lexical model fitted on `train` and the other folds (k
    more fits). With 0 they stay as `fit_lexical` chose them.

    A bundle without a lexical model, or rows that give one for fewer heads, is
    left as it was (an empty report). Returns what
    `bundle.training["lexical"]["refit"]` records.
    """
    if bundle.lexical is None:
        return {}
    config = LexicalConfig(**bundle.training.get("lexical", {}).get("config", {}))
    started = time.perf_counter()
    heads = list(bundle.lexical.heads)
    lexical = fit_lexical_model(bundle, train.concat(dev), config)
    if lexical is None or not set(lexical.heads) >= set(heads):
        log.warning("lexical model not refitted: the rows give it fewer heads")
        return {}
    lexical.heads = {h: lexical.heads[h] for h in heads}
    out: dict[str, Any] = {"rows": len(train) + len(dev)}
    log_q = _cross_fitted(bundle, train, dev, heads, config, mix_folds, seed)
    if log_q is not None:
        report = fit_mixes(bundle, dev, log_q, target_precision, dev_embeddings)
        out["mix_folds"] = mix_folds
        out["mixes"] = {h: r["mix"] for h, r in report.items()}
    bundle.lexical = lexical
    out["seconds"] = round(time.perf_counter() - started, 1)
    bundle.training.setdefault("lexical", {})["refit"] = out
    return out


def _cross_fitted(
    bundle: Bundle,
    train: Complaints,
    dev: Complaints,
    heads: list[str],
    config: LexicalConfig,
    folds: int,
    seed: int,
) -> dict[str, np.ndarray] | None:
    """Per head, the lexical log-probabilities of each dev row from a model fitted on
    `train` and the dev folds other than its own; None when `folds` < 2, when dev has
    fewer rows than folds, or when a fold's model lacks a head."""
    if folds < 2 or len(dev) < folds:
        return None
    fold_of = np.random.default_rng(seed).permutation(len(dev)) % folds
    texts = preprocess(bundle, dev.texts())
    log_q = {h: np.zeros((len(dev), len(bundle.head_specs[h].labels))) for h in heads}
    for k in range(folds):
        held = np.flatnonzero(fold_of == k)
        model = fit_lexical_model(
            bundle, train.concat(dev.select(np.flatnonzero(fold_of != k).tolist())), config
        )
        if model is None or not set(model.heads) >= set(heads):
            log.warning("mixes not fitted again: a dev fold's lexical model lacks a head")
            return None
        x = model.features([texts[i] for i in held])
        for h in heads:
            log_q[h][held] = model.log_proba(h, x)
    return log_q


def fit_lexical_model(
    bundle: Bundle, train: Complaints, config: LexicalConfig | None = None
) -> LexicalModel | None:
    """Step 1 alone: the TF-IDF features and one regression per trained head of `bundle`,
    fitted on `train`; None when no head can have one (see `fit_lexical`)."""
    config = config or LexicalConfig()
    texts = preprocess(bundle, train.texts())
    word = TfidfVectorizer(**WORD, min_df=2, max_features=config.word_features, dtype=np.float32)
    char = TfidfVectorizer(**CHAR, min_df=2, max_features=config.char_features, dtype=np.float32)
    try:
        x = sp.hstack([word.fit_transform(texts), char.fit_transform(texts)], format="csr")
    except ValueError:  # too few rows for any n-gram to occur twice
        log.warning("lexical model skipped: no n-gram occurs in two training rows")
        return None
    heads: dict[str, LexicalHead] = {}
    for h, spec in bundle.head_specs.items():
        if not spec.trained or h not in train.label_columns:
            continue
        y = label_indices(train.labels(h), spec.labels)
        keep = y >= 0
        if len(np.unique(y[keep])) < 2:
            continue
        weights = _class_weights(y[keep], config.class_weight_power)
        heads[h] = fit_softmax_regression(
            x[keep],
            y[keep],
            len(spec.labels),
            c=config.c,
            sample_weight=None if weights is None else weights[y[keep]],
            max_iter=config.max_iter,
            tol=config.tol,
            history=config.history,
        )
    return LexicalModel(word, char, heads) if heads else None


def _class_weights(y: np.ndarray, power: float) -> np.ndarray | None:
    """Per label index: (its row count / the largest count)^-power (0 for labels without
    rows); None when power is 0."""
    if power == 0:
        return None
    counts = np.bincount(y)
    out = np.zeros(len(counts))
    seen = counts > 0
    out[seen] = (counts[seen] / counts.max()) ** -power
    return out


def _torch_csr(m: sp.spmatrix) -> torch.Tensor:
    m = sp.csr_matrix(m, dtype=np.float32)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": mm is all we use
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr.astype(np.int64)),
            torch.from_numpy(m.indices.astype(np.int64)),
            torch.from_numpy(m.data),
            size=m.shape,
            check_invariants=False,  # scipy's CSR is valid; the check costs a pass
        )


def fit_softmax_regression(
    x: sp.spmatrix,
    y: np.ndarray,
    n_labels: int,
    *,
    c: float = 10.0,
    sample_weight: np.ndarray | None = None,
    max_iter: int = 500,
    tol: float = 2e-5,
    history: int = 5,
) -> LexicalHead:
    """Multinomial logistic regression over the labels `y` has (indices < n_labels).

    Minimises sklearn's `LogisticRegression` objective, C·Σ wᵢ·(-log pᵢ[yᵢ]) +
    ½‖W‖² (intercepts not penalised), scaled by 1/(C·Σ wᵢ), with torch's
    L-BFGS and the gradient written out (no autograd graph over the sparse
    product). Labels without rows get no weights and are masked (`seen`).
    """
    classes = np.unique(y)
    compact = np.searchsorted(classes, y)
    k = len(classes)
    w_rows = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
    total = float(w_rows.sum())
    rows = torch.arange(len(y))
    target = torch.from_numpy(compact.astype(np.int64))
    scale = torch.from_numpy((w_rows / total).astype(np.float32))[:, None]
    x_rows, x_cols = _torch_csr(x), _torch_csr(sp.csr_matrix(x).T)  # x and its transpose
    coef = torch.zeros(x.shape[1], k, requires_grad=True)
    bias = torch.zeros(k, requires_grad=True)
    l2 = 1.0 / (c * total)
    opt = torch.optim.LBFGS(
        [coef, bias], lr=1, max_iter=max_iter, history_size=history, tolerance_grad=tol,
        tolerance_change=1e-9, line_search_fn="strong_wolfe",
    )  # fmt: skip

    def objective() -> torch.Tensor:
        with torch.no_grad():
            log_p = torch.log_softmax(torch.sparse.mm(x_rows, coef) + bias, dim=-1)
            loss = -(log_p[rows, target] * scale[:, 0]).sum() + 0.5 * l2 * (coef * coef).sum()
            residual = log_p.exp_()
            residual[rows, target] -= 1
            residual *= scale
            coef.grad = torch.sparse.mm(x_cols, residual).add_(coef, alpha=l2)
            bias.grad = residual.sum(0)
        return loss

    opt.step(objective)
    full = np.zeros((x.shape[1], n_labels), dtype=np.float32)
    full[:, classes] = coef.detach().numpy()
    intercept = np.zeros(n_labels, dtype=np.float32)
    intercept[classes] = bias.detach().numpy()
    seen = np.zeros(n_labels, dtype=bool)
    seen[classes] = True
    return LexicalHead(full, intercept, seen)
