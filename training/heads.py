"""Training classification heads on the frozen pretrained encoder.

This is the quick path: embed every complaint once with the (frozen) encoder,
then fit one linear head per label field on those embeddings, calibrate each
head on dev and choose its abstain threshold. It builds the demo bundle in
seconds on a laptop CPU and is the baseline that fine-tuning must beat.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from data.load import Complaints
from model.bundle import Bundle, EncoderSpec
from model.encoder import ensure_encoder
from model.predict import preprocess
from training.calibration import calibrate_heads
from training.splits import kept_labels, label_indices

log = logging.getLogger("aduan.training")


@dataclass
class HeadTrainConfig:
    """Options for `train_heads`; saved into the bundle as the training arguments."""

    labels: list[str] = field(default_factory=lambda: ["agency", "topic"])
    split: str = "random"  # "random" (stratified by the first label) or "time" (latest = dev)
    dev_fraction: float = 0.2
    seed: int = 0
    steps: int = 300  # full-batch optimisation steps per head
    lr: float = 0.05
    weight_decay: float = 1e-4
    min_count: int = 2  # labels with fewer training rows are set aside (recorded as rare)
    prompt: str = "query: "
    max_length: int = 256
    batch_size: int = 32  # encoder batch size when embedding
    target_precision: float = 0.95  # the abstain threshold aims at this precision on dev


def train_heads(
    train: Complaints,
    dev: Complaints,
    config: HeadTrainConfig,
    *,
    encoder_dir: str | Path | None = None,
    name: str = "aduan",
) -> Bundle:
    """Fit, calibrate and evaluate one linear head per label on frozen embeddings."""
    torch.manual_seed(config.seed)
    label_sets, rare_sets = kept_labels(train, config.labels, config.min_count)
    bundle = Bundle.new(
        encoder_dir or ensure_encoder(),
        label_sets,
        encoder_spec=EncoderSpec(prompt=config.prompt, max_length=config.max_length),
        seed=config.seed,
        name=name,
    )
    log.info("embedding %d training and %d dev complaints", len(train), len(dev))
    x_train = torch.from_numpy(
        bundle.encoder.embed(preprocess(bundle, train.texts()), batch_size=config.batch_size)
    )
    x_dev = torch.from_numpy(
        bundle.encoder.embed(preprocess(bundle, dev.texts()), batch_size=config.batch_size)
    )
    logits, gold, labelled = {}, {}, {}
    for head in config.labels:
        spec = bundle.head_specs[head]
        y_train = label_indices(train.labels(head), spec.labels)
        gold[head] = label_indices(dev.labels(head), spec.labels)
        labelled[head] = np.array([v is not None for v in dev.labels(head)])
        layer = bundle.heads.layers[head]
        assert isinstance(layer, torch.nn.Linear)
        _fit_linear(layer, x_train, y_train, x_dev, gold[head], config)
        with torch.inference_mode():
            logits[head] = layer(x_dev).numpy()
        spec.min_count = config.min_count
        spec.rare_labels = rare_sets[head]
    dev_metrics = calibrate_heads(bundle, logits, gold, labelled, config.target_precision)
    bundle.training = {
        "method": "frozen-encoder linear heads",
        "config": asdict(config),
        "data": {"train": train.fingerprint(), "dev": dev.fingerprint(), "source": train.source},
    }
    bundle.metrics = {"dev": dev_metrics}
    return bundle


def _fit_linear(
    layer: torch.nn.Linear,
    x: torch.Tensor,
    y: np.ndarray,
    x_dev: torch.Tensor,
    y_dev: np.ndarray,
    config: HeadTrainConfig,
) -> None:
    """Full-batch AdamW with class-balanced loss; keeps the step with the best dev accuracy.

    e5 embeddings are anisotropic (unrelated complaints sit at cosine 0.84-0.95), so
    the head is trained on standardised features and the standardisation is then
    folded into its weights: W' = W / sigma, b' = b - W' mu (exactly the same outputs).
    """
    mu = x.mean(dim=0)
    sigma = x.std(dim=0).clamp(min=1e-6)
    x, x_dev = (x - mu) / sigma, (x_dev - mu) / sigma
    mask = torch.from_numpy(y >= 0)
    xs, ys = x[mask], torch.from_numpy(y[y >= 0])
    counts = torch.bincount(ys, minlength=layer.out_features).float()
    # Inverse square-root frequency: rare agencies count more without drowning the big ones.
    weight = counts.clamp(min=1).pow(-0.5)
    weight = weight / (weight * counts).sum() * counts.sum()
    opt = torch.optim.AdamW(layer.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    dev_known = torch.from_numpy(y_dev >= 0)
    x_dev_k, y_dev_k = x_dev[dev_known], torch.from_numpy(y_dev[y_dev >= 0])
    best = (-1.0, copy.deepcopy(layer.state_dict()))
    for step in range(config.steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer(xs), ys, weight=weight)
        loss.backward()
        opt.step()
        if (step + 1) % 10 == 0 and len(y_dev_k):
            with torch.no_grad():
                acc = (layer(x_dev_k).argmax(dim=1) == y_dev_k).float().mean().item()
            if acc > best[0]:
                best = (acc, copy.deepcopy(layer.state_dict()))
    if best[0] >= 0:
        layer.load_state_dict(best[1])
    with torch.no_grad():
        layer.weight.div_(sigma)
        layer.bias.sub_(layer.weight @ mu)
