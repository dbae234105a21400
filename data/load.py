"""Load complaints from any supported source into the one schema (`data.schema`).

Every consumer (training, evaluation, the benchmarks, the CLI) calls
`load_complaints`, so format quirks are handled once: a JSONL, JSON, CSV, TSV
or Parquet file, a folder written by `datasets`' `save_to_disk`, or the name
of a registered shared set (`data.registry`). The result is a `Complaints`
whose `dataset` has exactly the schema's columns, with text normalised, ids
unique, and counts of what was dropped or unlabelled, so a model bundle can
record what it was trained on (`Complaints.fingerprint`).

Reading never writes next to the source (the shared folder is read-only in
CI): CSV, TSV and Parquet go through `datasets` with its build cache in a
temporary folder that is deleted afterwards, and the data is kept in memory.
CSV and TSV records are checked with the `csv` module first, so a row with
more fields than the header, or a byte that is not UTF-8, is named by its
line instead of being shifted into the wrong columns or reported by offset.
JSON and JSONL are parsed here with the `json` module, line by line, which
gives the line number of the first malformed line and avoids `datasets`'
type inference failing on columns whose type varies between records (an id
that is a number in one record and a string in the next).

Errors are `DataError`s that name the file and the line or row, and never
quote complaint text (the corpora hold real personal data); the ids and
column names they quote go through `data.text.redact`. A source without
rows is an error too ("<file>: no rows").
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import math
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data.registry import RegisteredSet, is_registered, resolve_dataset
from data.schema import CREATED_AT, ID, LOCATION_FIELDS, TEXT, DataError

if TYPE_CHECKING:
    import datasets

log = logging.getLogger("aduan.data")

#: File extensions load_complaints reads, and the format each means.
SUPPORTED_EXTENSIONS: dict[str, str] = {
    ".jsonl": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
}
_SUPPORTED_HINT = (
    ".jsonl, .json, .csv, .tsv, .parquet, or a folder written by datasets' save_to_disk"
)
#: How many ids a warning about dropped rows lists.
_LOG_IDS = 5


@dataclass(frozen=True, eq=False)
class Complaints:
    """Complaints in the standard schema, with what the load did to get them.

    `dataset` has the columns `id`, `text`, `created_at`, one per entry of
    `label_columns`, and the `LOCATION_FIELDS`, all strings or None.
    `n_read` counts rows read from the source (after `limit`);
    `n_dropped_empty` those dropped because their text was empty after
    normalisation; `n_unlabelled[col]` those whose label `col` was null or
    empty (dropped when the load had `require_labels=True`, otherwise kept
    with None). A subset made by `select` (e.g. by a split) keeps the load's
    counts: they describe the load, not the subset.
    """

    dataset: datasets.Dataset
    source: str
    n_read: int
    n_dropped_empty: int
    n_unlabelled: dict[str, int]
    label_columns: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.dataset)

    def _column(self, name: str) -> list[Any]:
        # through the Dataset API, not .data: a selected dataset keeps an index mapping
        return list(self.dataset.with_format(None)[name][:])

    def ids(self) -> list[str]:
        """The ids, in row order."""
        return self._column(ID)

    def texts(self) -> list[str]:
        """The normalised texts, in row order."""
        return self._column(TEXT)

    def created_at(self) -> list[str | None]:
        """The ISO 8601 filing times (None where unknown), in row order."""
        return self._column(CREATED_AT)

    def locations(self) -> list[dict[str, str | None]]:
        """The location fields (`LOCATION_FIELDS`) of each row, None where unknown."""
        columns = {f: self._column(f) for f in LOCATION_FIELDS}
        return [{f: columns[f][i] for f in LOCATION_FIELDS} for i in range(len(self))]

    def labels(self, column: str) -> list[str | None]:
        """The labels of one label column, in row order (None where unlabelled)."""
        if column not in self.label_columns:
            loaded = ", ".join(self.label_columns) or "none"
            raise DataError(
                f"{self.source}: '{column}' was not loaded as a label column "
                f"(label columns: {loaded}); pass it in label_columns when loading"
            )
        return self._column(column)

    def select(self, indices: Sequence[int]) -> Complaints:
        """The rows at `indices` (in that order), with the same load counts.

        The index mapping is flattened in memory, so the subset is a plain
        table that consumers can hand to Arrow or pandas directly.
        """
        with _quiet_datasets():
            subset = self.dataset.select(list(indices)).flatten_indices(keep_in_memory=True)
        return replace(self, dataset=subset)

    def with_labels(self, column: str, values: Sequence[str | None]) -> Complaints:
        """A copy whose label column `column` holds `values` (e.g. labels mapped to types)."""
        self.labels(column)  # the column must be a label column
        if len(values) != len(self):
            raise ValueError(f"{len(values)} labels for {len(self)} rows")
        with _quiet_datasets():
            ds = self.dataset.remove_columns(column).add_column(column, list(values))
            ds = ds.select_columns(self.dataset.column_names)
        return replace(self, dataset=ds)

    def concat(self, other: Complaints) -> Complaints:
        """These rows followed by `other`'s (the same columns; e.g. train and dev of one
        split, to fit on both), with this load's counts."""
        import datasets

        if other.dataset.column_names != self.dataset.column_names:
            raise ValueError("cannot join complaints with different columns")
        with _quiet_datasets():
            ds = datasets.concatenate_datasets(
                [self.dataset, other.dataset.cast(self.dataset.features)]
            )
        return replace(self, dataset=ds)

    def fingerprint(self) -> dict[str, Any]:
        """A stable summary of the rows, recorded in model bundles.

        `sha256` covers the label column names and, row by row in order, the
        id, text, labels and created_at, so any change to what a model saw
        changes it; `label_counts` gives, per label column, each label's count
        (labels sorted, None not counted; see `n_unlabelled`).
        """
        digest = hashlib.sha256()
        digest.update(json.dumps(list(self.label_columns)).encode("utf-8") + b"\n")
        label_values = [self._column(c) for c in self.label_columns]
        for i, (id_, text, created) in enumerate(
            zip(self.ids(), self.texts(), self.created_at(), strict=True)
        ):
            row = [id_, text, [values[i] for values in label_values], created]
            digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
        label_counts = {
            col: dict(sorted(Counter(v for v in values if v is not None).items()))
            for col, values in zip(self.label_columns, label_values, strict=True)
        }
        return {"sha256": digest.hexdigest(), "rows": len(self), "label_counts": label_counts}


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _ReadOptions:
    """How to read a delimited file, beyond what its extension implies."""

    header: bool = True
    column_names: tuple[str, ...] | None = None
    delimiter: str | None = None
    quoting: bool | None = None


class _RawTable:
    """Rows as read from a source, before mapping to the schema.

    Holds either parsed JSON records or a `datasets.Dataset`, and knows how to
    name a row in an error message ("line 12" for JSONL, "row 3" otherwise).
    """

    def __init__(
        self,
        columns: list[str],
        n_rows: int,
        get_column: Callable[[str], list[Any]],
        where: Callable[[int], str],
    ) -> None:
        self.columns = columns
        self.n_rows = n_rows
        self._get_column = get_column
        self.where = where

    def column(self, name: str) -> list[Any]:
        return self._get_column(name)

    @classmethod
    def from_records(cls, records: list[dict[str, Any]], where: Callable[[int], str]) -> _RawTable:
        columns: dict[str, None] = {}
        for record in records:
            for key in record:
                columns.setdefault(key, None)
        return cls(list(columns), len(records), lambda c: [r.get(c) for r in records], where)

    @classmethod
    def from_dataset(cls, ds: datasets.Dataset, where: Callable[[int], str]) -> _RawTable:
        return cls(
            list(ds.column_names),
            len(ds),
            lambda c: list(ds.with_format(None)[c][:]),
            where,
        )


def _row(i: int) -> str:
    return f"row {i + 1}"


def _data_row(i: int) -> str:
    return f"data row {i + 1}"


def _read_jsonl(path: Path, limit: int | None) -> _RawTable:
    """Parse JSON Lines one line at a time: the first bad line is named by number."""
    records: list[dict[str, Any]] = []
    line_numbers: list[int] = []
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if limit is not None and len(records) >= limit:
                break
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{path}: line {lineno} is not valid UTF-8 (byte {e.start}); "
                    f"save the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(
                    f"{path}: line {lineno} is not valid JSON ({e.msg} at column {e.colno}); "
                    f"each line must be one JSON object"
                ) from None
            if not isinstance(record, dict):
                raise DataError(
                    f"{path}: line {lineno} is a JSON {type(record).__name__}, not an object; "
                    f"each line must be one JSON object"
                )
            records.append(record)
            line_numbers.append(lineno)
    if not records and limit != 0:
        raise DataError(f"{path}: no rows (the file is empty or holds only blank lines)")
    return _RawTable.from_records(records, lambda i: f"line {line_numbers[i]}")


def _read_json(path: Path, limit: int | None) -> _RawTable:
    """A JSON array of objects, an object holding one such array, or JSON Lines named .json."""
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise utf8_error(path) from None
    if not content.strip():
        raise DataError(f"{path}: no rows (the file is empty)")
    try:
        payload = json.loads(content)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # one object per line: JSON Lines with a .json name
            return _read_jsonl(path, limit)
        raise DataError(
            f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})"
        ) from None
    if isinstance(payload, dict):
        lists = [v for v in payload.values() if isinstance(v, list)]
        if len(lists) == 1:
            payload = lists[0]
        elif all(not isinstance(v, (list, dict)) for v in payload.values()):
            payload = [payload]  # a single record
    if not isinstance(payload, list):
        raise DataError(
            f"{path}: expected a JSON array of objects (one per complaint), "
            f"an object holding one such array, or JSON Lines"
        )
    if not payload:
        raise DataError(f"{path}: no rows (an empty array)")
    if limit is not None:
        payload = payload[:limit]
    for i, item in enumerate(payload):
        if not isinstance(item, dict):
            raise DataError(
                f"{path}: item {i + 1} of the array is a JSON {type(item).__name__}, not an object"
            )
    return _RawTable.from_records(payload, lambda i: f"item {i + 1}")


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """Hide `datasets`' progress bars and log lines, restoring the caller's settings.

    Its builders log "Failed to read file ..." before re-raising (shown twice
    once the CLI has configured logging: by `datasets`' own handler and by the
    root's), and that line may quote a cell; the error itself reaches the
    caller, who turns it into a `DataError`.
    """
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    datasets_log = logging.getLogger("datasets")
    level = datasets_log.level
    datasets_log.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        datasets_log.setLevel(level)
        if not was_disabled:
            datasets.enable_progress_bars()


def utf8_error(path: Path) -> DataError:
    """The error for a file that is not valid UTF-8, naming its first bad line.

    Decoders reading in chunks (pandas, text-mode files) report a byte's
    offset in the chunk; UTF-8 never splits a character across a newline
    byte, so decoding line by line finds the line exactly.
    """
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                return DataError(
                    f"{path}: line {lineno} is not valid UTF-8 (byte {e.start}); "
                    f"save the file as UTF-8"
                )
    return DataError(f"{path}: not valid UTF-8; save it as UTF-8")


def _shown(name: str) -> str:
    """A column name as an error message may show it: redacted and cut short.

    A header-less file read as having a header makes its first row the
    column names, and that row is a complaint.
    """
    from data.text import redact

    name = redact(name)
    return name if len(name) <= 40 else name[:39] + "…"


def _safe_detail(error: BaseException) -> str:
    """The part of a reader's error that can be shown: structure, never cell values.

    pandas' tokenizer and the UTF-8 decoder report positions only; other
    errors (e.g. Arrow casts) may quote a value, so only their type is shown.
    """
    import pandas as pd

    shown = _caused_by(error, pd.errors.ParserError, UnicodeDecodeError)
    return f"{type(shown).__name__}: {shown}" if shown is not None else type(error).__name__


def _caused_by(error: BaseException, *types: type[BaseException]) -> BaseException | None:
    """The first error of one of `types` in `error`'s chain of causes, if any."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, types):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _header_names(path: Path, header: list[str]) -> list[str]:
    """Column names from a header row: blanks named by position, repeats an error."""
    names = [h.strip() or f"column_{i + 1}" for i, h in enumerate(header)]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(
            f"{path}: the header repeats column name(s) {', '.join(map(_shown, duplicates))}; "
            f"rename them so each column has its own name"
        )
    return names


def _scan_delimited(
    path: Path, delimiter: str, quoting: bool, names: list[str] | None, limit: int | None
) -> list[str]:
    """Check a delimited file's records before pandas reads it; returns the column names.

    With `names` None the first record is the header. The records (the first
    `limit` data rows) are read with the dialect pandas will use, because
    pandas fails quietly or vaguely where this names the line: it shifts a
    row with more fields than the header (taking the first as an index),
    fails on a header-only file with a bare ValueError, and reports a bad
    byte by its offset in a chunk. Blank lines are skipped, as pandas does.
    """
    shown = "tab" if delimiter == "\t" else repr(delimiter)
    hint = (
        f"check for an unquoted {shown} inside a value, or a trailing {shown}"
        if quoting
        else f"check for a {shown} inside a value, or a trailing {shown}"
    )
    has_header = names is None
    expected = "the header has" if has_header else "expected"
    n_rows = 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(
                f, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE
            )
            if names is None:
                header = next(reader, None)
                if not header:
                    raise DataError(f"{path}: the file is empty (expected a header row)")
                names = _header_names(path, header)
            end = reader.line_num
            for record in reader:
                start, end = end + 1, reader.line_num  # a quoted value may span lines
                if not record:
                    continue
                if n_rows == limit:
                    break
                if len(record) > len(names):
                    raise DataError(
                        f"{path}: line {start} has {len(record)} fields, {expected} "
                        f"{len(names)}; {hint}"
                    )
                n_rows += 1
    except UnicodeDecodeError:
        raise utf8_error(path) from None
    except csv.Error as e:
        raise DataError(f"{path}: line {reader.line_num} could not be read ({e})") from None
    if n_rows == 0 and limit != 0:
        raise DataError(f"{path}: no rows" + (" (only a header)" if has_header else ""))
    return names


def _read_delimited(
    path: Path, fmt: str, options: _ReadOptions, limit: int | None, tmp: str
) -> _RawTable:
    """CSV/TSV through `datasets`, every column read as a string.

    Strings everywhere keep ids like "00123" intact and stop pandas turning a
    text "NA" into a missing value. TSV is read without quoting (unless
    `options.quoting` says otherwise): TSV has no quoting convention, and
    IndoNLU's files contain lone quote characters that would otherwise merge
    rows.
    """
    import datasets

    delimiter = options.delimiter or ("\t" if fmt == "tsv" else ",")
    quoting = options.quoting if options.quoting is not None else fmt != "tsv"
    if not options.header and not options.column_names:
        raise DataError(f"{path}: a header-less file needs column names")
    given = None if options.header else list(options.column_names or ())
    names = _scan_delimited(path, delimiter, quoting, given, limit)
    features = datasets.Features({n: datasets.Value("string") for n in names})
    kwargs: dict[str, Any] = {
        "sep": delimiter,
        "header": 0 if options.header else None,
        "names": names,
        "index_col": False,  # never take a first field as the index (checked above too)
        "quoting": csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE,
        "keep_default_na": False,
        "encoding": "utf-8",
    }
    if limit is not None:
        kwargs["nrows"] = limit
    try:
        with _quiet_datasets():
            ds = datasets.Dataset.from_csv(
                str(path), features=features, cache_dir=tmp, keep_in_memory=True, **kwargs
            )
    except Exception as e:
        if _caused_by(e, UnicodeDecodeError):  # past `limit` rows, in pandas' read-ahead
            raise utf8_error(path) from None
        raise DataError(f"{path}: could not read as {fmt.upper()} ({_safe_detail(e)})") from None
    return _RawTable.from_dataset(ds, _data_row)


def _read_parquet(path: Path, limit: int | None, tmp: str) -> _RawTable:
    import datasets
    import pyarrow.parquet as pq

    try:
        n_rows = pq.ParquetFile(path).metadata.num_rows
    except Exception as e:
        raise DataError(f"{path}: could not read as Parquet ({type(e).__name__})") from None
    if n_rows == 0:  # `datasets` fails on it ("BatchSize must be greater than 0")
        raise DataError(f"{path}: no rows")
    try:
        with _quiet_datasets():
            ds = datasets.Dataset.from_parquet(str(path), cache_dir=tmp, keep_in_memory=True)
    except Exception as e:
        raise DataError(f"{path}: could not read as Parquet ({type(e).__name__})") from None
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return _RawTable.from_dataset(ds, _row)


def _read_folder(path: Path, split: str | None, limit: int | None) -> _RawTable:
    """A `save_to_disk` folder; for a DatasetDict, `split` (default "train") picks one."""
    import datasets

    try:
        with _quiet_datasets():
            loaded = datasets.load_from_disk(str(path), keep_in_memory=True)
    except Exception as e:
        raise DataError(
            f"{path}: is a folder but not one written by datasets' save_to_disk "
            f"({type(e).__name__}); supported sources: {_SUPPORTED_HINT}"
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        names = list(loaded)
        if split is None:
            if "train" in loaded:
                split = "train"
            elif len(names) == 1:
                split = names[0]
            else:
                raise DataError(
                    f"{path}: holds splits {', '.join(names)}; choose one with split=/--split"
                )
        if split not in loaded:
            raise DataError(f"{path}: has no split '{split}'; splits are: {', '.join(names)}")
        ds = loaded[split]
    elif isinstance(loaded, datasets.Dataset):
        if split is not None:
            raise DataError(f"{path}: holds a single dataset, not splits; drop split='{split}'")
        ds = loaded
    else:
        raise DataError(f"{path}: not a datasets Dataset or DatasetDict folder")
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return _RawTable.from_dataset(ds, _row)


# --------------------------------------------------------------------------- mapping


def _to_str(value: Any) -> str | None:
    """A cell as a string, or None when missing.

    Integral floats lose their ".0" (pandas makes an integer column float
    when it has a gap), so labels and ids read the same whatever the format.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _clean(value: Any) -> str | None:
    """A label or location value: stripped, None when missing or blank."""
    s = _to_str(value)
    if s is None:
        return None
    s = s.strip()
    return s or None


def _iso_datetime(value: Any, name: str, where: str) -> str | None:
    """`created_at` as canonical ISO 8601 (`datetime.isoformat`), or None when missing.

    Canonical form makes string order the time order for naive timestamps and
    keeps the fingerprint independent of how the source spelled the time.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day).isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if not isinstance(value, str):
        raise DataError(
            f"{name}: {where}: created_at is a {type(value).__name__}, "
            f"expected an ISO 8601 date/time string such as 2022-01-31T08:15:00"
        )
    s = value.strip()
    if not s:
        return None
    try:
        return datetime.fromisoformat(s).isoformat()
    except ValueError:
        raise DataError(
            f"{name}: {where}: created_at is not an ISO 8601 date/time "
            f"(expected e.g. 2022-01-31T08:15:00)"
        ) from None


def _missing_column(name: str, what: str, column: str, columns: list[str], hint: str) -> DataError:
    listed = ", ".join(map(_shown, columns)) if columns else "(none)"
    return DataError(f"{name}: no {what} column '{column}'; columns are: {listed}. {hint}")


def _standardise(
    raw: _RawTable,
    *,
    name: str,
    id_prefix: str,
    text_column: str | None,
    id_column: str | None,
    label_columns: Sequence[str],
    require_labels: bool,
) -> tuple[datasets.Dataset, int, dict[str, int]]:
    """Map raw rows onto the schema; returns the dataset, rows dropped empty, unlabelled counts."""
    import datasets

    from data.text import normalize_text, redact

    text_col = text_column or TEXT
    if text_col not in raw.columns:
        raise _missing_column(
            name,
            "text",
            text_col,
            raw.columns,
            "Point at the column holding the complaint text with --text-column (text_column=...).",
        )
    if id_column is not None and id_column not in raw.columns:
        raise _missing_column(
            name,
            "id",
            id_column,
            raw.columns,
            "Leave --id-column unset to generate ids.",
        )
    labels = list(dict.fromkeys(label_columns))
    for col in labels:
        if col in (ID, TEXT, CREATED_AT):
            raise DataError(f"{name}: '{col}' cannot be a label column (it is a schema column)")
        if col not in raw.columns:
            raise _missing_column(
                name, "label", col, raw.columns, "Check the label column names you asked for."
            )

    n = raw.n_rows
    # ids: given, or generated from the row index so they are the same on every load
    id_source = id_column or (ID if ID in raw.columns else None)
    if id_source is None:
        ids: list[str] = [f"{id_prefix}-{i}" for i in range(n)]
    else:
        ids = []
        for i, value in enumerate(raw.column(id_source)):
            id_ = _clean(value)
            if id_ is None:
                raise DataError(
                    f"{name}: {raw.where(i)} has an empty '{id_source}'; every row needs an id "
                    f"(or drop the id column to have ids generated)"
                )
            ids.append(id_)
    first_seen: dict[str, int] = {}
    for i, id_ in enumerate(ids):
        if id_ in first_seen:
            raise DataError(
                f"{name}: duplicate id '{redact(id_)[:80]}' at {raw.where(first_seen[id_])} "
                f"and {raw.where(i)}; ids must be unique"
            )
        first_seen[id_] = i

    texts = [
        normalize_text(t) if (t := _to_str(v)) is not None else "" for v in raw.column(text_col)
    ]
    created = (
        [_iso_datetime(v, name, raw.where(i)) for i, v in enumerate(raw.column(CREATED_AT))]
        if CREATED_AT in raw.columns
        else [None] * n
    )
    label_values = {col: [_clean(v) for v in raw.column(col)] for col in labels}
    locations = {
        col: [_clean(v) for v in raw.column(col)] if col in raw.columns else [None] * n
        for col in LOCATION_FIELDS
    }

    keep = [i for i in range(n) if texts[i].strip()]
    n_dropped_empty = n - len(keep)
    if n_dropped_empty:
        dropped = [ids[i] for i in range(n) if not texts[i].strip()]
        log.warning(
            "%s: dropped %d row(s) with empty text; first ids: %s",
            name,
            n_dropped_empty,
            ", ".join(redact(i) for i in dropped[:_LOG_IDS]),
        )
    n_unlabelled = {col: sum(1 for i in keep if label_values[col][i] is None) for col in labels}
    if require_labels and any(n_unlabelled.values()):
        before = len(keep)
        keep = [i for i in keep if all(label_values[col][i] is not None for col in labels)]
        log.info(
            "%s: dropped %d row(s) without a label (%s)",
            name,
            before - len(keep),
            ", ".join(f"{c}: {k}" for c, k in n_unlabelled.items() if k),
        )

    columns: dict[str, list[str | None]] = {
        ID: [ids[i] for i in keep],
        TEXT: [texts[i] for i in keep],
        CREATED_AT: [created[i] for i in keep],
    }
    for col in labels:
        columns[col] = [label_values[col][i] for i in keep]
    for col in LOCATION_FIELDS:
        if col not in columns:
            columns[col] = [locations[col][i] for i in keep]
    features = datasets.Features({c: datasets.Value("string") for c in columns})
    return datasets.Dataset.from_dict(columns, features=features), n_dropped_empty, n_unlabelled


# --------------------------------------------------------------------------- entry point


@dataclass(frozen=True)
class _Target:
    """A resolved source: the file or folder, its format, and how to record it."""

    path: Path
    fmt: str
    display: str
    id_prefix: str
    options: _ReadOptions
    registered: RegisteredSet | None = None
    split: str | None = None


def _resolve(source: str | os.PathLike[str], split: str | None) -> _Target:
    path = Path(source).expanduser()
    if not path.exists() and isinstance(source, str) and is_registered(source):
        entry = resolve_dataset(source)
        chosen = entry.resolve_split(split)
        file = entry.path(chosen)
        return _Target(
            path=file,
            fmt=_format_of(file),
            display=entry.source_name(chosen),
            id_prefix=entry.source_name(chosen).replace(":", "-"),
            options=_ReadOptions(
                header=entry.header,
                column_names=entry.column_names,
                delimiter=entry.delimiter,
                quoting=entry.quoting,
            ),
            registered=entry,
            split=chosen,
        )
    if not path.exists():
        text = os.fspath(source)
        if isinstance(text, str) and not path.suffix and os.sep not in text and "/" not in text:
            resolve_dataset(text)  # raises: unknown name, listing the known ones
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        return _Target(path, "folder", str(path), path.name, _ReadOptions(), split=split)
    fmt = _format_of(path)
    if split is not None:
        raise DataError(
            f"{path}: split='{split}' only applies to registered sets and save_to_disk "
            f"folders with splits; a single file is one split"
        )
    return _Target(path, fmt, str(path), path.stem, _ReadOptions())


def _format_of(path: Path) -> str:
    fmt = SUPPORTED_EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        shown = path.suffix or "(no extension)"
        raise DataError(f"{path}: unsupported file type {shown}; supported: {_SUPPORTED_HINT}")
    return fmt


def load_complaints(
    source: str | os.PathLike[str],
    *,
    split: str | None = None,
    text_column: str | None = None,
    id_column: str | None = None,
    label_columns: Sequence[str] = (),
    require_labels: bool = False,
    limit: int | None = None,
) -> Complaints:
    """Read complaints from a file, a `save_to_disk` folder or a registered set name.

    - `source`: a .jsonl/.json/.csv/.tsv/.parquet file, a `save_to_disk`
      folder, or a name from `data.registry` (an existing path of the same
      name wins). CSV/JSON need a header/keys; TSV is read without quoting.
    - `split`: for registered sets and DatasetDict folders; without it the
      "train" split is read (never the test split by accident). An error for
      a plain file, which is a single split.
    - `text_column` / `id_column`: the source's names for the text and id
      (default "text", and "id" when present; otherwise ids are generated as
      `<file stem>-<row index>`, or `<set>-<split>-<row index>` for a
      registered multi-split set, counting rows read from 0).
    - `label_columns`: columns kept as labels (any name, e.g. IndoNLU's
      "label"). For a registered set, empty means the set's own labels.
    - `require_labels`: drop rows missing any requested label (counted in
      `n_unlabelled`) instead of keeping them with None.
    - `limit`: read only the first `limit` rows (for quick runs); the ids
      and counts are those of the rows read.

    Rows whose text is empty after normalisation are dropped, counted and
    logged (ids only) on the "aduan.data" logger. Raises DataError for
    missing files, unsupported types, malformed content, missing columns and
    duplicate ids.
    """
    if limit is not None and limit < 0:
        raise DataError(f"limit must be 0 or more, got {limit}")
    if isinstance(label_columns, str):  # a lone name, not its characters
        label_columns = (label_columns,)
    target = _resolve(source, split)
    if target.registered is not None:
        text_column = text_column or target.registered.text_column
        id_column = id_column or target.registered.id_column
        label_columns = tuple(label_columns) or target.registered.label_columns
    with tempfile.TemporaryDirectory(prefix="aduan-data-") as tmp:
        if target.fmt == "jsonl":
            raw = _read_jsonl(target.path, limit)
        elif target.fmt == "json":
            raw = _read_json(target.path, limit)
        elif target.fmt in ("csv", "tsv"):
            raw = _read_delimited(target.path, target.fmt, target.options, limit, tmp)
        elif target.fmt == "parquet":
            raw = _read_parquet(target.path, limit, tmp)
        else:
            raw = _read_folder(target.path, target.split, limit)
        if raw.n_rows == 0 and limit != 0:
            raise DataError(f"{target.path}: no rows")
        dataset, n_dropped_empty, n_unlabelled = _standardise(
            raw,
            name=str(target.path),
            id_prefix=target.id_prefix,
            text_column=text_column,
            id_column=id_column,
            label_columns=label_columns,
            require_labels=require_labels,
        )
    return Complaints(
        dataset=dataset,
        source=target.display,
        n_read=raw.n_rows,
        n_dropped_empty=n_dropped_empty,
        n_unlabelled=n_unlabelled,
        label_columns=tuple(dict.fromkeys(label_columns)),
    )
