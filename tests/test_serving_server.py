"""The real server: `aduan serve` as a subprocess, called over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving_fixtures import FAKE_NIK, FAKE_PHONE, TEXT_LAMPU, TEXT_PII, build_bundle

ADUAN = Path(sys.executable).parent / "aduan"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADUAN_")}
    env.update(ADUAN_HOME=str(home), ADUAN_LOG_LEVEL="INFO", ADUAN_TORCH_THREADS="1")
    return env


@pytest.fixture
def server(tiny_encoder_dir: Path, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    model = build_bundle(tiny_encoder_dir, tmp_path / "bundle")
    port = _free_port()
    proc = subprocess.Popen(
        [str(ADUAN), "serve", "--model", str(model), "--port", str(port),
         "--index", str(tmp_path / "index")],
        env=_env(tmp_path / "home"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"server exited with {proc.returncode}: {out[-2000:]}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("server not ready within 90 s")
            time.sleep(0.2)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_real_server_over_http(server: tuple[str, subprocess.Popen[str]]) -> None:
    base, proc = server
    with httpx.Client(base_url=base, timeout=30) as http:
        r = http.post(
            "/v1/route",
            json={"id": "H-1", "text": TEXT_PII, "register": True},
            headers={"X-Request-ID": "http-test-1"},
        )
        assert r.status_code == 200, r.text
        assert r.headers["x-request-id"] == "http-test-1"
        assert r.json()["registered"] is True
        dup = http.post("/v1/route", json={"text": TEXT_PII + " lagi"}).json()
        assert [d["id"] for d in dup["duplicates"]] == ["H-1"]
        assert "[NIK]" in dup["duplicates"][0]["snippet"]
        bad = http.post("/v1/route", content=b"\xff", headers={"Content-Type": "application/json"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_utf8"
        assert http.get("/openapi.json").json()["info"]["title"] == "aduan"
        proc.send_signal(signal.SIGHUP)  # reloads the served folder
        deadline = time.monotonic() + 30
        while 'aduan_model_reloads_total{result="ok"} 1.0' not in http.get("/metrics").text:
            assert time.monotonic() < deadline, "SIGHUP did not reload"
            time.sleep(0.2)
        assert http.post("/v1/route", json={"text": TEXT_LAMPU}).status_code == 200
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says why
    assert proc.returncode in (0, -signal.SIGTERM), out[-2000:]
    assert "Application shutdown complete" in out
    assert "POST /v1/route 400" in out  # requests refused by the body guard are logged too
    assert "[http-test-1] POST /v1/route 200" in out
    assert "reloaded (SIGHUP)" in out
    assert FAKE_NIK not in out and FAKE_PHONE not in out and "lampu jalan" not in out


def test_serve_without_a_model_is_one_clear_line(tmp_path: Path) -> None:
    r = subprocess.run(
        [str(ADUAN), "serve", "--model", str(tmp_path / "none"), "--port", str(_free_port())],
        env=_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "aduan bundle demo" in lines[0] and "make serve" in lines[0]
    bad = subprocess.run(
        [str(ADUAN), "serve", "--model", str(tmp_path)],
        env={**_env(tmp_path / "home"), "ADUAN_API_KEYS": "not-a-hash"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "ADUAN_API_KEYS" in bad.stderr
