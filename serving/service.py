"""The running service: loading, readiness, the model worker, reloads, feedback.

One `Service` per app. It loads the bundle and opens the index once (in a
background thread, so `/healthz` answers at once and `/readyz` says 503 until
both are ready), owns the micro-batcher and its single worker thread, and
swaps models on reload.

Reload: the new bundle is loaded and checked (a tiny prediction, the dedup
scorer's features) off the event loop while the old one keeps serving; then
the `Served` value is replaced in one assignment. A batch reads it once at its
start, so requests in flight finish on the old bundle and nothing fails. When
the new bundle's duplicate embedding differs, the index is re-embedded first
(see `serving.reindex`), and the index swap runs on the worker thread. A
failed load keeps the old model and is reported as `reload_failed` (422).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from data.schema import DataError
from data.text import redact
from model.bundle import Bundle, BundleError
from model.dedup import FEATURES, DuplicateFinder, score_features
from model.index import ComplaintIndex, ComplaintIndexError, IndexedComplaint, open_index
from model.network import native_bf16
from model.onnx import use_runtime
from model.predict import predict
from serving import reindex
from serving.batcher import MicroBatcher
from serving.engine import Engine, Served
from serving.feedback import FeedbackStore
from serving.metrics import Metrics
from serving.settings import Settings

log = logging.getLogger("aduan.serving")


class ReloadError(Exception):
    """A reload was refused or failed; `code` and `status` say how to answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def load_bundle(
    path: Path,
    *,
    runtime: str = "torch",
    threads: int = 1,
    directory: Path | None = None,
    scope: list[str] | None = None,
) -> Bundle:
    """Load a bundle and check that it predicts and that its dedup scorer is usable.

    With `runtime="onnx"` (or "onnx-int8") the encoder's forward pass runs in
    ONNX Runtime (model.onnx); if the export fails, the bundle is served with torch and a
    warning says why. `directory` replaces the bundle's agency directory and
    `scope` narrows its deployment scope.
    """
    bundle = Bundle.load(path)
    if not bundle.head_specs:
        raise BundleError(f"{path}: the bundle has no heads")
    if directory is not None:
        try:
            bundle.use_directory(directory)
        except DataError as exc:
            raise BundleError(f"ADUAN_DIRECTORY: {exc}") from None
    if scope:
        try:
            bundle.use_scope(scope)
        except DataError as exc:
            raise BundleError(f"ADUAN_SCOPE: {exc}") from None
    if runtime != "torch":
        try:
            use_runtime(bundle, runtime, threads=threads)
        except Exception as exc:  # the torch path still works: serve with it
            log.warning(
                "ONNX Runtime unavailable for %s (%s); using torch", path, type(exc).__name__
            )
    predict(bundle, ["uji coba lampu jalan mati"], top_k=1)
    try:
        score_features(bundle.dedup, np.zeros((1, len(FEATURES))))
    except ValueError as exc:
        raise BundleError(f"{path}: {exc}") from None
    return bundle


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def freeze_heap() -> None:
    """Hide what is loaded from the cyclic garbage collector (`gc.freeze`).

    A loaded bundle is hundreds of thousands of long-lived objects that the
    collector tracks (488,000 for the Surabaya serving bundle). A full
    collection walks them all, 221 ms for that bundle, and no request moves
    meanwhile. Loading ran nine of them and 600 requests none, but any one
    that comes later stalls every request in flight. Frozen, a full
    collection skips them (0.0 ms); reference counting still frees them once
    they are dropped. The previous load's objects are unfrozen and collected
    first, so a reload leaves no frozen garbage of the old model behind.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class Service:
    """Loads and serves one model at a time; see the module docstring."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.engine = Engine(
            metrics,
            encode_batch=settings.encode_batch,
            duplicates_k=settings.duplicates_k,
            threads=settings.threads(),
            bf16=settings.runtime == "torch"
            and (native_bf16() if settings.bf16 is None else settings.bf16),
        )
        self.feedback = FeedbackStore(settings.feedback_path())
        self.batcher: MicroBatcher | None = None
        self.status = "loading"
        self.reason: str | None = "loading the model and the duplicate index"
        self.model_path = settings.model_path()
        self.index_path = settings.index_path()
        self.reloading = False
        self._cancel = threading.Event()
        self._loader: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle
    async def start(self, *, wait: bool = False) -> None:
        """Start the worker; load the model in the background (or before returning)."""
        import torch

        torch.set_num_threads(self.settings.threads())
        s = self.settings
        self.batcher = MicroBatcher(
            self.engine.process,
            max_batch=s.micro_batch,
            wait_s=s.batch_wait_ms / 1000,
            max_queue=s.max_queue,
            timeout_s=s.request_timeout_s,
            on_depth=self.metrics.queue_depth.set,
        )
        self.batcher.start()
        self.metrics.set_index_size(self._index_size)
        if wait:
            await asyncio.to_thread(self._load)
        else:
            self._loader = threading.Thread(target=self._load, name="aduan-load", daemon=True)
            self._loader.start()

    async def stop(self) -> None:
        self._cancel.set()
        if self.batcher is not None:
            await self.batcher.stop()
        if self._loader is not None:
            await asyncio.to_thread(self._loader.join, 60)
        served = self.engine.served
        if served is not None:
            await asyncio.to_thread(served.index.close)
        self.status, self.reason = "failed", "the server stopped"

    def _index_size(self) -> float:
        served = self.engine.served
        return float(len(served.index)) if served is not None else 0.0

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            bundle = load_bundle(
                self.model_path,
                runtime=self.settings.runtime,
                threads=self.settings.threads(),
                directory=self.settings.directory,
                scope=self.settings.scope_list(),
            )
            finder = DuplicateFinder(bundle)
            index, n = reindex.open_for(
                self.index_path, finder, progress=self._progress, cancel=self._cancel
            )
        except reindex.Cancelled:
            self.status, self.reason = "failed", "stopped while re-embedding the index"
            return
        except Exception as exc:  # the server stays up and says why it is not ready
            self.status, self.reason = "failed", _load_error(exc)
            log.error("not ready: %s", self.reason)
            return
        self.engine.served = Served(bundle, finder, index, self.model_path, _now())
        freeze_heap()
        self.metrics.set_model(bundle.version, bundle.name)
        self.status, self.reason = "ready", None
        log.info(
            "ready in %.1f s: model %s (%s), index %d complaints%s",
            time.perf_counter() - started,
            bundle.version,
            bundle.name,
            len(index),
            f", {n} re-embedded" if n is not None else "",
        )

    def _progress(self, done: int, total: int) -> None:
        self.status = "reindexing"
        self.reason = f"re-embedding the duplicate index for this model: {done}/{total} complaints"
        if done == total or done % 5000 < 256:
            log.info("%s", self.reason)

    def ready(self) -> Served | None:
        return self.engine.served if self.status == "ready" else None

    # ------------------------------------------------------------------- reload
    async def reload(self, path: str | None = None, *, source: str = "api") -> dict[str, Any]:
        """Load a bundle (default: the served path, re-read) and swap it in; see above."""
        old = self.ready()
        if old is None or self.batcher is None:
            raise ReloadError(503, "not_ready", f"cannot reload while {self.status}")
        if self.reloading:
            raise ReloadError(409, "reload_in_progress", "another reload is running; try later")
        self.reloading = True
        started = time.perf_counter()
        try:
            try:
                target = _expanded(path) if path else self.model_path
                bundle = await asyncio.to_thread(
                    load_bundle,
                    target,
                    runtime=self.settings.runtime,
                    threads=self.settings.threads(),
                    directory=self.settings.directory,
                    scope=self.settings.scope_list(),
                )
            except Exception as exc:
                self.metrics.reloads.labels(result="failed").inc()
                reason = _load_error(exc)
                log.warning("reload (%s) failed, still serving %s: %s", source, old.version, reason)
                raise ReloadError(
                    422,
                    "reload_failed",
                    f"the model was not reloaded, {old.version} keeps serving: {reason}",
                ) from None
            finder = DuplicateFinder(bundle)
            reindexed: int | None = None
            if (finder.embedding_id, finder.dim) == (old.finder.embedding_id, old.finder.dim):
                self.engine.served = Served(bundle, finder, old.index, target, _now())
            else:
                reindexed = await self._reembed_and_swap(old, bundle, finder, target)
            self.model_path = target
            previous = old.version
            del old  # what only the old model used can now be collected
            freeze_heap()
            self.metrics.set_model(bundle.version, bundle.name)
            self.metrics.reloads.labels(result="ok").inc()
            seconds = time.perf_counter() - started
            log.info(
                "reloaded (%s) in %.1f s: model %s -> %s", source, seconds, previous,
                bundle.version,
            )  # fmt: skip
            return {
                "model_version": bundle.version or "unsaved",
                "previous_version": previous,
                "path": str(target),
                "reindexed": reindexed,
                "seconds": round(seconds, 3),
            }
        finally:
            self.reloading = False

    async def _reembed_and_swap(
        self, old: Served, bundle: Bundle, finder: DuplicateFinder, target: Path
    ) -> int:
        """Fill a fresh index for the new embedding while the old model serves, then swap."""
        assert self.batcher is not None
        path = self.index_path
        fresh_path = reindex.sibling(path, finder.embedding_id)
        self.engine.journal = set()
        log.info("the new model embeds duplicates differently: re-embedding the index")

        def build() -> tuple[ComplaintIndex, int]:
            fresh = open_index(fresh_path, dim=finder.dim, embedding_id=finder.embedding_id)
            try:
                return fresh, reindex.reembed(old.index, fresh, finder, cancel=self._cancel)
            except BaseException:
                fresh.close()
                raise

        try:
            fresh, n = await asyncio.to_thread(build)
        except Exception as exc:
            self.engine.journal = None
            self.metrics.reloads.labels(result="failed").inc()
            raise ReloadError(
                422 if isinstance(exc, ComplaintIndexError) else 500,
                "reload_failed",
                f"re-embedding the index failed, {old.version} keeps serving: {_load_error(exc)}",
            ) from None

        def swap() -> None:  # on the worker thread: no index write can slip in
            journal, self.engine.journal = self.engine.journal or set(), None
            reindex.replay(old.index, fresh, finder, journal)
            fresh.close()
            old.index.close()
            try:
                reindex.swap_folders(path, fresh_path)
                index = open_index(path, dim=finder.dim, embedding_id=finder.embedding_id)
            except Exception:
                # Put the old index back so the old model keeps working.
                if not path.exists() and reindex.backup_path(path).exists():
                    reindex.backup_path(path).rename(path)
                back = open_index(path, dim=old.finder.dim, embedding_id=old.finder.embedding_id)
                self.engine.served = Served(old.bundle, old.finder, back, old.path, old.loaded_at)
                raise
            self.engine.served = Served(bundle, finder, index, target, _now())

        try:
            await self.batcher.call(swap)
        except Exception as exc:
            self.metrics.reloads.labels(result="failed").inc()
            raise ReloadError(
                500, "reload_failed", f"swapping the index failed: {_load_error(exc)}"
            ) from None
        return n

    # --------------------------------------------------------------- feedback
    async def lookup(self, complaint_id: str) -> IndexedComplaint | None:
        served = self.ready()
        if served is None:
            return None
        found = await asyncio.to_thread(served.index.get, [complaint_id])
        return found.get(complaint_id)

    # ------------------------------------------------------------------- model
    def _runtime(self, bundle: Bundle) -> str:
        """What runs the encoder now (a failed ONNX export falls back to torch)."""
        session = bundle.encoder.onnx
        if session is not None:
            return "onnx-int8" if session.int8 else "onnx"
        return "torch-bf16" if self.engine.bf16 else "torch"

    def model_info(self, served: Served) -> dict[str, Any]:
        b = served.bundle
        heads = {
            name: {
                "labels": spec.labels,
                "n_labels": len(spec.labels),
                "trained": spec.trained,
                "temperature": spec.temperature,
                "abstain_threshold": spec.abstain_threshold,
                "rare_labels": spec.rare_labels,
                "lexical_mix": spec.lexical_mix if b.lexical is not None else None,
            }
            for name, spec in b.head_specs.items()
        }
        dedup = b.dedup
        training = b.training if isinstance(b.training, dict) else {}
        data = training.get("data", {})
        return _jsonable(
            {
                "name": b.name,
                "version": served.version,
                "path": str(served.path),
                "created_at": b.created_at,
                "loaded_at": served.loaded_at,
                "encoder": {
                    "name": b.encoder_spec.name,
                    "fine_tuned": b.encoder_spec.fine_tuned,
                    "max_length": b.encoder_spec.max_length,
                    "runtime": self._runtime(b),
                },
                "heads": heads,
                "training_data": data,
                # dev metrics are those of the fit before the dev rows joined it (if they did),
                # or of cross-fitted dev probabilities (refit_mix_folds)
                "dev_metrics": b.metrics.get("dev", b.metrics),
                "refit_with_dev": training.get("refit_with_dev"),
                "dedup": {
                    "calibrated": dedup.calibrated,
                    "threshold": dedup.threshold,
                    "window_days": dedup.window_days,
                    "candidates": dedup.candidates,
                    "prompt": dedup.prompt,
                    "metrics": dedup.metrics,
                    "embedding_id": served.finder.embedding_id,
                },
                "index": {"size": len(served.index), "path": str(self.index_path)},
                "routing": _routing_info(b),
                "lexical": b.lexical.describe() if b.lexical is not None else None,
            }
        )


def _routing_info(bundle: Bundle) -> dict[str, Any] | None:
    """The routed head, its deployment scope and the directory it routes over."""
    router = bundle.router
    if router is None:
        return None
    return {
        "head": bundle.routing.head,
        "scope": [{"code": c, "name": router.table.display(c)} for c in router.scope],
        "directory": {
            "source": router.directory.source,
            "fingerprint": router.directory.fingerprint(),
            "offices": len(router.directory),
            "types": router.directory.types(),
        },
        "regions": len(router.table),
        "exemplars": len(router.exemplars.office_ids) if router.exemplars else 0,
    }


def _jsonable(value: Any) -> Any:
    """Plain JSON types (bundle metadata built in code may hold numpy scalars or tuples)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _expanded(path: str) -> Path:
    """A reload path with "~" expanded; a user without a home folder is a BundleError."""
    try:
        return Path(path).expanduser()
    except RuntimeError:  # "~nobody/x"
        raise BundleError(f"{path}: no home folder for that user") from None


def _load_error(exc: BaseException) -> str:
    """A reason safe to show: our own errors' messages (they never quote text), else the type."""
    from data.schema import DataError
    from model.encoder import EncoderError

    # Paths come from operators and could hold anything: redacted like any shown text.
    if isinstance(exc, (BundleError, ComplaintIndexError, DataError, EncoderError)):
        return redact(str(exc))
    if isinstance(exc, FileNotFoundError):
        return redact(f"{exc.filename or 'a file'}: not found")
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or 'I/O error'}"
    from serving.errors import log_exception

    log_exception(exc, "model load")
    return f"unexpected {type(exc).__name__} while loading (see the server log)"
