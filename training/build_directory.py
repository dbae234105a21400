"""Build an agency directory (`data.directory`) from labelled complaints.

Every distinct agency label of the data becomes one office: its name is the
label exactly (so a predicted office can be compared with a gold label), its
id a slug of the label, and its type, level and region come from
`training.agencies.parse_agency`. Labels that differ only in case, spacing or
punctuation ("BKN Kantor Regional III Bandung" and "... Bandung.") become one
office named after the more frequent spelling, the others kept as aliases, so
`Directory.lookup` finds the office for every gold label.

`--complete kelurahan,kecamatan` also adds one office per kelurahan/desa or
kecamatan of the home region that no label covered ("Kelurahan <Name>",
"Desa <Name>" for a desa code, "Kecamatan <Name>"), so the directory has an
office for every local unit a complaint can be about.

Usage:

    python -m training.build_directory --data surabaya-2022 --home "Kota Surabaya" \\
        --complete kelurahan,kecamatan --out /tmp/surabaya-directory.csv
    python -m training.build_directory --data lapor-2017 --out /tmp/lapor-directory.csv

`--regions` takes region CSVs or folders holding `regions.csv`/`villages.csv`
(default: the shared data's `regions` folder, `$ADUAN_SHARED_DATA/regions` or
`../shared/data/regions`). A summary goes to stderr: offices per level and
type, and the labels whose region could not be resolved (labels that look
like pasted complaint text, over 64 characters or several lines, and labels
holding a phone, ID number or e-mail, are counted, not shown). User errors
exit with status 2 and one line.

The demo files in `data/samples/` are made with (see its README):

    python -m training.build_directory --sample-regions --out data/samples/regions.csv
    python -m training.build_directory --data data/samples/complaints.jsonl \\
        --regions data/samples/regions.csv --home 35.78 --complete kelurahan,kecamatan \\
        --out data/samples/directory.csv

`--sample-regions` writes, instead of a directory, the region rows the data's
`region_code` values need: those regions and their ancestors, every
kecamatan of their cities, and every kelurahan/desa of their kecamatan.

Directories built from the shared corpora hold their labels, some of which
are pasted complaint text: write them outside the repository.
"""

from __future__ import annotations

import argparse
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.directory import Directory, Office, label_key
from data.schema import DataError
from data.text import redact
from model.regions import LEVELS, Region, RegionsError, RegionTable, ancestors
from training.agencies import ParsedAgency, TypeTable, default_types, parse_agency

#: Units `--complete` can fill in.
COMPLETABLE: tuple[str, ...] = ("kelurahan", "kecamatan")
#: Labels longer than this, or spanning lines, are counted but not printed.
SHOW_LABEL_MAX = 64
#: How many types the summary lists.
SHOW_TYPES = 15
SAMPLE_COMPLAINTS = Path(__file__).resolve().parent.parent / "data" / "samples" / "complaints.jsonl"
_CODE_RE = re.compile(r"\d\d(?:\.\d\d(?:\.\d\d(?:\.\d{4})?)?)?")
_MAX_ID = 60


@dataclass
class Report:
    """What a build did: counts for the summary, and the labels that need attention."""

    n_labels: int = 0  # distinct label strings read
    n_offices: int = 0
    n_from_labels: int = 0
    n_completed: int = 0
    with_region: int = 0  # label offices whose region was resolved
    national: int = 0  # label offices that are national (no region by design)
    typed_from_table: int = 0  # label offices whose type came from the type table
    per_level: dict[str, int] = field(default_factory=dict)
    per_type: dict[str, int] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)  # non-national, no region
    skipped: list[str] = field(default_factory=list)  # labels with no letters or digits
    merged: dict[str, list[str]] = field(default_factory=dict)  # office name -> alias labels

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}

    def summary_lines(self) -> list[str]:
        lines = [
            f"{self.n_offices} offices: {self.n_from_labels} from {self.n_labels} distinct labels"
            f" ({sum(len(v) for v in self.merged.values())} spelling variants kept as aliases),"
            f" {self.n_completed} added by --complete",
            f"label offices with a region: {self.with_region}/{self.n_from_labels}, national "
            f"(no region): {self.national}, type from the type table: "
            f"{self.typed_from_table}/{self.n_from_labels}",
            "by level: " + ", ".join(f"{k} {v}" for k, v in self.per_level.items()),
            f"by type ({len(self.per_type)} types, most offices first): "
            + ", ".join(
                f"{k} {v}" for k, v in list(self.per_type.items())[:SHOW_TYPES] if _showable(k)
            )
            + (", ..." if len(self.per_type) > SHOW_TYPES else ""),
        ]
        shown = [lb for lb in self.unresolved if _showable(lb)]
        hidden = len(self.unresolved) - len(shown)
        line = f"labels with no region resolved ({len(self.unresolved)}): " + ", ".join(
            repr(lb) for lb in shown
        )
        if hidden:
            line += f" (+{hidden} long, multi-line or personal-data labels not shown)"
        lines.append(line)
        if self.skipped:
            lines.append(f"labels skipped (no letters or digits): {len(self.skipped)}")
        return lines


def _showable(label: str) -> bool:
    """Short one-line labels are shown; none holding personal data (a phone number)."""
    return len(label) <= SHOW_LABEL_MAX and "\n" not in label and redact(label) == label


def slug(text: str) -> str:
    """An office id from a label: ASCII, lower case, words joined by '-', at most 60 chars."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    s = "-".join(label_key(ascii_text).split())
    s = re.sub(r"[^a-z0-9._-]+", "-", s).strip("-._")
    if len(s) > _MAX_ID:
        s = s[:_MAX_ID].rsplit("-", 1)[0] or s[:_MAX_ID]
    return s or "office"


def _labels_of(complaints: Any) -> list[str | None]:
    if hasattr(complaints, "labels"):
        return list(complaints.labels("agency"))
    return list(complaints)


def build_directory(
    complaints: Any,
    regions: RegionTable,
    *,
    home: str | None = None,
    complete: Iterable[str] = (),
    types: TypeTable | None = None,
) -> tuple[Directory, Report]:
    """A directory with one office per distinct agency label (and, with `complete`,
    one per uncovered kelurahan/kecamatan of `home`), and a report of the build.

    `complaints` is a loaded `Complaints` (its "agency" labels are used) or an
    iterable of label strings (None entries ignored).
    """
    types = types or default_types()
    complete = tuple(complete)
    for unit in complete:
        if unit not in COMPLETABLE:
            raise DataError(f"--complete: unknown unit '{unit}'; use {', '.join(COMPLETABLE)}")
    if complete and home is None:
        raise DataError("--complete needs --home: the region whose units are added")
    if home is not None and home not in regions:
        raise DataError(f"home region '{home}' is not in the region table")

    counts = Counter(lb for lb in _labels_of(complaints) if lb is not None and lb.strip())
    report = Report(n_labels=len(counts))
    groups: dict[str, list[str]] = {}
    for label, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        key = label_key(label)
        if not key:
            report.skipped.append(label)
            continue
        groups.setdefault(key, []).append(label)

    parsed: dict[str, ParsedAgency] = {}
    type_weight: dict[str, Counter[str]] = {}  # type key -> spelling -> complaints
    for key, spellings in groups.items():
        p = parse_agency(spellings[0], regions, home=home, types=types)
        parsed[key] = p
        n = sum(counts[s] for s in spellings)
        type_weight.setdefault(label_key(p.type), Counter())[p.type] += n
    canonical = {
        k: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for k, c in type_weight.items()
    }

    offices: list[Office] = []
    used_ids: set[str] = set()

    def new_id(text: str) -> str:
        base = slug(text)
        candidate, n = base, 2
        while candidate in used_ids:
            candidate, n = f"{base}-{n}", n + 1
        used_ids.add(candidate)
        return candidate

    for key, spellings in sorted(groups.items(), key=lambda kv: kv[1][0]):
        p = parsed[key]
        offices.append(
            Office(
                id=new_id(spellings[0]),
                name=spellings[0],
                type=canonical[label_key(p.type)],
                level=p.level,
                region_code=p.region_code,
                aliases=tuple(spellings[1:]),
            )
        )
        if len(spellings) > 1:
            report.merged[spellings[0]] = spellings[1:]
        if p.region_code is not None:
            report.with_region += 1
        elif p.level == "national":
            report.national += 1
        else:
            report.unresolved.append(spellings[0])
        report.typed_from_table += p.type_from_table
    report.n_from_labels = len(offices)

    if complete and home is not None:
        added = _complete(offices, regions, home, complete, types, new_id)
        report.n_completed = len(added)
        offices.extend(added)

    directory = Directory.from_offices(offices, source="build_directory", regions=regions)
    report.n_offices = len(directory)
    level_counts = Counter(o.level for o in directory)
    report.per_level = {lv: level_counts[lv] for lv in sorted(level_counts)}
    type_counts = Counter(o.type for o in directory)
    report.per_type = dict(sorted(type_counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return directory, report


def _unit_name(region: Region) -> str:
    if region.level == "kecamatan":
        return f"Kecamatan {region.name}"
    desa = region.code.rsplit(".", 1)[-1].startswith("2")
    return f"{'Desa' if desa else 'Kelurahan'} {region.name}"


def _complete(
    offices: list[Office],
    regions: RegionTable,
    home: str,
    units: Sequence[str],
    types: TypeTable,
    new_id: Any,
) -> list[Office]:
    """Offices for the home region's kelurahan/kecamatan that no office covers yet."""
    covered = {o.region_code for o in offices if o.level in COMPLETABLE and o.region_code}
    names = {label_key(lb) for o in offices for lb in o.labels()}
    added: list[Office] = []
    for unit in [u for u in COMPLETABLE if u in units]:  # kelurahan first, then kecamatan
        depth = LEVELS.index(unit)
        todo = [r for r in _below(regions, home, depth) if r.code not in covered]
        base_counts = Counter(label_key(_unit_name(r)) for r in todo)
        for region in todo:
            name = _unit_name(region)
            if base_counts[label_key(name)] > 1 or label_key(name) in names:
                parent = regions.get(ancestors(region.code)[1])
                name = f"{name} - {parent.name if parent else ancestors(region.code)[1]}"
            if label_key(name) in names:
                continue  # an office of that name exists (with its own region): keep it
            rule = types.match(name)
            type_ = (
                rule.type
                if rule is not None and rule.type
                else ("Kecamatan" if unit == "kecamatan" else "Kelurahan/Desa")
            )
            added.append(Office(new_id(name), name, type_, unit, region.code))
            names.add(label_key(name))
    return added


def _below(regions: RegionTable, code: str, depth: int) -> list[Region]:
    """The regions at level index `depth` within `code`, sorted by code."""
    out: list[Region] = []
    frontier = [code] if code.count(".") < depth else []
    while frontier:
        nxt: list[str] = []
        for c in frontier:
            for child in regions.children(c):
                if child.code.count(".") == depth:
                    out.append(child)
                else:
                    nxt.append(child.code)
        frontier = nxt
    if code.count(".") == depth:
        r = regions.get(code)
        out = [r] if r is not None else []
    return sorted(out, key=lambda r: r.code)


# --------------------------------------------------------------------------- helpers


def resolve_home(spec: str, regions: RegionTable) -> str:
    """A home region given as a code ("35.78") or a name ("Kota Surabaya", "Jawa Timur")."""
    spec = spec.strip()
    if _CODE_RE.fullmatch(spec):
        if spec not in regions:
            raise DataError(f"--home: region code '{spec}' is not in the region table")
        return spec
    found = regions.find(spec, level="city")
    lowered = spec.casefold()
    if lowered.startswith(("kota", "kabupaten", "kab")):
        want = "kota" if lowered.startswith("kota") else "kabupaten"
        found = [r for r in found if r.name.casefold().startswith(want)]
    if not found:
        found = regions.find(spec, level="province")
    if len(found) != 1:
        what = (
            "matches no city or province"
            if not found
            else ("is ambiguous: " + ", ".join(f"{r.name} ({r.code})" for r in found))
        )
        raise DataError(f"--home: '{spec}' {what}; give a region code such as 35.78")
    return found[0].code


def region_files(specs: Sequence[str] | None) -> list[Path]:
    """CSV files from `--regions` values (a folder means its regions.csv and villages.csv)."""
    if not specs:
        from data.registry import shared_data_dir

        specs = [str(shared_data_dir() / "regions")]
    files: list[Path] = []
    for spec in specs:
        p = Path(spec).expanduser()
        if p.is_dir():
            inside = [p / n for n in ("regions.csv", "villages.csv") if (p / n).is_file()]
            if not inside:
                raise DataError(f"--regions: {p} holds neither regions.csv nor villages.csv")
            files.extend(inside)
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(
                f"--regions: {p} does not exist (the default is the shared data's regions "
                f"folder; set $ADUAN_SHARED_DATA or pass --regions)"
            )
    return files


def sample_regions(codes: Iterable[str | None], regions: RegionTable) -> RegionTable:
    """The region rows a set of complaints' region codes need (see the module doc)."""
    keep: dict[str, Region] = {}
    for code in {c for c in codes if c}:
        if code not in regions:
            raise DataError(f"region_code '{code}' is not in the region table")
        for a in ancestors(code):
            r = regions.get(a)
            if r is not None:
                keep[a] = r
    cities = [c for c in keep if c.count(".") == 1]
    districts = [c for c in keep if c.count(".") == 2]
    for city in cities:
        for r in _below(regions, city, 2):
            keep[r.code] = r
    for district in districts:
        for r in _below(regions, district, 3):
            keep[r.code] = r
    return RegionTable.from_regions(sorted(keep.values(), key=lambda r: r.code))


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.build_directory", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--data", help="registered set name or complaints file")
    parser.add_argument("--home", help='home region: a code (35.78) or a name ("Kota Surabaya")')
    parser.add_argument(
        "--complete", default="", help="units of the home region to add: kelurahan,kecamatan"
    )
    parser.add_argument(
        "--regions", nargs="+", help="region CSVs or folders (default: shared data regions)"
    )
    parser.add_argument("--types", help="type table CSV (default: data/agency_types.csv)")
    parser.add_argument(
        "--sample-regions",
        action="store_true",
        help="write the region rows the data's region codes need (default data: the sample)",
    )
    parser.add_argument("--out", required=True, help="output CSV")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (DataError, RegionsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from data.load import load_complaints

    regions = RegionTable.read(*region_files(args.regions))
    if args.sample_regions:
        complaints = load_complaints(args.data or SAMPLE_COMPLAINTS, label_columns=["agency"])
        table = sample_regions((loc["region_code"] for loc in complaints.locations()), regions)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        table.write(args.out)
        print(f"wrote {len(table)} regions to {args.out}", file=sys.stderr)
        return 0
    if not args.data:
        raise DataError("--data is required (a registered set name or a complaints file)")
    home = resolve_home(args.home, regions) if args.home else None
    complete = [u.strip() for u in args.complete.split(",") if u.strip()]
    types = TypeTable.read(args.types) if args.types else None
    complaints = load_complaints(args.data, label_columns=["agency"])
    directory, report = build_directory(
        complaints, regions, home=home, complete=complete, types=types
    )
    directory.write(args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    for line in report.summary_lines():
        print(line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
