"""The torch parts of a model: the text encoder and the classification heads.

One encoder pass per complaint serves every head (and, later, the duplicate
index): the heads read the same L2-normalised mean-pooled embedding that e5
uses for similarity.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


def native_bf16() -> bool:
    """True when this CPU runs bf16 matmuls natively (else autocast only slows it down)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class TextEncoder(nn.Module):
    """A transformers encoder + tokenizer with e5's prompt, mean pooling and L2 norm."""

    def __init__(self, bert: Any, tokenizer: Any, prompt: str, max_length: int) -> None:
        super().__init__()
        self.bert = bert
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.max_length = max_length
        # Set by model.onnx.enable_onnx: runs `embed`'s forward pass in ONNX Runtime.
        self.onnx: Any = None
        self.eval()  # inference by default (no dropout); training calls .train()

    @classmethod
    def load(cls, folder: str | Path, *, prompt: str, max_length: int) -> TextEncoder:
        """Load from a transformers / sentence-transformers folder, never from a hub."""
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        # Load reports and progress bars would clutter CLI output and server logs.
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            bert = AutoModel.from_pretrained(
                str(folder), local_files_only=True, add_pooling_layer=False
            )
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        finally:
            hf_logging.set_verbosity(verbosity)
            hf_logging.enable_progress_bar()
        return cls(bert, tokenizer, prompt, max_length)

    @property
    def dim(self) -> int:
        return int(self.bert.config.hidden_size)

    def tokenize(self, texts: Sequence[str], prompt: str | None = None) -> dict[str, torch.Tensor]:
        """Token ids and attention mask with the e5 prompt (the encoder's own unless
        `prompt` is given), truncated to `max_length` and padded to the longest text.

        A fast (Rust) tokenizer is called directly, without `transformers`' wrapper
        around it (this runs on every request); a test checks both give the same ids.
        """
        prefix = self.prompt if prompt is None else prompt
        prompted = [prefix + t for t in texts]
        rust = self._rust_tokenizer()
        if rust is None:
            batch = self.tokenizer(
                prompted,
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            return {k: batch[k] for k in ("input_ids", "attention_mask")}
        encodings = rust.encode_batch(prompted)
        width = len(encodings[0].ids) if encodings else 0
        ids = np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(texts), width)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return {
            "input_ids": torch.from_numpy(ids),
            "attention_mask": torch.from_numpy(mask.reshape(ids.shape)),
        }

    def _rust_tokenizer(self) -> Any:
        """The fast tokenizer's Rust core, set to truncate and pad as `tokenize` needs;
        None when the tokenizer has none (a slow, Python-only tokenizer).

        The core is shared with `transformers`' wrapper, which sets these options
        the same way before each of its own calls; a copy would hold another
        ~250 MB for e5's vocabulary.
        """
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None or self.tokenizer.pad_token_id is None:
            return None
        truncation = {"max_length": self.max_length, "stride": 0,
                      "strategy": "longest_first", "direction": "right"}  # fmt: skip
        if backend.truncation != truncation:
            backend.enable_truncation(**truncation)
        padding = {"length": None, "pad_to_multiple_of": None,
                   "pad_id": self.tokenizer.pad_token_id, "pad_token": self.tokenizer.pad_token,
                   "pad_type_id": 0, "direction": self.tokenizer.padding_side}  # fmt: skip
        if backend.padding != padding:
            backend.enable_padding(**padding)
        return backend

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """L2-normalised mean of the last hidden states over real (non-pad) tokens."""
        if self.onnx is not None and not torch.is_grad_enabled():
            hidden = self.onnx(input_ids, attention_mask)
        else:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return nn.functional.normalize(pooled, dim=-1)

    @torch.inference_mode()
    def embed(
        self, texts: Sequence[str], batch_size: int = 32, *, prompt: str | None = None
    ) -> np.ndarray:
        """Embed texts in length-sorted batches (less padding); rows keep input order.

        `prompt` overrides the encoder's e5 prefix for this call (e.g. "passage: "
        for the duplicate embedding) without changing the encoder.
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        # Switching modes walks every submodule (~3 ms on this encoder), so only
        # when something is in training mode (dropout off for embeddings).
        was_training = self.training
        switch = was_training or self.bert.training
        if switch:
            self.eval()
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            batch = self.tokenize([texts[i] for i in idx], prompt=prompt)
            out[idx] = self(batch["input_ids"], batch["attention_mask"]).float().numpy()
        if switch:
            self.train(was_training)
        return out

    def save(self, folder: str | Path) -> None:
        """Write a sentence-transformers folder (the format any e5 user can load)."""
        from model.encoder import save_sentence_transformer

        out = Path(folder)
        with tempfile.TemporaryDirectory(prefix="hf-", dir=out.parent) as tmp:
            self.bert.save_pretrained(tmp, safe_serialization=True)
            self.tokenizer.save_pretrained(tmp)
            save_sentence_transformer(tmp, out)
        # The folder is the encoder, not the training run: drop the generated model card.
        readme = out / "README.md"
        if readme.exists():
            readme.unlink()


class ClassifierHeads(nn.Module):
    """One linear layer per label field over the shared embedding."""

    def __init__(self, dim: int, n_labels: Mapping[str, int], seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        layers = {}
        for name, n in n_labels.items():
            layer = nn.Linear(dim, n)
            with torch.no_grad():
                # Deterministic init so an untrained bundle is reproducible.
                layer.weight.copy_(torch.randn(n, dim, generator=gen) * 0.02)
                layer.bias.zero_()
            layers[name] = layer
        self.layers = nn.ModuleDict(layers)

    def forward(self, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: layer(embedding) for name, layer in self.layers.items()}

    def state_for_save(self) -> dict[str, torch.Tensor]:
        return {
            f"{name}.{param}": tensor.detach().contiguous().cpu()
            for name, layer in self.layers.items()
            for param, tensor in layer.state_dict().items()
        }

    @classmethod
    def from_saved(cls, state: Mapping[str, torch.Tensor]) -> ClassifierHeads:
        names = sorted({key.rsplit(".", 1)[0] for key in state})
        n_labels = {name: state[f"{name}.weight"].shape[0] for name in names}
        dim = int(state[f"{names[0]}.weight"].shape[1]) if names else 0
        heads = cls(dim, n_labels)
        for name in names:
            heads.layers[name].load_state_dict(
                {"weight": state[f"{name}.weight"], "bias": state[f"{name}.bias"]}
            )
        return heads


def link_or_copy_tree(src: Path, dst: Path) -> None:
    """Copy a folder, hard-linking files where possible (an unchanged encoder costs no disk)."""

    def _link(s: str, d: str) -> None:
        try:
            Path(d).hardlink_to(s)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=_link)
