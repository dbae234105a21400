"""Duplicate complaints: the duplicate embedding, the pair scorer, and search over the index.

Two complaints are duplicates when one handling resolves both (the labelling
guide: the same problem at the same place, the same person's same case, the
same recurring nuisance, a service-wide outage). Text similarity alone cannot
decide it: e5 similarities of unrelated complaints sit at 0.84-0.95, and two
different streets' broken lights read almost alike. So a pair is scored from
several kinds of evidence (`FEATURES`): the embedding cosine, exact
re-submission, word and number overlap of the texts (street names, house and
RT/RW numbers), agreement of the location fields, and the time between them.
A logistic combiner over those features, with its decision threshold, is fitted
on labelled pairs (`fit_scorer`, `aduan dedup calibrate`) and stored in the
bundle (`Bundle.dedup`); nothing here is a hand-set cut.

`DuplicateFinder` is what the CLI and the API use: it embeds complaints,
fetches candidates from a `model.index.ComplaintIndex` (nearest neighbours
within the time window, plus exact text matches at any time), scores them and
keeps those at or above the threshold.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from data.load import Complaints
from data.text import normalize_text, personal_identifiers, snippet
from model.bundle import RARE_WORDS_FEATURE, Bundle, DedupSpec
from model.index import JAKARTA, ComplaintIndex, IndexedComplaint, SearchFilter, place_key
from model.rarity import WordRarity

#: Pair features, in the order the combiner's weights use.
FEATURES: tuple[str, ...] = (
    "cosine",  # embedding similarity
    "exact",  # same text after normalisation (a re-submission)
    "word_overlap",  # Jaccard of the content words of the two texts
    "number_overlap",  # Jaccard of the short numbers (house, RT/RW, block numbers); 0 if none
    "same_kelurahan",  # +1 same, -1 different, 0 unknown
    "same_kecamatan",  # +1 same, -1 different, 0 unknown
    "address_overlap",  # Jaccard of address character trigrams when both have one, else 0
    "address_numbers",  # +1 a shared number (house, gang, RT/RW), -1 none shared, 0 unknown
    "log_days",  # log(1 + days between filings); the window's middle when unknown
    # The exact spot and the person, which the guide's hard negatives turn on
    # (text and address read together; each +1 same, -1 different, 0 unknown).
    # A street feature (the address's street, gang number included) was tried
    # too: the address trigrams above already carry it, and it lowered
    # cross-validated F1 on the calibration pairs (docs/benchmarks.md).
    "same_house",  # house numbers ("no. 12", "5/20" in an address)
    "same_rt_rw",  # RT and RW numbers
    "same_identifier",  # NIK, phone, other ID numbers, e-mail (the same reporter or case)
    # The specific words two texts share (a street, a school, a name, a plate), each
    # weighed by its rarity among complaints: log(1 + sum of their idf), 0 without a
    # word-rarity table (`model.rarity`, fitted when the scorer is calibrated).
    RARE_WORDS_FEATURE,  # "shared_rare_words"
)

# Content words (3+ letters) and short numbers (not part of a longer number, a
# decimal or a thousands group), found in one scan: group 1 a word, group 2 a number.
_WORD_OR_NUMBER = re.compile(r"([^\W\d_]{3,})|((?<![\d.,])\d{1,4}(?![\d.,]?\d))")
_ADDRESS_WORD = re.compile(r"[^\W\d_]+")
_DIGITS = re.compile(r"\d+")
#: Words every address has; they say nothing about which spot it is.
_BOILERPLATE = frozenset(
    "jl jln jalan gg gang no nomor rt rw kel kelurahan kec kecamatan kota kab kabupaten "
    "surabaya jawa timur indonesia blok depan samping dekat sebelah".split()
)
# House numbers: "no 12", "No.66 B", "nomor 3a" (not "no. 0812...", a phone).
# (The leading look-aheads below only make the scans fast: most positions fail on
# their first character.)
_HOUSE_NUMBER = re.compile(
    r"(?=n)\b(?:no|nomor|nomer|nmr)\b\.?\s*:?\s*0*(\d{1,4})(?!\d)\s?([a-z](?![a-z]))?"
)
# "gang/house" in an address, as Surabaya writes it ("Jetis Wetan Gg.6/29",
# "Dupak Bangunrejo 5/20"); not a date ("8/2/2022") nor RT/RW ("rt/rw 3/1").
_GANG_SLASH_HOUSE = re.compile(
    r"(?=\d)(?<![\d/\-])(?<!\d\.)(?<!rw)(?<!rw )(?<!rw\.)"  # not in a date, not RT/RW
    r"(\d{1,3})\s?/\s?0*(\d{1,4})(?![\d/])\s?([a-z](?![a-z]))?"
)
# RT and RW: "RT 07 RW 01", "rt.3/rw.2", "RT/RW 03/01", "rt03".
# One scan: the "RT/RW 03/01" form first (groups 1-2), else "RT 03" or "rw.1" (groups 3-4).
_RT_RW = re.compile(
    r"(?=rt)\brt\s*/\s*rw\b\.?\s*:?\s*0*(\d{1,3})\s*[/.\-]\s*0*(\d{1,3})(?!\d)"
    r"|(?=r[tw])\b(rt|rw)(?![a-z])\.?\s*:?\s*0*(\d{1,3})(?!\d)"
)
_STOPWORDS = frozenset(
    "yang dan di ke dari ini itu untuk dengan pada ada tidak sudah saya kami kita mohon "
    "tolong bapak ibu pak bu terima kasih sekali karena atau juga akan bisa agar dalam "
    "sangat oleh para kepada hal sebagai tersebut belum masih lagi mau apa kapan".split()
)


# ---------------------------------------------------------------------------- records


def text_key(text: str) -> str:
    """The exact re-submission key: a hash of the normalised, case- and punctuation-folded
    text; "" (no key: never a re-submission of anything) when no word is left ("???", "😀")."""
    folded = " ".join(re.findall(r"\w+", normalize_text(text).casefold()))
    return hashlib.sha256(folded.encode("utf-8")).hexdigest() if folded else ""


def make_complaint(
    text: str,
    *,
    id: str = "",
    created_at: str | None = None,
    region_code: str | None = None,
    city: str | None = None,
    kecamatan: str | None = None,
    kelurahan: str | None = None,
    address: str | None = None,
) -> IndexedComplaint:
    """A complaint as the index stores it: normalised text, its exact key and a redacted snippet."""
    clean = normalize_text(text)
    return IndexedComplaint(
        id=id,
        text=clean,
        created_at=created_at,
        region_code=region_code,
        city=city,
        kecamatan=kecamatan,
        kelurahan=kelurahan,
        address=address,
        text_hash=text_key(clean),
        snippet=snippet(clean),
    )


def complaints_as_records(complaints: Complaints) -> list[IndexedComplaint]:
    """Every row of a loaded complaint set as an index record (ids, times, locations kept)."""
    return [
        make_complaint(text, id=id_, created_at=created, **location)
        for id_, text, created, location in zip(
            complaints.ids(),
            complaints.texts(),
            complaints.created_at(),
            complaints.locations(),
            strict=True,
        )
    ]


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 time as an aware datetime (naive means WIB); None when absent or invalid."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=JAKARTA)


def days_apart(a: str | None, b: str | None) -> float | None:
    """Days between two ISO 8601 times; None when either is unknown."""
    ta, tb = parse_time(a), parse_time(b)
    return abs((ta - tb).total_seconds()) / 86400 if ta and tb else None


def _shifted(t: datetime, delta: timedelta) -> str | None:
    """`t + delta` in ISO 8601; None (no bound) past the calendar's ends (years 1 and 9999)."""
    try:
        return (t + delta).isoformat()
    except OverflowError:
        return None


# --------------------------------------------------------------------------- features


# A query is paired with every candidate, and candidates recur across queries: the
# token sets are cached (frozen, so a caller cannot change a cached value).
@functools.lru_cache(maxsize=16384)
def _words_and_numbers(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """The content words (stopwords left out) and the short numbers (leading zeros
    dropped) of a text."""
    words, numbers = [], []
    for word, number in _WORD_OR_NUMBER.findall(text.casefold()):
        if word:
            words.append(word)
        else:
            numbers.append(number.lstrip("0") or "0")
    return frozenset(words).difference(_STOPWORDS), frozenset(numbers)


@functools.lru_cache(maxsize=16384)
def _identifiers(text: str) -> frozenset[str]:
    return personal_identifiers(text)


@functools.lru_cache(maxsize=4096)
def _address_numbers(address: str) -> frozenset[str]:
    return frozenset(_DIGITS.findall(address))


@functools.lru_cache(maxsize=2048)
def _address_grams(address: str) -> frozenset[str]:
    """Character trigrams of an address without its boilerplate words (typo-tolerant)."""
    words = " ".join(w for w in _ADDRESS_WORD.findall(address.casefold()) if w not in _BOILERPLATE)
    return frozenset(words[i : i + 3] for i in range(len(words) - 2))


@functools.lru_cache(maxsize=16384)
def _spot(text: str, address: str) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """The house numbers ("12", "66b") and the ("rt", n) / ("rw", n) numbers named in
    the text or the address (leading zeros dropped)."""
    folded = f"{text}\n{address}".casefold()
    houses = {n + (letter or "") for n, letter in _HOUSE_NUMBER.findall(folded)}
    if address:
        houses.update(
            n + (letter or "") for _g, n, letter in _GANG_SLASH_HOUSE.findall(address.casefold())
        )
    rt_rw: set[tuple[str, str]] = set()
    for rt, rw, kind, n in _RT_RW.findall(folded):
        rt_rw.update({("rt", rt), ("rw", rw)} if kind == "" else {(kind, n)})
    return frozenset(houses), frozenset(rt_rw)


def _same_rt_rw(a: frozenset[tuple[str, str]], b: frozenset[tuple[str, str]]) -> float:
    """-1 when RT or RW numbers named on both sides differ, +1 when those named agree."""
    verdict = 0.0
    for kind in ("rt", "rw"):
        va = {n for k, n in a if k == kind}
        vb = {n for k, n in b if k == kind}
        if va and vb:
            if not va & vb:
                return -1.0
            verdict = 1.0
    return verdict


def _signed_overlap(a: AbstractSet[str], b: AbstractSet[str]) -> float:
    if not a or not b:
        return 0.0
    return 1.0 if a & b else -1.0


def _jaccard(a: AbstractSet[str], b: AbstractSet[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def _agree(a: str | None, b: str | None) -> float:
    """+1 the same place, -1 different, 0 unknown (names compared as the index filters do)."""
    ka, kb = place_key(a), place_key(b)
    if not ka or not kb:
        return 0.0
    return 1.0 if ka == kb else -1.0


def fit_word_rarity(texts: Iterable[str]) -> WordRarity:
    """The word-rarity table of a complaint collection, over the content words the pair
    features read (each text normalised as the index stores it)."""
    return WordRarity.fit(_words_and_numbers(normalize_text(t))[0] for t in texts)


def _shared_rarity(shared: AbstractSet[str], words: WordRarity | None) -> float:
    if words is None or not shared:
        return 0.0
    return math.log1p(sum(words.idf(w) for w in shared))


def pair_features(
    a: IndexedComplaint,
    b: IndexedComplaint,
    cosine: float,
    *,
    window_days: int = 45,
    words: WordRarity | None = None,
) -> list[float]:
    """The `FEATURES` of one pair, given the cosine of their duplicate embeddings and
    the word-rarity table (`None`: `shared_rare_words` is 0)."""
    days = days_apart(a.created_at, b.created_at)
    if days is None:
        days = window_days / 2
    address = (
        _jaccard(_address_grams(a.address), _address_grams(b.address))
        if a.address and b.address
        else 0.0
    )
    address_numbers = _signed_overlap(
        _address_numbers(a.address or ""), _address_numbers(b.address or "")
    )
    houses_a, rt_rw_a = _spot(a.text, a.address or "")
    houses_b, rt_rw_b = _spot(b.text, b.address or "")
    identifier = _signed_overlap(_identifiers(a.text), _identifiers(b.text))
    exact = bool(a.text_hash) and a.text_hash == b.text_hash
    words_a, numbers_a = _words_and_numbers(a.text)
    words_b, numbers_b = _words_and_numbers(b.text)
    shared = words_a & words_b
    return [
        float(cosine),
        1.0 if exact else 0.0,
        len(shared) / len(words_a | words_b) if words_a and words_b else 0.0,  # Jaccard
        _jaccard(numbers_a, numbers_b),
        _agree(a.kelurahan, b.kelurahan),
        _agree(a.kecamatan, b.kecamatan),
        address,
        address_numbers,
        math.log1p(days),
        _signed_overlap(houses_a, houses_b),
        _same_rt_rw(rt_rw_a, rt_rw_b),
        identifier,
        _shared_rarity(shared, words),
    ]


def feature_matrix(
    a: Sequence[IndexedComplaint],
    b: Sequence[IndexedComplaint],
    cosines: np.ndarray,
    *,
    window_days: int = 45,
    words: WordRarity | None = None,
) -> np.ndarray:
    """Features [n_pairs, len(FEATURES)] for pairs (a[i], b[i])."""
    rows = [
        pair_features(x, y, float(c), window_days=window_days, words=words)
        for x, y, c in zip(a, b, cosines, strict=True)
    ]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURES))


#: Location evidence that two complaints are about different spots.
_PLACE_CONFLICTS: tuple[str, ...] = (
    "same_kelurahan",
    "same_kecamatan",
    "same_house",
    "same_rt_rw",
)


def resubmissions(x: np.ndarray) -> np.ndarray:
    """Which feature rows are exact re-submissions: the same text, and no location
    evidence of different spots (the guide counts every re-submission as a
    duplicate, but the same short text filed for house no. 37 and no. 41 on one
    street is two jobs)."""
    same_text = x[:, FEATURES.index("exact")] > 0
    elsewhere = (x[:, [FEATURES.index(f) for f in _PLACE_CONFLICTS]] < 0).any(axis=1)
    return same_text & ~elsewhere


def score_features(spec: DedupSpec, x: np.ndarray) -> np.ndarray:
    """The calibrated combiner's duplicate probability for each feature row.

    An exact re-submission (`resubmissions`) always scores 1; uncalibrated
    specs give 0 to everything else. A spec fitted on an earlier release's
    features (a subset of `FEATURES`) still scores with exactly those.
    """
    exact = resubmissions(x).astype(np.float64)
    if not spec.calibrated:
        return exact
    unknown = [f for f in spec.features if f not in FEATURES]
    if unknown or not spec.features:
        raise ValueError(
            "the bundle's duplicate scorer uses features this release does not compute "
            f"({', '.join(unknown) or 'none listed'}); recalibrate it with `aduan dedup calibrate`"
        )
    cols = x[:, [FEATURES.index(f) for f in spec.features]]
    z = ((cols - np.asarray(spec.mean)) / np.asarray(spec.scale)) @ np.asarray(spec.weights)
    return np.maximum(1.0 / (1.0 + np.exp(-(z + spec.bias))), exact)


# ------------------------------------------------------------------------ calibration


@dataclass(frozen=True)
class PairMetrics:
    n: int
    positives: int
    threshold: float
    precision: float
    recall: float
    f1: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in vars(self).items()}


def pair_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float) -> PairMetrics:
    """Precision, recall and F1 of `score >= threshold` against 0/1 labels."""
    pred = scores >= threshold
    gold = labels.astype(bool)
    tp = int((pred & gold).sum())
    precision = tp / int(pred.sum()) if pred.any() else 0.0
    recall = tp / int(gold.sum()) if gold.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PairMetrics(len(labels), int(gold.sum()), float(threshold), precision, recall, f1)


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The cut maximising F1; ties go to the higher cut (fewer false duplicates)."""
    best, best_f1 = 1.0, -1.0
    for t in np.unique(scores):
        f1 = pair_metrics(scores, labels, float(t)).f1
        if f1 >= best_f1:
            best, best_f1 = float(t), f1
    return best


def fit_scorer(
    x: np.ndarray,
    labels: np.ndarray,
    *,
    base: DedupSpec | None = None,
    folds: int = 5,
    seed: int = 0,
) -> DedupSpec:
    """Fit the logistic combiner and its threshold on labelled pairs.

    The threshold is chosen on out-of-fold scores (each pair scored by a
    combiner that never saw it), so it is not tuned to pairs the combiner
    memorised; the stored combiner is then refitted on all pairs. The
    out-of-fold precision, recall and F1 at that threshold are recorded.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels, dtype=int)
    n_pos = int(labels.sum())
    if n_pos < 2 or len(labels) - n_pos < 2:
        raise ValueError(
            f"calibration needs at least 2 duplicate and 2 non-duplicate pairs "
            f"(got {n_pos} and {len(labels) - n_pos})"
        )
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale

    def model() -> LogisticRegression:
        return LogisticRegression(C=1.0, max_iter=1000)

    k = max(2, min(folds, n_pos, len(labels) - n_pos))
    oof = np.zeros(len(labels))
    for train, test in StratifiedKFold(k, shuffle=True, random_state=seed).split(z, labels):
        oof[test] = model().fit(z[train], labels[train]).predict_proba(z[test])[:, 1]
    oof = np.maximum(oof, resubmissions(x))
    threshold = best_threshold(oof, labels)
    final = model().fit(z, labels)
    spec = replace(
        base or DedupSpec(),
        calibrated=True,
        features=list(FEATURES),
        mean=[float(v) for v in mean],
        scale=[float(v) for v in scale],
        weights=[float(v) for v in final.coef_[0]],
        bias=float(final.intercept_[0]),
        threshold=threshold,
    )
    spec.metrics = {"cross_validated": pair_metrics(oof, labels, threshold).to_dict(), "folds": k}
    return spec


# ----------------------------------------------------------------------------- finder


@dataclass(frozen=True)
class DuplicateMatch:
    """An earlier complaint judged a duplicate of the query."""

    id: str
    score: float  # calibrated duplicate probability from the bundle's scorer
    similarity: float  # cosine of the duplicate embeddings
    created_at: str | None
    snippet: str  # redacted
    exact: bool  # an exact re-submission

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "score": round(self.score, 6),
            "similarity": round(self.similarity, 6),
            "created_at": self.created_at,
            "snippet": self.snippet,
            "exact": self.exact,
        }


class DuplicateFinder:
    """Duplicate embeddings, pair scores and index search for one bundle.

    Cheap to create; holds no state besides the bundle. Thread-safe as far as
    the bundle's encoder and the index are.
    """

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.spec = bundle.dedup
        self.words = bundle.dedup_words
        if self.words is None and (problem := self.spec.without_words_problem()):
            raise ValueError(problem)

    @property
    def embedding_id(self) -> str:
        """Names the vector space of the duplicate embeddings; an index built in another
        space must be re-embedded. A pretrained encoder keeps the same id across
        bundles, so swapping heads keeps the index. An encoder served with int8
        weights (`enable_onnx(int8=True)`) embeds slightly differently: each int8
        graph has its own space (`OnnxForward.tag`)."""
        enc = self.bundle.encoder_spec
        weights = f"bundle {self.bundle.version}" if enc.fine_tuned else enc.source or enc.name
        key = f"{enc.name}|{weights}|{self.spec.prompt!r}|{self.bundle.encoder.max_length}"
        tag = getattr(getattr(self.bundle.encoder, "onnx", None), "tag", "")
        if tag:
            key += f"|{tag}"
        return key

    @property
    def dim(self) -> int:
        return self.bundle.encoder.dim

    def shares_classifier_embedding(self) -> bool:
        """Whether the classifier's embedding is the duplicate embedding (one encoder pass)."""
        return self.spec.prompt == self.bundle.encoder.prompt

    def embed(
        self,
        texts: Sequence[str],
        *,
        classifier_embeddings: np.ndarray | None = None,
        batch_size: int = 32,
    ) -> np.ndarray:
        """L2-normalised duplicate embeddings of normalised texts.

        Pass the embeddings `predict(..., with_embeddings=True)` returned to
        skip a second encoder pass where the bundle shares them.
        """
        if classifier_embeddings is not None and self.shares_classifier_embedding():
            return classifier_embeddings
        return self.bundle.encoder.embed(
            list(texts), batch_size=batch_size, prompt=self.spec.prompt
        )

    def score_pairs(
        self,
        a: Sequence[IndexedComplaint],
        b: Sequence[IndexedComplaint],
        va: np.ndarray,
        vb: np.ndarray,
    ) -> np.ndarray:
        """Duplicate probability for each pair (a[i], b[i]) given their embeddings."""
        cosines = np.einsum("ij,ij->i", va, vb) if len(a) else np.zeros(0)
        return score_features(self.spec, self.features(a, b, cosines))

    def features(
        self, a: Sequence[IndexedComplaint], b: Sequence[IndexedComplaint], cosines: np.ndarray
    ) -> np.ndarray:
        """`feature_matrix` with this bundle's window and word-rarity table."""
        return feature_matrix(a, b, cosines, window_days=self.spec.window_days, words=self.words)

    def window(self, complaint: IndexedComplaint, base: SearchFilter | None) -> SearchFilter:
        """The search filter for one complaint: its time window, the caller's filter, itself out."""
        flt = base or SearchFilter()
        exclude = flt.exclude_ids | ({complaint.id} if complaint.id else frozenset())
        t = parse_time(complaint.created_at)
        if t is None:
            return replace(flt, exclude_ids=frozenset(exclude))
        span = timedelta(days=self.spec.window_days)
        return replace(
            flt,
            since=flt.since or _shifted(t, -span),
            until=flt.until or _shifted(t, span),
            exclude_ids=frozenset(exclude),
        )

    def in_window(self, query: IndexedComplaint, candidate: IndexedComplaint) -> bool:
        """Whether `candidate` passes `window(query)`'s time rule: an exact re-submission
        always; otherwise within `window_days`, where an undated query has no time
        condition and an undated candidate never passes one."""
        if query.text_hash and query.text_hash == candidate.text_hash:
            return True
        if parse_time(query.created_at) is None:
            return True
        days = days_apart(query.created_at, candidate.created_at)
        return days is not None and days <= self.spec.window_days

    def find(
        self,
        index: ComplaintIndex,
        complaints: Sequence[IndexedComplaint],
        vectors: np.ndarray,
        *,
        k: int = 5,
        flt: SearchFilter | None = None,
    ) -> list[list[DuplicateMatch]]:
        """For each complaint, up to k earlier complaints judged duplicates, best first.

        Candidates are the `spec.candidates` nearest neighbours within the time
        window plus exact re-submissions at any time (within `flt`); each is
        scored with the bundle's calibrated scorer and kept at or above its
        threshold.
        """
        out: list[list[DuplicateMatch]] = []
        if not len(complaints):
            return out
        exact_base = replace(flt or SearchFilter(), since=None, until=None) if flt else None
        for i, c in enumerate(complaints):
            window = self.window(c, flt)
            hits = index.search(vectors[i : i + 1], self.spec.candidates, window)[0]
            cands = {h.complaint.id: (h.complaint, h.similarity) for h in hits}
            exact_filter = replace(exact_base or SearchFilter(), exclude_ids=window.exclude_ids)
            same = index.find_text_hash([c.text_hash], exact_filter)[0] if c.text_hash else []
            missing = [e for e in same if e.id not in cands]
            if missing:
                sims = index.vectors([e.id for e in missing]) @ vectors[i]
                cands.update({e.id: (e, float(s)) for e, s in zip(missing, sims, strict=True)})
            if not cands:
                out.append([])
                continue
            others = [v[0] for v in cands.values()]
            sims = np.array([v[1] for v in cands.values()])
            x = self.features([c] * len(others), others, sims)
            scores = score_features(self.spec, x)
            resubmitted = resubmissions(x)
            keep = [
                j for j in np.argsort(-scores, kind="stable") if scores[j] >= self.spec.threshold
            ]
            out.append(
                [
                    DuplicateMatch(
                        id=others[j].id,
                        score=float(scores[j]),
                        similarity=float(sims[j]),
                        created_at=others[j].created_at,
                        snippet=others[j].snippet,
                        exact=bool(resubmitted[j]),
                    )
                    for j in keep[:k]
                ]
            )
        return out


# --------------------------------------------------------------------------- clusters


def clusters(
    finder: DuplicateFinder,
    complaints: Sequence[IndexedComplaint],
    vectors: np.ndarray,
    *,
    window_days: int | None = None,
    neighbours: int = 20,
) -> list[list[int]]:
    """Groups of mutual duplicates (mass complaints), largest first, as row indices.

    Every complaint's nearest neighbours filed within `window_days` (default:
    the bundle's window) are scored with the bundle's pair scorer; pairs at or
    above its threshold are joined (single linkage), so a chain of re-reports
    forms one group. Groups of one are left out.
    """
    import faiss

    n = len(complaints)
    if n < 2:
        return []
    window = finder.spec.window_days if window_days is None else window_days
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    _, nbrs = index.search(np.ascontiguousarray(vectors, dtype=np.float32), min(neighbours + 1, n))
    left: list[int] = []
    right: list[int] = []
    for i, row in enumerate(nbrs):
        for j in row:
            if j <= i:  # each unordered pair once (j < i is seen from j's side or not at all)
                continue
            days = days_apart(complaints[i].created_at, complaints[int(j)].created_at)
            if days is not None and days > window:
                continue
            left.append(i)
            right.append(int(j))
    joined = np.zeros(len(left), dtype=bool)
    if left:
        scores = finder.score_pairs(
            [complaints[i] for i in left],
            [complaints[j] for j in right],
            vectors[left],
            vectors[right],
        )
        joined = scores >= finder.spec.threshold
    groups = connected_groups(n, np.asarray(left)[joined], np.asarray(right)[joined])
    return sorted((g for g in groups if len(g) > 1), key=lambda g: (-len(g), g[0]))


def connected_groups(n: int, left: np.ndarray, right: np.ndarray) -> list[list[int]]:
    """The connected components of the graph on rows 0..n-1 with edges (left[i], right[i]),
    each as its sorted row indices, ordered by their first row."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    groups: dict[int, list[int]] = {}
    for row, label in enumerate(labels):
        groups.setdefault(int(label), []).append(row)
    return list(groups.values())
