"""The registry of shared sets: names, where files are looked for, and the real sets' shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import skip_without_shared

from data import DataError, list_datasets, load_complaints, resolve_dataset, shared_data_available
from data.registry import SHARED_DATA_ENV, shared_data_dir
from data.schema import LOCATION_FIELDS

SMSA = "indonlu/smsa_doc-sentiment-prosa"
EMOT = "indonlu/emot_emotion-twitter"


def fake_shared(root: Path) -> Path:
    """A tiny stand-in for the shared folder, with the real sets' layouts and quirks."""
    smsa = root / SMSA
    smsa.mkdir(parents=True)
    sentences = {
        "train": [
            ("pelayanan di kantor kecamatan cepat dan ramah", "positive"),
            ('petugasnya bilang "besok saja" terus, kecewa', "negative"),  # an opened quote
            ("antrean biasa saja", "neutral"),
        ],
        "valid": [("jalan sudah diperbaiki , terima kasih", "positive")],
        "test": [
            ('katanya "gratis tapi tetap diminta bayar', "negative"),  # a quote never closed
            ("air pdam mengalir lancar pagi ini", "positive"),
        ],
    }
    for split, rows in sentences.items():
        lines = "".join(f"{text}\t{label}\n" for text, label in rows)
        (smsa / f"{split}_preprocess.tsv").write_text(lines, "utf-8")
    emot = root / EMOT
    emot.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (emot / f"{split}_preprocess.csv").write_text(
            'label,tweet\nanger,"macet lagi macet lagi, capek"\n'
            'happy,"taman kota sekarang bersih\nsenang lihatnya"\n',
            "utf-8",
        )
    sby = root / "surabaya"
    sby.mkdir()
    record = {
        "id": "sby-1",
        "text": "Pohon tumbang menutup jalan di depan sekolah.",
        "created_at": "2022-06-01T06:30:00",
        "agency": "Dinas Lingkungan Hidup",
        "topic": "Pohon Tumbang",
        "city": "Surabaya",
    }
    (sby / "complaints-2022.jsonl").write_text(json.dumps(record) + "\n", "utf-8")
    return root


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = fake_shared(tmp_path / "shared")
    monkeypatch.setenv(SHARED_DATA_ENV, str(root))
    return root


def test_registry_lists_the_four_shared_sets() -> None:
    names = [s.name for s in list_datasets()]
    assert names == ["surabaya-2022", "lapor-2017", "indonlu-smsa", "indonlu-emot"]
    for entry in list_datasets():
        assert entry.description and entry.licence and entry.label_columns
        assert entry.default_split in entry.splits


def test_registry_unknown_name_lists_known_names() -> None:
    with pytest.raises(DataError) as err:
        resolve_dataset("indonlu-smsaa")
    message = str(err.value)
    assert message.startswith("unknown dataset 'indonlu-smsaa'")
    assert "known datasets are: surabaya-2022, lapor-2017, indonlu-smsa, indonlu-emot" in message


def test_registry_default_folder_is_beside_the_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SHARED_DATA_ENV, raising=False)
    repo_root = Path(__file__).resolve().parents[1]
    assert shared_data_dir() == repo_root.parent / "shared" / "data"


def test_registry_missing_files_say_where_and_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SHARED_DATA_ENV, str(tmp_path / "kosong"))
    assert not shared_data_available()
    assert not shared_data_available("lapor-2017")
    with pytest.raises(DataError) as err:
        load_complaints("lapor-2017")
    message = str(err.value)
    assert str(tmp_path / "kosong" / "lapor2017" / "complaints.jsonl") in message
    assert SHARED_DATA_ENV in message


def test_registry_available_with_env_folder(shared: Path) -> None:
    assert shared_data_available()
    assert shared_data_available("indonlu-smsa")
    assert not shared_data_available("lapor-2017")
    with pytest.raises(DataError, match="unknown dataset"):
        shared_data_available("lapor-2018")


@pytest.mark.parametrize(("split", "rows"), [(None, 3), ("train", 3), ("valid", 1), ("test", 2)])
def test_registry_headerless_tsv_reads_every_split(
    shared: Path, split: str | None, rows: int
) -> None:
    c = load_complaints("indonlu-smsa", split=split)
    assert (c.n_read, len(c)) == (rows, rows)
    assert c.label_columns == ("label",)
    assert c.source == f"indonlu-smsa:{split or 'train'}"
    assert c.ids()[0] == f"indonlu-smsa-{split or 'train'}-0"


def test_registry_tsv_quotes_stay_inside_their_row(shared: Path) -> None:
    c = load_complaints("indonlu-smsa", split="test")
    assert c.labels("label") == ["negative", "positive"]
    assert c.texts()[0].count('"') == 1


def test_registry_emot_maps_tweet_to_text(shared: Path) -> None:
    c = load_complaints("indonlu-emot", split="valid")
    assert c.labels("label") == ["anger", "happy"]
    assert len(c) == 2  # the quoted line break stays inside its tweet


def test_registry_unknown_split_lists_splits(shared: Path) -> None:
    with pytest.raises(DataError, match=r"no split 'dev'; splits are: train, valid, test"):
        load_complaints("indonlu-smsa", split="dev")


def test_registry_explicit_label_columns_override_defaults(shared: Path) -> None:
    c = load_complaints("surabaya-2022", label_columns=["topic"])
    assert c.label_columns == ("topic",)
    assert c.labels("topic") == ["Pohon Tumbang"]
    assert load_complaints("surabaya-2022").label_columns == ("agency", "topic")


def test_registry_existing_path_wins_over_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("lapor-2017").write_text("")  # a file named like a set: the path is what was meant
    with pytest.raises(DataError, match="unsupported file type"):
        load_complaints("lapor-2017")


# ---------------------------------------------------------------- the real shared sets

REAL_SETS = [
    ("surabaya-2022", None, 8690),
    ("lapor-2017", None, 1818),
    ("indonlu-smsa", "train", 11000),
    ("indonlu-smsa", "valid", 1260),
    ("indonlu-smsa", "test", 500),
    ("indonlu-emot", "train", 3521),
    ("indonlu-emot", "valid", 440),
    ("indonlu-emot", "test", 440),
]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.mark.shared_data
@pytest.mark.parametrize(("name", "split", "rows"), REAL_SETS)
def test_registry_real_sets_have_published_row_counts(
    name: str, split: str | None, rows: int
) -> None:
    skip_without_shared(name)
    c = load_complaints(name, split=split)
    assert c.n_read == rows
    assert len(c) == rows - c.n_dropped_empty
    assert resolve_dataset(name).expected_rows[split or "train"] == rows
    assert len(set(c.ids())) == len(c)


@pytest.mark.shared_data
def test_registry_real_surabaya_has_dates_and_places_lapor_has_no_dates() -> None:
    skip_without_shared("surabaya-2022")
    skip_without_shared("lapor-2017")
    sby = load_complaints("surabaya-2022")
    assert all(sby.created_at())
    assert sby.n_unlabelled == {"agency": 0, "topic": 189}
    assert sum(v is not None for v in sby.dataset["kecamatan"]) == len(sby)
    lapor = load_complaints("lapor-2017")
    assert not any(lapor.created_at())
    assert resolve_dataset("surabaya-2022").has_created_at
    assert not resolve_dataset("lapor-2017").has_created_at
    assert lapor.dataset.column_names[-len(LOCATION_FIELDS) :] == list(LOCATION_FIELDS)


@pytest.mark.shared_data
def test_registry_loading_real_sets_writes_nothing_into_shared_folder() -> None:
    skip_without_shared()
    root = shared_data_dir()
    before = snapshot(root)
    for name, split, _ in REAL_SETS:
        if shared_data_available(name):
            load_complaints(name, split=split, limit=50)
    assert snapshot(root) == before
