"""Complaint pairs for duplicate scoring and calibration: reading and validating them.

Two input formats (documented in README.md, "Duplicate detection"):

- **pairs JSONL**, one object per line::

      {"pair": "p1",
       "a": {"text": "...", "created_at": "2022-03-01T08:00:00",
             "kecamatan": "...", "kelurahan": "...", "address": "..."},
       "b": {...},
       "label": true}

  `pair` is any string or number naming the pair (echoed in the output),
  unique in the file; a pair without one is named `line-<n>` after its line
  (counting from 1), so two unnamed pairs never share a name. Each side needs
  a non-empty `text`; `created_at`, `city`, `kecamatan`, `kelurahan`,
  `address`, `region_code` and `id` are optional. `label`
  (true/false, or 1/0) is required for calibration and ignored by scoring.
- **ids CSV** with header `id_a,id_b,label` (label 1/0), resolved against a
  complaint source (`--data`), as in `data/labels/`.

Errors name the file and line and never quote complaint text; ids and pair
names they quote are redacted (`data.text.redact`), as an id may be a NIK.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from data.load import Complaints, utf8_error
from data.schema import LOCATION_FIELDS, DataError
from data.text import normalize_text, redact

SIDE_FIELDS: tuple[str, ...] = ("id", "text", "created_at", *LOCATION_FIELDS)


@dataclass(frozen=True)
class PairSide:
    """One complaint of a pair: normalised text, optional time (ISO 8601) and location."""

    text: str
    id: str = ""
    created_at: str | None = None
    city: str | None = None
    kecamatan: str | None = None
    kelurahan: str | None = None
    address: str | None = None
    region_code: str | None = None


@dataclass(frozen=True)
class Pair:
    pair: str
    a: PairSide
    b: PairSide
    label: bool | None = None


def _side(obj: Any, which: str, where: str) -> PairSide:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: '{which}' must be an object with at least a 'text' field")
    unknown = sorted(set(obj) - set(SIDE_FIELDS))
    if unknown:
        raise DataError(
            f"{where}: '{which}' has unknown field(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(SIDE_FIELDS)}"
        )
    values: dict[str, str | None] = {}
    for key in SIDE_FIELDS:
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            if key == "id" and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            else:
                raise DataError(f"{where}: '{which}.{key}' must be a string")
        values[key] = value.strip() if isinstance(value, str) and key != "text" else value
    text = normalize_text(values["text"] or "")
    if not text:
        raise DataError(f"{where}: '{which}.text' is missing or empty")
    created = values["created_at"] or None
    if created is not None:
        try:
            created = datetime.fromisoformat(created).isoformat()
        except ValueError:
            raise DataError(
                f"{where}: '{which}.created_at' is not an ISO 8601 date/time "
                f"(expected e.g. 2022-01-31T08:15:00)"
            ) from None
    return PairSide(
        text=text,
        id=values["id"] or "",
        created_at=created,
        **{f: values[f] or None for f in LOCATION_FIELDS},
    )


def _label(value: Any, where: str, required: bool) -> bool | None:
    if value is None:
        if required:
            raise DataError(
                f"{where}: 'label' is missing (true/false or 1/0); calibration needs it"
            )
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return value.strip() == "1"
    raise DataError(f"{where}: 'label' must be true/false or 1/0")


def read_pairs_jsonl(path: str | Path, *, require_labels: bool = False) -> list[Pair]:
    """Read and validate a pairs JSONL file (format in the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    pairs: list[Pair] = []
    first_line: dict[str, int] = {}  # each name, and the line that first had it
    unnamed: set[int] = set()  # lines whose pair had no "pair" and is named after the line
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            where = f"{path}: line {lineno}"
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError:
                raise DataError(f"{where} is not valid UTF-8; save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(
                    f"{where} is not valid JSON ({e.msg} at column {e.colno})"
                ) from None
            if not isinstance(obj, dict):
                raise DataError(f"{where}: each line must be a JSON object")
            unknown = sorted(set(obj) - {"pair", "a", "b", "label"})
            if unknown:
                raise DataError(
                    f"{where}: unknown field(s) {', '.join(unknown)}; allowed: pair, a, b, label"
                )
            if "pair" in obj:
                given = obj["pair"]
                if isinstance(given, bool) or not isinstance(given, str | int):
                    raise DataError(f"{where}: 'pair' must be a string or a number")
                name = str(given)
            else:
                name = f"line-{lineno}"
                unnamed.add(lineno)
            if name in first_line:
                first = first_line[name]
                if first in unnamed:
                    how = f"line {first} has no 'pair' and is named after its line"
                elif lineno in unnamed:
                    how = f"this line has no 'pair' and is named after it; line {first} uses it"
                else:
                    how = f"first on line {first}"
                raise DataError(
                    f"{where}: pair {redact(name)!r} appears twice ({how}); "
                    f"pair names must be unique"
                )
            first_line[name] = lineno
            pairs.append(
                Pair(
                    pair=name,
                    a=_side(obj.get("a"), "a", where),
                    b=_side(obj.get("b"), "b", where),
                    label=_label(obj.get("label"), where, require_labels),
                )
            )
    if not pairs:
        raise DataError(f"{path}: no pairs in the file")
    return pairs


def read_pair_ids_csv(path: str | Path) -> list[tuple[str, str, bool]]:
    """Read an `id_a,id_b,label` CSV (label 1/0); errors name the line."""
    return [(a, b, label) for _, a, b, label in _pair_id_rows(Path(path))]


def _pair_id_rows(path: Path) -> list[tuple[int, str, str, bool]]:
    """The rows of an ids CSV, each with the line it starts on."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    out: list[tuple[int, str, str, bool]] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or [h.strip() for h in header] != ["id_a", "id_b", "label"]:
                raise DataError(f"{path}: line 1 must be the header id_a,id_b,label")
            end = reader.line_num
            for row in reader:
                lineno, end = end + 1, reader.line_num  # a quoted value may span lines
                where = f"{path}: line {lineno}"
                if not row or not any(c.strip() for c in row):
                    continue
                if len(row) != 3:
                    raise DataError(
                        f"{where}: expected 3 columns (id_a,id_b,label), got {len(row)}"
                    )
                a, b, label = (c.strip() for c in row)
                if not a or not b:
                    raise DataError(f"{where}: id_a and id_b must not be empty")
                value = _label(label, where, required=True)
                assert value is not None
                out.append((lineno, a, b, value))
    except UnicodeDecodeError:
        raise utf8_error(path) from None
    except csv.Error as e:
        raise DataError(f"{path}: line {reader.line_num} could not be read ({e})") from None
    if not out:
        raise DataError(f"{path}: no pairs in the file")
    return out


def pairs_from_ids(path: str | Path, complaints: Complaints) -> list[Pair]:
    """Resolve an ids CSV against loaded complaints; an unknown id is an error naming its line."""
    path = Path(path)
    rows = _pair_id_rows(path)
    index = {id_: i for i, id_ in enumerate(complaints.ids())}
    needed: list[int] = []
    for lineno, a, b, _ in rows:
        for id_ in (a, b):
            if id_ not in index:
                raise DataError(
                    f"{path}: line {lineno}: id {redact(id_)!r} is not in {complaints.source}; "
                    f"pass the --data the pairs were labelled on"
                )
        needed += [index[a], index[b]]
    sides = pair_sides(complaints.select(sorted(set(needed))))
    return [Pair(f"{a}|{b}", sides[a], sides[b], label) for _, a, b, label in rows]


def pair_sides(complaints: Complaints) -> dict[str, PairSide]:
    """Every loaded complaint as a pair side, by id."""
    return {
        id_: PairSide(text=text, id=id_, created_at=created, **loc)
        for id_, text, created, loc in zip(
            complaints.ids(),
            complaints.texts(),
            complaints.created_at(),
            complaints.locations(),
            strict=True,
        )
    }
