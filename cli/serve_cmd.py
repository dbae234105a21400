"""`aduan serve`: the HTTP API (serving/); `aduan feedback export`; `aduan api-key`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.main import UserError, app, check_output_file

feedback_app = typer.Typer(help="Operator feedback stored by the API.", no_args_is_help=True)
key_app = typer.Typer(help="API keys for ADUAN_API_KEYS.", no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")
app.add_typer(key_app, name="api-key")


def _settings(**overrides: object) -> object:
    from pydantic import ValidationError

    from serving.settings import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "ADUAN_" + str(first["loc"][0]).upper() if first.get("loc") else "a setting"
        raise UserError(f"invalid {name}: {first['msg']}") from None


def model_dir(settings: object) -> Path:
    """The bundle folder the settings name (what `aduan serve` loads); a missing one is
    a user error saying how to make it."""
    from serving.settings import Settings

    assert isinstance(settings, Settings)
    folder = settings.model_path()
    if not folder.exists():
        raise UserError(
            f"{folder}: no model bundle here; build the demo bundle with "
            "`aduan bundle demo` (or `make serve`), or pass --model DIR"
        )
    return folder


@app.command("serve")
def serve(
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", help="Bundle folder (env ADUAN_MODEL; default $ADUAN_HOME/bundles/demo)."
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Address (env ADUAN_HOST; default 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port (env ADUAN_PORT; default 8000).")
    ] = None,
    index: Annotated[
        Path | None,
        typer.Option(
            "--index",
            help="Duplicate index folder (env ADUAN_INDEX; created when absent).",
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (FastAPI + uvicorn); docs at /docs, schema at /openapi.json.

    Every setting is also an ADUAN_* environment variable (see serving/settings.py);
    the options given here win over them. SIGHUP or POST /v1/admin/reload swaps in a new bundle.
    """
    from model.bundle import read_bundle_json
    from serving.security import KeyConfigError, parse_keys
    from serving.settings import Settings

    settings = _settings(model=model, host=host, port=port, index=index)
    assert isinstance(settings, Settings)
    try:
        parse_keys(settings.api_keys)
    except KeyConfigError as exc:
        raise UserError(str(exc)) from None
    read_bundle_json(model_dir(settings))  # a damaged bundle: one clear line, before binding

    # Sleeping, not spinning, OpenMP workers: with the default spin-wait, a torch pool on
    # a machine shared with other jobs took over 1 s for a 45 ms request (bench/serve.py).
    # Must be set before torch loads; an explicit setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    import uvicorn

    from serving.app import create_app
    from serving.logs import setup_logging

    setup_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # the app logs each request itself, with its request id
        lifespan="on",
        timeout_graceful_shutdown=15,
        loop="auto",  # uvloop and httptools (dependencies): faster than asyncio and h11
        http="auto",
    )


@feedback_app.command("export")
def feedback_export(
    out: Annotated[Path, typer.Option("--out", help="JSONL file to write (training data).")],
    feedback_dir: Annotated[
        Path | None,
        typer.Option(
            "--feedback-dir",
            help="Feedback folder (env ADUAN_FEEDBACK_DIR; default $ADUAN_HOME/feedback).",
        ),
    ] = None,
) -> None:
    """Write the latest feedback per complaint id as JSONL for `aduan train --data FILE`."""
    from serving.feedback import FEEDBACK_FILE, export
    from serving.settings import Settings

    settings = _settings(feedback_dir=feedback_dir)
    assert isinstance(settings, Settings)
    # never over the append-only log itself (it would keep one record per id)
    check_output_file(out, settings.feedback_path() / FEEDBACK_FILE)
    n = export(settings.feedback_path(), out)
    typer.echo(f"wrote {n} labelled complaint(s) to {out}")


ScopesOpt = Annotated[
    str, typer.Option("--scopes", help="Comma-separated: route, feedback, admin, or *.")
]


def _entry(key: str, scopes: str) -> str:
    """The ADUAN_API_KEYS entry for a key; bad scopes are a user error."""
    from serving.security import KeyConfigError, key_entry

    try:
        return key_entry(key, scopes)
    except KeyConfigError as exc:
        raise UserError(str(exc)) from None


@key_app.command("new")
def key_new(scopes: ScopesOpt = "route,feedback") -> None:
    """Make a random API key: prints the key (give it to the client; it is not stored)
    and the entry to add to ADUAN_API_KEYS."""
    from serving.security import new_key

    key = new_key()
    entry = _entry(key, scopes)
    typer.echo(f"key:   {key}")
    typer.echo(f"entry: {entry}")


@key_app.command("hash")
def key_hash(scopes: ScopesOpt = "route,feedback") -> None:
    """Read a key from stdin (not the command line, which shell history keeps) and print
    its ADUAN_API_KEYS entry."""
    try:
        key = sys.stdin.readline().strip()
    except UnicodeDecodeError:
        raise UserError("the key on stdin is not valid UTF-8 text") from None
    if not key:
        raise UserError('no key on stdin; e.g. `printf %s "$KEY" | aduan api-key hash`')
    typer.echo(_entry(key, scopes))
