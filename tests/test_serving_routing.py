"""/v1/route with a routed agency head: concrete offices, the region, directory edits on reload."""
# Fixtures are imported from tests/serving_fixtures.py; test arguments re-bind them.
# ruff: noqa: F811

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from data.directory import Directory, Office
from model.bundle import Bundle
from model.regions import Gazetteer, RegionTable
from model.routing import Router
from tests.serving_fixtures import (  # fixtures are re-bound by the test arguments
    TEXT_LAMPU,
    AppFactory,
    build_bundle,
    bundle_dir,  # noqa: F401
    make_app,  # noqa: F401
)
from tests.test_routing import OFFICES, REGIONS

TYPES = ["Dinas Perhubungan", "Kelurahan/Desa", "Kecamatan"]
KEPUTIH = {"city": "Kota Surabaya", "kecamatan": "Sukolilo", "kelurahan": "Keputih"}


@pytest.fixture(scope="module")
def routed_dir(tiny_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "routed"
    build_bundle(tiny_encoder_dir, out, heads={"agency": TYPES, "topic": ["A", "B"]})
    bundle = Bundle.load(out)
    table = RegionTable.from_regions(REGIONS)
    bundle.set_router("agency", Router(Directory.from_offices(OFFICES, regions=table),
                                       Gazetteer(table)))  # fmt: skip
    bundle.save(out, overwrite=True)
    return out


def write_directory(path: Path, rename: str) -> Path:
    offices = [
        Office(**{**o.to_dict(), "name": rename, "aliases": ()}) if o.id == "kel-keputih" else o
        for o in OFFICES
    ]
    Directory.from_offices(offices, regions=RegionTable.from_regions(REGIONS)).write(path)
    return path


def test_route_answers_offices_of_the_complaints_region(
    make_app: AppFactory, routed_dir: Path
) -> None:
    with TestClient(make_app(model=routed_dir)) as c:
        body = c.post("/v1/route", json={"text": TEXT_LAMPU, "location": KEPUTIH, "top_k": 3})
        assert body.status_code == 200, body.text
        out = body.json()
        model = c.get("/v1/model").json()
    agencies = out["agencies"]
    assert agencies and {"label", "score", "id", "type", "level", "region_code", "why"} <= set(
        agencies[0]
    )
    assert "Dinas Perhubungan Kota Semarang" not in {a["label"] for a in agencies}
    head = out["heads"]["agency"]
    assert head["region"]["code"] == "35.78.01.1001" and head["region"]["source"] == "location"
    assert [t["label"] for t in head["types"]] and len(head["types"]) == 3
    assert set(out["categories"][0]) == {"label", "score"}, "topics carry no office fields"
    assert "region" not in out["heads"]["topic"]
    assert model["routing"]["head"] == "agency"
    assert model["routing"]["directory"]["offices"] == len(OFFICES)
    assert model["routing"]["exemplars"] == 0  # this bundle's router was built without


def test_directory_edits_take_effect_on_reload(
    make_app: AppFactory, routed_dir: Path, tmp_path: Path
) -> None:
    edited = write_directory(tmp_path / "directory.csv", "Kantor Kelurahan Keputih")
    request = {"text": TEXT_LAMPU, "location": KEPUTIH, "top_k": 5}
    with TestClient(make_app(model=routed_dir, directory=edited)) as c:
        names = {a["label"] for a in c.post("/v1/route", json=request).json()["agencies"]}
        assert "Kantor Kelurahan Keputih" in names and "Kelurahan Keputih" not in names
        write_directory(edited, "Kelurahan Keputih (baru)")
        assert c.post("/v1/admin/reload").status_code == 200
        names = {a["label"] for a in c.post("/v1/route", json=request).json()["agencies"]}
        assert "Kelurahan Keputih (baru)" in names
        # a broken edit is refused with a reason; the running directory keeps serving
        edited.write_text("id,name\n", encoding="utf-8")
        r = c.post("/v1/admin/reload")
        assert r.status_code == 422 and "directory.csv" in r.json()["error"]["message"]
        names = {a["label"] for a in c.post("/v1/route", json=request).json()["agencies"]}
        assert "Kelurahan Keputih (baru)" in names


def test_a_bad_directory_keeps_the_service_unready_with_the_reason(
    make_app: AppFactory, routed_dir: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.csv"
    with TestClient(make_app(model=routed_dir, directory=missing)) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "nope.csv" in r.text


def test_the_deployment_scope_is_configured(make_app: AppFactory, routed_dir: Path) -> None:
    request = {"text": TEXT_LAMPU, "top_k": 5}
    with TestClient(make_app(model=routed_dir, scope="Kota Semarang")) as c:
        out = c.post("/v1/route", json=request).json()
        assert {a["label"] for a in out["agencies"]} <= {"Dinas Perhubungan Kota Semarang"}
        assert out["heads"]["agency"]["region"]["source"] == "scope"
        assert c.get("/v1/model").json()["routing"]["scope"][0]["code"] == "33.74"
    with TestClient(make_app(model=routed_dir, scope="Atlantis")) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "ADUAN_SCOPE" in r.text
