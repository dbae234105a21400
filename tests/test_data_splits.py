"""time_split and random_split: deterministic, disjoint, covering, and faithful to labels/time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from data import Complaints, DataError, load_complaints, random_split, time_split

AGENCIES = {
    "Dinas Lingkungan Hidup": 40,
    "Dinas Sumber Daya Air dan Bina Marga": 30,
    "Dinas Perhubungan": 20,
    "Dinas Kependudukan dan Pencatatan Sipil": 9,
    "Satpol PP": 1,  # a single example: must stay in train
}
TEMPLATES = [
    "Sampah di {place} belum diangkut tiga hari.",
    "Jalan di {place} berlubang besar, bahaya untuk pengendara motor.",
    "Lampu lalu lintas di {place} mati sejak kemarin sore.",
    "Antrean di kantor {place} panjang sekali, mohon ditambah loket.",
    "Pedagang kaki lima menutup trotoar di {place}.",
]
PLACES = ["Jl. Diponegoro", "Jl. Ahmad Yani", "Pasar Genteng", "Kecamatan Rungkut", "Tandes"]


def write_complaints(path: Path, *, dated: bool = True) -> Path:
    """100 made-up complaints, agencies interleaved, dates shuffled relative to file order."""
    start = datetime(2022, 1, 1, 8, 0)
    labels = [a for a, n in AGENCIES.items() for _ in range(n)]
    lines = []
    for i, agency in enumerate(labels):
        row = {
            "id": f"sby-{1000 + i}",
            "text": TEMPLATES[i % 5].format(place=PLACES[(i * 3) % 5]),
            "agency": agency,
        }
        if dated:
            row["created_at"] = (start + timedelta(hours=(i * 37) % 100)).isoformat()
        lines.append(json.dumps(row, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


@pytest.fixture
def complaints(tmp_path: Path) -> Complaints:
    return load_complaints(write_complaints(tmp_path / "keluhan.jsonl"), label_columns=["agency"])


SPLITS: dict[str, Callable[[Complaints], tuple[Complaints, Complaints]]] = {
    "time": lambda c: time_split(c, dev_fraction=0.2),
    "random": lambda c: random_split(c, dev_fraction=0.2, seed=7),
    "stratified": lambda c: random_split(c, dev_fraction=0.2, seed=7, stratify_by="agency"),
}


@pytest.mark.parametrize("kind", list(SPLITS))
def test_splits_are_disjoint_and_cover_everything(kind: str, complaints: Complaints) -> None:
    train, dev = SPLITS[kind](complaints)
    assert not set(train.ids()) & set(dev.ids())
    assert sorted(train.ids() + dev.ids()) == sorted(complaints.ids())
    assert len(dev) == 20


@pytest.mark.parametrize("kind", list(SPLITS))
def test_splits_are_deterministic(kind: str, complaints: Complaints) -> None:
    first = SPLITS[kind](complaints)
    second = SPLITS[kind](complaints)
    assert [p.ids() for p in first] == [p.ids() for p in second]


@pytest.mark.parametrize("kind", list(SPLITS))
def test_splits_keep_rows_whole(kind: str, complaints: Complaints) -> None:
    by_id = dict(zip(complaints.ids(), complaints.texts(), strict=True))
    labels = dict(zip(complaints.ids(), complaints.labels("agency"), strict=True))
    for part in SPLITS[kind](complaints):
        assert [by_id[i] for i in part.ids()] == part.texts()
        assert [labels[i] for i in part.ids()] == part.labels("agency")
        assert part.dataset.column_names == complaints.dataset.column_names


@pytest.mark.parametrize("stratify_by", [None, "agency"])
def test_splits_random_seed_changes_the_split(
    stratify_by: str | None, complaints: Complaints
) -> None:
    a = random_split(complaints, seed=0, stratify_by=stratify_by)[1].ids()
    b = random_split(complaints, seed=1, stratify_by=stratify_by)[1].ids()
    assert a != b


def test_splits_random_does_not_depend_on_hash_seed(tmp_path: Path) -> None:
    source = write_complaints(tmp_path / "keluhan.jsonl")
    code = (
        "import sys; from data import load_complaints, random_split\n"
        f"c = load_complaints({str(source)!r}, label_columns=['agency'])\n"
        "print(','.join(random_split(c, seed=3, stratify_by='agency')[1].ids()))\n"
    )
    root = str(Path(__file__).resolve().parents[1])
    outputs = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": root}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        outputs.add(done.stdout.strip())
    assert len(outputs) == 1


def test_splits_stratified_keeps_label_proportions(complaints: Complaints) -> None:
    train, dev = random_split(complaints, dev_fraction=0.2, seed=5, stratify_by="agency")
    dev_counts = Counter(dev.labels("agency"))
    assert dev_counts == {
        "Dinas Lingkungan Hidup": 8,
        "Dinas Sumber Daya Air dan Bina Marga": 6,
        "Dinas Perhubungan": 4,
        "Dinas Kependudukan dan Pencatatan Sipil": 2,  # 1.8 rounded up by largest remainder
    }
    assert "Satpol PP" in train.labels("agency")  # the single example stays in train


def test_splits_stratified_keeps_one_of_each_label_in_train(tmp_path: Path) -> None:
    rows = [
        {"id": f"k-{i}", "text": f"Keluhan nomor {i} soal jalan rusak", "agency": a}
        for i, a in enumerate(["Dishub", "Dishub", "DLH", "DLH", "DLH"])
    ]
    source = tmp_path / "kecil.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in rows))
    c = load_complaints(source, label_columns=["agency"])
    train, dev = random_split(c, dev_fraction=0.5, seed=0, stratify_by="agency")
    assert set(train.labels("agency")) == {"Dishub", "DLH"}
    assert len(dev) == 3


def test_splits_time_split_puts_latest_rows_in_dev(complaints: Complaints) -> None:
    train, dev = time_split(complaints, dev_fraction=0.2)
    latest_train = max(datetime.fromisoformat(s) for s in train.created_at() if s)
    earliest_dev = min(datetime.fromisoformat(s) for s in dev.created_at() if s)
    assert latest_train <= earliest_dev
    dev_times = [s or "" for s in dev.created_at()]
    all_times = sorted((s or "" for s in complaints.created_at()), reverse=True)
    assert sorted(dev_times, reverse=True) == all_times[:20]
    assert dev_times == sorted(dev_times)  # returned in time order


def test_splits_time_split_breaks_ties_by_id(tmp_path: Path) -> None:
    rows = [
        {"id": i, "text": "Banjir di perumahan", "created_at": "2022-02-01T09:00:00"}
        for i in ["b", "d", "a", "c"]
    ]
    source = tmp_path / "seri.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in rows))
    train, dev = time_split(load_complaints(source), dev_fraction=0.5)
    assert (train.ids(), dev.ids()) == (["a", "b"], ["c", "d"])


def test_splits_time_split_without_dates_points_to_random(tmp_path: Path) -> None:
    c = load_complaints(write_complaints(tmp_path / "tanpa-tanggal.jsonl", dated=False))
    with pytest.raises(DataError, match=r"100 of 100 rows have no created_at.*random split"):
        time_split(c)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_splits_reject_bad_dev_fraction(fraction: float, complaints: Complaints) -> None:
    with pytest.raises(DataError, match="dev_fraction"):
        random_split(complaints, dev_fraction=fraction)


def test_splits_default_fraction_is_fifteen_percent(complaints: Complaints) -> None:
    assert [len(p) for p in random_split(complaints)] == [85, 15]
    assert [len(p) for p in time_split(complaints)] == [85, 15]
