"""`aduan index add|stats`: fill the API's duplicate index from a file, and describe it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.main import DataOpt, IdColOpt, SplitOpt, TextColOpt, UserError, _echo_json, app
from cli.serve_cmd import _settings, model_dir

index_app = typer.Typer(
    help="The duplicate index the API searches: fill it from a file, describe it.",
    no_args_is_help=True,
)
app.add_typer(index_app, name="index")

ModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--model", help="Bundle folder (env ADUAN_MODEL; default $ADUAN_HOME/bundles/demo)."
    ),
]
IndexOpt = Annotated[
    Path | None,
    typer.Option(
        "--index",
        help="Index folder (env ADUAN_INDEX; default $ADUAN_HOME/index/default).",
    ),
]


def _open(settings: Any) -> tuple[Any, Any]:
    """The duplicate finder of the serving bundle (with the server's runtime) and the
    index, re-embedded if it was built in another vector space, as `aduan serve`
    opens them."""
    from model.dedup import DuplicateFinder
    from serving import reindex
    from serving.service import load_bundle

    index_dir = settings.index_path()
    bundle = load_bundle(model_dir(settings), runtime=settings.runtime, threads=settings.threads())
    finder = DuplicateFinder(bundle)
    index, reembedded = reindex.open_for(index_dir, finder)
    if reembedded is not None:
        typer.echo(
            f"re-embedded the {reembedded} complaint(s) already in {index_dir} for this model",
            err=True,
        )
    return finder, index


@index_app.command("add")
def index_add(
    data: DataOpt,
    model: ModelOpt = None,
    index: IndexOpt = None,
    runtime: Annotated[
        str | None,
        typer.Option(
            "--runtime",
            help="Encoder runtime (env ADUAN_RUNTIME; default onnx-int8, as `aduan serve`).",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Encoder batch size.")] = 32,
    commit_every: Annotated[
        int, typer.Option("--commit-every", min=1, help="Rows per index transaction.")
    ] = 512,
    split: SplitOpt = None,
    text_column: TextColOpt = None,
    id_column: IdColOpt = None,
) -> None:
    """Add every row of --data to the duplicate index, as POST /v1/complaints would.

    Rows keep their id, created_at and location fields (city, kecamatan,
    kelurahan, address, region_code). Ids already in the index are skipped
    without being embedded, so running the command again after an interruption
    continues where the last committed transaction ended. The bundle, index
    and runtime are the ones `aduan serve` would use (the same options and
    ADUAN_* variables), so the server finds the index in its own vector space.
    The index belongs to one process at a time: stop the server first.
    """
    from tqdm.auto import tqdm

    from data.load import load_complaints
    from model.dedup import complaints_as_records
    from serving.settings import Settings

    settings = _settings(model=model, index=index, runtime=runtime)
    assert isinstance(settings, Settings)
    c = load_complaints(data, split=split, text_column=text_column, id_column=id_column)
    if c.n_dropped_empty:
        typer.echo(f"skipped {c.n_dropped_empty} row(s) with empty text", err=True)
    undated = sum(t is None for t in c.created_at())
    if undated:
        typer.echo(
            f"{undated} row(s) have no created_at: they are stored without a time, and "
            "duplicate searches limited to a time window do not find them",
            err=True,
        )
    records = complaints_as_records(c)
    finder, idx = _open(settings)
    added = present = 0
    started = time.perf_counter()
    try:
        with tqdm(total=len(records), desc="indexing", unit="complaint", leave=False) as bar:
            for lo in range(0, len(records), commit_every):
                part = records[lo : lo + commit_every]
                stored = idx.get([r.id for r in part])
                todo = [r for r in part if r.id not in stored]
                if todo:
                    vectors = finder.embed([r.text for r in todo], batch_size=batch_size)
                    idx.add(todo, vectors)
                added += len(todo)
                present += len(part) - len(todo)
                bar.update(len(part))
        size = len(idx)
    finally:
        idx.close()
    seconds = time.perf_counter() - started
    _echo_json(
        {
            "index": str(settings.index_path()),
            "added": added,
            "already_there": present,
            "size": size,
            "seconds": round(seconds, 1),
            "embedding_id": finder.embedding_id,
        }
    )


@index_app.command("stats")
def index_stats(index: IndexOpt = None) -> None:
    """Describe the index: size, faiss kind, memory, snapshot, embedding (no complaint data).

    Opens the index in the vector space it was built in; no model is loaded.
    """
    from model.index import DB_FILE, open_index, read_index_identity
    from serving.settings import Settings

    settings = _settings(index=index)
    assert isinstance(settings, Settings)
    path = settings.index_path()
    identity = read_index_identity(path)
    if identity is None:
        if (path / DB_FILE).is_file():
            raise UserError(f"{path / DB_FILE}: damaged or not an aduan index database")
        raise UserError(f"{path}: no index here (`aduan index add` creates one)")
    embedding_id, dim = identity
    with open_index(path, dim=dim, embedding_id=embedding_id, create=False) as idx:
        _echo_json(idx.stats())
