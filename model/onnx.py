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

`enable_onnx(bundle, int8=True)` serves a smaller, faster variant made from
that export: ONNX Runtime's BERT fusions (one Attention op per layer), then
int8 weights for every MatMul, quantised per output channel, with activations
quantised on the fly. Its embeddings differ from fp32 slightly;
bench/fastpath.py reports by how much and what that does to each head's
answers and to duplicate scoring.

The residual adds, layer norms and GELU stay separate ops (`UNFUSED`): ONNX
Runtime's profiler gave its fused SkipLayerNormalization CPU kernel 1.5 ms of
a 7.6 ms pass on a 51-token text on this project's 2-core machine, and the
plain Add and LayerNormalization ops 0.55 ms. `enable_onnx(...,
fuse_layer_norm=True)` makes the fully fused variant, which
bench/fastpath.py times beside it.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model.files import atomic_path
from model.paths import aduan_home

log = logging.getLogger("aduan.onnx")

OPSET = 17
_EXPORT_LOCK = threading.Lock()

#: The graphs `enable_onnx` can serve, each with the tag naming its cached file and
#: its embedding space (`OnnxForward.tag`). fp32 embeds as torch does: no tag. The
#: fully fused int8 graph keeps the tag it had when it was the served one.
VARIANTS = {"fp32": "", "int8": "int8-v2", "int8-fused": "int8"}

#: The fusions left out of the int8 variant: by the offline BERT optimiser (its
#: FusionOptions names) and by ONNX Runtime when it loads the model (its optimiser
#: names), which would otherwise fuse the same ops again.
UNFUSED = {"enable_skip_layer_norm": "SkipLayerNormFusion", "enable_bias_gelu": "BiasGeluFusion"}


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
    ids = torch.ones((2, 8), dtype=torch.long)
    mask = torch.ones((2, 8), dtype=torch.long)
    mask[1, 5:] = 0  # a padded row, so the mask is a real input of the graph
    attn = getattr(bert.config, "_attn_implementation", None)
    try:
        if attn is not None:
            bert.config._attn_implementation = "eager"  # traces to plain MatMul/Softmax ops
        with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
            # The tracer warns about shape checks that are constant for an encoder.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _LastHidden(bert).eval(),
                (ids, mask),
                str(tmp),
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
    finally:
        if attn is not None:
            bert.config._attn_implementation = attn
    return path


def quantize_encoder(
    src: Path, path: Path, *, num_heads: int, hidden_size: int, fuse_layer_norm: bool = False
) -> Path:
    """Fuse `src`'s BERT graph and quantise its MatMul weights to int8 into `path`.

    The `UNFUSED` fusions are left out unless `fuse_layer_norm`. When the
    fusion does not apply (an unusual graph), the plain graph is quantised.
    Written to a temporary file, then renamed.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    fusions = FusionOptions("bert")
    if not fuse_layer_norm:
        for option in UNFUSED:
            setattr(fusions, option, False)
    with atomic_path(path) as tmp, tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        source = str(src)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                graph = optimizer.optimize_model(
                    str(src),
                    model_type="bert",
                    num_heads=num_heads,
                    hidden_size=hidden_size,
                    optimization_options=fusions,
                )
            fused = str(Path(scratch) / "fused.onnx")
            graph.save_model_to_file(fused)
            source = fused
        except Exception as exc:  # the fusions are an optimisation, not a requirement
            log.warning("BERT fusion skipped for %s (%s)", src.name, type(exc).__name__)
        quantize_dynamic(
            source,
            str(tmp),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Attention"],
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    return path


class OnnxForward:
    """An ONNX Runtime session computing last_hidden_state from token ids and mask.

    `variant` is one of `VARIANTS`: "fp32", "int8" (the served int8 graph) or
    "int8-fused" (`fuse_layer_norm`); the int8 ones embed slightly differently.
    """

    def __init__(self, path: Path, threads: int, *, variant: str = "fp32") -> None:
        import onnxruntime as ort

        self.variant = variant
        self.tag = VARIANTS[variant]  # names its embedding space, when not torch's

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        self.path = path
        self.session = ort.InferenceSession(
            str(path),
            options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=list(UNFUSED.values()) if variant == "int8" else None,
        )

    @property
    def int8(self) -> bool:
        """Rounded weights: embeddings differ slightly from fp32."""
        return self.variant != "fp32"

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        feed = {
            "input_ids": input_ids.numpy().astype(np.int64, copy=False),
            "attention_mask": attention_mask.numpy().astype(np.int64, copy=False),
        }
        return torch.from_numpy(self.session.run(None, feed)[0])


def enable_onnx(
    bundle: Any,
    *,
    threads: int,
    cache: Path | None = None,
    int8: bool = False,
    fuse_layer_norm: bool = False,
) -> Path:
    """Run `bundle.encoder`'s inference forward through ONNX Runtime; return the model file.

    The export is cached per bundle version (which covers the encoder
    weights), so a restart or a reload of the same bundle reuses it. With
    `int8`, the int8 variant (see the module docstring; `fuse_layer_norm`
    for the fully fused one) is made from the fp32 export once and cached
    beside it.
    """
    folder = cache or aduan_home() / "onnx"
    key = bundle.version or "unsaved"
    fp32 = folder / f"{bundle.name}-{key}.onnx"
    variant = ("int8-fused" if fuse_layer_norm else "int8") if int8 else "fp32"
    tag = VARIANTS[variant]
    path = folder / f"{bundle.name}-{key}-{tag}.onnx" if tag else fp32
    bert = bundle.encoder.bert

    def build(fresh: bool) -> None:
        if fresh or not fp32.is_file():
            export_encoder(bert, fp32)
        if int8:
            log.info("making the int8 ONNX variant of bundle %s (once)", key)
            quantize_encoder(
                fp32,
                path,
                num_heads=int(bert.config.num_attention_heads),
                hidden_size=int(bert.config.hidden_size),
                fuse_layer_norm=fuse_layer_norm,
            )

    with _EXPORT_LOCK:
        if not path.is_file():
            log.info("exporting the encoder of bundle %s to ONNX (once)", key)
            build(fresh=False)
        try:
            session = OnnxForward(path, threads, variant=variant)
        except Exception:  # a damaged cache file: export again, once
            log.warning("the cached ONNX export %s cannot be loaded; exporting again", path.name)
            build(fresh=True)
            session = OnnxForward(path, threads, variant=variant)
    bundle.encoder.onnx = session
    return path


#: What can run a bundle's encoder: `use_runtime`'s names (ADUAN_RUNTIME, --runtime).
RUNTIMES = ("torch", "onnx", "onnx-int8")


def use_runtime(bundle: Any, runtime: str, *, threads: int) -> None:
    """Run the bundle's encoder forward pass with `runtime`, one of `RUNTIMES`: torch
    leaves it as it is; onnx and onnx-int8 call `enable_onnx`."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if runtime != "torch":
        enable_onnx(bundle, threads=threads, int8=runtime == "onnx-int8")
