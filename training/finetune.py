"""Multi-task fine-tuning of the encoder with one head per label, on the CPU.

`train(train_set, dev_set, config)` is what `aduan train` calls; a notebook can too.
One shared encoder, one linear head per label field, one forward pass for all
heads. Made for a 2-core CPU:

- the 96M-parameter token-embedding table is frozen (it is 80% of the model,
  and updating it costs ~4x the step time for little gain on a few thousand rows);
- texts are tokenised once; batches are bucketed by length and padded only to
  their own longest text (rounded up to a multiple of 16); the max length comes
  from the data (a percentile of token lengths) unless given;
- batch 16 and a heap trim every 20 steps bound the peak RSS (bench/accuracy.py reports it);
- bf16 autocast where the CPU has native bf16 (AVX512-BF16 / AMX);
- the class-balanced loss (inverse square-root frequency) keeps 1,500-example
  agencies from drowning 20-example ones; labels under `min_count` training rows
  are set aside and recorded in the bundle;
- dev metrics after every epoch; the best epoch's weights are kept.

After training, each head gets its temperature and abstain threshold fitted on
dev (`training.calibration`), exactly as the frozen-encoder trainer does.
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from data.load import Complaints
from model.bundle import Bundle, EncoderSpec
from model.encoder import ensure_encoder
from model.network import native_bf16
from model.predict import preprocess
from training.calibration import calibrate_heads
from training.lexical import LexicalConfig
from training.splits import kept_labels, label_indices

log = logging.getLogger("aduan.training")


@dataclass
class TrainConfig:
    """Every option of `aduan train`, saved into the bundle as `training.config`.

    `--config FILE` is a JSON object with any of these keys; command-line
    options override it.
    """

    labels: list[str] = field(default_factory=lambda: ["agency", "topic"])
    split: str = "time"  # dev = latest rows ("time") or a stratified sample ("random")
    dev_fraction: float = 0.15  # share of rows held out as dev
    seed: int = 0  # split, head init, batch order
    epochs: int = 3  # passes over the training rows
    max_steps: int | None = None  # stop after this many optimiser steps (overrides epochs)
    batch_size: int = 16  # 16 trains as fast per row as 32 here, at half the activation memory
    lr: float = 1e-4  # encoder learning rate (AdamW, warmup then linear decay)
    head_lr: float = 3e-3  # learning rate of the heads
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06  # share of steps with a linear warmup
    max_length: int | None = None  # tokens incl. prompt; None = 95th percentile of train ...
    max_length_cap: int = 128  # ... capped here (CPU time grows with length; texts lead with
    # their point, so the tail of the 5% longest matters least)
    min_count: int = 2  # labels with fewer training rows are set aside (recorded)
    class_weight_power: float = 0.5  # loss weight ~ count^-power (0 = unweighted)
    label_smoothing: float = 0.0
    freeze_embeddings: bool = True  # keep the 96M-parameter token-embedding table frozen
    # Also freeze the whole embedding block and the lowest N transformer layers:
    # backward then stops at the first trainable layer. On Surabaya (time split, one
    # seed) 4 of e5-small's 12 gave better dev accuracy than training all of them
    # (types 0.7635 vs 0.7545, topic 0.6157 vs 0.6065, with the lexical mix) and
    # fine-tuned in 1,022 s instead of 1,080 s (docs/benchmarks.md).
    freeze_layers: int = 4
    bf16: bool | None = None  # bf16 autocast; None = when the CPU supports it natively
    prompt: str = "query: "  # e5 prefix for the classification input
    target_precision: float = 0.95  # abstain threshold aims at this precision on dev
    eval_batch_size: int = 64
    # The heads' TF-IDF companion (model.lexical, training.lexical): fitted on the
    # training rows, mixed with each head by dev likelihood; false: the heads alone.
    lexical: bool = True
    lexical_word_features: int = 20_000
    lexical_char_features: int = 40_000
    lexical_c: float = 10.0  # inverse L2 strength of its logistic regressions
    # Once dev has chosen the epoch, mixes, thresholds and type votes, refit the
    # lexical companion and a routed head's exemplars on train + dev (training.refit).
    refit_with_dev: bool = True
    # ... and fit the mixes and abstain thresholds again on dev probabilities
    # cross-fitted over this many dev folds (k more lexical fits); 0: keep dev's first.
    refit_mix_folds: int = 0

    def lexical_config(self) -> LexicalConfig:
        return LexicalConfig(
            word_features=self.lexical_word_features,
            char_features=self.lexical_char_features,
            c=self.lexical_c,
            class_weight_power=self.class_weight_power,
        )

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Read a JSON config; unknown keys are an error naming them."""
        p = Path(path)
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{p}: cannot read the config as JSON ({exc})") from exc
        if not isinstance(raw, dict):
            raise ValueError(f"{p}: the config must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{p}: unknown config key(s): {', '.join(unknown)}")
        config = cls(**raw)
        problem = config.problem()
        if problem:
            raise ValueError(f"{p}: {problem}")
        return config

    def problem(self) -> str | None:
        """What is wrong with these settings (types and ranges), or None."""
        for f in fields(self):
            value = getattr(self, f.name)
            kind, check, meaning = _RULES[f.name]
            optional = kind.endswith("?")
            if value is None and optional:
                continue
            ok_type = {
                "int": isinstance(value, int) and not isinstance(value, bool),
                "float": isinstance(value, int | float) and not isinstance(value, bool),
                "bool": isinstance(value, bool),
                "str": isinstance(value, str),
                "labels": isinstance(value, list)
                and bool(value)
                and all(isinstance(v, str) and v for v in value),
            }[kind.rstrip("?")]
            if not ok_type or not check(value):
                return f"{f.name} must be {meaning}, not {value!r}"
        return None


def _any(_: Any) -> bool:
    return True


#: Per TrainConfig field: the JSON type ("?" = may be null), the range, how it reads.
_RULES: dict[str, tuple[str, Any, str]] = {
    "labels": ("labels", _any, "a non-empty list of label column names"),
    "split": ("str", lambda v: v in ("time", "random"), "'time' or 'random'"),
    "dev_fraction": ("float", lambda v: 0 <= v < 1, "a share from 0 to below 1"),
    "seed": ("int", _any, "a whole number"),
    "epochs": ("int", lambda v: v >= 1, "a whole number >= 1"),
    "max_steps": ("int?", lambda v: v >= 1, "a whole number >= 1 or null"),
    "batch_size": ("int", lambda v: v >= 1, "a whole number >= 1"),
    "lr": ("float", lambda v: v > 0, "a number > 0"),
    "head_lr": ("float", lambda v: v > 0, "a number > 0"),
    "weight_decay": ("float", lambda v: v >= 0, "a number >= 0"),
    "warmup_ratio": ("float", lambda v: 0 <= v < 1, "a share from 0 to below 1"),
    "max_length": ("int?", lambda v: 8 <= v <= 512, "a whole number from 8 to 512, or null"),
    "max_length_cap": ("int", lambda v: 8 <= v <= 512, "a whole number from 8 to 512"),
    "min_count": ("int", lambda v: v >= 1, "a whole number >= 1"),
    "class_weight_power": ("float", lambda v: v >= 0, "a number >= 0"),
    "label_smoothing": ("float", lambda v: 0 <= v < 1, "a share from 0 to below 1"),
    "freeze_embeddings": ("bool", _any, "true or false"),
    "freeze_layers": ("int", lambda v: v >= 0, "a whole number >= 0"),
    "bf16": ("bool?", _any, "true, false or null"),
    "prompt": ("str", _any, "a string"),
    "target_precision": ("float", lambda v: 0 < v <= 1, "a share above 0, at most 1"),
    "eval_batch_size": ("int", lambda v: v >= 1, "a whole number >= 1"),
    "lexical": ("bool", _any, "true or false"),
    "lexical_word_features": ("int", lambda v: v >= 1, "a whole number >= 1"),
    "lexical_char_features": ("int", lambda v: v >= 1, "a whole number >= 1"),
    "lexical_c": ("float", lambda v: v > 0, "a number > 0"),
    "refit_with_dev": ("bool", _any, "true or false"),
    "refit_mix_folds": ("int", lambda v: v == 0 or v >= 2, "0 (off) or a whole number >= 2"),
}


def freeze_lower_layers(bert: Any, n: int) -> int:
    """Freeze the embedding block and the lowest `n` transformer layers, leaving at least
    the top layer to train (a smaller encoder than asked for freezes fewer); returns how
    many were frozen. n = 0 freezes nothing."""
    if n < 0:
        raise ValueError(f"freeze_layers must be 0 or more, not {n}")
    if n == 0:
        return 0
    layers: torch.nn.ModuleList = bert.encoder.layer  # BERT / XLM-R layout (e5, test encoders)
    n = min(n, len(layers) - 1)
    for module in (bert.embeddings, *layers[:n]):
        module.requires_grad_(False)
    return n


def release_freed_memory() -> None:
    """Hand memory freed by finished batches back to the OS (glibc keeps it otherwise).

    Batches of varying shape fragment the heap; without this the training
    process's RSS creeps up by gigabytes over an epoch.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


# ----------------------------------------------------------------------------- batching


def length_bucketed_batches(
    lengths: list[int], batch_size: int, rng: np.random.Generator, bucket_batches: int = 50
) -> list[list[int]]:
    """Shuffle, sort by length within chunks of `bucket_batches` batches, shuffle batches.

    Batches hold texts of similar length (little padding) while the order of
    batches stays random from epoch to epoch.
    """
    order = rng.permutation(len(lengths))
    chunk = batch_size * bucket_batches
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk].tolist(), key=lambda i: lengths[i])
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


PAD_MULTIPLE = 16  # few distinct batch shapes: less allocator fragmentation (~0.8 GB RSS)


def _pad(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = -(-max(len(x) for x in ids) // PAD_MULTIPLE) * PAD_MULTIPLE
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
    return input_ids, mask


# ------------------------------------------------------------------------------ training


@dataclass
class _Prepared:
    ids: list[list[int]]
    targets: dict[str, torch.Tensor]  # per head, -1 = no loss for this row


def _targets(data: Complaints, bundle: Bundle) -> dict[str, torch.Tensor]:
    return {
        head: torch.from_numpy(label_indices(data.labels(head), spec.labels))
        for head, spec in bundle.head_specs.items()
    }


def _prepare(data: Complaints, bundle: Bundle) -> _Prepared:
    tok = bundle.encoder.tokenizer
    texts = [bundle.encoder.prompt + t for t in preprocess(bundle, data.texts())]
    enc = tok(texts, truncation=True, max_length=bundle.encoder.max_length)
    return _Prepared(ids=enc["input_ids"], targets=_targets(data, bundle))


def choose_max_length(bundle: Bundle, texts: list[str], cap: int = 256) -> int:
    """The 95th percentile of token lengths (prompt included), rounded up to 8, <= cap."""
    tok = bundle.encoder.tokenizer
    lengths = [len(x) for x in tok([bundle.encoder.prompt + t for t in texts])["input_ids"]]
    p95 = int(np.percentile(lengths, 95)) if lengths else cap
    cap = min(cap, int(bundle.encoder.bert.config.max_position_embeddings))
    return int(min(cap, max(32, math.ceil(p95 / 8) * 8)))


def _class_weights(targets: torch.Tensor, n: int, power: float) -> torch.Tensor:
    counts = torch.bincount(targets[targets >= 0], minlength=n).float()
    weight = counts.clamp(min=1).pow(-power)
    # Normalised so the average weight per training row is 1 (loss scale unchanged).
    return weight / (weight * counts).sum() * counts.sum()


# The heads read the L2-normalised embedding, whose entries are ~0.05: a linear head
# on it needs huge weights before its logits can separate 200 agencies, which Adam
# takes many epochs to reach. During training the heads see the embedding times
# HEAD_SCALE (a "cosine classifier" scale, ~sqrt(dim)); the factor is folded into
# the saved weights afterwards, so prediction is unchanged (W (s x) + b = (s W) x + b).
HEAD_SCALE = 20.0


def _logits(bundle: Bundle, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    return bundle.heads(HEAD_SCALE * bundle.encoder(ids, mask).float())


def _scale_heads(bundle: Bundle, factor: float) -> None:
    with torch.no_grad():
        for name, param in bundle.heads.named_parameters():
            if name.endswith(".weight"):
                param.mul_(factor)


@torch.inference_mode()
def dev_logits(
    bundle: Bundle, prepared: _Prepared, batch_size: int, bf16: bool
) -> dict[str, np.ndarray]:
    """Head logits for every dev row (length-sorted batches, input order kept)."""
    bundle.encoder.eval()
    n = len(prepared.ids)
    out = {h: np.zeros((n, len(s.labels)), np.float32) for h, s in bundle.head_specs.items()}
    order = sorted(range(n), key=lambda i: len(prepared.ids[i]))
    pad_id = bundle.encoder.tokenizer.pad_token_id
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        ids, mask = _pad([prepared.ids[i] for i in idx], pad_id)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = _logits(bundle, ids, mask)
        for h, z in logits.items():
            out[h][idx] = z.float().numpy()
    return out


def _dev_accuracy(logits: dict[str, np.ndarray], targets: dict[str, torch.Tensor]) -> dict:
    acc = {}
    for h, z in logits.items():
        y = targets[h].numpy()
        labelled = y >= 0
        acc[h] = float((z[labelled].argmax(1) == y[labelled]).mean()) if labelled.any() else 0.0
    return acc


def _trainable_state(bundle: Bundle) -> dict[str, torch.Tensor]:
    """A copy of the weights that training changes (the frozen embedding table excluded)."""
    state = {
        "encoder." + k: v.detach().clone()
        for k, v in bundle.encoder.named_parameters()
        if v.requires_grad
    }
    state.update({"heads." + k: v.detach().clone() for k, v in bundle.heads.state_dict().items()})
    return state


def _restore(bundle: Bundle, state: dict[str, torch.Tensor]) -> None:
    params = dict(bundle.encoder.named_parameters())
    with torch.no_grad():
        for k, v in state.items():
            if k.startswith("encoder."):
                params[k.removeprefix("encoder.")].copy_(v)
    bundle.heads.load_state_dict(
        {k.removeprefix("heads."): v for k, v in state.items() if k.startswith("heads.")}
    )


def train(
    train_set: Complaints,
    dev_set: Complaints,
    config: TrainConfig,
    *,
    start_from: str | Path | None = None,
    encoder_dir: str | Path | None = None,
    progress: bool = True,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> Bundle:
    """Fine-tune encoder + heads on `train_set`, select and calibrate on `dev_set`.

    Args:
        start_from: a bundle to continue from (its encoder; its heads too when a
            head's label set is unchanged).
        encoder_dir: the pretrained encoder folder (default: the cached conversion).
        on_epoch: called with (epoch, dev accuracy per head) after each epoch.
    """
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    labels, rare = kept_labels(train_set, config.labels, config.min_count)
    bf16 = native_bf16() if config.bf16 is None else config.bf16

    parent = Bundle.load(start_from) if start_from else None
    if parent is not None and parent.encoder_source_dir is not None:
        base = parent.encoder_source_dir
    else:
        base = Path(encoder_dir or ensure_encoder())
    spec = EncoderSpec(prompt=config.prompt, max_length=config.max_length or 256)
    bundle = Bundle.new(base, labels, encoder_spec=spec, seed=config.seed, name="aduan")
    if parent is not None:
        bundle.encoder_spec.source = f"fine-tuned from bundle {parent.version}"
        _reuse_heads(bundle, parent)
        _scale_heads(bundle, 1 / HEAD_SCALE)  # saved weights have the scale folded in
    if config.max_length is None:
        bundle.encoder.max_length = choose_max_length(
            bundle, preprocess(bundle, train_set.texts()), cap=config.max_length_cap
        )
        bundle.encoder_spec.max_length = bundle.encoder.max_length
    log.info("max length %d tokens, bf16 %s", bundle.encoder.max_length, bf16)

    train_p, dev_p = _prepare(train_set, bundle), _prepare(dev_set, bundle)
    weights = {
        h: _class_weights(train_p.targets[h], len(s.labels), config.class_weight_power)
        for h, s in bundle.head_specs.items()
    }
    emb = bundle.encoder.bert.get_input_embeddings()
    emb.weight.requires_grad_(not config.freeze_embeddings)
    frozen_layers = freeze_lower_layers(bundle.encoder.bert, config.freeze_layers)
    enc_params = [p for p in bundle.encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": enc_params, "lr": config.lr},
            {"params": list(bundle.heads.parameters()), "lr": config.head_lr},
        ],
        weight_decay=config.weight_decay,
    )
    steps_per_epoch = math.ceil(len(train_p.ids) / config.batch_size)
    total = config.max_steps or steps_per_epoch * config.epochs
    epochs = math.ceil(total / steps_per_epoch)
    warmup = max(1, int(total * config.warmup_ratio))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    pad_id = bundle.encoder.tokenizer.pad_token_id
    lengths = [len(x) for x in train_p.ids]
    history: list[dict[str, Any]] = []
    best: tuple[float, int, dict[str, torch.Tensor], dict[str, np.ndarray]] | None = None
    step = 0
    bar = tqdm(total=total, desc="training", unit="step", disable=not progress, leave=False)
    for epoch in range(1, epochs + 1):
        bundle.encoder.train()
        bundle.heads.train()
        losses = []
        for batch in length_bucketed_batches(lengths, config.batch_size, rng):
            if step >= total:
                break
            ids, mask = _pad([train_p.ids[i] for i in batch], pad_id)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = _logits(bundle, ids, mask)
            loss = torch.zeros(())
            for h, z in logits.items():
                y = train_p.targets[h][batch]
                if (y >= 0).any():
                    loss = loss + torch.nn.functional.cross_entropy(
                        z[y >= 0].float(),
                        y[y >= 0],
                        weight=weights[h],
                        label_smoothing=config.label_smoothing,
                    )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(enc_params + list(bundle.heads.parameters()), 1.0)
            optimizer.step()
            scheduler.step()
            if step % 20 == 0:
                release_freed_memory()
            step += 1
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{np.mean(losses[-20:]):.3f}")
        epoch_logits = dev_logits(bundle, dev_p, config.eval_batch_size, bf16)
        acc = _dev_accuracy(epoch_logits, dev_p.targets)
        score = float(np.mean(list(acc.values())))
        history.append(
            {
                "epoch": epoch,
                "step": step,
                "train_loss": float(np.mean(losses)),
                "dev_accuracy": acc,
            }
        )
        log.info("epoch %d: train loss %.4f, dev accuracy %s", epoch, np.mean(losses), acc)
        if progress:
            tqdm.write(f"epoch {epoch}: train loss {np.mean(losses):.4f}, dev accuracy {acc}")
        if on_epoch:
            on_epoch(epoch, acc)
        if best is None or score > best[0]:
            best = (score, epoch, _trainable_state(bundle), epoch_logits)
        if step >= total:
            break
    bar.close()
    assert best is not None
    _restore(bundle, best[2])
    _scale_heads(bundle, HEAD_SCALE)  # fold the training-time input scale into the weights
    bundle.encoder.eval()
    bundle.heads.eval()
    bundle.encoder_spec.fine_tuned = True
    bundle.encoder_source_dir = None  # the weights changed: save writes them

    final = best[3]  # the kept epoch's dev logits: no second pass over dev
    dev_gold = {h: t.numpy() for h, t in dev_p.targets.items()}
    labelled = {h: np.array([v is not None for v in dev_set.labels(h)]) for h in dev_gold}
    bundle.metrics = {
        "dev": calibrate_heads(bundle, final, dev_gold, labelled, config.target_precision)
    }
    for h, spec_h in bundle.head_specs.items():
        spec_h.min_count = config.min_count
        spec_h.rare_labels = rare[h]
    bundle.training = {
        "method": "multi-task fine-tuning (encoder + linear heads)",
        "config": asdict(config),
        "bf16": bf16,
        "frozen_layers": frozen_layers,
        "best_epoch": best[1],
        "history": history,
        "seconds": round(time.perf_counter() - started, 1),
        "data": {
            "source": train_set.source,
            "train": train_set.fingerprint(),
            "dev": dev_set.fingerprint(),
        },
    }
    return bundle


def _reuse_heads(bundle: Bundle, parent: Bundle) -> None:
    """Start from the parent's head where its label set is the same."""
    for h, spec in bundle.head_specs.items():
        old = parent.head_specs.get(h)
        if old is not None and old.labels == spec.labels:
            bundle.heads.layers[h].load_state_dict(parent.heads.layers[h].state_dict())
