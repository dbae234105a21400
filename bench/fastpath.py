"""CPU fast paths for serving: speed and accuracy of fp32, bf16 autocast and int8 weights.

    OMP_WAIT_POLICY=PASSIVE python bench/fastpath.py --model BUNDLE [--data surabaya-2022]
                                                    [--pairs CSV] [--paths fp32,onnx,...]

(`aduan serve` sets OMP_WAIT_POLICY=PASSIVE; without it torch's idle OpenMP
threads spin and slow ONNX Runtime down in the same process.)

For each path, on the latest 15% of the data by date (the time-split test
slice; the bundle should have been trained on the rest), it reports:

- single-complaint latency (p50/p90 of `predict` on one text, the API's
  unbatched case; the paths take turns, 25 texts at a time) and batch throughput
  (texts/s at batch 32, one path after another);
- accuracy of every head against the labels, top-1 agreement with fp32, and
  the lowest cosine between the path's embedding and fp32's (the duplicate
  search reads the same embedding);
- with `--pairs` (an `id_a,id_b,label` CSV of labelled duplicate pairs from
  `--data`, e.g. data/labels/surabaya-2022-dup-pairs-test.csv) and a bundle
  with a calibrated duplicate scorer: duplicate-pair F1 with the bundle's
  stored threshold, so a path whose embeddings drift shows what that does to
  duplicate detection.

Paths: `fp32`; `bf16` (torch.autocast on CPU; native on CPUs with AVX512-BF16
or AMX); `int8` (torch dynamic quantisation of the encoder's Linear layers);
`onnx` (the fp32 encoder exported to ONNX and run by ONNX Runtime, model.onnx);
`onnx-int8` (that export with ONNX Runtime's BERT attention fusion and int8
MatMul weights per channel, `ADUAN_RUNTIME=onnx-int8`); `onnx-int8-fused` (the
same with the residual adds, layer norms and GELU fused too, as served before).
What `torch.backends.cpu.get_cpu_capability()` reports is printed first.
Texts are read from ../shared/data and never printed.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LATENCY_BLOCK = 25  # texts per path per turn in the latency rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", default="surabaya-2022")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--latency-texts", type=int, default=60)
    parser.add_argument("--pairs", type=Path, default=None, help="labelled pair ids (CSV)")
    parser.add_argument("--paths", default="fp32,bf16,int8,onnx,onnx-int8")
    args = parser.parse_args()

    import torch

    from data.load import load_complaints
    from data.splits import time_split
    from model.bundle import Bundle
    from model.onnx import enable_onnx
    from model.predict import predict
    from serving.engine import torch_threads
    from training.dedup import evaluate_dedup

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, cpu capability {torch.backends.cpu.get_cpu_capability()}")
    bundle = Bundle.load(args.model)
    heads = list(bundle.head_specs)
    data = load_complaints(args.data, label_columns=heads)
    pairs = []
    if args.pairs is not None:
        from data.pairs import pairs_from_ids

        if bundle.dedup is None or not bundle.dedup.calibrated:
            parser.error("--pairs needs a bundle with a calibrated duplicate scorer")
        pairs = pairs_from_ids(args.pairs, load_complaints(args.data))
        print(f"{len(pairs)} labelled pairs from {args.pairs.name}")
    _, test = time_split(data, 0.15)
    texts = test.texts()
    gold = {h: test.labels(h) for h in heads}
    print(f"{len(texts)} test complaints, heads {heads}")

    @contextlib.contextmanager
    def nothing() -> Iterator[None]:
        yield

    def bf16() -> contextlib.AbstractContextManager[None]:
        return torch.autocast("cpu", dtype=torch.bfloat16)

    fp32_encoder = bundle.encoder

    def torch_int8(_: Path) -> object:
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(fp32_encoder), {torch.nn.Linear}, dtype=torch.qint8
        )

    def onnx_encoder(cache: Path, int8: bool, fused: bool = False) -> object:
        probe = copy.copy(bundle)
        probe.encoder = copy.deepcopy(fp32_encoder)
        enable_onnx(probe, threads=args.threads, cache=cache, int8=int8, fuse_layer_norm=fused)
        return probe.encoder

    Build = Callable[[Path], object]
    available: dict[str, tuple[Callable[[], contextlib.AbstractContextManager[None]], Build]] = {
        "fp32": (nothing, lambda _: fp32_encoder),
        "bf16": (bf16, lambda _: fp32_encoder),
        "int8": (nothing, torch_int8),
        "onnx": (nothing, lambda cache: onnx_encoder(cache, False)),
        "onnx-int8": (nothing, lambda cache: onnx_encoder(cache, True)),
        "onnx-int8-fused": (nothing, lambda cache: onnx_encoder(cache, True, fused=True)),
    }
    wanted = ["fp32", *[p for p in args.paths.split(",") if p and p != "fp32"]]
    unknown = set(wanted) - set(available)
    if unknown:
        parser.error(f"unknown --paths {', '.join(sorted(unknown))}")
    # Only the wanted encoders are built; the ONNX sessions keep their models in
    # memory, so the export folder (shared by onnx and onnx-int8) can go.
    with tempfile.TemporaryDirectory(prefix="aduan-onnx-") as tmp:
        paths = [
            (name, ctx, build(Path(tmp))) for name, (ctx, build) in available.items()
            if name in wanted
        ]  # fmt: skip
    reference: dict[str, list] = {}
    ref_emb = None
    print(
        f"\n{'path':<16}{'p50 ms':>8}{'p90 ms':>8}{'texts/s':>9}"
        + "".join(f"{h + ' acc':>14}{'agree':>7}" for h in heads)
        + f"{'min cos':>9}"
        + (f"{'pair F1':>9}" if pairs else "")
    )

    def use(encoder: object) -> None:
        """Serve with `encoder`, with torch's threads as `aduan serve` sets them."""
        bundle.encoder = encoder  # type: ignore[assignment]
        torch.set_num_threads(torch_threads(bundle, args.threads))

    # Single-text latency, in rounds: each path in turn times the same block of
    # texts, after one untimed call, so the host's speed drifting over minutes
    # (it does, on a shared machine) moves every path's figures alike. (Taking
    # turns text by text instead ran every path with cold caches: p50 +5-30 ms.)
    one = texts[: args.latency_texts]
    latency: dict[str, list[float]] = {name: [] for name, _, _ in paths}
    for block in range(0, len(one), LATENCY_BLOCK):
        for name, ctx, encoder in paths:
            use(encoder)
            with ctx():
                predict(bundle, one[block : block + 1])  # warm-up
                for t in one[block : block + LATENCY_BLOCK]:
                    started = time.perf_counter()
                    predict(bundle, [t])
                    latency[name].append((time.perf_counter() - started) * 1000)
    for name, ctx, encoder in paths:
        use(encoder)
        lat = latency[name]
        with ctx():
            started = time.perf_counter()
            preds = predict(bundle, texts, batch_size=32, with_embeddings=True)
            rate = len(texts) / (time.perf_counter() - started)
        tops = {h: [p.heads[h].top[0].label for p in preds] for h in heads}
        emb = np.stack([p.embedding for p in preds])
        if name == "fp32":
            reference, ref_emb = tops, emb
        cells = ""
        for h in heads:
            labelled = [i for i, g in enumerate(gold[h]) if g is not None]
            acc = sum(tops[h][i] == gold[h][i] for i in labelled) / len(labelled)
            agree = sum(a == b for a, b in zip(tops[h], reference[h], strict=True)) / len(texts)
            cells += f"{acc:>14.4f}{agree:>7.3f}"
        cos = float(np.min(np.einsum("ij,ij->i", emb, ref_emb)))
        p90 = statistics.quantiles(lat, n=10)[-1]
        if pairs:
            with ctx():
                cells_f1 = f"{evaluate_dedup(bundle, pairs)['f1']:>9.4f}"
        else:
            cells_f1 = ""
        print(
            f"{name:<16}{statistics.median(lat):>8.1f}{p90:>8.1f}{rate:>9.1f}{cells}{cos:>9.5f}"
            + cells_f1
        )
    use(fp32_encoder)


if __name__ == "__main__":
    main()
