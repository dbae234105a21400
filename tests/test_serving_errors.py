"""Bad input is always a 4xx with {"error": {"code", "message", "field"?}}; bugs are a bare 500."""

# Fixtures are imported from tests/serving_fixtures.py; test arguments re-bind them.
# ruff: noqa: F811

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.serving_fixtures import (
    FAKE_EMAIL,
    FAKE_NIK,
    FAKE_PHONE,
    TEXT_LAMPU,
    TEXT_PII,
    AppFactory,
    bundle_dir,  # noqa: F401
    make_app,  # noqa: F401
)

MAX_CHARS = 200


@pytest.fixture(scope="module")
def strict_client(tiny_encoder_dir: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One app for the whole module (only bad requests: nothing is written)."""
    from serving.app import create_app
    from serving.settings import Settings
    from tests.serving_fixtures import build_bundle

    root = tmp_path_factory.mktemp("errors")
    model = build_bundle(tiny_encoder_dir, root / "bundle")
    settings = Settings(
        model=model,
        index=root / "index",
        feedback_dir=root / "feedback",
        max_text_chars=MAX_CHARS,
        max_batch=3,
        max_body_bytes=4096,
        torch_threads=1,
    )
    with TestClient(create_app(settings, wait_for_load=True)) as c:
        yield c


def _error(r: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"]
    if field is not None:
        assert err.get("field") == field, err
    assert "Traceback" not in r.text
    assert r.headers["X-Request-ID"]
    return err


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ({"text": ""}, "empty_text", "text"),
        ({"text": "   \n\t  "}, "empty_text", "text"),
        ({"text": "\u200b\u200b"}, "empty_text", "text"),
        ({"text": "x" * (MAX_CHARS + 1)}, "text_too_long", "text"),
        ({"text": "lampu\x00mati"}, "control_characters", "text"),
        ({"text": "lampu\x1bmati"}, "control_characters", "text"),
        ({"text": "lampu\x85mati"}, "control_characters", "text"),
        ({"text": 123}, "validation_error", "text"),
        ({"text": ["lampu"]}, "validation_error", "text"),
        ({"text": None}, "validation_error", "text"),
        ({}, "missing_field", "text"),
        ({"text": "lampu", "colour": "red"}, "unknown_field", "colour"),
        ({"text": "lampu", "location": {"rt": "01"}}, "unknown_field", "location.rt"),
        ({"text": "lampu", "location": "Surabaya"}, "validation_error", "location"),
        ({"text": "lampu", "created_at": "kemarin"}, "invalid_date", "created_at"),
        ({"text": "lampu", "created_at": "2024-13-45T99:00:00"}, "invalid_date", "created_at"),
        ({"text": "lampu", "created_at": "0001-01-01T00:00:00Z"}, "invalid_date", "created_at"),
        ({"text": "lampu", "created_at": 1700000000}, "invalid_date", "created_at"),
        ({"text": "lampu", "top_k": 0}, "validation_error", "top_k"),
        ({"text": "lampu", "top_k": -3}, "validation_error", "top_k"),
        ({"text": "lampu", "top_k": 51}, "validation_error", "top_k"),
        ({"text": "lampu", "top_k": "tiga"}, "validation_error", "top_k"),
        ({"text": "lampu", "top_k": 2.5}, "validation_error", "top_k"),
        ({"text": "lampu", "register": "mungkin"}, "validation_error", "register"),
        ({"text": "lampu", "register": True}, "id_required", None),
        ({"text": "lampu", "id": "a/b"}, "invalid_id", "id"),
        ({"text": "lampu", "id": ""}, "invalid_id", "id"),
        ({"text": "lampu", "id": 12}, "validation_error", "id"),
    ],
)
def test_bad_route_requests(strict_client: TestClient, payload: Any, code: str, field: str) -> None:
    _error(strict_client.post("/v1/route", json=payload), 422, code, field)


def test_tab_newline_and_carriage_return_are_allowed(strict_client: TestClient) -> None:
    r = strict_client.post("/v1/route", json={"text": "lampu\tjalan\r\nmati"})
    assert r.status_code == 200, r.text


def test_body_level_errors(strict_client: TestClient) -> None:
    c = strict_client
    headers = {"Content-Type": "application/json"}
    _error(c.post("/v1/route", content=b'{"text": "lampu', headers=headers), 400, "invalid_json")
    _error(c.post("/v1/route", content=b"lampu mati", headers=headers), 400, "invalid_json")
    _error(
        c.post("/v1/route", content=b'{"text": "lampu \xff\xfe mati"}', headers=headers),
        400,
        "invalid_utf8",
    )
    _error(
        c.post("/v1/route", content=b"text=lampu", headers={"Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    lone_surrogate = b'{"text": "lampu \\ud800 mati"}'
    _error(c.post("/v1/route", content=lone_surrogate, headers=headers), 422, "invalid_unicode")
    in_location = b'{"text": "lampu mati", "location": {"city": "\\ud800"}}'
    _error(c.post("/v1/route", content=in_location, headers=headers), 422, "invalid_unicode",
           "location.city")  # fmt: skip
    # no body at all: said so, not "a field is required"
    err = _error(c.post("/v1/route", headers=headers), 422, "missing_field")
    assert "body" in err["message"]
    # a body with many errors gets the first MAX_DETAILS listed, and the rest counted
    many = {"text": "lampu mati", **{f"x{i}": 1 for i in range(30)}}
    err = _error(c.post("/v1/route", json=many), 422, "unknown_field")
    assert len(err["details"]) == 20 and err["details_omitted"] == 10
    _error(c.post("/v1/route", json=["lampu"]), 422, "validation_error")
    _error(c.post("/v1/route", json="lampu"), 422, "validation_error")
    _error(c.post("/v1/route", content=b"", headers=headers), 422, "missing_field")
    big = {"text": "lampu " * 1000}
    _error(c.post("/v1/route", json=big), 413, "payload_too_large")


def test_oversized_body_without_content_length_is_refused(strict_client: TestClient) -> None:
    def chunks() -> Any:
        for _ in range(10):
            yield b"x" * 1024

    r = strict_client.post(
        "/v1/route", content=chunks(), headers={"Content-Type": "application/json"}
    )
    _error(r, 413, "payload_too_large")


def test_batch_limits(strict_client: TestClient) -> None:
    c = strict_client
    _error(c.post("/v1/route/batch", json={"items": []}), 422, "batch_empty", "items")
    four = {"items": [{"text": "lampu mati"}] * 4}
    _error(c.post("/v1/route/batch", json=four), 422, "batch_too_large", "items")
    bad = {"items": [{"text": "lampu"}, {"text": " "}]}
    _error(c.post("/v1/route/batch", json=bad), 422, "empty_text", "items.1.text")
    long = {"items": [{"text": "lampu"}, {"text": "y" * (MAX_CHARS + 1)}]}
    _error(c.post("/v1/route/batch", json=long), 422, "text_too_long", "items.1.text")
    _error(c.post("/v1/route/batch", json={"items": "lampu"}), 422, "validation_error", "items")
    _error(c.post("/v1/route/batch", json={"items": [], "x": 1}), 422, "batch_empty")


def test_other_endpoints_reject_bad_input(strict_client: TestClient) -> None:
    c = strict_client
    _error(c.post("/v1/complaints", json={"text": "lampu"}), 422, "missing_field", "id")
    _error(c.post("/v1/complaints", json={"id": "a", "text": ""}), 422, "empty_text", "text")
    _error(c.delete("/v1/complaints/a%20b"), 422, "invalid_id")
    _error(c.post("/v1/feedback", json={"id": "a", "topic": ""}), 422, "validation_error")
    _error(c.post("/v1/feedback", json={"id": "a", "topic": "x\x00"}), 422, "control_characters")
    _error(c.post("/v1/admin/reload", json={"modle": "x"}), 422, "unknown_field", "modle")
    # a forged log line, a home directory that does not exist
    forged = {"model": "/tmp/x\n2026-11-30 21:00:00,000 ERROR aduan.serving forged"}
    _error(c.post("/v1/admin/reload", json=forged), 422, "control_characters", "model")
    _error(c.post("/v1/admin/reload", json={"model": "~no-such-user-aduan/x"}), 422,
           "reload_failed")  # fmt: skip
    # feedback labels: blank, a head name that is no name, the complaint itself as duplicate
    _error(c.post("/v1/feedback", json={"id": "a", "topic": "   "}), 422, "empty_label", "topic")
    bad_head = {"id": "a", "labels": {"bad name": "x"}}
    err = _error(c.post("/v1/feedback", json=bad_head), 422, "invalid_label_name")
    assert "head name" in err["message"]
    err = _error(c.post("/v1/feedback", json={"id": "a", "duplicate_of": "a"}), 422,
                 "validation_error")  # fmt: skip
    assert "itself" in err["message"]
    _error(c.get("/v1/nothing"), 404, "not_found")
    _error(c.put("/v1/route", json={"text": "x"}), 405, "method_not_allowed")


def test_an_unexpected_error_is_a_bare_500_logged_without_text(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()

    def explode(_jobs: Any) -> Any:
        raise RuntimeError(f"boom while handling {TEXT_PII}")

    with TestClient(app, raise_server_exceptions=False) as c:
        app.state.service.batcher.process = explode
        with caplog.at_level(logging.INFO):
            r = c.post("/v1/route", json={"text": TEXT_PII}, headers={"X-Request-ID": "req-500"})
    err = _error(r, 500, "internal_error")
    assert "X-Request-ID" in err["message"] and r.headers["X-Request-ID"] == "req-500"
    assert "boom" not in r.text
    logged = "\n".join(
        f"{rec.getMessage()} {getattr(rec, 'request_id', '')}" for rec in caplog.records
    )
    assert "RuntimeError" in logged and "req-500" in logged
    for secret in (FAKE_NIK, FAKE_PHONE, FAKE_EMAIL):
        assert secret not in logged
    assert TEXT_LAMPU not in logged
