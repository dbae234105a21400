"""Jurisdiction routing: type × region → offices, the fallback chain, scope, bundles, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import model.encoder
from cli.main import run
from data.directory import Directory, Office
from data.schema import DataError
from model.bundle import Bundle, BundleError
from model.predict import predict
from model.regions import Gazetteer, Region, RegionTable, Resolution
from model.routing import Exemplars, Router, load_router, save_router, scope_codes
from training import routing as train_routing

# A tiny invented region tree (codes in the official format, names written for this test).
REGIONS = [
    Region("35", "Jawa Timur", "province"),
    Region("35.78", "Kota Surabaya", "city"),
    Region("35.78.01", "Sukolilo", "kecamatan"),
    Region("35.78.01.1001", "Keputih", "kelurahan"),
    Region("35.78.01.1002", "Klampis Ngasem", "kelurahan"),
    Region("35.78.02", "Wonokromo", "kecamatan"),
    Region("35.78.02.1001", "Jagir", "kelurahan"),
    Region("33", "Jawa Tengah", "province"),
    Region("33.74", "Kota Semarang", "city"),
    Region("33.74.01", "Tembalang", "kecamatan"),
    Region("33.74.01.1001", "Bulusan", "kelurahan"),
]


def office(id_: str, name: str, type_: str, level: str, region: str | None) -> Office:
    return Office(id=id_, name=name, type=type_, level=level, region_code=region)


OFFICES = [
    office("dishub-sby", "Dinas Perhubungan Kota Surabaya", "Dinas Perhubungan", "city", "35.78"),
    office("dishub-smg", "Dinas Perhubungan Kota Semarang", "Dinas Perhubungan", "city", "33.74"),
    office("kel-keputih", "Kelurahan Keputih", "Kelurahan/Desa", "kelurahan", "35.78.01.1001"),
    office(
        "kel-klampis", "Kelurahan Klampis Ngasem", "Kelurahan/Desa", "kelurahan", "35.78.01.1002"
    ),  # fmt: skip
    office("kel-jagir", "Kelurahan Jagir", "Kelurahan/Desa", "kelurahan", "35.78.02.1001"),
    office("kec-sukolilo", "Kecamatan Sukolilo", "Kecamatan", "kecamatan", "35.78.01"),
    office("dinsos-jatim", "Dinas Sosial Provinsi Jawa Timur", "Dinas Sosial", "province", "35"),
    office("kemensos", "Kementerian Sosial", "Kementerian Sosial", "national", None),
]


@pytest.fixture
def table() -> RegionTable:
    return RegionTable.from_regions(REGIONS)


@pytest.fixture
def router(table: RegionTable) -> Router:
    return Router(Directory.from_offices(OFFICES, regions=table), Gazetteer(table))


def region(code: str | None, level: str | None = None) -> Resolution:
    from model.regions import level_of

    return Resolution(
        code=code,
        level=level or (level_of(code) if code else None),
        source="location" if code else "none",
        evidence=(),
        confidence=1.0 if code else 0.0,
    )


def names(routed: list) -> list[str]:
    return [r.office.name for r in routed]


def test_route_picks_the_office_of_the_complaints_kelurahan(router: Router) -> None:
    routed = router.route([("Kelurahan/Desa", 0.7), ("Dinas Perhubungan", 0.3)],
                          region("35.78.01.1002"), top_k=3)  # fmt: skip
    assert names(routed) == ["Kelurahan Klampis Ngasem", "Dinas Perhubungan Kota Surabaya"]
    assert routed[0].score == pytest.approx(0.7) and routed[1].score == pytest.approx(0.3)
    assert "kelurahan" in routed[0].why


def test_route_falls_back_up_the_hierarchy(router: Router) -> None:
    # a city office for a kelurahan complaint; a province office where the city has none
    routed = router.route([("Dinas Perhubungan", 0.6), ("Dinas Sosial", 0.4)],
                          region("35.78.02.1001"), top_k=5)  # fmt: skip
    assert names(routed) == ["Dinas Perhubungan Kota Surabaya", "Dinas Sosial Provinsi Jawa Timur"]
    assert routed[0].why == "the city's office for the complaint's kelurahan"
    assert "province" in routed[1].why
    # a kelurahan without its own office of a type that exists per kecamatan: the kecamatan's
    routed = router.route([("Kecamatan", 1.0)], region("35.78.01.1001"), top_k=3)
    assert names(routed) == ["Kecamatan Sukolilo"]
    # national bodies have no region: they answer wherever the complaint is
    routed = router.route([("Kementerian Sosial", 1.0)], region("33.74.01"), top_k=3)
    assert names(routed) == ["Kementerian Sosial"]


def test_route_shares_a_type_among_offices_when_the_region_is_coarse(router: Router) -> None:
    routed = router.route([("Kelurahan/Desa", 0.9)], region("35.78.01"), top_k=5)
    assert set(names(routed)) == {"Kelurahan Keputih", "Kelurahan Klampis Ngasem"}
    assert all(r.score == pytest.approx(0.45) for r in routed)
    unknown = router.route([("Dinas Perhubungan", 0.8)], region(None), top_k=5)
    assert len(unknown) == 2 and all(r.score == pytest.approx(0.4) for r in unknown)
    assert all(r.why == "region unknown" for r in unknown)


def test_offices_the_region_cannot_tell_apart_share_by_training_rows(
    router: Router,
) -> None:
    counted = Router(router.directory, router.gazetteer, office_counts={"dishub-smg": 7})
    routed = counted.route([("Dinas Perhubungan", 0.9)], region(None), top_k=5)
    assert names(routed) == ["Dinas Perhubungan Kota Semarang", "Dinas Perhubungan Kota Surabaya"]
    assert [r.score for r in routed] == pytest.approx([0.9 * 8 / 9, 0.9 * 1 / 9])
    # a known region still decides on its own
    routed = counted.route([("Dinas Perhubungan", 0.9)], region("35.78.01"), top_k=5)
    assert names(routed) == ["Dinas Perhubungan Kota Surabaya"]
    assert counted.with_directory(router.directory).office_counts == {"dishub-smg": 7}


def test_the_office_named_after_its_type_wins_a_tie(table: RegionTable) -> None:
    # two offices of one type in one city, nothing to tell them apart: the general one
    # first (by id, the specialised one would come first), with the same score
    offices = [
        office("a-bina-marga-smg", "Dinas Bina Marga Kota Semarang", "Dinas Pekerjaan Umum",
               "city", "33.74"),
        office("b-pu-smg", "Dinas Pekerjaan Umum Kota Semarang", "Dinas Pekerjaan Umum",
               "city", "33.74"),
    ]  # fmt: skip
    router = Router(Directory.from_offices(offices, regions=table), Gazetteer(table))
    for where in ("33.74", "33.74.01.1001", None):
        routed = router.route([("Dinas Pekerjaan Umum", 0.8)], region(where), top_k=2)
        assert names(routed) == [
            "Dinas Pekerjaan Umum Kota Semarang", "Dinas Bina Marga Kota Semarang"
        ]  # fmt: skip
        assert routed[0].score == pytest.approx(0.4) == routed[1].score
    # training rows still decide where they differ
    counted = router.replace(office_counts={"a-bina-marga-smg": 3})
    routed = counted.route([("Dinas Pekerjaan Umum", 0.8)], region("33.74"), top_k=2)
    assert names(routed)[0] == "Dinas Bina Marga Kota Semarang"


def _unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_similar_training_complaints_vote_when_the_region_is_unknown(
    router: Router, tmp_path: Path
) -> None:
    # Semarang has more training rows; the complaint resembles Surabaya's exemplars.
    exemplars = Exemplars(
        np.stack([_unit(1, 0, 0)] * 7 + [_unit(0, 1, 0)]),
        ("dishub-sby",) * 7 + ("dishub-smg",),
    )
    voting = Router(router.directory, router.gazetteer, office_counts={"dishub-smg": 2},
                    exemplars=exemplars)  # fmt: skip
    near_sby = _unit(1, 0.1, 0)
    plain = voting.route([("Dinas Perhubungan", 0.9)], region(None), top_k=2)
    assert names(plain) == ["Dinas Perhubungan Kota Semarang", "Dinas Perhubungan Kota Surabaya"]
    routed = voting.route([("Dinas Perhubungan", 0.9)], region(None), top_k=2, embedding=near_sby)
    assert names(routed) == ["Dinas Perhubungan Kota Surabaya", "Dinas Perhubungan Kota Semarang"]
    # half the training-row share (1/4, 3/4), half the vote share of the 8 nearest (7/8, 1/8)
    assert [r.score for r in routed] == pytest.approx(
        [0.9 * (0.5 / 4 + 0.5 * 7 / 8), 0.9 * (0.5 * 3 / 4 + 0.5 / 8)]
    )
    assert "7 of the 8 most similar training complaints" in routed[0].why
    # a known region decides on its own; a single office needs no vote
    known = voting.route([("Dinas Perhubungan", 0.9)], region("33.74"), top_k=2,
                         embedding=near_sby)  # fmt: skip
    assert names(known) == ["Dinas Perhubungan Kota Semarang"]
    assert known[0].score == pytest.approx(0.9)
    # saved with the bundle's routing files, in half precision
    save_router(voting, tmp_path / "routing")
    again = load_router(tmp_path / "routing", (), office_counts={"dishub-smg": 2})
    assert again.exemplars is not None and again.exemplars.office_ids == exemplars.office_ids
    np.testing.assert_allclose(again.exemplars.vectors, exemplars.vectors, atol=1e-3)
    reloaded = again.route([("Dinas Perhubungan", 0.9)], region(None), top_k=2, embedding=near_sby)
    assert [r.score for r in reloaded] == pytest.approx([r.score for r in routed])
    # an office removed from the directory gets no more votes
    edited = Directory.from_offices([o for o in OFFICES if o.id != "dishub-sby"])
    left = voting.with_directory(edited).route(
        [("Dinas Perhubungan", 0.9)], region(None), top_k=2, embedding=near_sby
    )
    assert names(left) == ["Dinas Perhubungan Kota Semarang"]
    assert left[0].score == pytest.approx(0.9)


def test_nearest_training_complaints_vote_on_the_type(router: Router) -> None:
    exemplars = Exemplars(
        np.stack([_unit(1, 0, 0)] * 8 + [_unit(0, 1, 0)] * 2),
        ("kel-keputih",) * 4 + ("kel-jagir",) * 4 + ("dishub-sby",) * 2,
    )
    voting = Router(router.directory, router.gazetteer, exemplars=exemplars, type_votes=True)
    head = [("Dinas Perhubungan", 0.6), ("Kelurahan/Desa", 0.4)]
    voted = dict(voting.vote_types(head, _unit(1, 0.2, 0)))  # near the kelurahan complaints
    assert voted == pytest.approx({"Dinas Perhubungan": 0.5 * 0.6 + 0.5 * 2 / 10,
                                   "Kelurahan/Desa": 0.5 * 0.4 + 0.5 * 8 / 10})  # fmt: skip
    assert voting.vote_types(head, None) == head  # no embedding: the head alone
    assert router.vote_types(head, _unit(1, 0, 0)) == head  # no exemplars: the head alone
    assert voting.replace(type_votes=False).vote_types(head, _unit(1, 0, 0)) == head  # turned off
    assert voting.with_directory(router.directory).type_votes  # edits keep the choice


def test_a_branch_of_the_same_province_serves_a_regency_without_one(table: RegionTable) -> None:
    extra = [
        Region("35.15", "Kabupaten Sidoarjo", "city"),
        Region("33.22", "Kabupaten Semarang", "city"),
    ]
    bigger = RegionTable.from_regions([*REGIONS, *extra])
    branches = [
        office("bpjs-sby", "BPJS Kesehatan KC Surabaya", "BPJS Kesehatan Kantor Cabang", "branch",
               "35.78"),
        office("bpjs-smg", "BPJS Kesehatan KC Semarang", "BPJS Kesehatan Kantor Cabang", "branch",
               "33.74"),
    ]  # fmt: skip
    router = Router(Directory.from_offices(branches, regions=bigger), Gazetteer(bigger))
    routed = router.route([("BPJS Kesehatan Kantor Cabang", 1.0)], region("35.15"), top_k=3)
    assert names(routed) == ["BPJS Kesehatan KC Surabaya"] and "province" in routed[0].why


def test_route_skips_types_with_no_office_for_the_region(router: Router) -> None:
    # no Kelurahan/Desa office of Semarang is in the directory, so that type yields nothing
    routed = router.route([("Kelurahan/Desa", 0.6), ("Dinas Perhubungan", 0.4)],
                          region("33.74.01.1001"), top_k=3)  # fmt: skip
    assert names(routed) == ["Dinas Perhubungan Kota Semarang"]


def test_scores_are_shares_of_the_type_probabilities(router: Router) -> None:
    probs = [("Kelurahan/Desa", 0.5), ("Dinas Perhubungan", 0.3), ("Kecamatan", 0.2)]
    routed = router.route(probs, region("35.78"), top_k=20)
    assert sum(r.score for r in routed) == pytest.approx(1.0)
    assert [r.score for r in routed] == sorted((r.score for r in routed), reverse=True)


def test_scope_limits_candidates_to_the_deployment(table: RegionTable) -> None:
    scoped = Router(
        Directory.from_offices(OFFICES, regions=table), Gazetteer(table, scope=("35.78",))
    )
    assert scoped.types_without_offices(["Dinas Perhubungan", "Kementerian Sosial"]) == [
        "Kementerian Sosial"
    ]
    routed = scoped.route([("Dinas Perhubungan", 1.0)], region(None), top_k=5)
    assert names(routed) == ["Dinas Perhubungan Kota Surabaya"]


def test_an_edited_directory_takes_effect_without_retraining(
    router: Router, table: RegionTable
) -> None:
    renamed = [
        Office(**{**o.to_dict(), "name": "Dinas Perhubungan Surabaya (baru)", "aliases": ()})
        if o.id == "dishub-sby"
        else o
        for o in OFFICES
    ]
    edited = router.with_directory(Directory.from_offices(renamed, regions=table))
    routed = edited.route([("Dinas Perhubungan", 1.0)], region("35.78.01"), top_k=1)
    assert names(routed) == ["Dinas Perhubungan Surabaya (baru)"]


@pytest.fixture
def routed_bundle(tiny_bundle: Bundle, router: Router, tmp_path: Path) -> Bundle:
    bundle = Bundle.new(
        tiny_bundle.encoder_source_dir,  # type: ignore[arg-type]
        {"agency": ["Dinas Perhubungan", "Kelurahan/Desa", "Kecamatan"], "topic": ["A", "B"]},
        name="routed",
    )
    for spec in bundle.head_specs.values():
        spec.trained = True
    bundle.set_router("agency", router)
    bundle.save(tmp_path / "routed")
    return Bundle.load(tmp_path / "routed")


def test_bundle_keeps_its_router_and_predict_returns_offices(routed_bundle: Bundle) -> None:
    assert routed_bundle.router is not None
    assert len(routed_bundle.router.directory) == len(OFFICES)
    assert (
        routed_bundle.routing.directory_fingerprint == routed_bundle.router.directory.fingerprint()
    )
    location = {"city": "Kota Surabaya", "kecamatan": "Sukolilo", "kelurahan": "Keputih"}
    [pred] = predict(routed_bundle, ["lampu jalan mati"], top_k=3, locations=[location])
    agency = pred.heads["agency"]
    assert agency.region is not None and agency.region["code"] == "35.78.01.1001"
    assert agency.types is not None and len(agency.types) == 3
    offices = {s.label: s.details for s in agency.top}
    assert "Kelurahan Keputih" in offices or "Dinas Perhubungan Kota Surabaya" in offices
    for details in offices.values():
        assert details is not None
        assert {"id", "type", "level", "region_code", "region", "why"} <= set(details)
    assert "Dinas Perhubungan Kota Semarang" not in offices, "the region rules Semarang out"
    out = pred.to_dict()["heads"]["agency"]
    assert out["region"]["source"] == "location" and "types" in out
    assert "type" in out["top"][0] and "label" in out["top"][0]
    assert "type" not in pred.to_dict()["heads"]["topic"]["top"][0]


def test_bundle_directory_override_is_validated(routed_bundle: Bundle, tmp_path: Path) -> None:
    assert routed_bundle.router is not None
    good = tmp_path / "dir.csv"
    Directory.from_offices(OFFICES[:3], regions=routed_bundle.router.table).write(good)
    routed_bundle.use_directory(good)
    assert len(routed_bundle.router.directory) == 3
    bad = tmp_path / "bad.csv"
    bad.write_text(good.read_text().replace("35.78.01.1001", "99.99.99.9999"), encoding="utf-8")
    with pytest.raises(DataError, match="bad.csv"):
        routed_bundle.use_directory(bad)


def test_set_router_refuses_an_unknown_head(tiny_bundle: Bundle, router: Router) -> None:
    with pytest.raises(BundleError, match="no such head"):
        tiny_bundle.set_router("region", router)


def test_label_types_maps_offices_and_names_missing_ones(tmp_path: Path) -> None:
    from data.load import load_complaints

    rows = [
        {"id": "1", "text": "lampu mati", "agency": "Dinas Perhubungan Kota Surabaya"},
        {"id": "2", "text": "surat pindah", "agency": "kelurahan  keputih"},
        {"id": "3", "text": "tanpa label", "agency": None},
        {"id": "4", "text": "label tanpa huruf", "agency": "."},
    ]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    data = load_complaints(path, label_columns=["agency"])
    directory = Directory.from_offices(OFFICES, regions=RegionTable.from_regions(REGIONS))
    typed = train_routing.label_types(data, "agency", directory)
    assert typed.labels("agency") == ["Dinas Perhubungan", "Kelurahan/Desa", None, None]
    rows[0]["agency"] = "Dinas Entah Apa"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    data = load_complaints(path, label_columns=["agency"])
    with pytest.raises(DataError, match="Dinas Entah Apa"):
        train_routing.label_types(data, "agency", directory)


def test_scope_codes_accept_codes_and_names(table: RegionTable) -> None:
    assert scope_codes(table, ["Kota Surabaya", "33.74", "national"]) == ("35.78", "33.74")
    with pytest.raises(DataError, match="Atlantis"):
        scope_codes(table, ["Atlantis"])


def test_bundle_scope_can_be_narrowed_for_a_deployment(routed_bundle: Bundle) -> None:
    assert routed_bundle.router is not None
    [before] = predict(routed_bundle, ["lampu mati"], top_k=5)
    routed_bundle.use_scope(["Kota Semarang"])
    assert routed_bundle.routing.scope == ["33.74"]
    [after] = predict(routed_bundle, ["lampu mati"], top_k=5)
    labels = {s.label for s in after.heads["agency"].top}
    assert labels == {"Dinas Perhubungan Kota Semarang"}, "only Semarang's offices remain"
    assert len(before.heads["agency"].top) > 1
    with pytest.raises(DataError, match="Atlantis"):
        routed_bundle.use_scope(["Atlantis"])


def test_train_and_evaluate_a_routed_bundle_end_to_end(
    tiny_encoder_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setattr(model.encoder, "ensure_encoder", lambda: tiny_encoder_dir)
    table = RegionTable.from_regions(REGIONS)
    regions_file = tmp_path / "regions.csv"
    table.write(regions_file)
    directory_file = tmp_path / "directory.csv"
    Directory.from_offices(OFFICES, regions=table).write(directory_file)
    places = [
        ("Kota Surabaya", "Sukolilo", "Keputih", "Kelurahan Keputih", "surat keterangan"),
        ("Kota Surabaya", "Wonokromo", "Jagir", "Kelurahan Jagir", "surat keterangan"),
        ("Kota Surabaya", "Sukolilo", "Keputih", "Dinas Perhubungan Kota Surabaya", "lampu mati"),
        ("Kota Semarang", "Tembalang", "Bulusan", "Dinas Perhubungan Kota Semarang", "lampu mati"),
    ]
    rows = []
    for i in range(48):
        city, kec, kel, agency, words = places[i % len(places)]
        rows.append({"id": f"r{i}", "text": f"{words} mohon dibantu {i % 5}", "agency": agency,
                     "city": city, "kecamatan": kec, "kelurahan": kel})  # fmt: skip
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    bundle = tmp_path / "b"
    argv = ["train", "--data", str(data), "--out", str(bundle), "--label", "agency",
            "--split", "random", "--frozen-encoder", "--directory", str(directory_file),
            "--regions", str(regions_file)]  # fmt: skip
    assert run(argv) == 0
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["routing"]["head"] == "agency"
    counts = meta["routing"]["office_counts"]
    data_record = meta["training"]["data"]
    # once dev had chosen, its rows were counted and added as exemplars too
    refit = meta["training"]["refit_with_dev"]
    assert refit["exemplars_added"] == refit["dev_rows"] == data_record["dev"]["rows"] > 0
    assert refit["lexical"]["rows"] == data_record["train"]["rows"] + data_record["dev"]["rows"]
    assert sum(counts.values()) == data_record["train"]["rows"] + data_record["dev"]["rows"]
    assert set(counts) <= {o.id for o in OFFICES}
    assert set(meta["heads"]["agency"]["labels"]) == {"Kelurahan/Desa", "Dinas Perhubungan"}
    # every training and dev row votes as an exemplar
    voters = Bundle.load(bundle).router.exemplars
    assert voters is not None and len(voters.office_ids) == sum(counts.values())
    # the dev rows decided whether the exemplars vote on the type, and say how
    dev_scores = meta["routing"]["type_votes_dev"]
    assert set(dev_scores) == {"with", "without"}
    assert meta["routing"]["type_votes"] == (dev_scores["with"] > dev_scores["without"])
    # a bundle can be brought up to date in place: the same rows, found again
    capsys.readouterr()
    assert run(["bundle", "exemplars", "--model", str(bundle)]) == 0
    assert json.loads(capsys.readouterr().out)["dev_exact_office_accuracy"] == dev_scores
    redone = Bundle.load(bundle, verify_hashes=True)
    assert redone.routing.office_counts == counts, "the dev rows counted once"
    again = redone.router.exemplars if redone.router else None
    assert again is not None and again.office_ids == voters.office_ids
    assert run(["bundle", "exemplars", "--model", str(tmp_path / "nothing")]) == 2
    # the lexical companion was fitted with the heads; `bundle lexical` refits it in place
    lexical = meta["training"]["lexical"]
    assert lexical["heads"]["agency"]["mix"] == meta["heads"]["agency"]["lexical_mix"]
    capsys.readouterr()
    assert run(["bundle", "lexical", "--model", str(bundle)]) == 0
    relexed = json.loads(capsys.readouterr().out)
    assert set(relexed["dev_accuracy"]) == {"agency"}
    assert relexed["features"] == lexical["features"]
    assert relexed["type_votes"] == meta["routing"]["type_votes"], "chosen without dev's votes"
    again = Bundle.load(bundle, verify_hashes=True)
    assert again.lexical is not None and again.router is not None
    assert again.router.exemplars is not None
    assert again.router.exemplars.office_ids == voters.office_ids, "dev rows added once"
    assert again.routing.office_counts == counts
    redone = again.training["refit_with_dev"]
    assert redone["exemplars_added"] == refit["exemplars_added"]
    assert redone["lexical"]["rows"] == refit["lexical"]["rows"]
    capsys.readouterr()
    out = tmp_path / "eval"
    assert run(["evaluate", "--model", str(bundle), "--data", str(data), "--out", str(out),
                "--baseline", "tfidf"]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    routing = metrics["heads"]["agency"]["routing"]
    assert routing["aduan"]["local_offices"]["n"] == 24
    assert routing["aduan"]["region"]["correct"] == 1.0, "location fields name every region"
    for system in ("aduan", "baseline"):
        assert isinstance(routing[system]["exact_office_accuracy"], float)
        assert isinstance(routing[system]["type_accuracy"], float)
    report = (out / "report.md").read_text()
    assert "exact office accuracy, local (24)" in report
    predictions = tmp_path / "p.jsonl"
    assert run(["predict", "--model", str(bundle), "--data", str(data),
                "--out", str(predictions)]) == 0  # fmt: skip
    first = json.loads(predictions.read_text().splitlines()[0])["heads"]["agency"]
    assert first["region"]["code"] == "35.78.01.1001" and first["top"][0]["type"]
    missing = tmp_path / "missing.csv"
    argv[argv.index(str(directory_file))] = str(missing)
    assert run([*argv[:4], str(tmp_path / "b2"), *argv[5:]]) == 2
    assert "missing.csv" in capsys.readouterr().err


def test_evaluation_compares_offices_not_spellings(table: RegionTable) -> None:
    import numpy as np

    from training.evaluate import Scored, by_office, office_name

    aliased = [
        Office(**{**o.to_dict(), "aliases": ("Dishub Surabaya",)}) if o.id == "dishub-sby" else o
        for o in OFFICES
    ]
    directory = Directory.from_offices(aliased, regions=table)
    assert office_name(directory, "dishub  surabaya") == "Dinas Perhubungan Kota Surabaya"
    assert office_name(directory, "Dinas Entah Apa") == "Dinas Entah Apa"
    peer = Scored(
        ["Dishub Surabaya", "Dinas Perhubungan Kota Surabaya", "Kelurahan Jagir"],
        np.array([[0.3, 0.3, 0.4]]),
    )
    merged = by_office(peer, directory)
    assert merged.labels == ["Dinas Perhubungan Kota Surabaya", "Kelurahan Jagir"]
    assert merged.probs.tolist() == [[0.6, 0.4]]


def test_evaluate_routes_like_predict_with_exemplar_votes(
    routed_bundle: Bundle, tmp_path: Path
) -> None:
    """`aduan evaluate` must score the offices `predict` returns, exemplar votes included."""
    import torch

    from data.load import load_complaints
    from model.predict import preprocess
    from training.evaluate import evaluate

    texts = [f"pengaduan nomor {i} mohon ditindaklanjuti segera" for i in range(6)]
    rows = [{"id": f"x{i}", "text": t, "agency": "Dinas Perhubungan Kota Semarang"}
            for i, t in enumerate(texts)]  # fmt: skip
    data_file = tmp_path / "no-places.jsonl"
    data_file.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with torch.no_grad():  # the type head says Dinas Perhubungan
        routed_bundle.heads.layers["agency"].bias.copy_(torch.tensor([5.0, 0.0, 0.0]))
    router = routed_bundle.router
    assert router is not None
    vectors = routed_bundle.encoder.embed(preprocess(routed_bundle, texts))
    # Surabaya has the training rows; the similar complaints went to Semarang.
    routed_bundle.router = Router(
        router.directory, router.gazetteer, office_counts={"dishub-sby": 20},
        exemplars=Exemplars(vectors, ("dishub-smg",) * len(texts)),
    )  # fmt: skip
    preds = predict(routed_bundle, texts, top_k=1)
    assert {p.heads["agency"].top[0].label for p in preds} == {"Dinas Perhubungan Kota Semarang"}
    data = load_complaints(str(data_file), label_columns=["agency"])
    scored = evaluate(routed_bundle, data)["heads"]["agency"]
    assert scored["routing"]["aduan"]["exact_office_accuracy"] == 1.0
