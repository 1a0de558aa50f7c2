"""Training records the saved model's speed on this machine (metrics.json "speed", the model card), with
the CPU it was measured on; the transformer's side (backend, fallback thresholds) is in
tests/serve/test_latency_budget.py."""
from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

from training.speed import ISA_FLAGS, cpu_info


def test_a_linear_model_folder_records_its_speed_and_the_cpu(tiny_model_dir):
    speed = json.loads((tiny_model_dir / "metrics.json").read_text(encoding="utf-8"))["speed"]
    assert speed["backend"] == "linear" and speed["texts"] == 200 and speed["batch"] == 32
    assert 0 < speed["single_p50_ms"] <= speed["single_p99_ms"] and speed["batch_texts_per_s"] > 0
    assert speed["cpu"]["model"] and speed["cpu"]["cores"] >= 1 and set(speed["cpu"]["isa"]) <= set(ISA_FLAGS)
    card = (tiny_model_dir / "README.md").read_text(encoding="utf-8")
    assert "## Speed (measured at the end of training, through the router)" in card and f"p99 **{speed['single_p99_ms']} ms**" in card


def test_speed_texts_zero_records_nothing(tmp_path, tiny_jsonl):
    from training.train import TrainConfig, train

    train(TrainConfig(data=[str(tiny_jsonl)], out=str(tmp_path / "m"), val_folds=3, speed_texts=0), progress=False)
    assert "speed" not in json.loads((tmp_path / "m" / "metrics.json").read_text(encoding="utf-8"))
    assert "## Speed" not in (tmp_path / "m" / "README.md").read_text(encoding="utf-8")


def test_cpu_info_names_the_isa_flags_the_cpu_has():
    info = cpu_info()
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo here")
    flags = set(next(l for l in cpuinfo.read_text().splitlines() if l.startswith("flags")).split(":", 1)[1].split())
    assert info["isa"] == [f for f in ISA_FLAGS if f in flags]


@pytest.mark.parametrize("name", ["training.speed", "model.fallback"])
def test_docstring_examples(name):
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
