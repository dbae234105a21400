"""API keys and scopes, request ids, and logs free of personal data."""

# Fixtures are imported from tests/serving_fixtures.py; test arguments re-bind them.
# ruff: noqa: F811

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from cli.main import run
from serving.logs import accept_request_id
from serving.security import KeyChecker, KeyConfigError, hash_key, key_entry, parse_keys
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

ROUTE_KEY = "kunci-rahasia-route"
ADMIN_KEY = "kunci-rahasia-admin"
FEEDBACK_KEY = "kunci-rahasia-feedback"


def _keys() -> str:
    return "; ".join(
        [
            key_entry(ROUTE_KEY, "route"),
            key_entry(ADMIN_KEY, "*"),
            f"sha256:{hash_key(FEEDBACK_KEY)}:feedback",
        ]
    )


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_and_scopes(make_app: AppFactory) -> None:
    with TestClient(make_app(api_keys=_keys())) as c:
        body = {"text": TEXT_LAMPU}
        r = c.post("/v1/route", json=body)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["WWW-Authenticate"] == "Bearer"
        assert c.post("/v1/route", json=body, headers=_bearer("salah")).status_code == 401
        assert (
            c.post("/v1/route", json=body, headers={"Authorization": ROUTE_KEY}).status_code == 401
        )
        assert c.post("/v1/route", json=body, headers=_bearer(ROUTE_KEY)).status_code == 200
        assert c.post("/v1/route", json=body, headers=_bearer(ADMIN_KEY)).status_code == 200
        r = c.post("/v1/route", json=body, headers=_bearer(FEEDBACK_KEY))
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert c.get("/v1/model", headers=_bearer(ROUTE_KEY)).status_code == 200
        r = c.post("/v1/admin/reload", headers=_bearer(ROUTE_KEY))
        assert r.status_code == 403 and "admin" in r.json()["error"]["message"]
        assert c.post("/v1/admin/reload", headers=_bearer(ADMIN_KEY)).status_code == 200
        fb = {"id": "K-1", "text": TEXT_LAMPU, "topic": "Parkir"}
        assert c.post("/v1/feedback", json=fb, headers=_bearer(ROUTE_KEY)).status_code == 403
        assert c.post("/v1/feedback", json=fb, headers=_bearer(FEEDBACK_KEY)).status_code == 201
        for open_path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            assert c.get(open_path).status_code == 200, open_path
        # auth is checked before the body: no key, bad body -> 401, not 422, 400 or 415
        assert c.post("/v1/route", json={"text": ""}).status_code == 401
        json_header = {"Content-Type": "application/json"}
        assert c.post("/v1/route", content=b"{not json", headers=json_header).status_code == 401
        r = c.post("/v1/feedback", content=b"x", headers={"Content-Type": "text/plain"})
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        assert c.get("/v1/model", headers=_bearer(FEEDBACK_KEY)).status_code == 403
        assert "403" in c.get("/openapi.json").json()["paths"]["/v1/model"]["get"]["responses"]


def test_key_config_parsing() -> None:
    keys = parse_keys(f"sha256:{hash_key('k')}\n sha256:{hash_key('a')}:admin,route")
    checker = KeyChecker(keys)
    assert checker.scopes("Bearer k") == frozenset({"route", "feedback"})
    assert checker.scopes("bearer a") == frozenset({"admin", "route"})
    assert checker.scopes("Basic k") is None and checker.scopes(None) is None
    assert not KeyChecker(parse_keys("")).enabled
    with pytest.raises(KeyConfigError, match="entry 1"):
        parse_keys("plaintext-key")
    with pytest.raises(KeyConfigError, match="unknown scope"):
        parse_keys(f"sha256:{hash_key('k')}:root")


def test_api_key_commands(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(["api-key", "new", "--scopes", "route,admin"]) == 0
    out = capsys.readouterr().out.splitlines()
    key = out[0].split()[-1]
    entry = out[1].split()[-1]
    assert entry == key_entry(key, "route,admin")
    assert KeyChecker(parse_keys(entry)).scopes(f"Bearer {key}") == frozenset({"route", "admin"})
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("rahasia\n"))
    assert run(["api-key", "hash", "--scopes", "*"]) == 0
    assert capsys.readouterr().out.strip() == f"sha256:{hash_key('rahasia')}:*"
    assert run(["api-key", "new", "--scopes", "root"]) == 2
    # "route, admin" (a space, as people type it) gives an entry the server accepts
    assert run(["api-key", "new", "--scopes", "route, admin"]) == 0
    entry = capsys.readouterr().out.splitlines()[1].split()[-1]
    assert entry.endswith(":route,admin") and len(parse_keys(entry)) == 1
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"\xff\xfe\n")))
    assert run(["api-key", "hash"]) == 2
    assert "not valid UTF-8" in capsys.readouterr().err


def test_request_ids() -> None:
    assert accept_request_id("abc-123.DEF:9_x") == "abc-123.DEF:9_x"
    for bad in (None, "", "a b", "x" * 200, "<script>", FAKE_NIK, "081234567890"):
        new = accept_request_id(bad)
        assert new != bad and len(new) == 32


def test_new_request_ids_survive_log_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    """A generated id whose hex digits read like a phone number is drawn again, so the
    id in the logs (which are redacted) is the one the client got back."""
    import uuid

    from data.text import redact

    drawn = iter(["14930bded7914d0bb4b2c081234567890", "3f2a9c0d5e6b4a7c8d9e0f1a2b3c4d5e"])
    monkeypatch.setattr(uuid, "uuid4", lambda: type("U", (), {"hex": next(drawn)})())
    new = accept_request_id(None)
    assert new == "3f2a9c0d5e6b4a7c8d9e0f1a2b3c4d5e" == redact(new)


def test_request_id_in_every_response_and_log_line(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(make_app()) as c, caplog.at_level(logging.INFO, logger="aduan"):
        r = c.post("/v1/route", json={"text": TEXT_LAMPU}, headers={"X-Request-ID": "trace-42"})
        assert r.headers["X-Request-ID"] == "trace-42"
        r = c.post("/v1/route", json={"text": ""}, headers={"X-Request-ID": FAKE_NIK})
        generated = r.headers["X-Request-ID"]
        assert generated != FAKE_NIK and len(generated) == 32
        assert c.get("/nowhere").headers["X-Request-ID"]
    access = [rec for rec in caplog.records if rec.name == "aduan.serving.access"]
    assert [rec.request_id for rec in access][:2] == ["trace-42", generated]  # type: ignore[attr-defined]
    assert "POST /v1/route 200" in access[0].getMessage()


def test_logs_never_hold_personal_data_or_text(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        with TestClient(make_app()) as c:
            c.post("/v1/route", json={"id": "P-1", "text": TEXT_PII, "register": True})
            c.post("/v1/route", json={"text": TEXT_PII + " lagi"})
            c.post("/v1/route/batch", json={"items": [{"text": TEXT_PII}, {"text": TEXT_PII}]})
            c.post("/v1/route", json={"text": TEXT_PII, "created_at": "bukan tanggal"})
            c.post("/v1/route", json={"text": TEXT_PII + "\x00"})
            c.post("/v1/feedback", json={"id": "P-1", "topic": "Parkir", "agency": FAKE_EMAIL})
            c.post("/v1/complaints", json={"id": "P-2", "text": TEXT_PII})
            c.delete("/v1/complaints/P-2")
            c.post("/v1/admin/reload", json={"model": f"/tmp/{FAKE_PHONE}"})
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "feedback stored for complaint P-1" in logged
    for secret in (FAKE_NIK, FAKE_PHONE, FAKE_EMAIL, "3578", "0812", "@example"):
        assert secret not in logged, secret
    assert "lampu jalan mati" not in logged and "saya budi" not in logged
