"""The agency directory: the concrete offices aduan can route a complaint to.

A complaint is routed by combining a learned agency *type* ("Dinas
Perhubungan") with the complaint's *region* ("35.74", Kota Semarang); the
directory says which office that is ("Dinas Perhubungan Kota Semarang").
Operators edit it as a CSV and a reload picks the change up; no retraining.

The file is UTF-8 CSV with the header `id,name,type,level,region_code,aliases`:

- `id`: a stable identifier, `[a-z0-9][a-z0-9._-]*`, unique.
- `name`: the office's name as it appears in labelled data and in answers.
- `type`: the canonical agency type (see `training.agencies` and
  `data/agency_types.csv`); offices of one function share a type across cities.
- `level`: one of `OFFICE_LEVELS`. `branch` is a state-enterprise or
  vertical-agency branch (a BPJS branch office, an immigration office, a
  Polres) whose `region_code` is the region it serves.
- `region_code`: the official code of the region the office serves, with as
  many parts as its level needs (province 1, city 2, kecamatan 3, kelurahan 4;
  branch any). Empty for national offices, and for other levels when the
  region is not recorded.
- `aliases`: other spellings, separated by `|` (may be empty).

Names and aliases are compared with `label_key` (case, spacing and punctuation
ignored), and no two offices may share one. Problems raise `DirectoryError`
naming the file and line and saying what to fix.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data.schema import DataError

if TYPE_CHECKING:
    from model.regions import RegionTable

#: Levels an office can have, from the widest to the narrowest, then branch offices.
OFFICE_LEVELS: tuple[str, ...] = (
    "national",
    "province",
    "city",
    "kecamatan",
    "kelurahan",
    "branch",
)

#: The directory CSV's columns, in the order `Directory.write` uses.
COLUMNS: tuple[str, ...] = ("id", "name", "type", "level", "region_code", "aliases")

ALIAS_SEPARATOR = "|"

_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")
_CODE_RE = re.compile(r"\d\d(?:\.\d\d(?:\.\d\d(?:\.\d{4})?)?)?")
#: Number of dot-separated parts a region code has at each level (None: any, or empty).
_DEPTH: dict[str, int | None] = {
    "national": 0,
    "province": 1,
    "city": 2,
    "kecamatan": 3,
    "kelurahan": 4,
    "branch": None,
}
_DEPTH_EXAMPLE = {1: "35", 2: "35.78", 3: "35.78.09", 4: "35.78.09.1001"}


class DirectoryError(DataError):
    """A directory file or office list that cannot be used; the message names the file and line."""


def label_key(label: str) -> str:
    """The comparison key of an office name or agency label.

    NFKC, casefold, every punctuation or symbol character becomes a space,
    whitespace collapsed: "Kelurahan  dr. Soetomo" and "kelurahan dr soetomo"
    have the same key.
    """
    s = unicodedata.normalize("NFKC", label).casefold()
    s = "".join(" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in s)
    return " ".join(s.split())


@dataclass(frozen=True)
class Office:
    """One office of the directory (see the module docstring for the fields)."""

    id: str
    name: str
    type: str
    level: str
    region_code: str | None
    aliases: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The office as JSON-ready values (aliases as a list)."""
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "level": self.level,
            "region_code": self.region_code,
            "aliases": list(self.aliases),
        }

    def labels(self) -> tuple[str, ...]:
        """The name, then the aliases."""
        return (self.name, *self.aliases)


class Directory:
    """A validated, immutable set of offices, with lookups by id, label and type.

    Build it with `read` (a CSV file) or `from_offices`; both check every
    rule listed in the module docstring, and, when a `RegionTable` is given,
    that each region code is in it.
    """

    def __init__(self, offices: tuple[Office, ...], source: str) -> None:
        # Private: use read() or from_offices(), which validate.
        self.offices: tuple[Office, ...] = tuple(sorted(offices, key=lambda o: o.id))
        self.source = source
        self._by_id = {o.id: o for o in self.offices}
        self._by_key = {label_key(lb): o for o in self.offices for lb in o.labels()}
        by_type: dict[str, list[Office]] = {}
        for o in self.offices:
            by_type.setdefault(o.type, []).append(o)
        self._by_type = {t: tuple(v) for t, v in by_type.items()}

    # ---------------------------------------------------------------- building
    @classmethod
    def read(cls, path: str | os.PathLike[str], *, regions: RegionTable | None = None) -> Directory:
        """Read and validate a directory CSV; DirectoryError on any problem."""
        p = Path(path)
        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            raise DirectoryError(f"{p}: no such directory file") from None
        except IsADirectoryError:
            raise DirectoryError(f"{p}: is a folder; give the directory CSV file") from None
        except OSError as e:
            raise DirectoryError(f"{p}: cannot read the directory file ({e.strerror})") from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1
            raise DirectoryError(
                f"{p} line {line}: not valid UTF-8 (byte {e.start}); save the file as UTF-8"
            ) from None
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader, None)
            if header is None:
                raise DirectoryError(
                    f"{p} line 1: the file is empty; expected the header {','.join(COLUMNS)}"
                )
            names = [h.strip() for h in header]
            missing = [c for c in COLUMNS if c not in names]
            extra = [n for n in names if n not in COLUMNS]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if missing or extra or repeated:
                what = []
                if missing:
                    what.append(f"missing column(s) {', '.join(missing)}")
                if extra:
                    what.append(f"unexpected column(s) {', '.join(extra)}")
                if repeated:
                    what.append(f"repeated column(s) {', '.join(repeated)}")
                raise DirectoryError(
                    f"{p} line 1: {'; '.join(what)}; the header must be {','.join(COLUMNS)}"
                )
            index = {c: names.index(c) for c in COLUMNS}
            offices: list[Office] = []
            lines: list[int] = []
            last = reader.line_num
            for row in reader:
                start, last = last + 1, reader.line_num
                if not row or all(not f.strip() for f in row):
                    continue
                if len(row) != len(names):
                    raise DirectoryError(
                        f"{p} line {start}: {len(row)} field(s), expected {len(names)} "
                        f"({','.join(names)}); quote values that contain commas"
                    )
                values = {c: row[i].strip() for c, i in index.items()}
                aliases = tuple(
                    a.strip() for a in values["aliases"].split(ALIAS_SEPARATOR) if a.strip()
                )
                offices.append(
                    Office(
                        id=values["id"],
                        name=values["name"],
                        type=values["type"],
                        level=values["level"],
                        region_code=values["region_code"] or None,
                        aliases=aliases,
                    )
                )
                lines.append(start)
        except csv.Error as e:
            raise DirectoryError(f"{p} line {reader.line_num}: malformed CSV ({e})") from None
        if not offices:  # routing over it would answer no office for every complaint
            raise DirectoryError(f"{p}: no offices, only the header")
        _validate(offices, [f"{p} line {n}" for n in lines], regions)
        return cls(tuple(offices), str(p))

    @classmethod
    def from_offices(
        cls,
        offices: Iterable[Office],
        *,
        source: str = "(in memory)",
        regions: RegionTable | None = None,
    ) -> Directory:
        """A directory of these offices, validated like `read` ("office N" instead of lines)."""
        items = list(offices)
        _validate(items, [f"{source} office {i + 1}" for i in range(len(items))], regions)
        return cls(tuple(items), source)

    # ---------------------------------------------------------------- writing
    def to_csv(self) -> str:
        """The canonical CSV text: the header, then one row per office sorted by id."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(COLUMNS)
        for o in self.offices:
            w.writerow(
                (
                    o.id,
                    o.name,
                    o.type,
                    o.level,
                    o.region_code or "",
                    ALIAS_SEPARATOR.join(o.aliases),
                )
            )
        return buf.getvalue()

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the canonical CSV atomically: readers see the old file or the whole new one."""
        from model.files import atomic_output

        with atomic_output(Path(path)) as fh:
            fh.write(self.to_csv())

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the canonical CSV: any change to any office changes it."""
        return hashlib.sha256(self.to_csv().encode("utf-8")).hexdigest()

    # ---------------------------------------------------------------- lookups
    def __len__(self) -> int:
        return len(self.offices)

    def __iter__(self) -> Iterator[Office]:
        return iter(self.offices)

    def get(self, office_id: str) -> Office | None:
        """The office with this id, or None."""
        return self._by_id.get(office_id)

    def lookup(self, label: str) -> Office | None:
        """The office whose name or alias equals `label` up to case, spacing and punctuation."""
        return self._by_key.get(label_key(label))

    def of_type(self, type_: str) -> tuple[Office, ...]:
        """The offices of one type, sorted by id (empty if none)."""
        return self._by_type.get(type_, ())

    def types(self) -> list[str]:
        """The distinct types, sorted."""
        return sorted(self._by_type)

    def __repr__(self) -> str:
        return f"Directory({len(self)} offices from {self.source})"


def _validate(offices: list[Office], where: list[str], regions: RegionTable | None) -> None:
    """Check every rule of the module docstring; the first problem raises DirectoryError."""
    ids: dict[str, str] = {}
    keys: dict[str, tuple[str, str]] = {}  # label key -> (office id, where)
    for office, at in zip(offices, where, strict=True):
        for field in ("id", "name", "type", "level"):
            if not getattr(office, field):
                raise DirectoryError(f"{at}: empty {field}; every office needs an {field}")
        if _ID_RE.fullmatch(office.id) is None:
            raise DirectoryError(
                f"{at}: id '{office.id}' is not valid; use lower-case letters, digits, "
                f"'.', '_' and '-', starting with a letter or digit"
            )
        if office.id in ids:
            raise DirectoryError(
                f"{at}: duplicate id '{office.id}' (already on {ids[office.id]}); "
                f"give each office its own id"
            )
        ids[office.id] = at
        if office.level not in OFFICE_LEVELS:
            raise DirectoryError(
                f"{at}: unknown level '{office.level}'; use one of {', '.join(OFFICE_LEVELS)}"
            )
        _check_region(office, at, regions)
        own: set[str] = set()
        for label in office.labels():
            key = label_key(label)
            what = "name" if label == office.name else "alias"
            if not key:
                raise DirectoryError(
                    f"{at}: {what} '{label}' has no letters or digits; give a real name"
                )
            if key in own:
                continue
            own.add(key)
            if key in keys:
                other, other_at = keys[key]
                raise DirectoryError(
                    f"{at}: {what} '{label}' is already used by office '{other}' ({other_at}); "
                    f"names and aliases must be unique ignoring case, spacing and punctuation"
                )
            keys[key] = (office.id, at)


def _check_region(office: Office, at: str, regions: RegionTable | None) -> None:
    code = office.region_code
    depth = _DEPTH[office.level]
    if not code:
        return  # national, or "region not recorded" for the other levels
    if depth == 0:
        raise DirectoryError(
            f"{at}: a national office has no region; leave region_code empty (got '{code}')"
        )
    if _CODE_RE.fullmatch(code) is None:
        raise DirectoryError(
            f"{at}: malformed region_code '{code}'; use an official code such as "
            f"35, 35.78, 35.78.09 or 35.78.09.1001"
        )
    parts = code.count(".") + 1
    if depth is not None and parts != depth:
        raise DirectoryError(
            f"{at}: region_code '{code}' has {parts} part(s) but a {office.level} office needs "
            f"{depth} (e.g. {_DEPTH_EXAMPLE[depth]}); fix the code or the level"
        )
    if regions is not None and code not in regions:
        raise DirectoryError(
            f"{at}: region_code '{code}' is not in the region table; check the code"
        )
