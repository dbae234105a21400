"""Named data sets from the shared data folder, so nobody types their paths.

The real corpora live beside the project in `../shared/data` (read-only, never
copied into the repo). Commands, tests and benchmarks refer to them by name
(`load_complaints("surabaya-2022")`, `aduan train indonlu-smsa`), and each entry
records what a loader needs to know that the file itself does not say: which
column holds the text, which hold labels, whether a TSV has a header, and
whether quoting must be switched off.

The folder is `$ADUAN_SHARED_DATA` when set, otherwise `<repo root>/../shared/data`
(the repo root being the folder above the `data` package). Entries can be listed
and described without the data present; only reading a file needs it, and a
missing file is a `DataError` that says where it looked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from data.schema import DataError

SHARED_DATA_ENV = "ADUAN_SHARED_DATA"


@dataclass(frozen=True)
class RegisteredSet:
    """One named data set: where its files are and how to read them.

    `splits` maps a split name to a path relative to the shared data folder.
    Multi-split sets are read one split at a time; without an explicit split
    the loader takes `default_split` ("train"), so a plain
    `load_complaints("indonlu-smsa")` is the training data, never the test set.

    The format options override what the file extension implies:
    `header=False` with `column_names` for header-less files, `delimiter` for
    unusual separators, `quoting=False` for TSVs whose texts contain stray
    quote characters (with quoting on, a lone `"` would swallow the following
    rows into one field).
    """

    name: str
    description: str
    licence: str
    splits: dict[str, str]
    text_column: str = "text"
    label_columns: tuple[str, ...] = ()
    id_column: str | None = None
    has_created_at: bool = False
    default_split: str = "train"
    header: bool = True
    column_names: tuple[str, ...] | None = None
    delimiter: str | None = None
    quoting: bool | None = None
    #: Row counts as published, for tests and sanity checks.
    expected_rows: dict[str, int] = field(default_factory=dict)

    @property
    def multi_split(self) -> bool:
        """Whether the set comes in several splits (train/valid/test)."""
        return len(self.splits) > 1

    def resolve_split(self, split: str | None) -> str:
        """The split to read: `split`, or the default one when None."""
        chosen = self.default_split if split is None else split
        if chosen not in self.splits:
            raise DataError(
                f"dataset '{self.name}' has no split '{chosen}'; "
                f"splits are: {', '.join(self.splits)}"
            )
        return chosen

    def path(self, split: str | None = None, *, base: Path | None = None) -> Path:
        """The file of one split, checked to exist.

        Raises DataError saying where it looked, and how to point elsewhere,
        when the shared data folder or the file is absent.
        """
        chosen = self.resolve_split(split)
        root = shared_data_dir() if base is None else base
        path = root / self.splits[chosen]
        if not path.is_file():
            raise DataError(
                f"dataset '{self.name}' needs {path}, which does not exist. "
                f"The shared data folder is ${SHARED_DATA_ENV} when set, otherwise "
                f"<repo root>/../shared/data (here: {root}); set ${SHARED_DATA_ENV} "
                f"to the folder that holds {self.splits[chosen]}."
            )
        return path

    def available(self, *, base: Path | None = None) -> bool:
        """Whether every split's file is present."""
        root = shared_data_dir() if base is None else base
        return all((root / rel).is_file() for rel in self.splits.values())

    def source_name(self, split: str | None = None) -> str:
        """How a load of this set is recorded: the name, plus `:split` for multi-split sets."""
        chosen = self.resolve_split(split)
        return f"{self.name}:{chosen}" if self.multi_split else self.name


def _indonlu_splits(folder: str, ext: str) -> dict[str, str]:
    return {s: f"indonlu/{folder}/{s}_preprocess.{ext}" for s in ("train", "valid", "test")}


_REGISTRY: dict[str, RegisteredSet] = {
    s.name: s
    for s in (
        RegisteredSet(
            name="surabaya-2022",
            description=(
                "Complaints to the Surabaya city Media Center, 2022 (informal Indonesian, "
                "some Javanese); agency (206 distinct) and topic (~300, 189 null) labels, "
                "created_at and location fields."
            ),
            licence="none stated: use inside this project only, never redistribute",
            splits={"train": "surabaya/complaints-2022.jsonl"},
            label_columns=("agency", "topic"),
            has_created_at=True,
            expected_rows={"train": 8690},
        ),
        RegisteredSet(
            name="lapor-2017",
            description=(
                "The national SP4N-LAPOR! complaint stream, 2017; agency label parsed from "
                "the letter header (562 distinct, ~30 empty). No dates. Some bodies still "
                "name the agency: a label leak to keep in mind."
            ),
            licence="MIT (lapor2017/LICENSE.md)",
            splits={"train": "lapor2017/complaints.jsonl"},
            label_columns=("agency",),
            has_created_at=False,
            expected_rows={"train": 1818},
        ),
        RegisteredSet(
            name="indonlu-smsa",
            description=(
                "IndoNLU SmSA document sentiment (positive/neutral/negative); "
                "train/valid/test, test labelled. A yardstick, not complaints."
            ),
            licence="Apache-2.0 (indonlu/LICENSE)",
            splits=_indonlu_splits("smsa_doc-sentiment-prosa", "tsv"),
            label_columns=("label",),
            header=False,
            column_names=("text", "label"),
            delimiter="\t",
            quoting=False,
            expected_rows={"train": 11000, "valid": 1260, "test": 500},
        ),
        RegisteredSet(
            name="indonlu-emot",
            description=(
                "IndoNLU EmoT tweet emotion (anger/fear/happy/love/sadness); "
                "train/valid/test. A yardstick, not complaints."
            ),
            licence="Apache-2.0 (indonlu/LICENSE)",
            splits=_indonlu_splits("emot_emotion-twitter", "csv"),
            text_column="tweet",
            label_columns=("label",),
            expected_rows={"train": 3521, "valid": 440, "test": 440},
        ),
    )
}


def shared_data_dir() -> Path:
    """The shared data folder: `$ADUAN_SHARED_DATA`, else `<repo root>/../shared/data`.

    Not checked to exist: callers that need a file get a DataError from
    `RegisteredSet.path`, and `shared_data_available` answers without raising.
    """
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env).expanduser()
    repo_root = Path(__file__).resolve().parent.parent
    return repo_root.parent / "shared" / "data"


def list_datasets() -> list[RegisteredSet]:
    """Every registered set, in a fixed order (complaint corpora first)."""
    return list(_REGISTRY.values())


def is_registered(name: str) -> bool:
    """Whether `name` is a registered set's name."""
    return name in _REGISTRY


def resolve_dataset(name: str) -> RegisteredSet:
    """The registered set called `name`; DataError listing the known names otherwise.

    Does not check that the files are present (see `RegisteredSet.path`), so
    sets can be described on machines without the shared data.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DataError(
            f"unknown dataset '{name}'; known datasets are: {', '.join(_REGISTRY)} "
            f"(or give a path to a .jsonl, .json, .csv, .tsv or .parquet file)"
        ) from None


def shared_data_available(name: str | None = None) -> bool:
    """Whether the shared data folder (or, given a name, all of that set's files) is present.

    An unknown name is still an error, so a typo in a test's skip condition
    fails loudly instead of skipping forever.
    """
    if name is None:
        return shared_data_dir().is_dir()
    return resolve_dataset(name).available()
