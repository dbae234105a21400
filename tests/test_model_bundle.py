"""Bundle save/load: exact round trip, clear refusals of damaged or unknown bundles."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import model.bundle
import model.files
from model.bundle import (
    BUNDLE_FILE,
    HEADS_FILE,
    SCHEMA_VERSION,
    Bundle,
    BundleError,
    check_output,
    read_bundle_json,
)
from model.predict import predict
from training.demo import build_demo_bundle, check_demo_output

TEXTS = ["lampu jalan mati di kelurahan", "mohon bantuan sosial pak", "parkir liar di jalan"]


def test_bundle_roundtrip_is_exact(tiny_bundle: Bundle, tmp_path: Path) -> None:
    agency = tiny_bundle.heads.layers["agency"]
    assert isinstance(agency, torch.nn.Linear)
    with torch.no_grad():
        agency.bias.copy_(torch.tensor([0.3, -0.1, 0.2]))
    tiny_bundle.head_specs["agency"].temperature = 1.7
    tiny_bundle.head_specs["agency"].abstain_threshold = 0.4
    tiny_bundle.head_specs["agency"].trained = True
    tiny_bundle.metrics = {"dev": {"agency": {"accuracy": 0.5}}}
    before = [p.to_dict() for p in predict(tiny_bundle, TEXTS)]
    tiny_bundle.save(tmp_path / "b")
    loaded = Bundle.load(tmp_path / "b", verify_hashes=True)
    assert [p.to_dict() for p in predict(loaded, TEXTS)] == before
    assert loaded.to_json() == tiny_bundle.to_json()
    assert loaded.version == tiny_bundle.version and len(loaded.version) == 12
    for name, tensor in tiny_bundle.heads.state_for_save().items():
        assert torch.equal(loaded.heads.state_for_save()[name], tensor)
    # Saving the loaded bundle again gives the same content version.
    loaded.save(tmp_path / "b2")
    assert Bundle.load(tmp_path / "b2").version == tiny_bundle.version


def test_bundle_json_describes_itself(tiny_bundle: Bundle, tmp_path: Path) -> None:
    tiny_bundle.save(tmp_path / "b")
    meta = json.loads((tmp_path / "b" / BUNDLE_FILE).read_text())
    assert meta["format"] == "aduan-bundle" and meta["schema_version"] == SCHEMA_VERSION
    assert {"torch", "transformers", "sentence-transformers"} <= set(meta["libraries"])
    assert meta["untrained_heads"] == ["agency", "topic"]
    assert meta["heads"]["topic"]["labels"][0] == "Jalan Rusak"
    assert meta["encoder"]["prompt"] == "query: "
    assert HEADS_FILE in meta["files"] and "encoder/model.safetensors" in meta["files"]
    assert all(len(f["sha256"]) == 64 for f in meta["files"].values())


def test_bundle_refuses_to_overwrite_by_accident(tiny_bundle: Bundle, tmp_path: Path) -> None:
    tiny_bundle.save(tmp_path / "b")
    with pytest.raises(BundleError, match=r"already exists \(--overwrite replaces it\)"):
        tiny_bundle.save(tmp_path / "b")
    tiny_bundle.save(tmp_path / "b", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"], "no temporary folders left"


def _edit_json(path: Path, **changes: object) -> None:
    meta = json.loads((path / BUNDLE_FILE).read_text())
    meta.update(changes)
    (path / BUNDLE_FILE).write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: _edit_json(p, schema_version=99), "schema version 99 is not supported"),
        (lambda p: _edit_json(p, format="other"), "not an aduan bundle"),
        (lambda p: (p / BUNDLE_FILE).write_text("{not json"), "not valid JSON"),
        (lambda p: (p / BUNDLE_FILE).unlink(), "not an aduan bundle"),
        (lambda p: (p / HEADS_FILE).write_bytes(b"xx"), "wrong size"),
        (lambda p: (p / "encoder" / "model.safetensors").unlink(), "is missing"),
        (lambda p: _edit_json(p, heads={"agency": {"labels": ["a"], "bogus": 1}}), "unknown"),
    ],
    ids=["schema", "format", "json", "no-json", "truncated-heads", "missing-encoder", "fields"],
)
def test_bundle_load_fails_clearly(tiny_bundle: Bundle, tmp_path: Path, damage, message) -> None:
    tiny_bundle.save(tmp_path / "b")
    damage(tmp_path / "b")
    with pytest.raises(BundleError, match=message):
        Bundle.load(tmp_path / "b")


def test_bundle_checksum_catches_same_size_corruption(tiny_bundle: Bundle, tmp_path: Path) -> None:
    tiny_bundle.save(tmp_path / "b")
    heads = tmp_path / "b" / HEADS_FILE
    raw = bytearray(heads.read_bytes())
    raw[-1] ^= 0xFF
    heads.write_bytes(bytes(raw))
    Bundle.load(tmp_path / "b")  # sizes still match: the quick check passes
    with pytest.raises(BundleError, match="checksum"):
        Bundle.load(tmp_path / "b", verify_hashes=True)


def test_bundle_head_label_count_mismatch_is_damage(tiny_bundle: Bundle, tmp_path: Path) -> None:
    tiny_bundle.save(tmp_path / "b")
    meta = json.loads((tmp_path / "b" / BUNDLE_FILE).read_text())
    meta["heads"]["agency"]["labels"].append("Dinas Baru")
    (tmp_path / "b" / BUNDLE_FILE).write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="3 outputs but 4 labels"):
        Bundle.load(tmp_path / "b")


def test_bundle_new_rejects_bad_label_sets(tiny_encoder_dir: Path) -> None:
    with pytest.raises(BundleError, match="duplicate labels"):
        Bundle.new(tiny_encoder_dir, {"agency": ["a", "a"]})
    with pytest.raises(BundleError, match="no labels"):
        Bundle.new(tiny_encoder_dir, {"agency": []})


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_bundle_overwrite_never_replaces_what_is_not_a_bundle(
    tiny_bundle: Bundle, tmp_path: Path
) -> None:
    notes = tmp_path / "v3"
    (notes / "data").mkdir(parents=True)
    (notes / "notes.md").write_text("my notes")
    (notes / "data" / "rows.jsonl").write_text("{}\n")
    before = _tree(notes)
    for overwrite in (False, True):
        with pytest.raises(BundleError, match=r"v3 is a folder that is not an aduan bundle"):
            tiny_bundle.save(notes, overwrite=overwrite)
    assert _tree(notes) == before
    # a bundle.json of another format does not make a folder a bundle
    (notes / BUNDLE_FILE).write_text('{"format": "other"}')
    with pytest.raises(BundleError, match="will not be replaced"):
        tiny_bundle.save(notes, overwrite=True)
    file = tmp_path / "model.bin"
    file.write_bytes(b"weights")
    with pytest.raises(BundleError, match=r"model.bin is a file, not an aduan bundle; it will not"):
        tiny_bundle.save(file, overwrite=True)
    assert file.read_bytes() == b"weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "v3"], "nothing left"


def test_bundle_save_uses_an_empty_folder_and_replaces_a_damaged_bundle(
    tiny_bundle: Bundle, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    tiny_bundle.save(tmp_path / "empty")
    assert Bundle.load(tmp_path / "empty").version == tiny_bundle.version
    tiny_bundle.save(tmp_path / "b")
    (tmp_path / "b" / BUNDLE_FILE).write_text("{not json")  # known by its layout
    tiny_bundle.save(tmp_path / "b", overwrite=True)
    (tmp_path / "b" / BUNDLE_FILE).unlink()
    tiny_bundle.save(tmp_path / "b", overwrite=True)
    Bundle.load(tmp_path / "b", verify_hashes=True)
    # a link to a bundle: the link becomes the new bundle, the bundle it named stays
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    tiny_bundle.save(tmp_path / "link", overwrite=True)
    assert not (tmp_path / "link").is_symlink() and (tmp_path / "empty" / BUNDLE_FILE).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "empty", "link"]


def test_bundle_save_where_it_cannot_write_is_a_bundle_error(
    tiny_bundle: Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("x")
    for path in (tmp_path / "file" / "b", tmp_path / "file" / "sub" / "b"):
        with pytest.raises(BundleError, match=r"cannot save the bundle there: .*file is not a"):
            check_output(path)
        with pytest.raises(BundleError, match=str(path)):
            tiny_bundle.save(path)
    check_output(tmp_path / "new" / "deeper" / "b")  # parents are made on save, not here
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]

    def denied(*args: Any, **kwargs: Any) -> str:
        raise PermissionError(13, "Permission denied", str(tmp_path / "b.tmp-x"))

    monkeypatch.setattr(model.files.tempfile, "mkdtemp", denied)
    with pytest.raises(BundleError, match=r"/b: cannot save the bundle there: cannot write in "):
        tiny_bundle.save(tmp_path / "b")
    with pytest.raises(BundleError, match=r"\(Permission denied\)"):
        check_output(tmp_path / "b")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_bundle_save_into_a_read_only_folder(tiny_bundle: Bundle, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(BundleError, match=r"cannot write in .*ro \(Permission denied\)"):
            check_output(ro / "b")
        with pytest.raises(BundleError, match="Permission denied"):
            tiny_bundle.save(ro / "b")
    finally:
        ro.chmod(0o755)


def _edit_meta(change: Callable[[dict[str, Any]], object]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        meta = json.loads((path / BUNDLE_FILE).read_text())
        change(meta)
        (path / BUNDLE_FILE).write_text(json.dumps(meta))

    return damage


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(heads=[]), "heads must be an object, not []"),
        (lambda m: m["heads"]["agency"].pop("labels"), "heads.agency.labels is missing"),
        (lambda m: m["heads"]["agency"].update(labels=5), "heads.agency.labels must be a list"),
        (lambda m: m["heads"]["agency"].update(labels=[1]), "labels[0] must be a string, not 1"),
        (lambda m: m["heads"]["agency"].update(labels=[]), "labels must be distinct and not"),
        (lambda m: m["files"].update({HEADS_FILE: 5}), "files.heads.safetensors must be an obj"),
        (lambda m: m["files"][HEADS_FILE].pop("size"), "files.heads.safetensors.size is miss"),
        (lambda m: m.pop("files"), "files is missing"),
        (lambda m: m.update(routing=[]), "routing must be an object, not []"),
        (lambda m: m.update(routing=None), "routing must be an object, not null"),
        (lambda m: m.update(dedup="x"), 'dedup must be an object, not "x"'),
        (lambda m: m["encoder"].update(max_length="abc"), "max_length must be a whole number"),
        (lambda m: m["encoder"].update(max_length=True), "max_length must be a whole number"),
        (lambda m: m["encoder"].update(max_length=0), "max_length must be at least 1"),
        (lambda m: m["heads"]["topic"].update(temperature="hot"), "temperature must be a fin"),
        (lambda m: m["heads"]["topic"].update(temperature=0), "temperature must be above 0"),
        (lambda m: m["heads"]["topic"].update(abstain_threshold=[]), "abstain_threshold must"),
        (lambda m: m["heads"]["topic"].update(lexical_mix=[1.0]), "lexical_mix must be two"),
        (lambda m: m.update(name=3), "name must be a string, not 3"),
        (lambda m: m["dedup"].update(bogus=1), "dedup has an unknown field 'bogus'"),
    ],
)
def test_bundle_json_fields_are_checked(
    tiny_bundle: Bundle, tmp_path: Path, change: Callable[[dict[str, Any]], object], message: str
) -> None:
    """A hand edit of the wrong type is named on load, verify and info, not in predict."""
    tiny_bundle.save(tmp_path / "b")
    _edit_meta(change)(tmp_path / "b")
    where = f"{tmp_path / 'b' / BUNDLE_FILE}: "
    for read in (read_bundle_json, Bundle.load):
        with pytest.raises(BundleError) as caught:
            read(tmp_path / "b")
        assert str(caught.value).startswith(where) and message in str(caught.value)


def test_bundle_json_optional_sections_may_be_absent(tiny_bundle: Bundle, tmp_path: Path) -> None:
    tiny_bundle.save(tmp_path / "b")
    _edit_meta(lambda m: [m.pop(k) for k in ("preprocessing", "dedup", "routing", "training")])(
        tmp_path / "b"
    )
    _edit_meta(lambda m: m["heads"]["agency"].update(temperature=2, abstain_threshold=None))(
        tmp_path / "b"
    )
    loaded = Bundle.load(tmp_path / "b")
    assert loaded.head_specs["agency"].temperature == 2 and loaded.routing.head == ""


def test_demo_never_replaces_another_bundle_or_a_folder(
    tiny_bundle: Bundle, tmp_path: Path
) -> None:
    """Refused before any training (these would otherwise train the demo heads)."""
    notes = tmp_path / "v3"
    notes.mkdir()
    (notes / "notes.md").write_text("my notes")
    with pytest.raises(BundleError, match="not an aduan bundle; it will not be replaced"):
        build_demo_bundle(notes)
    assert _tree(notes) == {"notes.md": b"my notes"}
    tiny_bundle.save(tmp_path / "mine")
    with pytest.raises(BundleError, match="holds the aduan bundle 'tiny', not the demo bundle"):
        build_demo_bundle(tmp_path / "mine")
    Bundle.load(tmp_path / "mine", verify_hashes=True)
    # an earlier demo bundle, a damaged one, an empty folder or a new path are built over
    tiny_bundle.name = "demo"
    tiny_bundle.save(tmp_path / "demo")
    assert check_demo_output(tmp_path / "demo") == tmp_path / "demo"
    (tmp_path / "demo" / BUNDLE_FILE).write_text("{")
    check_demo_output(tmp_path / "demo")
    (tmp_path / "empty").mkdir()
    check_demo_output(tmp_path / "empty")
    check_demo_output(str(tmp_path / "new"))


def test_saved_bundle_has_the_mode_of_a_plain_folder(tiny_bundle: Bundle, tmp_path: Path) -> None:
    # mkdtemp makes 0700 folders; a bundle trained by one account is served by another
    import os
    import stat

    old = os.umask(0o022)
    try:
        out = tiny_bundle.save(tmp_path / "b")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
