"""Settings of the HTTP API, read from `ADUAN_…` environment variables.

Every field below is one environment variable: the field name in upper case
with the `ADUAN_` prefix (`max_batch` -> `ADUAN_MAX_BATCH`). Options given to
`aduan serve` (`--model`, `--index`, `--host`, `--port`) override them.

`settings_table()` renders every field as a Markdown table (variable, default,
meaning) from the field descriptions below, so the README's table and this
class cannot drift apart.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.paths import aduan_home

#: The most labels per head a request may ask for.
MAX_TOP_K = 50


class Settings(BaseSettings):
    """The API's settings; each field is the environment variable `ADUAN_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="ADUAN_", extra="ignore", frozen=True)

    model: Path | None = Field(
        default=None, description="Model bundle folder (default: $ADUAN_HOME/bundles/demo)."
    )
    index: Path | None = Field(
        default=None, description="Duplicate index folder (default: $ADUAN_HOME/index/default)."
    )
    directory: Path | None = Field(
        default=None,
        description="Agency directory CSV to route over instead of the bundle's own; "
        "re-read on every reload, so office edits need no retraining.",
    )
    scope: str = Field(
        default="",
        description="Deployment scope: the region codes or names (comma-separated, e.g. "
        "'Kota Surabaya') whose offices this deployment routes to, within the bundle's own "
        "scope. Empty: the bundle's scope.",
    )
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port to listen on.")
    api_keys: str = Field(
        default="",
        description=(
            "Accepted API keys: entries 'sha256:<hex of the key>:<scope>,<scope>' separated by "
            "spaces or ';'. Scopes: route, feedback, admin, or * for all. Empty: no "
            "authentication. Make one with `aduan api-key new --scopes route,admin`."
        ),
    )
    max_text_chars: int = Field(
        default=20000, ge=1, description="Longest complaint text (characters)."
    )
    max_batch: int = Field(default=64, ge=1, description="Most complaints in one batch request.")
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Largest request body in bytes (413 beyond)."
    )
    batch_wait_ms: float = Field(
        default=0.0,
        ge=0,
        le=1000,
        description="Wait for more requests before a model call (ms). 0: take what is "
        "queued at once; requests arriving while the model is busy form the next batch, "
        "so a lone request never waits and batches still grow under load.",
    )
    encode_batch: int = Field(
        default=4,
        ge=1,
        description="Texts per encoder pass inside a micro-batch (sorted by length). Small "
        "is best on CPU: padding a long batch costs more than batching saves.",
    )
    runtime: Literal["onnx-int8", "onnx", "torch"] = Field(
        default="onnx-int8",
        description="What runs the encoder's forward pass. onnx-int8: ONNX Runtime with "
        "fused attention and int8 weights, made once per bundle into $ADUAN_HOME/onnx; "
        "the fastest (bench/fastpath.py: about 2x onnx), with answers and embeddings close "
        "to fp32 but not equal. onnx: ONNX Runtime in fp32, the same answers and "
        "embeddings as torch. torch: eager PyTorch, with ADUAN_BF16.",
    )
    bf16: bool | None = Field(
        default=None,
        description="With ADUAN_RUNTIME=torch: run the model under bf16 autocast. Empty (the "
        "default): on when the CPU "
        "has native bf16 (AVX512-BF16 or AMX), where bench/fastpath.py measured 1.3x lower "
        "latency and 1.6x throughput for an accuracy change of -0.001 to -0.002; off "
        "elsewhere, where it would only slow the model down.",
    )
    micro_batch: int = Field(default=32, ge=1, description="Most complaints in one model call.")
    max_queue: int = Field(
        default=256,
        ge=1,
        description="Most complaints waiting for the model; beyond: 503 + Retry-After.",
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="A request waiting longer than this for the model gets 503."
    )
    top_k: int = Field(default=3, ge=1, le=MAX_TOP_K, description="Default labels per head.")
    duplicates_k: int = Field(default=5, ge=1, le=100, description="Most duplicates per complaint.")
    feedback_dir: Path | None = Field(
        default=None, description="Feedback folder (default: $ADUAN_HOME/feedback)."
    )
    cors_origins: str = Field(
        default="",
        description="Allowed CORS origins, comma-separated; empty means no CORS headers.",
    )
    log_level: str = Field(
        default="INFO", description="Server log level (DEBUG, INFO, WARNING, ...)."
    )
    torch_threads: int | None = Field(
        default=None,
        ge=1,
        description=(
            "CPU threads for the encoder (default: all cores): torch's, or ONNX Runtime's"
            " with an onnx runtime (torch then keeps one thread for the small ops left)."
        ),
    )

    # ----------------------------------------------------------------- resolved
    def model_path(self) -> Path:
        return self.model or aduan_home() / "bundles" / "demo"

    def index_path(self) -> Path:
        return self.index or aduan_home() / "index" / "default"

    def feedback_path(self) -> Path:
        return self.feedback_dir or aduan_home() / "feedback"

    def scope_list(self) -> list[str]:
        return _comma_list(self.scope)

    def cors_list(self) -> list[str]:
        return _comma_list(self.cors_origins)

    def threads(self) -> int:
        return self.torch_threads or max(1, os.cpu_count() or 1)


def _comma_list(value: str) -> list[str]:
    """The non-empty items of a comma-separated setting, stripped."""
    return [v.strip() for v in value.split(",") if v.strip()]


def settings_table() -> str:
    """The settings as a Markdown table: variable, default, meaning."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = info.default
        shown = "(see meaning)" if default is None else f"`{default}`" if default != "" else "empty"
        rows.append(f"| `ADUAN_{name.upper()}` | {shown} | {info.description} |")
    return "\n".join(rows)
