"""Contract tests of the HTTP API on tiny bundles (TestClient, in process)."""

# Fixtures are imported from tests/serving_fixtures.py; test arguments re-bind them.
# ruff: noqa: F811

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from cli.main import run
from data.load import load_complaints
from tests.fixtures import AGENCIES, TOPICS
from tests.serving_fixtures import (
    FAKE_EMAIL,
    FAKE_NIK,
    FAKE_PHONE,
    TEXT_JALAN,
    TEXT_LAMPU,
    TEXT_PII,
    TEXT_SAMPAH,
    AppFactory,
    build_bundle,
    bundle_dir,  # noqa: F401
    client,  # noqa: F401
    make_app,  # noqa: F401
    other_bundle_dir,  # noqa: F401
)


def test_route_answers_categories_agencies_and_every_head(client: TestClient) -> None:
    r = client.post("/v1/route", json={"id": "A-1", "text": TEXT_LAMPU})
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["X-Request-ID"]
    assert body["id"] == "A-1"
    assert body["model_version"]
    assert [c["label"] for c in body["categories"]] == [
        t["label"] for t in body["heads"]["topic"]["top"]
    ]
    assert {a["label"] for a in body["agencies"]} <= set(AGENCIES)
    assert {c["label"] for c in body["categories"]} <= set(TOPICS)
    assert len(body["categories"]) == 3  # ADUAN_TOP_K default
    assert body["needs_review"] is False and body["review_reasons"] == []
    assert body["duplicates"] == [] and body["registered"] is None
    assert set(body["heads"]) == {"agency", "topic"}
    assert {"queue", "classify", "duplicates", "total"} <= set(body["timing_ms"])


def test_route_matches_the_predict_path(client: TestClient, bundle_dir: Path) -> None:
    from model.bundle import Bundle
    from model.predict import predict

    expected = predict(Bundle.load(bundle_dir), [TEXT_JALAN], top_k=2)[0].to_dict()["heads"]
    body = client.post("/v1/route", json={"text": TEXT_JALAN, "top_k": 2}).json()
    assert body["heads"] == expected
    assert body["id"] is None


def test_top_k_is_capped_at_the_label_count(client: TestClient) -> None:
    body = client.post("/v1/route", json={"text": TEXT_LAMPU, "top_k": 50}).json()
    assert len(body["agencies"]) == len(AGENCIES)
    assert len(body["categories"]) == len(TOPICS)
    one = client.post("/v1/route", json={"text": TEXT_LAMPU, "top_k": 1}).json()
    assert len(one["agencies"]) == 1


def test_registered_complaint_is_found_as_a_duplicate_with_a_redacted_snippet(
    client: TestClient,
) -> None:
    first = client.post(
        "/v1/route",
        json={"id": "A-1", "text": TEXT_PII, "register": True, "created_at": "2024-03-01T08:00:00"},
    ).json()
    assert first["registered"] is True and first["duplicates"] == []
    again = client.post(
        "/v1/route",
        json={"id": "A-1", "text": TEXT_PII, "register": True, "created_at": "2024-03-01T08:00:00"},
    ).json()
    assert again["registered"] is False  # idempotent by id, and never its own duplicate
    assert again["duplicates"] == []
    second = client.post(
        "/v1/route", json={"text": TEXT_PII + " tolong", "created_at": "2024-03-03T10:00:00+07:00"}
    ).json()
    assert second["needs_review"] is True
    assert second["review_reasons"] == ["duplicate_found"]
    [dup] = second["duplicates"]
    assert dup["id"] == "A-1" and dup["score"] >= 0.5 and not dup["exact"]
    assert dup["created_at"] == "2024-03-01T08:00:00"
    assert "[NIK]" in dup["snippet"] and "[TELEPON]" in dup["snippet"]
    assert "[EMAIL]" in dup["snippet"]
    for secret in (FAKE_NIK, FAKE_PHONE, FAKE_EMAIL):
        assert secret not in json.dumps(second)
    unrelated = client.post("/v1/route", json={"text": TEXT_SAMPAH}).json()
    assert unrelated["duplicates"] == []


def test_duplicates_outside_the_time_window_are_not_reported(client: TestClient) -> None:
    client.post(
        "/v1/complaints",
        json={"id": "OLD-1", "text": TEXT_LAMPU, "created_at": "2023-01-01T08:00:00"},
    )
    late = client.post(
        "/v1/route", json={"text": TEXT_LAMPU + " pak", "created_at": "2024-01-01T08:00:00"}
    ).json()
    assert late["duplicates"] == []
    exact = client.post(
        "/v1/route", json={"text": TEXT_LAMPU, "created_at": "2024-01-01T08:00:00"}
    ).json()
    assert [d["id"] for d in exact["duplicates"]] == ["OLD-1"]  # re-submissions: any time
    assert exact["duplicates"][0]["exact"] is True


def test_batch_keeps_order_and_sees_earlier_items_of_the_same_batch(client: TestClient) -> None:
    items = [
        {"id": "B-1", "text": TEXT_LAMPU, "register": True},
        {"id": "B-2", "text": TEXT_JALAN},
        {"id": "B-3", "text": TEXT_LAMPU + " segera", "register": True},
        {"text": TEXT_SAMPAH, "top_k": 1},
    ]
    r = client.post("/v1/route/batch", json={"items": items})
    assert r.status_code == 200, r.text
    out = r.json()["items"]
    assert [o["id"] for o in out] == ["B-1", "B-2", "B-3", None]
    assert [o["registered"] for o in out] == [True, None, True, None]
    assert out[0]["duplicates"] == [] and out[1]["duplicates"] == []
    assert [d["id"] for d in out[2]["duplicates"]] == ["B-1"]
    assert len(out[3]["categories"]) == 1
    assert len({o["model_version"] for o in out}) == 1
    single = client.post("/v1/route", json={"text": TEXT_JALAN}).json()
    assert out[1]["heads"] == single["heads"]  # batching does not change scores


def test_abstaining_heads_flag_review(make_app: AppFactory, other_bundle_dir: Path) -> None:
    with TestClient(make_app(model=other_bundle_dir)) as c:
        body = c.post("/v1/route", json={"text": TEXT_LAMPU}).json()
    assert body["needs_review"] is True
    assert body["review_reasons"] == ["topic_uncertain", "agency_uncertain"]


def test_untrained_and_missing_heads_are_review_reasons(
    make_app: AppFactory, tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    untrained = build_bundle(tiny_encoder_dir, tmp_path / "untrained", trained=False)
    with TestClient(make_app(model=untrained)) as c:
        body = c.post("/v1/route", json={"text": TEXT_LAMPU}).json()
    assert body["review_reasons"] == ["topic_untrained", "agency_untrained"]
    only_topic = build_bundle(
        tiny_encoder_dir, tmp_path / "topic-only", heads={"topic": TOPICS, "urgency": ["a", "b"]}
    )
    with TestClient(make_app(model=only_topic, index=tmp_path / "index2")) as c:
        body = c.post("/v1/route", json={"text": TEXT_LAMPU}).json()
    assert body["agencies"] == [] and body["categories"]
    assert body["review_reasons"] == ["agency_missing"]
    assert set(body["heads"]) == {"topic", "urgency"}


def test_register_is_idempotent_and_delete_removes(client: TestClient) -> None:
    r = client.post("/v1/complaints", json={"id": "C-1", "text": TEXT_JALAN})
    assert r.status_code == 201 and r.json() == {"id": "C-1", "new": True, "index_size": 1}
    r = client.post("/v1/complaints", json={"id": "C-1", "text": TEXT_JALAN})
    assert r.status_code == 200 and r.json()["new"] is False
    found = client.post("/v1/route", json={"text": TEXT_JALAN + " pak"}).json()
    assert [d["id"] for d in found["duplicates"]] == ["C-1"]
    r = client.delete("/v1/complaints/C-1")
    assert r.status_code == 200 and r.json() == {"id": "C-1", "deleted": True, "index_size": 0}
    r = client.delete("/v1/complaints/C-1")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    gone = client.post("/v1/route", json={"text": TEXT_JALAN + " pak"}).json()
    assert gone["duplicates"] == []


def test_registering_a_known_id_again_keeps_its_stored_record(client: TestClient) -> None:
    # a retry without the time or location (or through /v1/route) must not overwrite them
    first = {"id": "C-2", "text": TEXT_JALAN, "created_at": "2024-03-05T08:00:00+07:00",
             "location": {"kelurahan": "Ketintang", "address": "Jl. Ketintang 12"}}  # fmt: skip
    assert client.post("/v1/complaints", json=first).status_code == 201
    again = client.post("/v1/complaints", json={"id": "C-2", "text": TEXT_JALAN + " lagi"})
    assert again.status_code == 200 and again.json()["new"] is False
    routed = client.post("/v1/route", json={"id": "C-2", "text": TEXT_LAMPU, "register": True})
    assert routed.json()["registered"] is False
    found = client.post(
        "/v1/route", json={"text": TEXT_JALAN, "created_at": "2024-03-06T08:00:00+07:00"}
    ).json()["duplicates"]
    assert [(d["id"], d["created_at"]) for d in found] == [("C-2", "2024-03-05T08:00:00+07:00")]
    assert found[0]["exact"] is True  # still the first text


def test_feedback_is_stored_durably_and_exported_for_training(
    client: TestClient, tmp_path: Path
) -> None:
    client.post(
        "/v1/complaints",
        json={
            "id": "F-1",
            "text": TEXT_LAMPU,
            "created_at": "2024-02-01T09:00:00",
            "location": {"kecamatan": "Gayungan", "kelurahan": "Ketintang"},
        },
    )
    r = client.post(
        "/v1/feedback", json={"id": "F-1", "topic": "Penerangan Jalan Umum", "agency": "Dishub"}
    )
    assert r.status_code == 201, r.text
    assert r.json() == {"id": "F-1", "stored": True, "text_source": "index"}
    r = client.post(
        "/v1/feedback",
        json={
            "id": "F-2",
            "text": "  jalan   rusak\ndi depan sekolah ",
            "created_at": "2024-02-02T10:00:00+07:00",
            "agency": "Dinas PU",
            "topic": "Jalan Rusak",
            "duplicate_of": "F-1",
            "labels": {"urgency": "tinggi"},
        },
    )
    assert r.status_code == 201 and r.json()["text_source"] == "request"
    # the operator changes their mind: the latest record per id wins on export
    client.post("/v1/feedback", json={"id": "F-1", "topic": "Jalan Rusak", "agency": "Dinas PU"})

    lines = (tmp_path / "feedback" / "feedback.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    first = json.loads(lines[0])
    assert first["text"] == TEXT_LAMPU and first["kelurahan"] == "Ketintang"
    assert first["created_at"] == "2024-02-01T09:00:00" and first["model_version"]
    second = json.loads(lines[1])
    assert second["text"] == "jalan rusak di depan sekolah" and second["urgency"] == "tinggi"
    assert second["duplicate_of"] == "F-1"

    out = tmp_path / "train.jsonl"
    assert (
        run(["feedback", "export", "--out", str(out), "--feedback-dir", str(tmp_path / "feedback")])
        == 0
    )
    loaded = load_complaints(out, label_columns=["agency", "topic"])
    assert loaded.ids() == ["F-1", "F-2"]
    assert loaded.labels("topic") == ["Jalan Rusak", "Jalan Rusak"]
    assert loaded.labels("agency") == ["Dinas PU", "Dinas PU"]
    assert loaded.created_at()[1] == "2024-02-02T10:00:00+07:00"


def test_feedback_without_any_text_is_a_clear_422(client: TestClient, tmp_path: Path) -> None:
    r = client.post("/v1/feedback", json={"id": "NOPE-1", "topic": "Parkir"})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "no_text" and err["field"] == "text" and "NOPE-1" in err["message"]
    r = client.post("/v1/feedback", json={"id": "X-1", "text": TEXT_LAMPU})
    assert r.status_code == 422 and r.json()["error"]["code"] == "no_labels"
    r = client.post("/v1/feedback", json={"id": "X-1", "text": TEXT_LAMPU, "labels": {"text": "a"}})
    assert r.status_code == 422 and r.json()["error"]["field"] == "labels.text"
    assert not (tmp_path / "feedback" / "feedback.jsonl").exists()


def test_feedback_export_without_feedback_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run(["feedback", "export", "--out", str(tmp_path / "o.jsonl"),
                  "--feedback-dir", str(tmp_path / "none")])  # fmt: skip
    assert status == 2
    assert "no feedback stored yet" in capsys.readouterr().err


def test_model_endpoint_describes_the_bundle(client: TestClient) -> None:
    info = client.get("/v1/model").json()
    assert info["name"] == "tiny" and info["version"]
    assert info["heads"]["agency"]["labels"] == AGENCIES
    assert info["heads"]["topic"]["n_labels"] == len(TOPICS)
    assert info["training_data"]["sha256"] == "0" * 64
    assert info["dev_metrics"]["agency"]["accuracy"] == 0.5
    assert info["refit_with_dev"] is None, "the tiny bundle's final fit had no dev rows"
    assert info["dedup"]["calibrated"] is True and info["dedup"]["threshold"] == 0.5
    assert info["index"]["size"] == 0


def test_health_ready_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    client.post("/v1/route", json={"id": "M-1", "text": TEXT_LAMPU, "register": True})
    client.post("/v1/route", json={"text": ""})
    text = client.get("/metrics").text
    assert 'aduan_http_requests_total{endpoint="/v1/route",method="POST",status="200"} 1.0' in text
    assert 'aduan_http_requests_total{endpoint="/v1/route",method="POST",status="422"} 1.0' in text
    assert 'aduan_http_request_seconds_bucket{endpoint="/v1/route"' in text
    assert 'aduan_predictions_total{head="topic",label=' in text
    assert "aduan_index_complaints 1.0" in text
    assert "aduan_model_batch_size_count 1.0" in text
    assert 'aduan_model_info{name="tiny"' in text


def test_abstentions_are_counted(make_app: AppFactory, other_bundle_dir: Path) -> None:
    with TestClient(make_app(model=other_bundle_dir)) as c:
        c.post("/v1/route", json={"text": TEXT_LAMPU})
        text = c.get("/metrics").text
    assert 'aduan_abstentions_total{head="agency"} 1.0' in text
    assert 'aduan_review_reasons_total{reason="agency_uncertain"} 1.0' in text


def test_not_ready_until_the_model_loads(make_app: AppFactory, tmp_path: Path) -> None:
    with TestClient(make_app(model=tmp_path / "missing")) as c:
        ready = c.get("/readyz")
        assert ready.status_code == 503 and ready.headers["Retry-After"]
        assert ready.json()["status"] == "failed"
        assert "no such bundle directory" in ready.json()["reason"]
        r = c.post("/v1/route", json={"text": TEXT_LAMPU})
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        assert r.headers["Retry-After"]
        assert c.get("/healthz").status_code == 200
        # feedback that needs the index's time or location waits for it (no record
        # stored without them); feedback carrying all of them does not need it
        label = {"id": "K-5", "topic": "Pohon", "text": TEXT_LAMPU}
        r = c.post("/v1/feedback", json=label)
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        full = {
            **label,
            "created_at": "2024-04-01T10:00:00+07:00",
            "location": {"kelurahan": "Mojo"},
        }
        assert c.post("/v1/feedback", json=full).status_code == 201


def test_no_cors_headers_unless_configured(make_app: AppFactory) -> None:
    origin = {"Origin": "https://lapor.example.go.id"}
    with TestClient(make_app()) as c:
        r = c.get("/healthz", headers=origin)
        assert "access-control-allow-origin" not in r.headers
    with TestClient(make_app(cors_origins="https://lapor.example.go.id")) as c:
        r = c.get("/healthz", headers=origin)
        assert r.headers["access-control-allow-origin"] == "https://lapor.example.go.id"
        pre = c.options(
            "/v1/route",
            headers={**origin, "Access-Control-Request-Method": "POST"},
        )
        assert pre.status_code == 200 and pre.headers["X-Request-ID"]


def test_openapi_documents_every_endpoint_with_indonesian_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {"/v1/route", "/v1/route/batch", "/v1/complaints", "/v1/complaints/{complaint_id}",
            "/v1/feedback", "/v1/model", "/v1/admin/reload", "/healthz", "/readyz",
            "/metrics"} <= paths  # fmt: skip
    assert "Lampu PJU" in json.dumps(schema)
    assert client.get("/docs").status_code == 200


def test_settings_come_from_the_environment_and_options_win(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from serving.settings import Settings, settings_table

    monkeypatch.setenv("ADUAN_MAX_BATCH", "5")
    monkeypatch.setenv("ADUAN_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("ADUAN_HOME", str(tmp_path))
    s = Settings()
    assert s.max_batch == 5 and s.cors_list() == ["https://a.example", "https://b.example"]
    assert s.model_path() == tmp_path / "bundles" / "demo"
    assert s.index_path() == tmp_path / "index" / "default"
    assert Settings(max_batch=7).max_batch == 7
    table = settings_table()
    for name in Settings.model_fields:
        assert f"`ADUAN_{name.upper()}`" in table
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert table.strip() in readme, "README's settings table is settings_table()'s output"


def test_bf16_autocast_is_an_option(make_app: AppFactory) -> None:
    with TestClient(make_app()) as c:
        fp32 = c.post("/v1/route", json={"text": TEXT_JALAN, "top_k": 4}).json()
    with TestClient(make_app(bf16=True)) as c:
        bf16 = c.post("/v1/route", json={"text": TEXT_JALAN, "top_k": 4}).json()
    for head in ("agency", "topic"):
        a = {x["label"]: x["score"] for x in fp32["heads"][head]["top"]}
        b = {x["label"]: x["score"] for x in bf16["heads"][head]["top"]}
        assert a.keys() == b.keys()
        assert all(abs(a[k] - b[k]) < 0.02 for k in a)


def test_onnx_runtime_serves_the_same_answers(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADUAN_HOME", str(tmp_path / "home"))  # where the export is cached

    def worker_threads(c: TestClient) -> int:  # torch's thread count on the model worker
        return int(c.portal.call(c.app.state.service.batcher.call, torch.get_num_threads))

    with TestClient(make_app(torch_threads=2)) as c:
        torch_out = c.post("/v1/route", json={"text": TEXT_JALAN, "top_k": 4}).json()
        assert worker_threads(c) == 2  # torch runs the encoder: all the threads
    with TestClient(make_app(runtime="onnx", torch_threads=2)) as c:
        onnx_out = c.post("/v1/route", json={"text": TEXT_JALAN, "top_k": 4}).json()
        assert c.get("/v1/model").json()["encoder"]["runtime"] == "onnx"
        assert worker_threads(c) == 1  # ORT has the two; torch keeps one for the small ops
    assert list((tmp_path / "home" / "onnx").glob("*.onnx"))
    for head in ("agency", "topic"):
        a = [(x["label"], x["score"]) for x in torch_out["heads"][head]["top"]]
        b = [(x["label"], x["score"]) for x in onnx_out["heads"][head]["top"]]
        assert [label for label, _ in a] == [label for label, _ in b]
        assert all(abs(x - y) < 1e-4 for (_, x), (_, y) in zip(a, b, strict=True))


def test_int8_runtime_serves_close_answers_and_says_so(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADUAN_HOME", str(tmp_path / "home"))
    with TestClient(make_app()) as c:
        torch_out = c.post("/v1/route", json={"text": TEXT_JALAN, "top_k": 4}).json()
        assert c.get("/v1/model").json()["encoder"]["runtime"] == "torch"
    with TestClient(make_app(runtime="onnx-int8")) as c:
        int8_out = c.post("/v1/route", json={"text": TEXT_JALAN, "top_k": 4}).json()
        info = c.get("/v1/model").json()
    assert info["encoder"]["runtime"] == "onnx-int8"
    assert info["dedup"]["embedding_id"].endswith("|int8-v2")
    assert list((tmp_path / "home" / "onnx").glob("*-int8-v2.onnx"))
    for head in ("agency", "topic"):
        a = {x["label"]: x["score"] for x in torch_out["heads"][head]["top"]}
        b = {x["label"]: x["score"] for x in int8_out["heads"][head]["top"]}
        shared = a.keys() & b.keys()
        assert shared and all(abs(a[k] - b[k]) < 0.1 for k in shared)
