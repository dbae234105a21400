"""ONNX Runtime for the encoder's forward pass: the serving fast path on CPU.

`enable_onnx(bundle)` exports the bundle's transformer (weights as they are,
fp32) to ONNX once, caches the file under `$ADUAN_HOME/onnx/`, and makes
`TextEncoder.embed` run the forward pass through an ONNX Runtime session; the
tokenizer, pooling, heads and everything after are unchanged, so there is still
one prediction path. Training never uses it (it needs gradients).

On this project's 2-core machine one complaint's forward pass takes less than
half the time of torch's (bench/fastpath.py measures it next to torch fp32 and
bf16, with the accuracy change), and the embeddings match torch's to float
precision, so the duplicate scorer calibrated on torch embeddings still holds.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model.paths import aduan_home

log = logging.getLogger("aduan.onnx")

OPSET = 17
_EXPORT_LOCK = threading.Lock()


class _LastHidden(nn.Module):
    """The transformer as a plain (input_ids, attention_mask) -> last_hidden_state graph."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask)
        return out.last_hidden_state


def export_encoder(bert: Any, path: Path) -> Path:
    """Export the transformer to `path` (written to a temporary file, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = torch.ones((2, 8), dtype=torch.long)
    mask = torch.ones((2, 8), dtype=torch.long)
    mask[1, 5:] = 0  # a padded row, so the mask is a real input of the graph
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    attn = getattr(bert.config, "_attn_implementation", None)
    try:
        if attn is not None:
            bert.config._attn_implementation = "eager"  # traces to plain MatMul/Softmax ops
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer warns about shape checks that are constant for an encoder.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _LastHidden(bert).eval(),
                (ids, mask),
                tmp,
                input_names=["input_ids", "attention_mask"],
                output_names=["last_hidden_state"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "last_hidden_state": {0: "batch", 1: "tokens"},
                },
                opset_version=OPSET,
                dynamo=False,
            )
        os.replace(tmp, path)
    finally:
        if attn is not None:
            bert.config._attn_implementation = attn
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class OnnxForward:
    """An ONNX Runtime session computing last_hidden_state from token ids and mask."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        feed = {
            "input_ids": input_ids.numpy().astype(np.int64, copy=False),
            "attention_mask": attention_mask.numpy().astype(np.int64, copy=False),
        }
        return torch.from_numpy(self.session.run(None, feed)[0])


def enable_onnx(bundle: Any, *, threads: int, cache: Path | None = None) -> Path:
    """Run `bundle.encoder`'s inference forward through ONNX Runtime; return the model file.

    The export is cached per bundle version (which covers the encoder
    weights), so a restart or a reload of the same bundle reuses it.
    """
    folder = cache or aduan_home() / "onnx"
    key = bundle.version or "unsaved"
    path = folder / f"{bundle.name}-{key}.onnx"
    with _EXPORT_LOCK:
        if not path.is_file():
            log.info("exporting the encoder of bundle %s to ONNX (once)", key)
            export_encoder(bundle.encoder.bert, path)
        try:
            session = OnnxForward(path, threads)
        except Exception:  # a damaged cache file: export again, once
            log.warning("the cached ONNX export %s cannot be loaded; exporting again", path.name)
            export_encoder(bundle.encoder.bert, path)
            session = OnnxForward(path, threads)
    bundle.encoder.onnx = session
    return path
