"""Foundation figures: encoder conversion time, bundle load time, RSS, predict throughput.

    python bench/foundation.py [--data surabaya-2022] [--limit N] [--threads 2]

Converts the encoder into a fresh temporary $ADUAN_HOME (so the conversion is
really timed), saves an untrained bundle, loads it back, then runs the bundle's
`predict` over the texts and, as the peer in the same run, sentence-transformers'
own `encode` on the same texts with the same prompt and max length. Prints no
complaint text.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="surabaya-2022")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from data.load import load_complaints
    from model.bundle import Bundle
    from model.encoder import ensure_encoder
    from model.predict import predict

    texts = load_complaints(args.data, limit=args.limit).texts()
    print(f"data: {args.data}, {len(texts)} texts; torch threads: {args.threads}")

    with tempfile.TemporaryDirectory(prefix="aduan-bench-") as home:
        os.environ["ADUAN_HOME"] = home
        t0 = time.perf_counter()
        enc_dir = ensure_encoder()
        convert_s = time.perf_counter() - t0
        print(f"encoder conversion:          {convert_s:6.1f} s   (peak RSS {rss_mb():.0f} MB)")

        bundle = Bundle.new(enc_dir, {"head": ["a", "b", "c"]})
        bundle.save(Path(home) / "bundle")
        del bundle
        t0 = time.perf_counter()
        bundle = Bundle.load(Path(home) / "bundle")
        print(f"bundle load (encoder+heads): {time.perf_counter() - t0:6.1f} s")

        n = len(texts)
        t0 = time.perf_counter()
        predict(bundle, texts, batch_size=args.batch_size)
        ours = n / (time.perf_counter() - t0)

        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(enc_dir), device="cpu", local_files_only=True)
        st.max_seq_length = bundle.encoder_spec.max_length
        t0 = time.perf_counter()
        st.encode(texts, prompt="query: ", batch_size=args.batch_size, show_progress_bar=False)
        peer = n / (time.perf_counter() - t0)

    print(f"{'':28} {'texts/s':>8}")
    print(f"{'aduan predict (all heads)':28} {ours:8.1f}")
    print(f"{'sentence-transformers encode':28} {peer:8.1f}")
    print(f"peak RSS of this process: {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
