"""Measure the PII redactor on real complaints without printing any of their text.

    python bench/redactor.py [--data PATH] [--raw]

Reads the `text` field of a complaint JSONL file (by default the Surabaya 2022
set in the shared data folder: `$ADUAN_SHARED_DATA`, or `<repo>/../shared/data`)
and prints one table:

- for each kind that `data.text.count_pii` knows, the number of texts with at
  least one match and the number of matches, before and after `redact`; after
  must be 0 (the script exits with status 1 otherwise);
- the same for a few deliberately loose detectors defined here, independent of
  the redactor's patterns, so the "after" columns show what may have slipped
  through (or what the redactor keeps on purpose: money, date ranges, social
  media handles);
- throughput of `redact` and of `snippet` (normalise + redact + truncate).

Only counts and rates are printed, never text: the data holds real NIK
numbers, phone numbers and addresses. Texts are normalised with
`normalize_text` first, as `snippet` does (`--raw` skips that).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from data.text import PII_KINDS, count_pii, normalize_text, redact, snippet

SHARED_DATA_ENV = "ADUAN_SHARED_DATA"
DEFAULT_SET = Path("surabaya") / "complaints-2022.jsonl"

# Loose detectors: simpler and wider than the redactor's patterns on purpose.
LOOSE: dict[str, re.Pattern[str]] = {
    # any 10+ digits, single space/dot/dash allowed between them
    "loose:digits>=10": re.compile(r"\d(?:[ .\-]?\d){9,}"),
    # an "@" with a dot somewhere after it in the same token
    "loose:@...": re.compile(r"@[^\s@]*\.[^\s@]"),
    # a mobile-looking start ("08", "+62 8", "62 8") with 7+ more digits
    "loose:08/+62 8": re.compile(r"(?<!\d)(?:\+\s?62|62|0)[ .\-]?8(?:[ .\-]?\d){7,}"),
}


def default_data() -> Path:
    """The Surabaya set in the shared data folder (env var, else beside the repo)."""
    root = os.environ.get(SHARED_DATA_ENV)
    base = Path(root) if root else Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    return base / DEFAULT_SET


def read_texts(path: Path) -> list[str]:
    """The `text` field of each JSONL row (missing or null text counts as "")."""
    texts = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                value = json.loads(line).get("text")
                texts.append(value if isinstance(value, str) else "")
    return texts


def tally(texts: Sequence[str]) -> dict[str, tuple[int, int]]:
    """For each kind and loose detector: (texts with a match, matches)."""
    out = {k: [0, 0] for k in [*PII_KINDS, *LOOSE]}
    for text in texts:
        counts = count_pii(text)
        for kind, n in counts.items():
            out[kind][0] += n > 0
            out[kind][1] += n
        for name, pattern in LOOSE.items():
            n = len(pattern.findall(text))
            out[name][0] += n > 0
            out[name][1] += n
    return {k: (v[0], v[1]) for k, v in out.items()}


def rate(fn: Callable[[str], object], texts: Sequence[str], repeat: int = 3) -> float:
    """Best-of-`repeat` throughput of `fn` over `texts`, in texts per second."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for text in texts:
            fn(text)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="complaint JSONL with a text field")
    parser.add_argument("--raw", action="store_true", help="do not normalise texts first")
    args = parser.parse_args(argv)

    path: Path = args.data or default_data()
    if not path.is_file():
        print(
            f"error: no complaint file at {path}; pass --data PATH or set ${SHARED_DATA_ENV} "
            "to the shared data folder",
            file=sys.stderr,
        )
        return 2

    raw = read_texts(path)
    texts = raw if args.raw else [normalize_text(t) for t in raw]
    redacted = [redact(t) for t in texts]
    before, after = tally(texts), tally(redacted)

    chars = sum(map(len, texts))
    mean = chars / max(1, len(texts))
    print(f"{path.name}: {len(texts):,} texts, mean {mean:.0f} chars", end="")
    print(" (raw)" if args.raw else " (normalised)")
    print()
    header = f"{'kind':<18} {'texts before':>12} {'matches before':>14} "
    print(header + f"{'texts after':>11} {'matches after':>13}")
    for name, (t_before, m_before) in before.items():
        t_after, m_after = after[name]
        print(f"{name:<18} {t_before:>12,} {m_before:>14,} {t_after:>11,} {m_after:>13,}")

    redact_rate = rate(redact, texts)
    snippet_rate = rate(snippet, raw)
    print()
    print(
        f"redact : {redact_rate:>9,.0f} texts/s  ({redact_rate * mean / 1e6:.1f} M chars/s, "
        f"~{redact_rate * mean / 500:,.0f} texts/s at 500 chars)"
    )
    print(
        f"snippet: {snippet_rate:>9,.0f} texts/s  (normalise + redact + truncate, "
        f"~{snippet_rate * mean / 500:,.0f} texts/s at 500 chars)"
    )

    leaked = sum(after[k][1] for k in PII_KINDS)
    if leaked:
        print(f"\nFAIL: {leaked} match(es) left after redaction", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
