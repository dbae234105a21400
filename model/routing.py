"""Jurisdiction routing: a predicted agency *type* × a resolved *region* → concrete offices.

A bundle whose agency head is routed learns office types ("Dinas Perhubungan",
"Kelurahan/Desa", "BPJS Kesehatan Kantor Cabang"), which have many examples
each, instead of office names, which may have a handful. At prediction time
the `Router` turns the type probabilities into concrete offices of the agency
directory (`data.directory`) in the complaint's region, resolved by the
gazetteer (`model.regions`) from the location fields or the text:

- for each likely type, the directory's offices of that type are matched to
  the region by walking up its hierarchy — kelurahan → kecamatan → city →
  province — and taking the first level that has an office of the type; then
  offices inside the region (when it is coarser than the offices, below);
  then the type's other offices in the same province (a branch serving the
  neighbouring regency); then offices whose region was not recorded
  (national bodies);
- where the region is coarser than the type's offices (the region is only
  known to be Kota Surabaya, the type is Kelurahan/Desa), or unknown, every
  office of the type inside that region is a candidate and the type's
  probability is shared among them in proportion to their training rows
  (add-one), which makes the answer unsure, as it should be;
- where the bundle holds *exemplars* (the embeddings and offices of its
  training complaints), the complaint's `EXEMPLAR_K` most similar training
  complaints vote. On the type, when training found that this helps on the
  dev rows (`vote_types`: each type's probability becomes half the head's and
  half its share of the votes). And, where the region is unknown, on the
  office among a type's offices (half the training-row share, half the vote
  share of the nearest exemplars of that type). Text the gazetteer cannot
  read ("warga perumahan kami", a school's name) often still resembles
  earlier complaints to the right office;
- an office's score is its type probability times its share, so the scores
  of all offices add up to at most one and keep the type head's calibration;
- where offices tie (one region has several offices of a type, and neither
  training rows nor votes tell them apart: "Dinas Pekerjaan Umum Kota
  Semarang" and "Dinas Bina Marga Kota Semarang" are both of type Dinas
  Pekerjaan Umum), the office named after its type comes first: the type's
  general office rather than a specialised one. Their scores stay equal, so
  the answer still says it is unsure.

The directory is data, not weights: `Bundle.router.with_directory` swaps it
without retraining (the API does so on reload).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data.directory import Directory, Office, label_key
from data.schema import DataError
from model.regions import Gazetteer, RegionTable, Resolution, ancestors, is_within, level_of

#: Types below this probability are not turned into offices.
MIN_TYPE_PROBABILITY = 1e-4
#: At most this many types are routed per complaint.
MAX_TYPES = 20
#: Exemplars: how many nearest training complaints of a type vote, and the weight
#: of their vote against the training-row share. Both were fixed before the first
#: measurement (bench/routing.py), not tuned on a test set.
EXEMPLAR_K = 10
EXEMPLAR_WEIGHT = 0.5


@dataclass(frozen=True)
class Exemplars:
    """Training complaints' embeddings (L2-normalised rows) and the offices they went to."""

    vectors: np.ndarray  # (n, dim) float32
    office_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or len(self.vectors) != len(self.office_ids):
            raise DataError("exemplars: one vector per office id is needed")


@dataclass(frozen=True)
class RoutedOffice:
    """One proposed office: its score and the reason it was proposed."""

    office: Office
    score: float  # type probability × share of it
    type_score: float  # the type head's probability for the office's type
    why: str

    def details(self, table: RegionTable) -> dict[str, Any]:
        code = self.office.region_code
        return {
            "id": self.office.id,
            "type": self.office.type,
            "level": self.office.level,
            "region_code": code,
            "region": table.display(code) if code and code in table else None,
            "type_score": round(self.type_score, 6),
            "why": self.why,
        }


class Router:
    """Offices for type probabilities and a region; see the module docstring."""

    def __init__(
        self,
        directory: Directory,
        gazetteer: Gazetteer,
        *,
        office_counts: Mapping[str, int] | None = None,
        exemplars: Exemplars | None = None,
        type_votes: bool = False,
    ) -> None:
        self.directory = directory
        self.gazetteer = gazetteer
        self.office_counts = dict(office_counts or {})
        self.exemplars = exemplars
        self.type_votes = type_votes  # the exemplars vote on the type too (chosen on dev)
        self._by_type = {
            t: [o for o in directory.of_type(t) if self.in_scope(o)] for t in directory.types()
        }
        # Offices whose name carries their type's name: they win ties (module docstring).
        self._named_after_type = frozenset(
            o.id for o in directory if f" {label_key(o.type)} " in f" {label_key(o.name)} "
        )
        # Exemplar rows grouped by type, through the directory as it is now (an office
        # an operator removed, or renamed to a new id, no longer gets votes), with their
        # vectors copied contiguously in that order: a request scores all of them, or
        # one type's slice (a view), with one matrix-vector product and no gather.
        by_type: dict[str, list[int]] = {}
        self._exemplar_type: dict[int, str] = {}
        for i, office_id in enumerate(exemplars.office_ids if exemplars else ()):
            office = directory.get(office_id)
            if office is not None:
                by_type.setdefault(office.type, []).append(i)
                self._exemplar_type[i] = office.type
        self._voters: dict[str | None, tuple[np.ndarray, np.ndarray]] = {}
        if exemplars is not None and by_type:
            rows = np.array([i for r in by_type.values() for i in r], dtype=np.int64)
            vectors = exemplars.vectors[rows]
            self._voters[None] = (rows, vectors)
            start = 0
            for t, r in by_type.items():
                end = start + len(r)
                self._voters[t] = (rows[start:end], vectors[start:end])
                start = end

    @property
    def table(self) -> RegionTable:
        return self.gazetteer.table

    @property
    def scope(self) -> tuple[str, ...]:
        return self.gazetteer.scope

    def in_scope(self, office: Office) -> bool:
        """Whether the deployment routes to this office (all offices when national)."""
        if not self.scope:
            return True
        code = office.region_code
        if not code:
            return False
        return any(is_within(code, s) for s in self.scope)

    def with_directory(self, directory: Directory) -> Router:
        """The same gazetteer and scope over another directory (an operator's edit)."""
        return self.replace(directory=directory)

    def with_scope(self, scope: Sequence[str]) -> Router:
        """The same directory over another deployment scope (region codes; empty: national)."""
        return self.replace(gazetteer=Gazetteer(self.table, scope=tuple(scope)))

    def replace(self, **changes: Any) -> Router:
        """A copy of this router with some of its constructor arguments changed
        (`office_counts`, `exemplars`, `type_votes`, `directory`, `gazetteer`)."""
        args: dict[str, Any] = {
            "directory": self.directory,
            "gazetteer": self.gazetteer,
            "office_counts": self.office_counts,
            "exemplars": self.exemplars,
            "type_votes": self.type_votes,
            **changes,
        }
        return Router(args.pop("directory"), args.pop("gazetteer"), **args)

    def offices_of(self, type_: str) -> list[Office]:
        """The in-scope offices of a type."""
        return list(self._by_type.get(type_, []))

    def vote_types(
        self, type_probs: Sequence[tuple[str, float]], embedding: np.ndarray | None
    ) -> list[tuple[str, float]]:
        """Type probabilities mixed half and half with the types of the nearest exemplars
        (when `type_votes` is on)."""
        if not self.type_votes or embedding is None or None not in self._voters:
            return list(type_probs)
        nearest = self._nearest(None, embedding)
        votes = Counter(self._exemplar_type[i] for i in nearest)
        return [
            (t, (1 - EXEMPLAR_WEIGHT) * p + EXEMPLAR_WEIGHT * votes.get(t, 0) / len(nearest))
            for t, p in type_probs
        ]

    def types_without_offices(self, types: Sequence[str]) -> list[str]:
        """Types the head can predict that no in-scope office of the directory has."""
        return [t for t in types if not self._by_type.get(t)]

    def resolve(self, text: str, location: Mapping[str, str | None] | None) -> Resolution:
        return self.gazetteer.resolve(text, location)

    def candidates(
        self, type_: str, region: Resolution, embedding: np.ndarray | None = None
    ) -> list[tuple[Office, float, str]]:
        """The offices of one type for a region: (office, share of the type, why).

        `embedding` (the complaint's, as the classifier saw it) lets the exemplars
        vote where the region is unknown.
        """
        offices = self._by_type.get(type_, [])
        if not offices:
            return []
        if region.code is None:
            return self._voted(type_, self._shared(offices, "region unknown"), embedding)
        for step, code in enumerate(ancestors(region.code)):
            here = [o for o in offices if o.region_code == code]
            if here:
                if step == 0:
                    why = f"office of the complaint's {level_of(code)}"
                else:
                    why = f"the {level_of(code)}'s office for the complaint's {region.level}"
                return self._shared(here, why)
        inside = [o for o in offices if o.region_code and is_within(o.region_code, region.code)]
        if inside:
            why = f"region known only to the {region.level}: one of {len(inside)} offices there"
            return self._shared(inside, why)
        unplaced = [o for o in offices if not o.region_code]
        if unplaced:
            return self._shared(unplaced, "office without a recorded region")
        province = ancestors(region.code)[-1]
        nearby = [o for o in offices if o.region_code and is_within(o.region_code, province)]
        if nearby:
            why = f"no {type_} office for the {region.level}: one of {len(nearby)} in its province"
            return self._shared(nearby, why)
        return []

    def _voted(
        self,
        type_: str,
        shared: list[tuple[Office, float, str]],
        embedding: np.ndarray | None,
    ) -> list[tuple[Office, float, str]]:
        """Mix the shares with the votes of the nearest exemplars of the type."""
        if embedding is None or self.exemplars is None or type_ not in self._voters:
            return shared
        if len(shared) < 2:  # one office: nothing to vote on
            return shared
        nearest = self._nearest(type_, embedding)
        votes = Counter(self.exemplars.office_ids[i] for i in nearest)
        out = []
        for office, share, why in shared:
            n = votes.get(office.id, 0)
            mixed = (1 - EXEMPLAR_WEIGHT) * share + EXEMPLAR_WEIGHT * n / len(nearest)
            if n:
                why += f"; {n} of the {len(nearest)} most similar training complaints went to it"
            out.append((office, mixed, why))
        return out

    def _nearest(self, type_: str | None, embedding: np.ndarray) -> np.ndarray:
        """The `EXEMPLAR_K` exemplar rows (of one type; None: of all) most similar to
        the embedding.

        Scored by faiss's brute-force kernel, not numpy: numpy's multi-threaded BLAS
        leaves its threads spinning on this 2-core machine, and the next encoder
        pass then ran at half speed (predict p50 20 ms instead of 9).
        """
        import faiss

        rows, vectors = self._voters[type_]
        if len(rows) <= EXEMPLAR_K:
            return rows
        query = np.asarray(embedding, dtype=np.float32).reshape(1, -1)
        _, pos = faiss.knn(query, vectors, EXEMPLAR_K, metric=faiss.METRIC_INNER_PRODUCT)
        return rows[pos[0][pos[0] >= 0]]

    def _shared(self, offices: list[Office], why: str) -> list[tuple[Office, float, str]]:
        """Shares of a type among candidate offices, by their training rows (add-one)."""
        if len(offices) == 1:
            return [(offices[0], 1.0, why)]
        weights = [self.office_counts.get(o.id, 0) + 1 for o in offices]
        total = sum(weights)
        return [(o, w / total, why) for o, w in zip(offices, weights, strict=True)]

    def route(
        self,
        type_probs: Sequence[tuple[str, float]],
        region: Resolution,
        *,
        top_k: int,
        embedding: np.ndarray | None = None,
    ) -> list[RoutedOffice]:
        """The top-k offices for type probabilities (any order) and a resolved region."""
        ranked = sorted(type_probs, key=lambda tp: -tp[1])[:MAX_TYPES]
        found: list[RoutedOffice] = []
        for type_, p in ranked:
            if p < MIN_TYPE_PROBABILITY and found:
                break
            for office, share, why in self.candidates(type_, region, embedding):
                found.append(RoutedOffice(office, p * share, p, why))
        found.sort(
            key=lambda r: (
                -r.score,
                -r.type_score,
                r.office.id not in self._named_after_type,
                r.office.id,
            )
        )
        return found[:top_k]


def scope_codes(table: RegionTable, values: Sequence[str]) -> tuple[str, ...]:
    """Region codes for a deployment scope given as codes ("35.78") or names ("Kota Surabaya").

    "national" (or nothing) means no limit. Raises DataError for a value that
    is not exactly one province or city of the table.
    """
    codes = []
    for value in values:
        value = value.strip()
        if value.lower() in ("", "national", "nasional"):
            continue
        if value in table:
            codes.append(value)
            continue
        found = [r for r in table.find(value) if r.level in ("province", "city")]
        if len(found) != 1:
            what = "no province or city" if not found else f"{len(found)} regions"
            raise DataError(f"scope {value!r}: {what} of that name in the region table")
        codes.append(found[0].code)
    return tuple(codes)


# ------------------------------------------------------------------- bundle files

DIRECTORY_FILE = "directory.csv"
REGIONS_FILE = "regions.csv"
EXEMPLARS_FILE = "exemplars.npz"


def save_router(router: Router, folder: Path) -> None:
    """Write the directory, the region table and any exemplars into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    router.directory.write(folder / DIRECTORY_FILE)
    router.table.write(folder / REGIONS_FILE)
    if router.exemplars is not None:
        with (folder / EXEMPLARS_FILE).open("wb") as fh:
            np.savez(
                fh,
                vectors=router.exemplars.vectors.astype(np.float16),  # half the size, same votes
                office_ids=np.array(router.exemplars.office_ids, dtype=str),
            )


def load_router(
    folder: Path,
    scope: Sequence[str],
    *,
    office_counts: Mapping[str, int] | None = None,
    type_votes: bool = False,
) -> Router:
    """The router saved by `save_router`."""
    table = RegionTable.read(folder / REGIONS_FILE)
    offices = Directory.read(folder / DIRECTORY_FILE, regions=table)
    exemplars = None
    if (folder / EXEMPLARS_FILE).is_file():
        try:
            with np.load(folder / EXEMPLARS_FILE, allow_pickle=False) as z:
                exemplars = Exemplars(
                    z["vectors"].astype(np.float32), tuple(str(v) for v in z["office_ids"])
                )
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{folder / EXEMPLARS_FILE}: not readable exemplars ({exc})") from None
    return Router(
        offices,
        Gazetteer(table, scope=tuple(scope)),
        office_counts=office_counts,
        exemplars=exemplars,
        type_votes=type_votes,
    )
