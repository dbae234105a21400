"""Duplicate detection: pair features, the calibrated scorer, pair files and finding."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from data.pairs import pairs_from_ids, read_pair_ids_csv, read_pairs_jsonl
from data.schema import DataError
from model.bundle import Bundle, BundleError, DedupSpec
from model.dedup import (
    FEATURES,
    DuplicateFinder,
    best_threshold,
    fit_scorer,
    fit_word_rarity,
    make_complaint,
    pair_features,
    pair_metrics,
    resubmissions,
    score_features,
    text_key,
)
from model.index import IndexedComplaint
from model.rarity import WordRarity, word_key

LAMP = "Lampu PJU di Jl. Ketintang Baru no 12 mati sudah seminggu, mohon diperbaiki"


def test_text_key_ignores_case_spacing_and_punctuation() -> None:
    assert text_key(LAMP) == text_key(
        "  lampu pju di jl ketintang baru NO 12 mati sudah seminggu mohon diperbaiki!! "
    )
    assert text_key(LAMP) != text_key(LAMP.replace("12", "14"))


def test_texts_without_words_are_no_re_submission_of_each_other() -> None:
    # their folded text is empty: one shared key would make every such pair "exact"
    assert text_key("???") == text_key("😀😀") == ""
    a, b = make_complaint("???", id="a"), make_complaint("!!! 😀", id="b")
    x = np.array([pair_features(a, b, 0.2)])
    assert x[0, FEATURES.index("exact")] == 0.0
    assert not resubmissions(x)[0]


def test_make_complaint_redacts_the_snippet_but_keeps_the_text() -> None:
    c = make_complaint("Hubungi saya di 081234567890, lampu mati", id="x")
    assert "081234567890" not in c.snippet
    assert "081234567890" in c.text
    assert c.text_hash == text_key(c.text)


def test_pair_features_read_location_time_and_numbers() -> None:
    a = make_complaint(
        LAMP, created_at="2022-03-01T08:00:00", kecamatan="Gayungan", kelurahan="Ketintang"
    )
    b = make_complaint(
        LAMP.replace("12", "40"),
        created_at="2022-03-11T08:00:00",
        kecamatan="gayungan ",
        kelurahan="Dukuh Menanggal",
    )
    f = dict(zip(FEATURES, pair_features(a, b, 0.9), strict=True))
    assert f["cosine"] == pytest.approx(0.9)
    assert f["exact"] == 0.0
    assert f["same_kecamatan"] == 1.0  # case and spaces do not matter
    assert f["same_kelurahan"] == -1.0
    assert f["log_days"] == pytest.approx(np.log1p(10))
    assert f["number_overlap"] == 0.0  # 12 vs 40: different house numbers
    assert f["word_overlap"] > 0.8
    same = dict(zip(FEATURES, pair_features(a, a, 1.0), strict=True))
    assert same["exact"] == 1.0 and same["number_overlap"] == 1.0


@pytest.mark.parametrize(
    ("text", "address", "houses", "rt_rw"),
    [
        ("lampu mati depan no. 12", "", {"12"}, set()),
        ("", "Jalan Jetis Kulon 1 No.66 B, RW.04, Wonokromo", {"66b"}, {("rw", "4")}),
        ("", "jetis wetan Gg.6/29 surabaya", {"29"}, set()),  # gang 6, house 29
        ("wil. RT 07 RW 01 padam", "Jl. Gundih 3 nomor 05", {"5"}, {("rt", "7"), ("rw", "1")}),
        ("rt.3/rw.12 dan rt03", "", set(), {("rt", "3"), ("rw", "12")}),
        ("", "Kalijudan RT/RW 03/01", set(), {("rt", "3"), ("rw", "1")}),  # not a house 3/01
        ("lapor tgl 8/2/2022, hp no. 081234567890", "", set(), set()),  # a date, a phone
        ("mohon tanya nomor antrian", "", set(), set()),
    ],
)
def test_house_and_rt_rw_numbers_are_read_from_text_and_address(
    text: str, address: str, houses: set[str], rt_rw: set[tuple[str, str]]
) -> None:
    from model.dedup import _spot

    assert _spot(text, address) == (houses, rt_rw)


def test_pair_features_read_the_spot_and_the_person() -> None:
    def side(text: str, address: str = "") -> IndexedComplaint:
        return make_complaint(text, kelurahan="Sawahan", address=address)

    def features(a: IndexedComplaint, b: IndexedComplaint) -> dict[str, float]:
        return dict(zip(FEATURES, pair_features(a, b, 0.95), strict=True))

    rubbish = "sampah ranting belum terangkut"
    f = features(side(rubbish, "Jl. Argopuro No.37"), side(rubbish, "Jl. Argopuro No.41"))
    assert f["same_house"] == -1.0 and f["same_rt_rw"] == 0.0 and f["same_identifier"] == 0.0
    f = features(side(rubbish, "Jl. Argopuro No.37"), side(rubbish + " di no 37"))
    assert f["same_house"] == 1.0
    f = features(side("PJU padam RT 07 RW 01"), side("PJU padam lagi di RT 7 RW 10"))
    assert f["same_rt_rw"] == -1.0
    f = features(side("PJU padam RT 07 RW 01"), side("PJU padam lagi di rw 1"))
    assert f["same_rt_rw"] == 1.0
    ktp = "KTP belum jadi atas nama nik 3578012345678901"
    f = features(side(ktp + " hp 0812-3456-7890"), side("cetak KTP, wa +62 812 3456 7890"))
    assert f["same_identifier"] == 1.0  # the same phone, written two ways
    f = features(side(ktp), side(ktp.replace("8901", "8902")))
    assert f["same_identifier"] == -1.0  # two people's cases


def test_same_text_at_another_house_is_no_automatic_duplicate() -> None:
    from model.dedup import resubmissions

    text = "sampah potongan ranting dan daun belum terangkut"
    a = make_complaint(text, kelurahan="Sawahan", address="Jl. Argopuro No.37")
    rows = [
        make_complaint(text, kelurahan="Sawahan", address="Jl. Argopuro No.37"),
        make_complaint(text, kelurahan="Sawahan", address="Jl. Argopuro No.41"),
        make_complaint(text, kelurahan="Banyu Urip", address="Jl. Argopuro No.37"),
        make_complaint(text),  # nothing known about where: still a re-submission
    ]
    x = np.array([pair_features(a, b, 1.0) for b in rows])
    assert resubmissions(x).tolist() == [True, False, False, True]
    assert score_features(DedupSpec(), x).tolist() == [1.0, 0.0, 0.0, 1.0]


def test_word_rarity_counts_documents_and_stores_no_words(tmp_path: Path) -> None:
    texts = [
        "lampu mati di jalan ketintang",
        "lampu mati di jalan jemursari",
        "sampah di jalan ngagel",
        "Lampu Jalan Ketintang mati lagi",
    ]
    words = fit_word_rarity(texts)
    assert words.documents == 4
    assert words.counts[word_key("jalan")] == 4  # casefolded like the features
    assert words.counts[word_key("ketintang")] == 2
    assert word_key("ngagel") not in words.counts  # in one complaint only: not stored
    assert words.idf("jalan") == pytest.approx(np.log(5 / 5))
    assert words.idf("ketintang") == pytest.approx(np.log(5 / 3))
    assert words.idf("ngagel") == words.idf("never-seen") == pytest.approx(np.log(5 / 2))
    words.save(tmp_path / "w.npz")
    assert WordRarity.load(tmp_path / "w.npz") == words
    raw = (tmp_path / "w.npz").read_bytes()
    assert b"ketintang" not in raw and b"jalan" not in raw  # hashed, never the word


def test_shared_rare_words_weigh_specific_words_over_topic_words() -> None:
    texts = [f"lampu jalan mati di gang {i}" for i in range(20)]
    texts += ["pohon tumbang di kembang kuning", "pohon tumbang kembang kuning lagi"]
    words = fit_word_rarity(texts)
    topic = pair_features(
        make_complaint("lampu jalan mati depan masjid"),
        make_complaint("lampu jalan mati depan sekolah"),
        0.9,
        words=words,
    )
    place = pair_features(
        make_complaint("pohon tumbang di kembang kuning"),
        make_complaint("ada pohon roboh kembang kuning"),
        0.9,
        words=words,
    )
    f = FEATURES.index("shared_rare_words")
    assert place[f] > topic[f] > 0.0
    assert pair_features(make_complaint(texts[-1]), make_complaint(texts[-2]), 0.9)[f] == 0.0


def test_words_and_numbers_skip_stopwords_long_numbers_and_decimals() -> None:
    from model.dedup import _words_and_numbers

    words, numbers = _words_and_numbers("Mohon Jalan KENANGA rt 05 RW 012, no. 1.250,5 / 123456")
    assert words == {"jalan", "kenanga"}  # "mohon" is a stopword; "rt", "no" too short
    assert numbers == {"5", "12"}  # leading zeros dropped; 1.250,5 and 123456 are not short


def test_unknown_location_and_time_are_neutral() -> None:
    a, b = make_complaint("jalan rusak"), make_complaint("jalan berlubang")
    f = dict(zip(FEATURES, pair_features(a, b, 0.5, window_days=40), strict=True))
    assert f["same_kelurahan"] == 0.0 and f["same_kecamatan"] == 0.0
    assert f["address_overlap"] == 0.0
    assert f["log_days"] == pytest.approx(np.log1p(20))


def _synthetic_pairs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows where duplicates have higher cosine and agree on the kelurahan."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    x = np.zeros((n, len(FEATURES)))
    x[:, FEATURES.index("cosine")] = 0.86 + 0.06 * y + rng.normal(0, 0.02, n)
    x[:, FEATURES.index("same_kelurahan")] = np.where(y == 1, 1.0, rng.choice([-1.0, 1.0], n))
    x[:, FEATURES.index("log_days")] = np.log1p(rng.integers(0, 45, n))
    return x, y


def test_fit_scorer_learns_and_records_cross_validated_metrics() -> None:
    x, y = _synthetic_pairs(300)
    spec = fit_scorer(x, y)
    assert spec.calibrated and spec.features == list(FEATURES)
    cv = spec.metrics["cross_validated"]
    assert cv["n"] == 300 and cv["positives"] == int(y.sum())
    assert cv["f1"] > 0.85
    held_x, held_y = _synthetic_pairs(300, seed=1)
    held = pair_metrics(score_features(spec, held_x), held_y, spec.threshold)
    assert held.f1 > 0.85
    assert 0.0 < spec.threshold < 1.0


def test_fit_scorer_is_reproducible() -> None:
    x, y = _synthetic_pairs(200)
    assert fit_scorer(x, y, seed=3) == fit_scorer(x, y, seed=3)


def test_fit_scorer_needs_both_classes() -> None:
    x, y = _synthetic_pairs(50)
    with pytest.raises(ValueError, match="at least 2 duplicate"):
        fit_scorer(x, np.zeros_like(y))


def test_uncalibrated_scorer_only_accepts_exact_resubmissions() -> None:
    x, _ = _synthetic_pairs(10)
    x[3, FEATURES.index("exact")] = 1.0
    scores = score_features(DedupSpec(), x)
    assert scores.tolist() == [0.0] * 3 + [1.0] + [0.0] * 6


def test_exact_resubmission_always_scores_one_when_calibrated() -> None:
    x, y = _synthetic_pairs(200)
    spec = fit_scorer(x, y)
    row = x[:1].copy()
    row[0, FEATURES.index("cosine")] = 0.5
    row[0, FEATURES.index("exact")] = 1.0
    assert score_features(spec, row)[0] == 1.0


def test_scorer_with_unknown_features_asks_for_recalibration() -> None:
    spec = DedupSpec(calibrated=True, features=["tfidf"], mean=[0], scale=[1], weights=[1])
    with pytest.raises(ValueError, match="recalibrate"):
        score_features(spec, np.zeros((1, len(FEATURES))))


def test_scorer_fitted_on_fewer_features_scores_with_those() -> None:
    """A bundle calibrated before features were added keeps working, with its own columns."""
    x, y = _synthetic_pairs(200)
    spec = fit_scorer(x, y)
    old = ["cosine", "exact", "same_kelurahan", "log_days"]
    cols = [FEATURES.index(f) for f in old]
    narrow = replace(
        spec,
        features=old,
        mean=[spec.mean[c] for c in cols],
        scale=[spec.scale[c] for c in cols],
        weights=[spec.weights[c] for c in cols],
    )
    x[:, FEATURES.index("same_identifier")] = 1.0  # a column the old scorer never saw
    z = ((x[:, cols] - narrow.mean) / narrow.scale) @ narrow.weights + narrow.bias
    assert np.allclose(score_features(narrow, x), 1 / (1 + np.exp(-z)))


def test_best_threshold_maximises_f1() -> None:
    scores = np.array([0.1, 0.2, 0.6, 0.7, 0.9])
    labels = np.array([0, 0, 1, 0, 1])
    t = best_threshold(scores, labels)
    assert pair_metrics(scores, labels, t).f1 == max(
        pair_metrics(scores, labels, float(s)).f1 for s in scores
    )


# ------------------------------------------------------------------------ pair files


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_read_pairs_jsonl(tmp_path: Path) -> None:
    f = _write_jsonl(
        tmp_path / "p.jsonl",
        [
            {
                "pair": 7,
                "a": {"text": LAMP, "created_at": "2022-03-01T08:00:00", "kecamatan": "Gayungan"},
                "b": {"text": "lampu mati lagi", "address": " Jl. Ketintang Baru "},
                "label": 1,
            },
            {"pair": "q", "a": {"text": "x y"}, "b": {"text": "z"}},
        ],
    )
    pairs = read_pairs_jsonl(f)
    assert [p.pair for p in pairs] == ["7", "q"]
    assert pairs[0].label is True and pairs[1].label is None
    assert pairs[0].a.kecamatan == "Gayungan" and pairs[0].b.address == "Jl. Ketintang Baru"
    with pytest.raises(DataError, match=r"line 2: 'label' is missing"):
        read_pairs_jsonl(f, require_labels=True)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"a": {"text": "x"}}, "'b' must be an object"),
        ({"a": {"text": "  "}, "b": {"text": "y"}}, "'a.text' is missing or empty"),
        ({"a": {"text": "x", "created_at": "kemarin"}, "b": {"text": "y"}}, "ISO 8601"),
        ({"a": {"text": "x", "nik": "1"}, "b": {"text": "y"}}, "unknown field"),
        ({"a": {"text": "x"}, "b": {"text": "y"}, "label": "ya"}, "true/false or 1/0"),
        ({"a": {"text": 5}, "b": {"text": "y"}}, "'a.text' must be a string"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_pair_lines_name_file_and_line(tmp_path: Path, row: object, message: str) -> None:
    ok = {"pair": "ok", "a": {"text": "x"}, "b": {"text": "y"}}
    f = _write_jsonl(tmp_path / "p.jsonl", [ok, row])
    with pytest.raises(DataError, match=message) as err:
        read_pairs_jsonl(f)
    assert f"{f}: line 2" in str(err.value)


def test_pair_errors_never_quote_text(tmp_path: Path) -> None:
    secret = "NIK saya 3578101234567890"
    f = _write_jsonl(tmp_path / "p.jsonl", [{"a": {"text": secret, "x": 1}, "b": {"text": secret}}])
    with pytest.raises(DataError) as err:
        read_pairs_jsonl(f)
    assert "3578101234567890" not in str(err.value)


def test_ids_csv_resolves_against_data(tmp_path: Path) -> None:
    from data.load import load_complaints

    data = _write_jsonl(
        tmp_path / "c.jsonl",
        [{"id": f"c{i}", "text": f"keluhan nomor {i}", "kecamatan": "Wonokromo"} for i in range(4)],
    )
    complaints = load_complaints(data)
    csv = tmp_path / "pairs.csv"
    csv.write_text("id_a,id_b,label\nc0,c1,1\nc2,c3,0\n", encoding="utf-8")
    pairs = pairs_from_ids(csv, complaints)
    assert [(p.a.id, p.b.id, p.label) for p in pairs] == [("c0", "c1", True), ("c2", "c3", False)]
    assert pairs[0].a.kecamatan == "Wonokromo" and pairs[0].b.text == "keluhan nomor 1"
    csv.write_text("id_a,id_b,label\nc0,c1,1\nc2,c9,0\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 3: id 'c9' is not in"):
        pairs_from_ids(csv, complaints)
    csv.write_text("a,b,label\n", encoding="utf-8")
    with pytest.raises(DataError, match="header id_a,id_b,label"):
        read_pair_ids_csv(csv)
    csv.write_text("id_a,id_b,label\nc0,c1,2\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2: 'label' must be"):
        read_pair_ids_csv(csv)


# --------------------------------------------------------------------------- finder


def test_finder_shares_the_classifier_embedding_only_with_the_same_prompt(
    tiny_bundle: Bundle,
) -> None:
    finder = DuplicateFinder(tiny_bundle)
    texts = [LAMP, "banjir di jalan"]
    emb = tiny_bundle.encoder.embed(texts)
    assert finder.shares_classifier_embedding()  # the default: one encoder pass
    assert finder.embed(texts, classifier_embeddings=emb) is emb
    tiny_bundle.dedup.prompt = "passage: "
    assert not finder.shares_classifier_embedding()
    own = finder.embed(texts, classifier_embeddings=emb)
    assert not np.allclose(own, emb)  # a second pass with the passage prompt
    assert np.allclose(own, tiny_bundle.encoder.embed(texts, prompt="passage: "))
    tiny_bundle.dedup.prompt = tiny_bundle.encoder.prompt
    assert finder.embed(texts, classifier_embeddings=emb) is emb


def test_embedding_id_follows_the_weights_and_prompt(tiny_bundle: Bundle) -> None:
    finder = DuplicateFinder(tiny_bundle)
    first = finder.embedding_id
    tiny_bundle.version = "other-heads"
    assert finder.embedding_id == first  # pretrained encoder: the same space across bundles
    tiny_bundle.dedup.prompt = "passage: "
    assert finder.embedding_id != first
    tiny_bundle.encoder_spec.fine_tuned = True
    assert "other-heads" in finder.embedding_id


def test_dedup_spec_survives_save_and_load(tiny_bundle: Bundle, tmp_path: Path) -> None:
    x, y = _synthetic_pairs(100)
    tiny_bundle.dedup = fit_scorer(x, y)
    tiny_bundle.dedup_words = fit_word_rarity(["lampu mati", "lampu jalan mati", "sampah"])
    tiny_bundle.save(tmp_path / "b")
    loaded = Bundle.load(tmp_path / "b")
    assert loaded.dedup == tiny_bundle.dedup
    assert loaded.dedup_words == tiny_bundle.dedup_words
    # saving a loaded bundle in place (as `dedup calibrate` does) keeps it loadable
    loaded.dedup.threshold = 0.5
    loaded.save(tmp_path / "b", overwrite=True)
    assert Bundle.load(tmp_path / "b", verify_hashes=True).dedup.threshold == 0.5


# ------------------------------------------------------------------------------- CLI

STREETS = ["Ketintang Baru", "Jemursari", "Ngagel Jaya", "Manyar Kertoarjo", "Darmo Permai"]
PLACES = [("Gayungan", "Ketintang"), ("Wonocolo", "Jemur Wonosari"), ("Wonokromo", "Ngagel")]


def _labelled_pairs(n: int) -> list[dict[str, object]]:
    """Re-reports of the same street light (same place, days apart) and different problems."""
    rows: list[dict[str, object]] = []
    for i in range(n):
        street = STREETS[i % len(STREETS)]
        kec, kel = PLACES[i % len(PLACES)]
        a = {
            "text": f"lampu jalan di Jl. {street} no {i + 3} mati sejak minggu lalu",
            "created_at": f"2022-03-{1 + i % 20:02d}T08:00:00",
            "kecamatan": kec,
            "kelurahan": kel,
        }
        if i % 2 == 0:
            b = {
                "text": f"lampu PJU Jl. {street} nomor {i + 3} masih mati belum diperbaiki",
                "created_at": f"2022-03-{3 + i % 20:02d}T10:00:00",
                "kecamatan": kec,
                "kelurahan": kel,
            }
        else:
            other_kec, other_kel = PLACES[(i + 1) % len(PLACES)]
            b = {
                "text": f"sampah menumpuk di pasar {STREETS[(i + 2) % len(STREETS)]} bau sekali",
                "created_at": f"2022-04-{1 + i % 25:02d}T10:00:00",
                "kecamatan": other_kec,
                "kelurahan": other_kel,
            }
        rows.append({"pair": f"p{i}", "a": a, "b": b, "label": i % 2 == 0})
    return rows


def test_cli_calibrate_then_score(tiny_bundle: Bundle, tmp_path: Path) -> None:
    from cli.main import run

    model = tmp_path / "bundle"
    tiny_bundle.save(model)
    pairs = _write_jsonl(tmp_path / "pairs.jsonl", _labelled_pairs(40))
    assert run(["dedup", "calibrate", "--model", str(model), "--pairs", str(pairs)]) == 0
    calibrated = Bundle.load(model, verify_hashes=True)
    assert calibrated.dedup.calibrated
    assert calibrated.dedup.metrics["pairs"] == 40
    assert calibrated.dedup_words is not None  # counted over the pairs' distinct texts
    assert calibrated.dedup_words.documents == len(
        {row[side]["text"] for row in _labelled_pairs(40) for side in ("a", "b")}  # type: ignore[index]
    )
    assert calibrated.dedup.metrics["cross_validated"]["f1"] > 0.9

    unlabelled = [{k: v for k, v in row.items() if k != "label"} for row in _labelled_pairs(6)]
    out = tmp_path / "scores.jsonl"
    inp = _write_jsonl(tmp_path / "in.jsonl", unlabelled)
    assert (
        run(["dedup", "score", "--model", str(model), "--pairs", str(inp), "--out", str(out)]) == 0
    )
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["pair"] for line in lines] == [f"p{i}" for i in range(6)]
    assert set(lines[0]) == {"pair", "score", "duplicate"}
    assert [line["duplicate"] for line in lines] == [i % 2 == 0 for i in range(6)]
    for line in lines:
        assert line["duplicate"] == (line["score"] >= calibrated.dedup.threshold)


def test_scorer_weighing_rare_words_needs_the_word_table(tiny_bundle: Bundle) -> None:
    tiny_bundle.dedup = _hand_scorer()
    tiny_bundle.dedup_words = None
    DuplicateFinder(tiny_bundle)  # the word table is not needed while its weight is 0
    tiny_bundle.dedup.weights[FEATURES.index("shared_rare_words")] = 1.0
    with pytest.raises(ValueError, match=r"no word-rarity table \(dedup/words.npz\); recalibrate"):
        DuplicateFinder(tiny_bundle)


def test_damaged_word_table_is_a_bundle_error(tiny_bundle: Bundle, tmp_path: Path) -> None:
    tiny_bundle.dedup_words = fit_word_rarity(["lampu mati", "lampu jalan mati"])
    tiny_bundle.save(tmp_path / "b")
    words = tmp_path / "b" / "dedup" / "words.npz"
    words.write_bytes(b"x" * words.stat().st_size)  # same size: only reading can tell
    with pytest.raises(BundleError, match="word-rarity table cannot be read"):
        Bundle.load(tmp_path / "b")


def test_bundle_missing_its_word_table_fails_to_load(tiny_bundle: Bundle, tmp_path: Path) -> None:
    tiny_bundle.dedup = _hand_scorer()
    tiny_bundle.dedup.weights[FEATURES.index("shared_rare_words")] = 1.0
    tiny_bundle.save(tmp_path / "b")  # a hand-edited bundle: scorer without its table
    with pytest.raises(BundleError, match=r"no word-rarity table \(dedup/words.npz\); recalibrate"):
        Bundle.load(tmp_path / "b")


def test_cli_calibrate_jsonl_counts_word_rarity_over_data(
    tiny_bundle: Bundle, tmp_path: Path
) -> None:
    from cli.main import run

    model = tmp_path / "bundle"
    tiny_bundle.save(model)
    pairs = _write_jsonl(tmp_path / "pairs.jsonl", _labelled_pairs(40))
    corpus = _write_jsonl(
        tmp_path / "corpus.jsonl", [{"text": f"keluhan nomor {i} soal jalan"} for i in range(75)]
    )
    args = ["dedup", "calibrate", "--model", str(model), "--pairs", str(pairs)]
    assert run([*args, "--data", str(corpus)]) == 0
    words = Bundle.load(model).dedup_words
    assert words is not None and words.documents == 75


def test_cli_calibrate_from_ids_csv_needs_data(
    tiny_bundle: Bundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import run

    model = tmp_path / "bundle"
    tiny_bundle.save(model)
    csv = tmp_path / "pairs.csv"
    csv.write_text("id_a,id_b,label\na,b,1\n", encoding="utf-8")
    assert run(["dedup", "calibrate", "--model", str(model), "--pairs", str(csv)]) == 2
    assert "pass --data" in capsys.readouterr().err


def test_cli_calibrate_from_ids_csv(tiny_bundle: Bundle, tmp_path: Path) -> None:
    from cli.main import run

    model = tmp_path / "bundle"
    tiny_bundle.save(model)
    complaints, lines = [], ["id_a,id_b,label"]
    for row in _labelled_pairs(30):
        i = row["pair"]
        complaints += [{"id": f"{i}a", **row["a"]}, {"id": f"{i}b", **row["b"]}]  # type: ignore[dict-item]
        lines.append(f"{i}a,{i}b,{int(bool(row['label']))}")
    data = _write_jsonl(tmp_path / "c.jsonl", complaints)
    csv = tmp_path / "pairs.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["dedup", "calibrate", "--model", str(model), "--pairs", str(csv), "--data", str(data)]
    assert run(args) == 0
    calibrated = Bundle.load(model)
    assert calibrated.dedup.metrics["pairs"] == 30
    # word rarity is counted over the --data complaints (60), not only the pairs' texts
    assert calibrated.dedup_words is not None and calibrated.dedup_words.documents == 60
    assert calibrated.dedup.metrics["word_rarity"] == {
        "documents": 60,
        "words": len(calibrated.dedup_words.counts),
    }


def test_cli_score_bad_line_is_one_clean_error(
    tiny_bundle: Bundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import run

    model = tmp_path / "bundle"
    tiny_bundle.save(model)
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"a": {"text": "x"}, "b": {"text": "y"}}\n{"a": 1}\n', encoding="utf-8")
    out = tmp_path / "o.jsonl"
    assert (
        run(["dedup", "score", "--model", str(model), "--pairs", str(inp), "--out", str(out)]) == 2
    )
    err = capsys.readouterr().err
    assert f"{inp}: line 2" in err and "Traceback" not in err
    assert not out.exists()


def test_cli_clusters_groups_re_reports(tiny_bundle: Bundle, tmp_path: Path) -> None:
    from cli.main import run
    from training.dedup import calibrate_dedup

    tiny_bundle.dedup.window_days = 30
    calibrate_dedup(
        tiny_bundle,
        read_pairs_jsonl(
            _write_jsonl(tmp_path / "p.jsonl", _labelled_pairs(40)), require_labels=True
        ),
    )
    model = tmp_path / "bundle"
    tiny_bundle.save(model)
    rows = []
    for i, (kec, kel) in enumerate(PLACES):
        for d in range(3):  # three reports of one light per place
            rows.append(
                {
                    "id": f"r{i}{d}",
                    "text": f"lampu jalan di Jl. {STREETS[i]} no {i + 3} mati, telp 081234567890",
                    "created_at": f"2022-03-{1 + 2 * d:02d}T08:00:00",
                    "kecamatan": kec,
                    "kelurahan": kel,
                }
            )
    rows.append({"id": "lone", "text": "antrean vaksin panjang sekali", "created_at": "2022-03-02"})
    # times with other offsets: r02 (22:00 UTC) was filed before r01 (23:00 UTC),
    # though its text sorts after
    rows[1]["created_at"] = "2022-03-02T23:00:00+00:00"
    rows[2]["created_at"] = "2022-03-03T05:00:00+07:00"
    data = _write_jsonl(tmp_path / "c.jsonl", rows)
    out = tmp_path / "groups.jsonl"
    assert (
        run(["dedup", "clusters", "--model", str(model), "--data", str(data), "--out", str(out)])
        == 0
    )
    groups = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    members = sorted(sorted(m["id"] for m in g["members"]) for g in groups)
    assert members == [[f"r{i}{d}" for d in range(3)] for i in range(3)]
    assert all(g["size"] == 3 for g in groups)
    assert "081234567890" not in out.read_text(encoding="utf-8")
    first = next(g for g in groups if "r00" in {m["id"] for m in g["members"]})
    assert [m["id"] for m in first["members"]] == ["r00", "r02", "r01"]
    assert (first["first"], first["last"]) == ("2022-03-01T08:00:00", "2022-03-02T23:00:00+00:00")


# ------------------------------------------------------------------- find in an index


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _hand_scorer() -> DedupSpec:
    """A calibrated-looking scorer that only trusts cosine and kelurahan agreement."""
    weights = [0.0] * len(FEATURES)
    weights[FEATURES.index("cosine")] = 40.0
    weights[FEATURES.index("same_kelurahan")] = 4.0
    return DedupSpec(
        calibrated=True,
        features=list(FEATURES),
        mean=[0.0] * len(FEATURES),
        scale=[1.0] * len(FEATURES),
        weights=weights,
        bias=-38.0,
        threshold=0.5,
        window_days=30,
        candidates=5,
    )


def test_find_scores_window_exact_and_self(tiny_bundle: Bundle, tmp_path: Path) -> None:
    from model.index import SearchFilter, open_index

    tiny_bundle.dedup = _hand_scorer()
    finder = DuplicateFinder(tiny_bundle)
    rng = np.random.default_rng(0)
    base = _unit(rng.normal(size=(1, 8)))[0]
    near = _unit(base + 0.05 * rng.normal(size=8))
    far = _unit(rng.normal(size=8))
    stored = [
        (
            make_complaint(
                "lampu mati", id="same-kel", created_at="2022-03-01", kelurahan="Ketintang"
            ),
            near,
        ),
        (
            make_complaint(
                "lampu mati juga", id="other-kel", created_at="2022-03-02", kelurahan="Jagir"
            ),
            near,
        ),
        (
            make_complaint(
                "lampu mati", id="too-old", created_at="2021-01-01", kelurahan="Ketintang"
            ),
            near,
        ),
        (
            make_complaint(
                "banjir", id="unrelated", created_at="2022-03-02", kelurahan="Ketintang"
            ),
            far,
        ),
        (
            make_complaint(
                "Saya ulangi: KTP saya belum jadi!", id="resubmitted", created_at="2021-06-01"
            ),
            far,
        ),
    ]
    with open_index(tmp_path / "idx", dim=8, embedding_id=finder.embedding_id) as index:
        index.add([c for c, _ in stored], np.stack([v for _, v in stored]))
        query = make_complaint(
            "lampu jalan mati", id="new", created_at="2022-03-05", kelurahan="Ketintang"
        )
        resub = make_complaint(
            "saya ulangi ktp saya belum jadi", id="new2", created_at="2022-03-05"
        )
        found = finder.find(index, [query, resub], np.stack([base, _unit(-far)]), k=5)
        assert [m.id for m in found[0]] == ["same-kel"]  # other kelurahan, old, unrelated: no
        assert found[0][0].score >= 0.5 and not found[0][0].exact
        # an exact re-submission is found at any time, whatever its vector
        assert [(m.id, m.exact, m.score) for m in found[1]] == [("resubmitted", True, 1.0)]
        # a stored complaint never finds itself
        again = finder.find(index, [stored[0][0]], near[None, :], k=5)
        assert "same-kel" not in [m.id for m in again[0]]
        # the caller's filter narrows candidates (here: a deployment's kecamatan)
        narrowed = finder.find(
            index, [query], base[None, :], flt=SearchFilter(kecamatan="Wonokromo")
        )
        assert narrowed == [[]]


def test_find_with_uncalibrated_bundle_reports_only_exact(
    tiny_bundle: Bundle, tmp_path: Path
) -> None:
    from model.index import open_index

    finder = DuplicateFinder(tiny_bundle)
    v = _unit(np.ones((2, 8)))
    with open_index(tmp_path / "idx", dim=8, embedding_id="x") as index:
        index.add([make_complaint("lampu mati", id="a"), make_complaint("lampu rusak", id="b")], v)
        found = finder.find(index, [make_complaint("Lampu mati!", id="q")], v[:1])
        assert [m.id for m in found[0]] == ["a"]


def test_window_near_the_ends_of_the_calendar_has_no_bound_there(tiny_bundle: Bundle) -> None:
    finder = DuplicateFinder(tiny_bundle)
    early = finder.window(make_complaint("x", id="a", created_at="0001-01-05T00:00:00"), None)
    assert early.since is None and early.until is not None
    late = finder.window(make_complaint("x", id="b", created_at="9999-12-30T00:00:00"), None)
    assert late.until is None and late.since is not None
