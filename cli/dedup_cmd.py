"""`aduan dedup calibrate|score|clusters`: duplicate complaints (README: "Duplicate detection")."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.main import (
    DataOpt,
    IdColOpt,
    SplitOpt,
    TextColOpt,
    ThreadsOpt,
    UserError,
    _echo_json,
    _set_threads,
    app,
    check_output_file,
)
from model.files import atomic_output

dedup_app = typer.Typer(
    help="Find duplicate complaints: calibrate the pair scorer, score pairs, group clusters.",
    no_args_is_help=True,
)
app.add_typer(dedup_app, name="dedup")

ModelOpt = Annotated[Path, typer.Option("--model", help="Bundle directory.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Encoder batch size.")]


def _read_pairs(
    pairs: Path, data: str | None, *, require_labels: bool
) -> tuple[list, list[str] | None]:
    """The pairs, and the texts of the `--data` complaints (None without --data)."""
    from data.load import load_complaints
    from data.pairs import pairs_from_ids, read_pairs_jsonl

    if pairs.suffix.lower() == ".csv":
        if not data:
            raise UserError(
                f"{pairs}: an id_a,id_b,label CSV names complaints by id; "
                f"pass --data with the complaints it was labelled on (e.g. --data surabaya-2022)"
            )
        complaints = load_complaints(data)
        return pairs_from_ids(pairs, complaints), complaints.texts()
    found = read_pairs_jsonl(pairs, require_labels=require_labels)
    return found, load_complaints(data).texts() if data else None


def _load_bundle(model: Path, threads: int | None) -> Any:
    """Load the bundle to score with; warn when its scorer was never calibrated."""
    from model.bundle import Bundle

    _set_threads(threads)
    bundle = Bundle.load(model)
    if not bundle.dedup.calibrated:
        typer.echo(
            "warning: this bundle's duplicate scorer is not calibrated; only exact "
            "re-submissions count as duplicates (run `aduan dedup calibrate`)",
            err=True,
        )
    return bundle


@dedup_app.command("calibrate")
def dedup_calibrate(
    model: ModelOpt,
    pairs: Annotated[
        Path,
        typer.Option("--pairs", help="Labelled pairs: a pairs JSONL, or an id_a,id_b,label CSV."),
    ],
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Complaints the pairs come from (a file or a name): where an ids CSV's "
            "texts are looked up, and what word rarity is counted over.",
        ),
    ] = None,
    window_days: Annotated[
        int | None,
        typer.Option("--window-days", min=1, help="Candidate time window to store (days)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the cross-validation folds.")] = 0,
    batch_size: BatchOpt = 32,
    threads: ThreadsOpt = None,
) -> None:
    """Fit the bundle's duplicate scorer and threshold on labelled pairs; save the bundle.

    The threshold maximises F1 on cross-validated scores; the bundle records
    the cross-validated precision, recall and F1, and the number of pairs.
    How rare each word is (the `shared_rare_words` feature) is counted over
    the --data complaints, or without --data (a JSONL file) over the pairs'
    own texts.
    """
    from model.bundle import Bundle
    from training.dedup import calibrate_dedup

    _set_threads(threads)
    bundle = Bundle.load(model)
    labelled, documents = _read_pairs(pairs, data, require_labels=True)
    if window_days is not None:
        bundle.dedup.window_days = window_days
    started = time.perf_counter()
    try:
        spec = calibrate_dedup(
            bundle, labelled, documents=documents, batch_size=batch_size, seed=seed
        )
    except ValueError as exc:
        raise UserError(f"{pairs}: {exc}") from None
    spec.metrics["source"] = pairs.name
    bundle.save(model, overwrite=True)
    _echo_json(
        {
            "model": str(model),
            "version": bundle.version,
            "pairs": len(labelled),
            "threshold": round(spec.threshold, 6),
            "cross_validated": spec.metrics["cross_validated"],
            "seconds": round(time.perf_counter() - started, 1),
        }
    )


@dedup_app.command("score")
def dedup_score(
    model: ModelOpt,
    pairs: Annotated[Path, typer.Option("--pairs", help="Pairs JSONL (README format).")],
    out: Annotated[Path, typer.Option("--out", help="Output JSONL, one line per pair.")],
    batch_size: BatchOpt = 32,
    threads: ThreadsOpt = None,
) -> None:
    """Score pairs: write {"pair", "score", "duplicate"} per input line, in input order.

    `score` is the calibrated duplicate probability; `duplicate` is `score`
    at or above the bundle's threshold. An uncalibrated bundle marks only
    exact re-submissions as duplicates (and says so on stderr).
    """
    from data.pairs import read_pairs_jsonl
    from model.dedup import DuplicateFinder
    from training.dedup import embed_pairs

    check_output_file(out, pairs)
    bundle = _load_bundle(model, threads)
    items = read_pairs_jsonl(pairs)
    finder = DuplicateFinder(bundle)
    a, b, va, vb = embed_pairs(finder, items, batch_size=batch_size)
    scores = finder.score_pairs(a, b, va, vb)
    with atomic_output(out) as fh:
        for p, s in zip(items, scores, strict=True):
            line = {"pair": p.pair, "score": round(float(s), 6)}
            line["duplicate"] = bool(s >= bundle.dedup.threshold)
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    n_dup = int((scores >= bundle.dedup.threshold).sum())
    typer.echo(f"wrote {len(items)} scores to {out} ({n_dup} duplicates)", err=True)


@dedup_app.command("clusters")
def dedup_clusters(
    model: ModelOpt,
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Output JSONL, one group per line.")],
    window_days: Annotated[
        int, typer.Option("--window-days", min=1, help="Only join complaints this close in time.")
    ] = 14,
    split: SplitOpt = None,
    text_column: TextColOpt = None,
    id_column: IdColOpt = None,
    batch_size: BatchOpt = 32,
    threads: ThreadsOpt = None,
) -> None:
    """Group near-duplicate complaints (mass complaints), largest group first.

    Each line: {"cluster", "size", "first", "last", "members": [{"id",
    "created_at", "kecamatan", "kelurahan", "snippet"}]} with redacted snippets.
    """
    from data.load import load_complaints
    from model.dedup import DuplicateFinder, clusters, complaints_as_records, parse_time

    check_output_file(out, data)
    bundle = _load_bundle(model, threads)
    c = load_complaints(data, split=split, text_column=text_column, id_column=id_column)
    records = complaints_as_records(c)
    finder = DuplicateFinder(bundle)
    vectors = finder.embed([r.text for r in records], batch_size=batch_size)
    groups = clusters(finder, records, vectors, window_days=window_days)
    with atomic_output(out) as fh:
        for n, rows in enumerate(groups, start=1):
            # in time order (as instants: "+07:00" and "Z" times compare right), undated last
            when = {i: parse_time(records[i].created_at) for i in rows}
            dated = sorted((i for i in rows if when[i]), key=lambda i: (when[i], records[i].id))
            undated = sorted((i for i in rows if not when[i]), key=lambda i: records[i].id)
            members = [records[i] for i in dated + undated]
            line = {
                "cluster": n,
                "size": len(members),
                "first": records[dated[0]].created_at if dated else None,
                "last": records[dated[-1]].created_at if dated else None,
                "members": [
                    {
                        "id": m.id,
                        "created_at": m.created_at,
                        "kecamatan": m.kecamatan,
                        "kelurahan": m.kelurahan,
                        "snippet": m.snippet,
                    }
                    for m in members
                ],
            }
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    in_groups = sum(len(g) for g in groups)
    typer.echo(
        f"wrote {len(groups)} groups covering {in_groups} of {len(records)} complaints to {out}",
        err=True,
    )
