"""The `aduan` command line, run in-process through `cli.main.run`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import model.encoder
from cli.main import run
from model.bundle import Bundle


@pytest.fixture
def bundle_dir(tiny_bundle: Bundle, tmp_path: Path) -> Path:
    return tiny_bundle.save(tmp_path / "bundle")


@pytest.fixture
def complaints(tmp_path: Path) -> Path:
    rows = [
        {"id": "a1", "text": "Lampu PJU di jalan kami mati sdh 2 minggu", "agency": "Dishub"},
        {"id": "a2", "text": "   ", "agency": "Dishub"},
        {"id": "a3", "text": "KTP blm jadi, hub 0812-3456-7890", "agency": "Dispendukcapil"},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def test_cli_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("train", "predict", "encoder", "bundle", "data"):
        assert command in out


@pytest.mark.parametrize(
    "command",
    [
        ["train"],
        ["predict"],
        ["encoder", "prepare"],
        ["encoder", "verify"],
        ["bundle", "init"],
        ["bundle", "info"],
        ["bundle", "verify"],
        ["bundle", "demo"],
        ["bundle", "exemplars"],
        ["bundle", "lexical"],
        ["data", "list"],
        ["data", "info"],
    ],
)
def test_cli_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture) -> None:
    assert run([*command, "--help"]) == 0
    assert "Usage: aduan " + " ".join(command) in capsys.readouterr().out


@pytest.mark.parametrize("command", [["serve"], ["dedup", "score"], ["index", "stats"]])
def test_cli_as_python_module_has_the_command_groups(command: list[str]) -> None:
    """`python -m cli.main` (what bench/accuracy.py runs) knows the commands that live
    in their own modules too, as the `aduan` script does."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", *command, "--help"],
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-500:]
    assert "Usage: aduan " + " ".join(command) in proc.stdout


def test_cli_predict_writes_one_line_per_row(
    bundle_dir: Path, complaints: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pred.jsonl"
    code = run(
        ["predict", "--model", str(bundle_dir), "--data", str(complaints), "--out", str(out)]
    )
    assert code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["a1", "a3"]
    heads = lines[0]["heads"]
    assert set(heads) == {"agency", "topic"}
    assert len(heads["agency"]["top"]) == 3 and heads["agency"]["abstain"] is True
    assert set(heads["agency"]["top"][0]) == {"label", "score"}
    assert "skipped 1 row(s) with empty text" in capsys.readouterr().err


def test_cli_predict_top_k(bundle_dir: Path, complaints: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    argv = ["predict", "--model", str(bundle_dir), "--data", str(complaints), "--out", str(out)]
    assert run([*argv, "--top-k", "1"]) == 0
    assert all(
        len(h["top"]) == 1 for h in json.loads(out.read_text().splitlines()[0])["heads"].values()
    )
    assert run([*argv, "--top-k", "0"]) == 2


def test_cli_bad_input_is_one_line_naming_the_file(
    bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "text": "ok"}\n{"id": "2", "text": "NIK 3578011234567890\n')
    out = tmp_path / "never.jsonl"
    code = run(["predict", "--model", str(bundle_dir), "--data", str(bad), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "bad.jsonl" in err and "line 2" in err
    assert "Traceback" not in err and "3578011234567890" not in err
    assert not out.exists(), "no partial output on failure"


def test_cli_refuses_outputs_that_would_overwrite_an_input_or_cannot_be_written(
    bundle_dir: Path, complaints: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = complaints.read_bytes()
    argv = ["predict", "--model", str(bundle_dir), "--data", str(complaints), "--out"]
    assert run([*argv, str(complaints)]) == 2
    assert "also an input" in capsys.readouterr().err
    assert complaints.read_bytes() == before
    assert run([*argv, str(tmp_path)]) == 2  # a folder
    assert "is a folder" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert run([*argv, str(blocker / "sub" / "out.jsonl")]) == 2  # under a regular file
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "Traceback" not in err
    ev = ["evaluate", "--model", str(bundle_dir), "--data", str(complaints), "--out", str(blocker)]
    assert run(ev) == 2 and "evaluate writes a folder" in capsys.readouterr().err
    unlabelled = tmp_path / "unlabelled.jsonl"
    unlabelled.write_text('{"id": "a", "text": "jalan rusak", "agency": null, "topic": ""}\n')
    ev = ["evaluate", "--model", str(bundle_dir), "--data", str(unlabelled), "--out",
          str(tmp_path / "ev")]  # fmt: skip
    assert run(ev) == 2 and "no row has a label" in capsys.readouterr().err
    # bad training settings: one line, before any work
    assert run(["train", "--data", str(complaints), "--out", str(tmp_path / "b"),
                "--batch-size", "0"]) == 2  # fmt: skip
    assert "batch_size must be a whole number >= 1" in capsys.readouterr().err
    assert run([*argv, str(tmp_path / "o.jsonl"), "--threads", "-1"]) == 2


def test_cli_os_errors_are_one_line_without_personal_data(
    complaints: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    def denied(*_: object) -> int:
        raise PermissionError(13, "Permission denied", "/srv/out/NIK 3578011234567890.jsonl")

    monkeypatch.setattr("serving.feedback.export", denied)
    monkeypatch.setenv("ADUAN_FEEDBACK_DIR", str(tmp_path))
    assert run(["feedback", "export", "--out", str(tmp_path / "f.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "Permission denied" in err and "Traceback" not in err
    assert "3578011234567890" not in err


def test_cli_encoder_verify_bad_inputs_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    latin1 = tmp_path / "ref.jsonl"
    latin1.write_bytes(b'{"text": "caf\xe9"}\n')
    assert run(["encoder", "verify", "--reference", str(latin1), "--encoder", str(tmp_path)]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    ref = tmp_path / "ok.jsonl"
    ref.write_text('{"text": "a", "input": "passage: a", "token_ids": [0, 2]}\n')
    for encoder in (tmp_path / "absent", tmp_path, ref):
        assert run(["encoder", "verify", "--reference", str(ref), "--encoder", str(encoder)]) == 2
        err = capsys.readouterr().err
        assert "not an encoder folder" in err and "Traceback" not in err


def test_cli_damaged_bundle_is_a_clear_error(
    bundle_dir: Path, complaints: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (bundle_dir / "bundle.json").write_text("{")
    argv = ["predict", "--model", str(bundle_dir), "--data", str(complaints), "--out", "x"]
    assert run(argv) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_cli_bundle_init_info_and_verify(
    tiny_encoder_dir: Path,
    complaints: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(model.encoder, "ensure_encoder", lambda: tiny_encoder_dir)
    out = tmp_path / "untrained"
    init = ["bundle", "init", "--out", str(out), "--data", str(complaints), "--label", "agency"]
    assert run(init) == 0
    assert Bundle.load(out).head_specs["agency"].labels == ["Dishub", "Dispendukcapil"]
    capsys.readouterr()
    assert run(["bundle", "info", "--model", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["untrained_heads"] == ["agency"] and "files" not in info
    assert run(["bundle", "verify", "--model", str(out)]) == 0
    assert run(init) == 2, "an existing bundle is not overwritten without --overwrite"
    # a hand edit of bundle.json (two labels swapped) fails verify, though sizes still match
    meta_file = out / "bundle.json"
    meta = json.loads(meta_file.read_text())
    meta["heads"]["agency"]["labels"].reverse()
    meta_file.write_text(json.dumps(meta, indent=2))
    capsys.readouterr()
    assert run(["bundle", "verify", "--model", str(out)]) == 2
    assert "bundle.json was changed after the bundle was saved" in capsys.readouterr().err


def test_cli_predict_runs_the_serving_runtimes(
    bundle_dir: Path,
    complaints: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ADUAN_HOME", str(tmp_path / "home"))  # where the ONNX files go
    argv = ["predict", "--model", str(bundle_dir), "--data", str(complaints), "--top-k", "4"]
    tops = {}
    for runtime in ("torch", "onnx", "onnx-int8"):
        out = tmp_path / f"{runtime}.jsonl"
        assert run([*argv, "--out", str(out), "--runtime", runtime]) == 0
        tops[runtime] = [json.loads(line)["heads"]["topic"]["top"] for line in out.open()]
    assert sorted(
        p.name.endswith("-int8-v2.onnx") for p in (tmp_path / "home" / "onnx").iterdir()
    ) == [
        False,
        True,
    ]
    for fp32, onnx, int8 in zip(tops["torch"], tops["onnx"], tops["onnx-int8"], strict=True):
        assert [x["label"] for x in onnx] == [x["label"] for x in fp32]
        assert {x["label"] for x in int8} == {x["label"] for x in fp32}  # every label, close scores
        scores = {x["label"]: x["score"] for x in fp32}
        assert all(abs(x["score"] - scores[x["label"]]) < 0.1 for x in int8)
    capsys.readouterr()
    assert run([*argv, "--out", str(tmp_path / "x.jsonl"), "--runtime", "gpu"]) == 2
    assert "--runtime must be one of torch, onnx, onnx-int8" in capsys.readouterr().err
