"""Reloading the model while serving; re-embedding the index when the embedding changes."""

# Fixtures are imported from tests/serving_fixtures.py; test arguments re-bind them.
# ruff: noqa: F811

from __future__ import annotations

import gc
import shutil
import threading
import weakref
from pathlib import Path

from fastapi.testclient import TestClient

from model.bundle import Bundle
from model.dedup import DuplicateFinder, make_complaint
from model.index import open_index
from serving import reindex
from tests.serving_fixtures import (
    TEXT_JALAN,
    TEXT_LAMPU,
    TEXT_SAMPAH,
    AppFactory,
    build_bundle,
    bundle_dir,  # noqa: F401
    make_app,  # noqa: F401
    other_bundle_dir,  # noqa: F401
)


def _version(path: Path) -> str:
    return Bundle.load(path).version


def test_reload_under_concurrent_requests_drops_nothing(
    make_app: AppFactory, bundle_dir: Path, other_bundle_dir: Path
) -> None:
    v1, v2 = _version(bundle_dir), _version(other_bundle_dir)
    results: list[tuple[int, str | None]] = []
    stop = threading.Event()

    with TestClient(make_app()) as c:

        def hammer(worker: int) -> None:
            i = 0
            while not stop.is_set():
                r = c.post(
                    "/v1/route",
                    json={"id": f"R-{worker}-{i}", "text": TEXT_LAMPU, "register": i % 2 == 0},
                )
                results.append((r.status_code, r.json().get("model_version")))
                i += 1

        threads = [threading.Thread(target=hammer, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        try:
            reloads = []
            for target in (other_bundle_dir, bundle_dir, other_bundle_dir):
                r = c.post("/v1/admin/reload", json={"model": str(target)})
                reloads.append(r)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert [r.status_code for r in reloads] == [200, 200, 200]
        assert [r.json()["model_version"] for r in reloads] == [v2, v1, v2]
        assert all(r.json()["reindexed"] is None for r in reloads)  # same embedding: index kept
        after = c.post("/v1/route", json={"text": TEXT_JALAN}).json()
        assert after["model_version"] == v2
        assert c.get("/v1/model").json()["name"] == "other"
        metrics = c.get("/metrics").text
    assert len(results) > 10
    assert {code for code, _ in results} == {200}, "a request failed during a reload"
    assert {v for _, v in results} <= {v1, v2}
    assert 'aduan_model_reloads_total{result="ok"} 3.0' in metrics


def test_failed_reload_keeps_the_old_model(
    make_app: AppFactory, bundle_dir: Path, tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(bundle_dir, damaged)
    heads = damaged / "heads.safetensors"
    heads.write_bytes(heads.read_bytes()[:-10])
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "bundle.json").write_text("{not json", encoding="utf-8")
    with TestClient(make_app()) as c:
        version = c.get("/v1/model").json()["version"]
        for target, words in [
            (tmp_path / "missing", "no such bundle directory"),
            (damaged, "wrong size"),
            (garbage, "not valid JSON"),
        ]:
            r = c.post("/v1/admin/reload", json={"model": str(target)})
            assert r.status_code == 422, r.text
            err = r.json()["error"]
            assert err["code"] == "reload_failed"
            assert words in err["message"] and version in err["message"]
            assert "Traceback" not in r.text
        ok = c.post("/v1/route", json={"text": TEXT_LAMPU})
        assert ok.status_code == 200 and ok.json()["model_version"] == version
        assert 'aduan_model_reloads_total{result="failed"} 3.0' in c.get("/metrics").text


def test_the_loaded_model_is_frozen_and_a_reload_lets_the_old_one_go(
    make_app: AppFactory, other_bundle_dir: Path
) -> None:
    app = make_app()
    with TestClient(app) as c:
        assert gc.get_freeze_count() > 0  # hidden from the cyclic collector's full passes
        served = app.state.service.engine.served
        old = weakref.ref(served.bundle)
        del served
        r = c.post("/v1/admin/reload", json={"model": str(other_bundle_dir)})
        assert r.status_code == 200, r.text
        assert old() is None  # unfrozen and collected, not kept frozen


def test_a_second_concurrent_reload_is_refused(make_app: AppFactory) -> None:
    app = make_app()
    with TestClient(app) as c:
        app.state.service.reloading = True
        r = c.post("/v1/admin/reload")
        assert r.status_code == 409 and r.json()["error"]["code"] == "reload_in_progress"
        app.state.service.reloading = False
        assert c.post("/v1/admin/reload").status_code == 200


def test_reload_to_another_embedding_reembeds_the_index(
    make_app: AppFactory, tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    tuned = build_bundle(tiny_encoder_dir, tmp_path / "tuned", seed=3, fine_tuned=True)
    with TestClient(make_app()) as c:
        for i, text in enumerate((TEXT_LAMPU, TEXT_JALAN, TEXT_SAMPAH)):
            c.post("/v1/complaints", json={"id": f"E-{i}", "text": text})
        before = c.get("/v1/model").json()["dedup"]["embedding_id"]
        r = c.post("/v1/admin/reload", json={"model": str(tuned)})
        assert r.status_code == 200, r.text
        assert r.json()["reindexed"] == 3
        info = c.get("/v1/model").json()
        assert info["dedup"]["embedding_id"] != before and info["index"]["size"] == 3
        found = c.post("/v1/route", json={"text": TEXT_JALAN + " pak"}).json()
        assert [d["id"] for d in found["duplicates"]] == ["E-1"]
        assert c.post("/v1/complaints", json={"id": "E-9", "text": TEXT_LAMPU}).status_code == 201
    assert (tmp_path / "index").is_dir() and (tmp_path / "index.previous").is_dir()
    assert not list(tmp_path.glob("index.reembed-*"))


def test_startup_with_an_index_of_another_embedding_reembeds_it(
    make_app: AppFactory, bundle_dir: Path, tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    finder = DuplicateFinder(Bundle.load(bundle_dir))
    old = open_index(tmp_path / "index", dim=finder.dim, embedding_id="some other model")
    texts = [TEXT_LAMPU, TEXT_JALAN]
    old.add(
        [
            make_complaint(t, id=f"S-{i}", created_at="2024-05-01T10:00:00")
            for i, t in enumerate(texts)
        ],
        finder.embed(texts),
    )
    old.close()
    app = make_app()
    with TestClient(app) as c:
        assert c.get("/readyz").json() == {
            "status": "ready",
            "reason": None,
            "model_version": _version(bundle_dir),
            "index_size": 2,
        }
        query = {"text": TEXT_LAMPU + " pak", "created_at": "2024-05-02T10:00:00"}
        found = c.post("/v1/route", json=query).json()
        assert [d["id"] for d in found["duplicates"]] == ["S-0"]


def test_replay_applies_writes_made_during_a_reembedding(
    bundle_dir: Path, tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    finder = DuplicateFinder(Bundle.load(bundle_dir))
    source = open_index(tmp_path / "a", dim=finder.dim, embedding_id=finder.embedding_id)
    target = open_index(tmp_path / "b", dim=finder.dim, embedding_id="new")
    cs = [make_complaint(t, id=f"J-{i}") for i, t in enumerate([TEXT_LAMPU, TEXT_JALAN])]
    source.add(cs, finder.embed([c.text for c in cs]))
    assert reindex.reembed(source, target, finder) == 2
    assert reindex.reembed(source, target, finder) == 0  # resumable: nothing left to do
    # meanwhile: J-0 removed, J-2 added
    source.remove(["J-0"])
    late = make_complaint(TEXT_SAMPAH, id="J-2")
    source.add([late], finder.embed([late.text]))
    assert reindex.replay(source, target, finder, {"J-0", "J-2"}) == 2
    assert set(target.get(["J-0", "J-1", "J-2"])) == {"J-1", "J-2"}
    source.close()
    target.close()


def test_identity_of_an_index_folder(tmp_path: Path) -> None:
    from model.index import read_index_identity

    assert read_index_identity(tmp_path / "none") is None
    idx = open_index(tmp_path / "x", dim=4, embedding_id="emb-1")
    assert read_index_identity(tmp_path / "x") == ("emb-1", 4)  # readable while open
    idx.close()
    assert read_index_identity(tmp_path / "x") == ("emb-1", 4)
