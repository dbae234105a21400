"""Indonesian region codes, and finding where a complaint is about.

Aduan routes a complaint to the agency responsible for a place, so it needs
the place as an official region code (Kepmendagri codes, e.g. "35.78" Kota
Surabaya, "35.78.09" Kecamatan Sukolilo, "35.78.09.1001" Kelurahan Keputih).
This module has three parts:

- **Code helpers** (`level_of`, `parent_of`, `ancestors`, `is_within`) that
  work on the codes alone: a code's depth (number of dot-separated parts) is
  its level, `LEVELS[depth - 1]`.
- **`RegionTable`**: the region codes with their official names, read from
  CSVs with the header `code,name,level,parent_code` (the shared data's
  `regions/regions.csv` and `regions/villages.csv`, or a file written by
  `RegionTable.write`). Reading validates every row and reports a problem as a
  `RegionsError` naming the file and line. Names are looked up by a
  comparison key, `normalize_place`, that ignores case, spacing, punctuation
  and a leading administrative word ("Kab. Kendal" == "KENDAL",
  "Gunung Anyar" == "Gununganyar"); `fuzzy_find` also tolerates typos.
- **`Gazetteer`**: resolves a complaint's structured location fields and its
  text to the deepest region code the evidence supports (`Gazetteer.resolve`
  returns a `Resolution` saying how it decided). See `Gazetteer` for the rules.

The region data contains only place names; complaint text is never logged,
put in an error message or in a `Resolution` (whose evidence quotes only the
place words that matched).
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import math
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz, process

#: Aduan's level names, by code depth 1..4.
LEVELS: tuple[str, ...] = ("province", "city", "kecamatan", "kelurahan")

#: Level names of the shared data (Kepmendagri / cahyadsn/wilayah), mapped to aduan's.
SHARED_LEVELS: dict[str, str] = {
    "province": "province",
    "regency_city": "city",
    "district": "kecamatan",
    "village": "kelurahan",
}

COLUMNS: tuple[str, ...] = ("code", "name", "level", "parent_code")

_CODE_RE = re.compile(r"\d\d(?:\.\d\d(?:\.\d\d(?:\.\d{4})?)?)?")
_LEVEL_NAMES: dict[str, str] = {**SHARED_LEVELS, **{lv: lv for lv in LEVELS}}

# Leading administrative words dropped by normalize_place (longest alternatives first).
_ADMIN_PREFIX_RE = re.compile(
    r"^\s*(?:kota\s+administrasi|kota\s+adm\.|kota\s+adm\b"
    r"|kabupaten\s+administrasi|kab\.\s*adm\.|kab\.\s*adm\b|kabupaten|kab\.|kab\b|kota\b"
    r"|kecamatan|kec\.|kec\b|kelurahan|kel\.|kel\b|desa\b|ds\.|ds\b|provinsi|prov\.|prov\b)"
)
_NON_ALNUM_RE = re.compile(r"[\W_]+")


class RegionsError(ValueError):
    """A region table that cannot be read or used, worded for whoever supplied it.

    The message names the file and, where one is to blame, the line. It never
    quotes complaint text (region files hold only codes and place names).
    """


# --------------------------------------------------------------------------- code helpers
def level_of(code: str) -> str:
    """The aduan level of a region code, from its number of dot-separated parts.

    Raises ValueError if `code` is not a well-formed region code
    (`35`, `35.78`, `35.78.10`, `35.78.10.1002`).
    """
    if not isinstance(code, str) or _CODE_RE.fullmatch(code) is None:
        raise ValueError(f"malformed region code {code!r} (expected e.g. 35, 35.78, 35.78.10.1002)")
    return LEVELS[code.count(".")]


def parent_of(code: str) -> str | None:
    """The code one level up (`35.78.10` -> `35.78`), or None for a province."""
    level_of(code)
    head, dot, _ = code.rpartition(".")
    return head if dot else None


def ancestors(code: str) -> list[str]:
    """The code itself first, then its parent, and so on up to the province."""
    level_of(code)
    parts = code.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def is_within(code: str, ancestor: str) -> bool:
    """Whether `code` is `ancestor` or lies below it (whole parts: 35.78 is not within 35.7)."""
    return code == ancestor or code.startswith(ancestor + ".")


def normalize_place(name: str) -> str:
    """The comparison key of a place name.

    NFKC, casefold, drop one leading administrative word ("Kota Administrasi",
    "Kota Adm.", "Kota", "Kabupaten", "Kab.", "Kecamatan", "Kec.", "Kelurahan",
    "Kel.", "Desa", "Ds.", "Provinsi", "Prov."), then keep only letters and
    digits. So "Gunung Anyar" == "Gununganyar", "Kab. Kendal" == "Kendal",
    "dr. Soetomo" == "Dr Soetomo" and "Kota Surabaya" == "Surabaya". A name
    that is nothing but an administrative word keeps it ("Kota" -> "kota").
    """
    s = unicodedata.normalize("NFKC", name).casefold()
    key = _NON_ALNUM_RE.sub("", _ADMIN_PREFIX_RE.sub("", s, count=1))
    return key or _NON_ALNUM_RE.sub("", s)


def _clean_code(code: str) -> str:
    """A code as typed by someone: surrounding spaces and a trailing dot tolerated."""
    return code.strip().rstrip(".").strip()


# --------------------------------------------------------------------------- table
@dataclass(frozen=True)
class Region:
    """One region: its code, its official name as in the table, and its aduan level."""

    code: str
    name: str  # e.g. "Kota Surabaya", "Sukolilo", "Keputih"
    level: str  # one of LEVELS


class RegionTable:
    """Region codes and official names, with lookups by code, parent and name.

    Build it with `read` (CSV files) or `from_regions`. It is immutable once
    built, so one table can be shared by threads. Lookups by name use
    `normalize_place` keys; `within` restricts a lookup to a code's subtree
    (the code itself and everything below it).
    """

    def __init__(self, regions: Mapping[str, Region]) -> None:
        # Private: use read() or from_regions(). `regions` is code -> Region, already valid.
        self._regions: dict[str, Region] = dict(regions)
        self._children: dict[str | None, list[str]] = {}
        self._by_key: dict[str, list[str]] = {}
        # Per level: the codes sorted, and their keys in the same order (subtree = a slice).
        self._level_codes: dict[str, list[str]] = {lv: [] for lv in LEVELS}
        self._level_keys: dict[str, list[str]] = {lv: [] for lv in LEVELS}
        self._key: dict[str, str] = {}
        self._length_buckets: dict[str, dict[int, tuple[list[str], list[str]]]] = {
            lv: {} for lv in LEVELS
        }
        for code in sorted(self._regions):
            region = self._regions[code]
            key = normalize_place(region.name)
            self._key[code] = key
            self._children.setdefault(parent_of(code), []).append(code)
            self._by_key.setdefault(key, []).append(code)
            self._level_codes[region.level].append(code)
            self._level_keys[region.level].append(key)
            keys, codes = self._length_buckets[region.level].setdefault(len(key), ([], []))
            keys.append(key)
            codes.append(code)

    # ---------------------------------------------------------------- building
    @classmethod
    def read(cls, *paths: str | os.PathLike[str]) -> RegionTable:
        """Read one or more CSVs with the header `code,name,level,parent_code`.

        Levels may be aduan's (`LEVELS`) or the shared data's (`province`,
        `regency_city`, `district`, `village`). Every row is checked: a
        well-formed code, a non-empty name, a level that agrees with the
        code's depth, `parent_code` equal to the code's parent, no code twice
        (across all files), and every parent present in the table. A problem
        raises `RegionsError("<file> line <n>: ...")`; a missing file raises
        one naming it.
        """
        if not paths:
            raise RegionsError("RegionTable.read: no region file given")
        regions: dict[str, Region] = {}
        where: dict[str, str] = {}  # code -> "file line n", for duplicate and parent messages
        for path in paths:
            cls._read_one(Path(path), regions, where)
        for code in regions:
            parent = parent_of(code)
            if parent is not None and parent not in regions:
                raise RegionsError(
                    f"{where[code]}: parent_code '{parent}' of '{code}' is not in the region "
                    "table; read the file with the parent regions too"
                )
        return cls(regions)

    @staticmethod
    def _read_one(path: Path, regions: dict[str, Region], where: dict[str, str]) -> None:
        try:
            fh = open(path, newline="", encoding="utf-8-sig")
        except FileNotFoundError:
            raise RegionsError(f"{path}: region file not found") from None
        except OSError as e:
            raise RegionsError(f"{path}: cannot open region file ({e.strerror})") from None
        with fh:
            reader = csv.reader(fh)
            try:
                header = next(reader, None)
                if header is None:
                    raise RegionsError(
                        f"{path} line 1: empty file; expected the header {','.join(COLUMNS)}"
                    )
                header = [h.strip() for h in header]
                missing = [c for c in COLUMNS if c not in header]
                if missing:
                    raise RegionsError(
                        f"{path} line 1: missing column(s) {', '.join(missing)}; "
                        f"expected the header {','.join(COLUMNS)}"
                    )
                idx = [header.index(c) for c in COLUMNS]
                width = len(header)
                for row in reader:
                    if not row:
                        continue
                    at = f"{path} line {reader.line_num}"
                    if len(row) != width:
                        raise RegionsError(
                            f"{at}: expected {width} fields, found {len(row)} "
                            "(quote names that contain commas)"
                        )
                    code, name, level, parent = (row[i].strip() for i in idx)
                    regions[code] = _check_row(at, code, name, level, parent, where)
                    where[code] = at
            except UnicodeDecodeError:
                raise RegionsError(
                    f"{path} line {reader.line_num + 1}: not valid UTF-8; save the file as UTF-8"
                ) from None
            except csv.Error as e:
                raise RegionsError(f"{path} line {reader.line_num}: malformed CSV ({e})") from None

    @classmethod
    def from_regions(cls, regions: Iterable[Region]) -> RegionTable:
        """A table of the given regions (checked like `read`, but parents may be absent).

        Levels may be given as aduan's or the shared data's names; they are
        stored as aduan's.
        """
        table: dict[str, Region] = {}
        where: dict[str, str] = {}
        for i, r in enumerate(regions):
            at = f"region #{i}"
            code = r.code.strip()
            parent = parent_of(code) if _CODE_RE.fullmatch(code) else ""
            table[code] = _check_row(at, code, r.name.strip(), r.level, parent or "", where)
            where[code] = at
        return cls(table)

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the table as one CSV (same header, aduan level names, sorted by code)."""
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(COLUMNS)
            for r in self:
                w.writerow((r.code, r.name, r.level, parent_of(r.code) or ""))

    def subset(self, codes: Iterable[str]) -> RegionTable:
        """A table of these codes' whole subtrees plus their ancestors.

        KeyError for a code that is not in the table.
        """
        keep: dict[str, Region] = {}
        for code in codes:
            code = _clean_code(code)
            if code not in self._regions:
                raise KeyError(f"region code '{code}' is not in the region table")
            for a in ancestors(code):
                if a in self._regions:
                    keep[a] = self._regions[a]
            for c in self._subtree(code):
                keep[c] = self._regions[c]
        return RegionTable(keep)

    # ---------------------------------------------------------------- lookups
    def __len__(self) -> int:
        return len(self._regions)

    def __contains__(self, code: object) -> bool:
        return code in self._regions

    def __iter__(self) -> Iterator[Region]:
        """The regions, sorted by code."""
        for code in sorted(self._regions):
            yield self._regions[code]

    def get(self, code: str) -> Region | None:
        return self._regions.get(code)

    def key(self, code: str) -> str:
        """The `normalize_place` key of a region's name (KeyError if unknown)."""
        return self._key[code]

    def children(self, code: str | None) -> list[Region]:
        """The regions one level below `code`, sorted by code; `None` -> the provinces."""
        return [self._regions[c] for c in self._children.get(code, [])]

    def _subtree(self, code: str) -> list[str]:
        """`code` and every code below it that is in the table."""
        out = []
        for lv in LEVELS[LEVELS.index(level_of(code)) :]:
            lo, hi = self._level_range(lv, code)
            out.extend(self._level_codes[lv][lo:hi])
        return out

    def _level_range(self, level: str, within: str | None) -> tuple[int, int]:
        """Index range, in the level's sorted codes, of those within `within`."""
        codes = self._level_codes[level]
        if within is None:
            return 0, len(codes)
        lo = bisect.bisect_left(codes, within)
        hi = bisect.bisect_left(codes, within + "/", lo)  # "/" sorts right after "."
        return lo, hi

    def find(
        self, name: str, *, level: str | None = None, within: str | None = None
    ) -> list[Region]:
        """Regions whose name has the same `normalize_place` key, sorted by code.

        `level` (aduan's or the shared data's name) keeps one level; `within`
        keeps the subtree of that code.
        """
        return self.find_key(normalize_place(name), level=level, within=within)

    def find_key(
        self, key: str, *, level: str | None = None, within: str | None = None
    ) -> list[Region]:
        """Like `find`, for a key that is already `normalize_place`d."""
        lv = _level_name(level) if level is not None else None
        out = []
        for code in self._by_key.get(key, ()):
            r = self._regions[code]
            if lv is not None and r.level != lv:
                continue
            if within is not None and not is_within(code, within):
                continue
            out.append(r)
        return out

    def fuzzy_find(
        self,
        name: str,
        *,
        level: str | None = None,
        within: str | None = None,
        cutoff: float = 88.0,
    ) -> list[tuple[Region, float]]:
        """Regions whose names are similar to `name`, best first, with a 0..100 score.

        The score is rapidfuzz's normalised Indel similarity (`fuzz.ratio`) of
        the `normalize_place` keys, so spacing and case do not count and a
        one-letter typo in a 9-letter name ("Tembalamg") scores about 89.
        Exact matches score 100. Ties are ordered by code. Restrict with
        `level` and `within` to keep it fast (all 83k villages take ~10 ms).
        """
        key = normalize_place(name)
        if not key:
            return []
        levels = [_level_name(level)] if level is not None else list(LEVELS)
        hits: list[tuple[Region, float]] = []
        # ratio >= cutoff needs 200 * min(len) / (len + len') >= cutoff: bounds the lengths.
        c = min(max(cutoff, 1.0), 100.0)
        min_len = math.floor(len(key) * c / (200 - c))
        max_len = math.ceil(len(key) * (200 - c) / c) if c < 100 else len(key)
        for lv in levels:
            if within is None:  # nationally: only the names of a possible length
                parts = [
                    self._length_buckets[lv].get(n, ([], []))
                    for n in range(max(min_len, 1), max_len + 1)
                ]
            else:
                lo, hi = self._level_range(lv, within)
                parts = [(self._level_keys[lv][lo:hi], self._level_codes[lv][lo:hi])]
            for keys, codes in parts:
                if not keys:
                    continue
                matches = process.extract(
                    key, keys, scorer=fuzz.ratio, score_cutoff=cutoff, limit=None
                )
                for _, score, i in matches:
                    hits.append((self._regions[codes[i]], float(score)))
        hits.sort(key=lambda h: (-h[1], h[0].code))
        return hits

    def display(self, code: str) -> str:
        """A readable place name from the table's names, e.g.
        "Keputih, Kecamatan Sukolilo, Kota Surabaya" (kelurahan, kecamatan, city).

        A province is shown by its name alone. KeyError for an unknown code.
        """
        region = self._regions.get(code)
        if region is None:
            raise KeyError(f"region code '{code}' is not in the region table")
        if region.level == "province":
            return region.name
        parts = []
        for a in ancestors(code):
            r = self._regions.get(a)
            if r is None or r.level == "province":
                continue
            if r.level == "kecamatan" and not r.name.casefold().startswith(("kecamatan", "kec.")):
                parts.append(f"Kecamatan {r.name}")
            else:
                parts.append(r.name)
        return ", ".join(parts)

    def fingerprint(self) -> str:
        """SHA-256 (hex) over the sorted rows (code, name, level): equal tables, equal prints."""
        h = hashlib.sha256()
        for r in self:
            h.update(f"{r.code}\t{r.name}\t{r.level}\n".encode())
        return h.hexdigest()

    def __repr__(self) -> str:
        counts = ", ".join(f"{lv}={len(self._level_codes[lv])}" for lv in LEVELS)
        return f"RegionTable({counts})"


def _level_name(level: str) -> str:
    lv = _LEVEL_NAMES.get(level)
    if lv is None:
        raise ValueError(f"unknown region level {level!r} (expected one of {', '.join(LEVELS)})")
    return lv


def _check_row(
    at: str, code: str, name: str, level: str, parent: str, where: Mapping[str, str]
) -> Region:
    """Validate one row (see `RegionTable.read`) and return it as a Region."""
    if _CODE_RE.fullmatch(code) is None:
        raise RegionsError(
            f"{at}: malformed code '{code}' (expected e.g. 35, 35.78, 35.78.10, 35.78.10.1002)"
        )
    if not name:
        raise RegionsError(f"{at}: empty name for code '{code}'")
    lv = _LEVEL_NAMES.get(level.strip())
    if lv is None:
        raise RegionsError(
            f"{at}: unknown level '{level}' (expected one of "
            f"{', '.join(LEVELS)} or {', '.join(SHARED_LEVELS)})"
        )
    depth_level = level_of(code)
    if lv != depth_level:
        raise RegionsError(
            f"{at}: level '{level}' does not agree with code '{code}', "
            f"which has {code.count('.') + 1} part(s), i.e. level '{depth_level}'"
        )
    expected = parent_of(code) or ""
    if parent != expected:
        raise RegionsError(f"{at}: parent_code '{parent}' of '{code}' should be '{expected}'")
    if code in where:
        raise RegionsError(f"{at}: duplicate code '{code}' (already on {where[code]})")
    return Region(code=code, name=name, level=lv)


# --------------------------------------------------------------------------- resolution
@dataclass(frozen=True)
class Resolution:
    """Where a complaint is about, and why `Gazetteer.resolve` thinks so.

    `source` is "region_code", "location", "text", "scope" or "none";
    `evidence` holds short reasons that quote only the place words that
    matched (never other complaint text); `candidates` lists the codes that fit
    equally well when a name was ambiguous (`code` is then their deepest common
    ancestor, or None). `name` is the table's display name of `code`.
    """

    code: str | None
    level: str | None
    source: str
    evidence: tuple[str, ...]
    confidence: float
    candidates: tuple[str, ...] = ()
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists, `name` included)."""
        return {
            "code": self.code,
            "level": self.level,
            "name": self.name,
            "source": self.source,
            "evidence": list(self.evidence),
            "confidence": round(self.confidence, 4),
            "candidates": list(self.candidates),
        }


# Text scanning vocabulary (casefolded tokens; punctuation is not part of a token).
_TOKEN_RE = re.compile(r"[^\W_]+")
_BREAK_RE = re.compile(r"[,;:!?()\[\]{}<>\"/|\n\r\t]")
#: Marker word -> the level of the place name that follows it.
_MARKERS: dict[str, str] = {
    "kelurahan": "kelurahan",
    "kel": "kelurahan",
    "desa": "kelurahan",
    "ds": "kelurahan",
    "kecamatan": "kecamatan",
    "kec": "kecamatan",
    "kota": "city",
    "kab": "city",
    "kabupaten": "city",
    "provinsi": "province",
    "prov": "province",
}
_CITY_KIND: dict[str, str] = {"kota": "kota", "kab": "kabupaten", "kabupaten": "kabupaten"}
_STREET_MARKERS = frozenset({"jl", "jln", "jalan", "gg", "gang", "perum", "perumahan"})
#: Ordinary words: never a place name on their own when unmarked, and they end a street name.
_FUNCTION_WORDS = frozenset(
    """
    di ke dari dan yang ini itu tersebut sekitar setempat kami kita saya kamu anda untuk pada
    dengan atau ada tidak tak sudah belum akan bisa mohon tolong segera warga pak bu bapak ibu
    mas mbak lurah camat rt rw no nomor blok arah menuju dekat depan belakang samping sebelah
    antara daerah wilayah kawasan lokasi sana sini situ juga masih sering selalu
    """.split()
)
#: Single-word place names that are also ordinary words (Indonesian/Javanese); an unmarked
#: one is not read as a place ("batu" is Kota Batu, but mostly a stone).
_ORDINARY_NAMES = _FUNCTION_WORDS | frozenset(
    """
    baru lama jaya tengah utara selatan barat timur kota pusat raya indah makmur sari batu batang
    metro puncak landak kali pasar kampung dukuh dusun desa taman tanjung gunung bukit sawah kebun
    pantai laut pulau sungai muara teluk air tanah jati sumber mulya mulia sejahtera sentosa damai
    rejo harapan merdeka bahagia karya bakti bhakti maju mekar asri permai lestari subur agung
    besar kecil ilir ulu hulu hilir kulon wetan lor kidul krajan genteng pandan kelapa mangga
    jeruk melati mawar kenanga cempaka anggrek bambu cemara beringin waru pintu terminal stasiun
    pelabuhan lapangan sekolah masjid kantor rumah jembatan tugu simpang lingkungan ujung pojok
    tepi perempatan pertigaan gedung balai pondok kandang pasir kebon sumur parit lorong makam
    pabrik gudang toko warung ruko plaza
    """.split()
)
#: Well-known short forms, keyed by the official name they stand for.
_ALIASES: dict[str, tuple[str, ...]] = {
    "Daerah Khusus Ibukota Jakarta": ("jakarta", "dki", "dkijakarta"),
    "Daerah Istimewa Yogyakarta": ("diy", "diyogyakarta", "jogja", "jogjakarta", "yogya"),
    "Jawa Timur": ("jatim",),
    "Jawa Tengah": ("jateng",),
    "Jawa Barat": ("jabar",),
    "Nusa Tenggara Barat": ("ntb",),
    "Nusa Tenggara Timur": ("ntt",),
    "Sumatera Utara": ("sumut",),
    "Sumatera Barat": ("sumbar",),
    "Sumatera Selatan": ("sumsel",),
    "Sulawesi Selatan": ("sulsel",),
    "Sulawesi Utara": ("sulut",),
    "Kalimantan Timur": ("kaltim",),
    "Kalimantan Barat": ("kalbar",),
    "Kalimantan Selatan": ("kalsel",),
    "Kepulauan Bangka Belitung": ("babel", "bangkabelitung"),
    "Kepulauan Riau": ("kepri",),
    "Kota Surakarta": ("solo",),
}
_MAX_WORDS = 4  # longest place-name n-gram looked up
_MAX_FUZZY = 3  # fuzzy look-ups per text, at most
_MIN_FUZZY_KEY = 5  # shorter keys are not fuzzy-matched (too many near misses)
_FUZZY_CUTOFF = 88.0  # nationally: one typo in a 9-letter name
_FUZZY_CUTOFF_WITHIN = 85.0  # within a known parent: one typo in a 7-letter name
#: Government prefixes glued to a place name in hashtags and run-together words, with the
#: kinds of region they may name ("pemkotsemarang" is Kota Semarang, not the Kabupaten).
_GLUED_PREFIXES: tuple[tuple[str, frozenset[str]], ...] = (
    ("pemkot", frozenset({"kota"})),
    ("pemkab", frozenset({"kabupaten"})),
    ("pemprov", frozenset({"province"})),
    ("kabupaten", frozenset({"kabupaten"})),
    ("kota", frozenset({"kota"})),
    ("kab", frozenset({"kabupaten"})),
)

_MARKED_W = 2.0
_UNMARKED_W = 1.0
_KABUPATEN_W = 0.9  # unmarked "Semarang": Kota Semarang is preferred over Kabupaten Semarang
_CONTEXT_W = 0.75  # unmarked kecamatan/kelurahan supported only by the scope or location
_SCOPE_BONUS = 0.5
_EPS = 1e-9
_MAX_CANDIDATES = 20  # tied codes listed in a Resolution, at most


@dataclass
class _Mention:
    """One place mention found in a text: what it quoted and which codes it may mean."""

    quote: str  # the matched words (casefolded), with their marker if any
    marked: str | None  # the marker's level, None when unmarked
    weights: dict[str, float]  # candidate code -> weight
    group: int = -1  # the occurrence in the text (its readings at several levels share it)
    note: str = ""  # e.g. " ~ Tembalang (89)" for a fuzzy match


@dataclass
class _Pending:
    """A marked mention with no exact match, to be tried with fuzzy matching."""

    quotes: list[str]  # quotes[m - 1]: the marker and the first m words
    level: str
    kind: str | None  # "kota"/"kabupaten" for a city marker
    words: list[str]


def _cutoff(within: str | None) -> float:
    return _FUZZY_CUTOFF if within is None else _FUZZY_CUTOFF_WITHIN


def _kind_filter(codes: list[str], names: Mapping[str, str], kind: str | None) -> list[str]:
    """Keep the "Kota ..." (or "Kabupaten ...") cities when the marker says which, if any are."""
    if kind is None:
        return codes
    kept = [c for c in codes if names[c].casefold().startswith(kind)]
    return kept or codes


def _kind_of(name: str) -> str:
    """ "kota", "kabupaten" or "province" for a city or province name of the table."""
    folded = name.casefold()
    if folded.startswith("kota"):
        return "kota"
    if folded.startswith("kabupaten"):
        return "kabupaten"
    return "province"


def _common_ancestor(codes: Iterable[str]) -> str | None:
    """The deepest code that is an ancestor of (or equal to) all `codes`; None if none."""
    common: list[str] | None = None
    for code in codes:
        parts = code.split(".")
        if common is None:
            common = parts
            continue
        k = 0
        while k < min(len(common), len(parts)) and common[k] == parts[k]:
            k += 1
        common = common[:k]
    return ".".join(common) if common else None


class Gazetteer:
    """Resolves a complaint's location fields and text to a region code.

    Build one per deployment (`Gazetteer(table, scope=("35.78",))` for Kota
    Surabaya; no scope = national) and call `resolve` per request; it is
    read-only after construction, so threads may share it.

    `resolve(text, location)` decides, in order:

    1. `location["region_code"]` when it is in the table (spaces and a
       trailing dot tolerated): source "region_code", confidence 1.
    2. The location fields `city`, `kecamatan`, `kelurahan`, resolved
       hierarchically: the city by name (inside the scope when it matches
       there), the kecamatan within the city (or the scope, or nationally),
       the kelurahan within the kecamatan, else within the city. Each level is
       matched exactly on `normalize_place` keys, then fuzzily within its
       parent ("Pabean Cantikan" -> Pabean Cantian). Marked mentions in
       `address` ("Kel. Keputih", "Kec. Rungkut") may refine the result. The
       deepest consistent code wins: source "location", confidence 0.95 for
       exact matches, less for fuzzy ones. A result above kelurahan level may
       be refined by the text (step 3, restricted to within that code).
    3. Place mentions in the text (see `_scan`): marked ones ("kec.
       tembalang", "kab. kendal", "kota semarang", fuzzily matched if need
       be) weigh most; unmarked city and province names count too, and
       unmarked kecamatan/kelurahan names when they lie within another
       mention, the scope or the location result; words after "jl."/"jalan"/
       "gg."/"gang"/"perum" are a street, not a place. Each candidate code is
       scored by the mentions on its chain of ancestors (+ a bonus inside the
       scope); the best chain's deepest code wins. A tie between codes on
       different chains returns their deepest common ancestor with the tied
       codes in `candidates` and low confidence.
    4. Otherwise the scope (when it is exactly one code, source "scope",
       confidence 0.5), or nothing (source "none").
    """

    def __init__(self, table: RegionTable, *, scope: Sequence[str] = ()) -> None:
        self.table = table
        cleaned = []
        for code in [scope] if isinstance(scope, str) else scope:
            c = _clean_code(code)
            if c not in table:
                raise RegionsError(
                    f"deployment scope: region code '{c}' is not in the region table"
                )
            cleaned.append(c)
        self.scope: tuple[str, ...] = tuple(dict.fromkeys(cleaned))
        self._names: dict[str, str] = {r.code: r.name for r in table._regions.values()}
        # key -> candidate codes (all levels), including the short forms in _ALIASES.
        self._index: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in table._by_key.items()}
        by_name = {
            r.name: r.code for r in table._regions.values() if r.level in ("province", "city")
        }
        for official, keys in _ALIASES.items():
            alias_of = by_name.get(official)
            if alias_of is None:
                continue
            for k in keys:
                if alias_of not in self._index.get(k, ()):
                    self._index[k] = (*self._index.get(k, ()), alias_of)
        self._sorted_keys: list[str] = sorted(self._index)

    # ---------------------------------------------------------------- public
    def resolve(
        self, text: str = "", location: Mapping[str, str | None] | None = None
    ) -> Resolution:
        """The deepest region code the location fields and text support (see the class doc)."""
        location = location or {}
        evidence: list[str] = []

        raw_code = location.get("region_code")
        if isinstance(raw_code, str) and raw_code.strip():
            code = _clean_code(raw_code)
            if code in self.table:
                return self._result(code, "region_code", [f"location.region_code '{code}'"], 1.0)
            if _CODE_RE.fullmatch(code):
                evidence.append(f"region_code '{code}' not in the region table")
            else:  # not quoted: a NIK or phone number typed into the field would be echoed
                evidence.append("region_code is not a region code; ignored")

        loc = self._resolve_location(location, evidence)
        if loc is not None and loc.code is not None and loc.level != "kelurahan" and text:
            refined = self._resolve_text(text, within=loc.code, marked_only=False)
            if refined is not None and refined.code is not None and refined.code != loc.code:
                return self._result(
                    refined.code,
                    "text",
                    [*loc.evidence, *refined.evidence],
                    min(loc.confidence, refined.confidence),
                    refined.candidates,
                )
        if loc is not None:
            return loc

        if text:
            found = self._resolve_text(text, within=None, marked_only=False, evidence=evidence)
            if found is not None:
                return found

        if len(self.scope) == 1:
            evidence.append(f"deployment scope {self._label(self.scope[0])}")
            return self._result(self.scope[0], "scope", evidence, 0.5)
        evidence.insert(0, "no place name found")
        return Resolution(None, None, "none", tuple(evidence), 0.0, self.scope)

    # ---------------------------------------------------------------- helpers
    def _result(
        self,
        code: str | None,
        source: str,
        evidence: Sequence[str],
        confidence: float,
        candidates: Sequence[str] = (),
    ) -> Resolution:
        return Resolution(
            code=code,
            level=level_of(code) if code is not None else None,
            source=source,
            evidence=tuple(evidence),
            confidence=round(max(0.0, min(1.0, confidence)), 4),
            candidates=tuple(candidates),
            name=self.table.display(code) if code is not None else None,
        )

    def _label(self, code: str) -> str:
        """A region's name as used in evidence: "Kecamatan Sukolilo", "Kota Surabaya", "Keputih"."""
        name = self._names[code]
        if level_of(code) == "kecamatan" and not name.casefold().startswith(("kecamatan", "kec.")):
            return f"Kecamatan {name}"
        return name

    def _in_scope(self, code: str) -> bool:
        return any(is_within(code, s) for s in self.scope)

    # ---------------------------------------------------------------- location fields
    def _match_field(
        self, value: str, level: str, within: str | None, *, fuzzy: bool = True
    ) -> tuple[list[str], float | None]:
        """Codes at `level` within `within` named `value`: exact, else fuzzy (best score only).

        Returns the codes and the fuzzy score (None for an exact match).
        """
        key = normalize_place(value)
        if not key:
            return [], None
        exact = [r.code for r in self.table.find_key(key, level=level, within=within)]
        if exact:
            return exact, None
        if within is not None:
            # "Wonorejo Rungkut": the name qualified by its parent's name (there are two
            # kelurahan Wonorejo in Surabaya).
            pk = self.table.key(within)
            rests = [key[: -len(pk)] if key.endswith(pk) else "", ""]
            rests[1] = key[len(pk) :] if key.startswith(pk) else ""
            for rest in rests:
                found = self.table.find_key(rest, level=level, within=within) if rest else []
                if found:
                    return [r.code for r in found], None
        if not fuzzy or len(key) < _MIN_FUZZY_KEY or (level == "kelurahan" and within is None):
            return [], None  # a national fuzzy search over 83k villages is slow and unreliable
        hits = self.table.fuzzy_find(value, level=level, within=within, cutoff=_cutoff(within))
        if not hits:
            return [], None
        top = hits[0][1]
        return [r.code for r, s in hits if s >= top - _EPS], top

    def _match_in(
        self, value: str, level: str, parents: Sequence[str | None], *, fuzzy: bool = True
    ) -> tuple[list[str], float | None]:
        """`_match_field` under several parents: exact matches anywhere beat fuzzy ones,
        and among fuzzy ones only the best score is kept."""
        results = []
        for p in parents:
            codes, score = self._match_field(value, level, p, fuzzy=fuzzy)
            if codes:
                results.append((codes, score))
        exact = [c for codes, score in results if score is None for c in codes]
        if exact or not results:
            return list(dict.fromkeys(exact)), None
        best = max(score for _, score in results if score is not None)
        found = [
            c
            for codes, score in results
            if score is not None and score >= best - _EPS
            for c in codes
        ]
        return list(dict.fromkeys(found)), best

    def _resolve_location(
        self, location: Mapping[str, str | None], evidence: list[str]
    ) -> Resolution | None:
        def field(name: str) -> str:
            v = location.get(name)
            return v.strip() if isinstance(v, str) else ""

        city, kec, kel, address = (
            field("city"),
            field("kecamatan"),
            field("kelurahan"),
            field("address"),
        )
        if not (city or kec or kel or address):
            return None
        ev: list[str] = []
        confidence = 0.95
        # `current`: candidate codes of the deepest level resolved so far; None = nothing yet.
        current: list[str] | None = None
        bases: list[str | None] = list(self.scope) or [None]  # where to look without a city

        def quote(v: str) -> str:
            return v if len(v) <= 60 else v[:57] + "..."

        def fuzzy_note(score: float | None, codes: list[str]) -> str:
            if score is None:
                return ""
            return f" ~ {self._names[codes[0]]} ({score:.0f})"

        if city:
            codes, score = self._match_field(city, "city", None)
            if not codes:
                codes, score = self._match_field(city, "province", None)
            first = _TOKEN_RE.search(city.casefold())
            kind = _CITY_KIND.get(first.group()) if first else None
            codes = _kind_filter(codes, self._names, kind)
            if self.scope:
                inside = [
                    c
                    for c in codes
                    if self._in_scope(c) or any(is_within(s, c) for s in self.scope)
                ]
                codes = inside or codes
            if codes:
                current = codes
                if score is not None:
                    confidence = min(confidence, 0.9 * score / 100)
                ev.append(f"location.city '{quote(city)}'{fuzzy_note(score, codes)}")
            else:
                ev.append("location.city not found in the region table")

        for level, value in (("kecamatan", kec), ("kelurahan", kel)):
            if not value:
                continue
            parents: list[str | None] = list(current) if current else list(bases)
            found, score = self._match_in(value, level, parents)
            if not found and not current and parents != [None]:
                found, score = self._match_in(value, level, [None], fuzzy=False)
                if found:
                    parents = [None]  # outside the scope, found nationally
            where = (
                " within " + ", ".join(self._label(p) for p in parents if p is not None)
                if any(p is not None for p in parents)
                else ""
            )
            if not found and level == "kelurahan" and current and current[0].count(".") == 2:
                # Not in that kecamatan: look in its city (the kecamatan field may be wrong).
                cities: list[str | None] = list(dict.fromkeys(c[:5] for c in current))
                found, score = self._match_in(value, level, cities)
                if found:
                    ev.append(
                        f"location.kelurahan '{quote(value)}' not in "
                        + ", ".join(self._label(c) for c in current)
                        + "; found in "
                        + ", ".join(dict.fromkeys(self._label(c[:8]) for c in found))
                        + fuzzy_note(score, found)
                    )
                    current = found
                    confidence = min(confidence, 0.85 * (score or 100.0) / 100)
                    continue
            if found:
                ev.append(f"location.{level} '{quote(value)}'{fuzzy_note(score, found)}{where}")
                current = found
                if score is not None:
                    confidence = min(confidence, 0.9 * score / 100)
            else:
                ev.append(f"location.{level} not found{where or ' in the region table'}")

        # Marked mentions in the address ("Kel. Keputih", "Kec. Rungkut") may go deeper.
        if address and (current is None or len(current) == 1):
            base = current[0] if current else None
            if base is None or level_of(base) != "kelurahan":
                got = self._resolve_text(address, within=base, marked_only=True, field="address")
                if got is not None and got.code is not None and got.code != base:
                    ev.extend(got.evidence)
                    current = [got.code]
                    confidence = min(confidence, 0.9, got.confidence + 0.05)

        evidence.extend(ev)
        if not current:
            return None
        if self.scope and len(current) > 1:
            inside = [c for c in current if self._in_scope(c)]
            current = inside or current
        if len(current) > 1 and all(level_of(c) == "city" for c in current):
            kota = [c for c in current if self._names[c].casefold().startswith("kota")]
            if len(kota) == 1:
                current = kota
                confidence = min(confidence, 0.85)
        if len(current) == 1:
            return self._result(current[0], "location", evidence, confidence)
        common = _common_ancestor(current)
        evidence.append(f"location is ambiguous: {len(current)} regions fit equally well")
        return self._result(
            common, "location", evidence, 0.4 if common else 0.2, sorted(current)[:_MAX_CANDIDATES]
        )

    # ---------------------------------------------------------------- text
    def _is_prefix(self, key: str) -> bool:
        """Whether some name's key starts with `key`."""
        keys = self._sorted_keys
        i = bisect.bisect_left(keys, key)
        return i < len(keys) and keys[i].startswith(key)

    def _is_upper_name(self, token: str) -> bool:
        """Whether one token is a city or province name (not an ordinary word)."""
        if token in _ORDINARY_NAMES or len(token) < 4:
            return False
        return any(c.count(".") <= 1 for c in self._index.get(token, ()))

    def _glued(self, token: str) -> tuple[str, list[str]] | None:
        """A token that glues a government prefix to a city or province name, as in
        hashtags ("pemkotsemarang", "kotabandung", "kabkendal"): the name's key and codes."""
        for prefix, kinds in _GLUED_PREFIXES:
            if token.startswith(prefix) and len(token) - len(prefix) >= 4:
                key = token[len(prefix) :]
                codes = [
                    c
                    for c in self._index.get(key, ())
                    if c.count(".") <= 1 and _kind_of(self._names[c]) in kinds
                ]
                if codes:
                    return key, codes
        return None

    def _ngram_key(self, words: Sequence[str]) -> str:
        if words[0] in _MARKERS or words[0] in ("adm", "administrasi"):
            return normalize_place(" ".join(words))
        return "".join(words)

    def _scan(
        self, text: str, marked_only: bool
    ) -> tuple[list[_Mention], list[_Mention], list[_Pending]]:
        """Find place mentions in `text`.

        Returns the marked mentions (and unmarked city/province ones), the
        unmarked mentions of kecamatan/kelurahan names (readings of one
        occurrence share its `group`), and the marked mentions without an
        exact match (for fuzzy matching).
        """
        s = unicodedata.normalize("NFKC", text).casefold()
        spans = [(m.group(), m.start(), m.end()) for m in _TOKEN_RE.finditer(s)]
        toks = [t for t, _, _ in spans]
        n = len(toks)
        brk = [False] * n  # brk[i]: a punctuation break between tokens i-1 and i
        for i in range(1, n):
            gap = s[spans[i - 1][2] : spans[i][1]]
            if gap != " " and (
                _BREAK_RE.search(gap) is not None or ("." in gap and len(toks[i - 1]) > 4)
            ):
                brk[i] = True

        def run(j: int) -> int:
            """How many tokens from j may form a name (no break or marker inside)."""
            k = j + 1
            while (
                k < n
                and k - j < _MAX_WORDS
                and not brk[k]
                and toks[k] not in _MARKERS
                and (toks[k] not in _STREET_MARKERS)
            ):
                k += 1
            return k - j

        strong: list[_Mention] = []
        weak: list[_Mention] = []
        pending: list[_Pending] = []
        seen: set[tuple[str, str | None]] = set()
        i = 0
        while i < n:
            t = toks[i]
            if t in _STREET_MARKERS:
                j = i + 1
                while (
                    j < n
                    and j - i <= _MAX_WORDS
                    and (j == i + 1 or not brk[j])
                    and toks[j] not in _MARKERS
                    and toks[j] not in _STREET_MARKERS
                    and toks[j] not in _FUNCTION_WORDS
                    and not any(ch.isdigit() for ch in toks[j])
                    and (j == i + 1 or not self._is_upper_name(toks[j]))
                ):
                    j += 1  # "jl. kali progo semarang": the street ends at the city
                i = max(j, i + 1)
                continue
            if t in _MARKERS:
                level = _MARKERS[t]
                kind = _CITY_KIND.get(t)
                j = i + 1
                if kind is not None and j < n and toks[j] in ("adm", "administrasi"):
                    j += 1
                if j >= n or toks[j] in _FUNCTION_WORDS:
                    i = j
                    continue
                longest = run(j)
                hit = None
                for m in range(longest, 0, -1):
                    key = self._ngram_key(toks[j : j + m])
                    codes = [c for c in self._index.get(key, ()) if level_of(c) == level]
                    if codes:
                        hit = (m, _kind_filter(codes, self._names, kind))
                        break
                if hit is None:
                    k = min(longest, 3)
                    quotes = [s[spans[i][1] : spans[j + m][2]] for m in range(k)]
                    pending.append(_Pending(quotes, level, kind, toks[j : j + k]))
                    i = j
                    continue
                m, codes = hit
                quote = s[spans[i][1] : spans[j + m - 1][2]]
                if (key, level) not in seen:
                    seen.add((key, level))
                    strong.append(_Mention(quote, level, {c: _MARKED_W for c in codes}, i))
                i = j + m
                continue
            glued = self._glued(t)
            if glued is not None:  # "#pemkotsemarang", "kotabandung": a marked city/province
                key, codes = glued
                if (key, "glued") not in seen:
                    seen.add((key, "glued"))
                    quote = s[spans[i][1] : spans[i][2]]
                    strong.append(_Mention(quote, None, {c: _MARKED_W for c in codes}, i))
                i += 1
                continue
            if marked_only:
                i += 1
                continue
            # Unmarked: the longest n-gram from i that is a name; the concatenated key is
            # extended only while it is the beginning of some name's key.
            grams: list[str] = []
            key = ""
            for k in range(i, i + run(i)):
                key += toks[k]
                if not self._is_prefix(key):
                    break
                grams.append(key)
            for m in range(len(grams), 0, -1):
                key = grams[m - 1]
                codes_all = self._index.get(key)
                if not codes_all:
                    continue
                letters = sum(ch.isalpha() for ch in key)
                if m == 1 and (key in _ORDINARY_NAMES or letters < 4):
                    break  # an ordinary word, not a place
                if (key, None) in seen:
                    break
                seen.add((key, None))
                quote = s[spans[i][1] : spans[i + m - 1][2]]
                upper = [c for c in codes_all if c.count(".") <= 1]
                lower = {c: _UNMARKED_W for c in codes_all if c.count(".") >= 2}
                weights: dict[str, float] = {}
                if upper:
                    has_kota = any(self._names[c].casefold().startswith("kota") for c in upper)
                    for c in upper:
                        kab = self._names[c].casefold().startswith("kabupaten")
                        weights[c] = _KABUPATEN_W if (has_kota and kab) else _UNMARKED_W
                    strong.append(_Mention(quote, None, weights, i))
                if lower:
                    weak.append(_Mention(quote, None, lower, i))
                i += m - 1
                break
            i += 1
        return strong, weak, pending

    def _fuzzy(self, p: _Pending, roots: Sequence[str | None]) -> tuple[list[str], float, int]:
        """The best fuzzy matches of a pending marked mention under `roots`:
        codes, score and how many of its words matched (longer wins ties)."""
        best: list[str] = []
        best_score, best_m = 0.0, 0
        if p.level == "kelurahan" and None in roots:
            return best, best_score, best_m  # 83k villages nationally: slow and unreliable
        for m in range(len(p.words), 0, -1):
            name = " ".join(p.words[:m])
            if len(normalize_place(name)) < _MIN_FUZZY_KEY:
                continue
            for root in roots:
                hits = self.table.fuzzy_find(name, level=p.level, within=root, cutoff=_cutoff(root))
                for region, score in hits:
                    if score > best_score + _EPS:
                        best, best_score, best_m = [region.code], score, m
                    elif score >= best_score - _EPS and m == best_m and region.code not in best:
                        best.append(region.code)
        return best, best_score, best_m

    def _resolve_text(
        self,
        text: str,
        *,
        within: str | None,
        marked_only: bool,
        evidence: list[str] | None = None,
        field: str = "text",
    ) -> Resolution | None:
        """Resolve place mentions in `text` (see the class doc); None if there are none.

        With `within`, only codes inside it (or its ancestors) count and the
        result must lie inside it.
        """
        strong, weak, pending = self._scan(text, marked_only)

        def keep(code: str) -> bool:
            return within is None or is_within(code, within) or is_within(within, code)

        mentions: list[_Mention] = []
        for mention in strong:
            mention.weights = {c: w for c, w in mention.weights.items() if keep(c)}
            if mention.weights:
                mentions.append(mention)

        # Fuzzy matching for marked mentions with no exact match, within their context.
        for n_fuzzy, p in enumerate(pending[:_MAX_FUZZY]):
            depth = LEVELS.index(p.level)
            ctx = {c for m in mentions for c in m.weights if c.count(".") < depth}
            if within is not None and within.count(".") < depth:
                ctx.add(within)
            if not ctx:
                ctx.update(s for s in self.scope if s.count(".") < depth)
            roots: list[str | None] = [
                c for c in sorted(ctx) if not any(a != c and a in ctx for a in ancestors(c))
            ]
            best, best_score, m = self._fuzzy(p, roots)
            if not best and p.level != "kelurahan" and within is None and None not in roots:
                best, best_score, m = self._fuzzy(p, [None])  # not near the others: nationally
            best = [c for c in _kind_filter(best, self._names, p.kind) if keep(c)]
            if best:
                w = _MARKED_W * (best_score / 100) ** 2
                note = f" ~ {self._names[best[0]]} ({best_score:.0f})"
                weights = {c: w for c in best}
                mentions.append(_Mention(p.quotes[m - 1], p.level, weights, -2 - n_fuzzy, note))

        # Unmarked kecamatan/kelurahan names count inside another mention, the scope or `within`.
        context: dict[str, set[int]] = {}  # code -> groups of the mentions that may mean it
        for mention in mentions:
            for c in mention.weights:
                context.setdefault(c, set()).add(mention.group)
        outer = [*self.scope, *([within] if within else [])]
        for depth in (2, 3):  # kecamatan first, so that kelurahan can lie within them
            for mention in weak:
                got: dict[str, float] = {}
                for c in mention.weights:
                    if c.count(".") != depth or not keep(c):
                        continue
                    if any(context.get(a, set()) - {mention.group} for a in ancestors(c)[1:]):
                        got[c] = _UNMARKED_W
                    elif any(is_within(c, o) for o in outer):
                        got[c] = _CONTEXT_W
                if got:
                    mentions.append(_Mention(mention.quote, None, got, mention.group))
                    for c in got:
                        context.setdefault(c, set()).add(mention.group)

        if not mentions:
            return None

        # Score each candidate by the mentions on its chain of ancestors.
        # A group (one occurrence in the text) counts once per chain, with its best weight.
        at: dict[str, list[tuple[int, float, int]]] = {}
        for idx, mention in enumerate(mentions):
            for c, w in mention.weights.items():
                at.setdefault(c, []).append((mention.group, w, idx))
        scores: dict[str, tuple[float, float, dict[int, tuple[float, int]]]] = {}
        for c in at:
            support: dict[int, tuple[float, int]] = {}
            for a in ancestors(c):
                for group, w, idx in at.get(a, ()):
                    if w > support.get(group, (0.0, -1))[0]:
                        support[group] = (w, idx)
            base = sum(w for w, _ in support.values())
            bonus = _SCOPE_BONUS if self.scope and self._in_scope(c) else 0.0
            scores[c] = (base + bonus, base, support)
        top = max(v[0] for v in scores.values())
        tied = sorted(c for c, v in scores.items() if v[0] >= top - _EPS)
        deepest = max(tied, key=lambda c: (c.count("."), c))
        chain = set(ancestors(deepest))
        if all(c in chain for c in tied):
            code: str | None = deepest
            candidates: list[str] = []
        else:
            leaves = [c for c in tied if not any(o != c and is_within(o, c) for o in tied)]
            code = _common_ancestor(leaves)
            candidates = leaves[:_MAX_CANDIDATES]
            deepest = leaves[0]
        total, base, support = scores[deepest]
        if within is not None and (code is None or not is_within(code, within) or code == within):
            return None

        used = sorted({idx for _, idx in support.values()})
        ev = [f"{field} '{mentions[i].quote}'{mentions[i].note}" for i in used]
        if candidates:
            ev.append(
                f"{field} ambiguous: {len(candidates)} regions fit equally well"
                + (f"; common area {self._label(code)}" if code else "")
            )
            confidence = 0.4 if code else 0.2
        else:
            confidence = min(0.9, 0.45 + 0.2 * base)
            others = [c for c in scores if c not in chain]
            if self.scope and self._in_scope(deepest) and others:
                ev.append(
                    f"within deployment scope {', '.join(self._label(s) for s in self.scope)}"
                )
        if evidence is not None:
            ev = [*evidence, *ev]
        return self._result(code, "text", ev, confidence, candidates)
