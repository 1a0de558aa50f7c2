"""The model registry: promotion keeps PREVIOUS, rollback restores it, pointer writes are atomic."""
from __future__ import annotations

import hashlib
import json
import shutil
import stat
import threading
from pathlib import Path

import pytest

from model import registry as reg


def fake_model(root: Path, version: str, weights: bytes = b"w1", created: str = "2026-01-01T00:00:00+00:00") -> Path:
    """A folder with the files the registry looks at (config.json with version and weights checksum)."""
    d = root / f"src-{version}-{hashlib.sha1(weights).hexdigest()[:6]}"
    d.mkdir(parents=True)
    (d / "model.joblib").write_bytes(weights)
    config = {"version": version, "created": created, "files": {"model.joblib": hashlib.sha256(weights).hexdigest()}}
    (d / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (d / "metrics.json").write_text(json.dumps({"train_rows": 10, "validation_out_of_fold": {"channel": {"110_recall": 0.9}, "department": {"accuracy": 0.8, "macro_f1": 0.7}}}))
    return d


def test_register_keeps_its_behaviour(tmp_path):
    models = tmp_path / "models"
    a, b = fake_model(tmp_path, "linear-a"), fake_model(tmp_path, "linear-b")
    dest = reg.register(a, models)
    assert dest == models / "linear-a" and reg.current_model_dir(models) == dest
    assert reg.previous_model_dir(models) is None
    reg.register(b, models)
    assert reg.current_model_dir(models).name == "linear-b" and reg.previous_model_dir(models).name == "linear-a"
    # the same version registered again replaces the folder
    a2 = fake_model(tmp_path / "again", "linear-a", weights=b"other")
    reg.register(a2, models, make_current=False)
    assert (models / "linear-a" / "model.joblib").read_bytes() == b"other"
    assert reg.current_model_dir(models).name == "linear-b"


def test_promote_keeps_previous_and_rollback_restores_it(tmp_path):
    models = tmp_path / "models"
    a = fake_model(tmp_path, "linear-a", b"a", created="2026-01-01T00:00:00+00:00")
    b = fake_model(tmp_path, "linear-b", b"b", created="2026-01-02T00:00:00+00:00")
    (b / "training_set.jsonl").write_text('{"text": "raw"}\n', encoding="utf-8")
    assert reg.promote(a, models).name == "linear-a"
    assert reg.read_pointer(models, reg.PREVIOUS) is None
    reg.promote(b, models, note={"verdict": "accepted"})
    assert reg.read_pointer(models, reg.CURRENT) == "linear-b" and reg.read_pointer(models, reg.PREVIOUS) == "linear-a"
    assert not (models / "linear-b" / "training_set.jsonl").exists(), "raw training texts must not enter the registry"

    assert reg.rollback(models)[:3] == ("linear-b", "linear-a", True)
    assert reg.current_model_dir(models).name == "linear-a" and reg.previous_model_dir(models).name == "linear-b"
    again = reg.rollback(models)
    assert again[:3] == ("linear-b", "linear-a", False) and again.since, "a second plain rollback changes nothing"
    assert reg.current_model_dir(models).name == "linear-a"
    assert reg.rollback(models, to="linear-b")[:3] == ("linear-a", "linear-b", True), "going back is explicit"

    actions = [(h["action"], h["current"], h["previous"]) for h in reg.history(models)]
    assert actions == [("promote", "linear-a", None), ("promote", "linear-b", "linear-a"), ("rollback", "linear-a", "linear-b"), ("rollback", "linear-b", "linear-a")]
    assert reg.history(models)[1]["verdict"] == "accepted"

    listed = reg.list_versions(models)
    assert [(v.name, v.current, v.previous) for v in listed] == [("linear-a", False, True), ("linear-b", True, False)]
    assert listed[0].validation["macro_f1"] == 0.7 and listed[0].test == {} and listed[0].train_rows == 10


def test_rollback_errors_name_the_problem(tmp_path):
    models = tmp_path / "models"
    with pytest.raises(reg.RegistryError, match="no previous model"):
        reg.rollback(models)
    reg.promote(fake_model(tmp_path, "linear-a", b"a"), models)
    with pytest.raises(reg.RegistryError, match="no previous model"):
        reg.rollback(models)
    with pytest.raises(reg.RegistryError, match="no such model folder"):
        reg.rollback(models, to="linear-zzz")
    with pytest.raises(reg.RegistryError, match="already the current"):
        reg.rollback(models, to="linear-a")
    reg.promote(fake_model(tmp_path, "linear-b", b"b"), models)
    reg.promote(fake_model(tmp_path, "linear-c", b"c"), models)
    assert reg.rollback(models, to="linear-a")[:2] == ("linear-c", "linear-a")
    assert reg.read_pointer(models, reg.PREVIOUS) == "linear-c"


def test_promote_never_overwrites_a_registered_folder(tmp_path):
    models = tmp_path / "models"
    first = reg.promote(fake_model(tmp_path, "linear-same", b"one"), models)
    # a different model with the same version name (trained in the same second) gets its own folder
    second = reg.promote(fake_model(tmp_path / "x", "linear-same", b"two"), models)
    assert second.name == "linear-same-2" and (first / "model.joblib").read_bytes() == b"one"
    assert reg.read_pointer(models, reg.PREVIOUS) == "linear-same"
    # the identical model promoted again is reused, not copied again
    again = reg.promote(fake_model(tmp_path / "y", "linear-same", b"one"), models)
    assert again == first and sorted(v.name for v in reg.list_versions(models)) == ["linear-same", "linear-same-2"]
    assert reg.read_pointer(models, reg.CURRENT) == "linear-same" and reg.read_pointer(models, reg.PREVIOUS) == "linear-same-2"
    # promoting the current model changes nothing
    before = reg.history(models)
    reg.promote(models / "linear-same", models)
    assert reg.history(models) == before


def test_failed_copy_leaves_no_half_version_and_pointers_untouched(tmp_path, monkeypatch):
    models = tmp_path / "models"
    reg.promote(fake_model(tmp_path, "linear-a", b"a"), models)
    real_copy2 = shutil.copy2
    calls = {"n": 0}

    def copy_then_fail(src, dst, *a, **k):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(28, "No space left on device")
        return real_copy2(src, dst, *a, **k)

    real_copytree = shutil.copytree
    monkeypatch.setattr(reg.shutil, "copytree", lambda src, dst, **kw: real_copytree(src, dst, copy_function=copy_then_fail, **kw))
    with pytest.raises(OSError):
        reg.promote(fake_model(tmp_path, "linear-b", b"b"), models)
    assert calls["n"] > 1, "the copy must have been interrupted part-way"
    assert reg.read_pointer(models, reg.CURRENT) == "linear-a"
    assert sorted(p.name for p in models.iterdir() if p.is_dir()) == ["linear-a"], "no staging or half-copied folder left"


def test_list_versions_skips_builds_in_progress(tmp_path):
    models = tmp_path / "models"
    reg.promote(fake_model(tmp_path, "linear-a", b"a"), models)
    shutil.copytree(models / "linear-a", models / "_building")
    shutil.copytree(models / "linear-a", models / ".incoming-123")
    (models / "notes").mkdir()
    assert [v.name for v in reg.list_versions(models)] == ["linear-a"]
    assert reg.list_versions(tmp_path / "nowhere") == []


def test_pointer_writes_are_atomic_and_readable(tmp_path):
    pointer = tmp_path / reg.CURRENT
    reg._write_pointer(pointer, "linear-a")
    assert stat.S_IMODE(pointer.stat().st_mode) & 0o044 == 0o044, "the serving user must be able to read CURRENT"
    seen, stop = set(), threading.Event()

    def reader():
        while not stop.is_set():
            seen.add(pointer.read_text(encoding="utf-8"))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(300):
            reg._write_pointer(pointer, "linear-a" if i % 2 else "linear-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
    finally:
        stop.set()
        t.join()
    whole = {"linear-a\n", "linear-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n"}
    assert seen <= whole, f"a reader saw a partial pointer: {seen - whole}"
    assert [p.name for p in tmp_path.iterdir()] == [reg.CURRENT], "no temporary files left behind"


def test_models_sharing_a_file_are_still_different_models(tmp_path):
    """A transformer folder records several files; sharing the tokenizer does not make two models the same."""
    models = tmp_path / "models"
    for name, weights in (("transformer-a", "w-a"), ("transformer-b", "w-b")):
        d = fake_model(tmp_path, name, weights.encode())
        config = json.loads((d / "config.json").read_text())
        config["files"] = {"tokenizer.json": "same-tokenizer", "model.safetensors": hashlib.sha256(weights.encode()).hexdigest()}
        (d / "config.json").write_text(json.dumps(config))
        reg.promote(d, models)
    assert sorted(v.name for v in reg.list_versions(models)) == ["transformer-a", "transformer-b"]
    assert reg.read_pointer(models, reg.CURRENT) == "transformer-b" and reg.read_pointer(models, reg.PREVIOUS) == "transformer-a"
    assert reg.files_fingerprint({"model.joblib": "abc"}) == "abc" and reg.files_fingerprint({}) is None
