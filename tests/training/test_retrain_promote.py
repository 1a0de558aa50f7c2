"""The retraining loop on the tiny corpus: merge and deduplicate, compare champion and challenger,
promote only when no worse (refusals come from measured numbers), roll back, CLI exit codes."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from data.schema import CallRecord
from model import registry as reg
from model.artifacts import load_model
from serve.cli import app
from tests.factories import tiny_rows, write_jsonl
from training.compare import load_test_set, read_comparison
from training.evaluate import evaluate_records
from training.promote import PromotionPolicy, PromotionRefused, judge, promote_challenger
from training.retrain import TRAINING_SET, RetrainConfig, merge_records, retrain
from training.train import TrainConfig, train

CONFLICT_TEXT = "车没电了需要搭电"  # a base row (convenience) that the new tickets relabel
HELD_OUT = {
    "police_public_order": ["楼下有人打架了", "饭店里有人喝多了打人", "有人在小区里砸车"],
    "police_criminal": ["我的电瓶车被偷了", "接到诈骗电话被骗了五千", "家里进了小偷"],
    "convenience": ["车被别人挡住了出不去", "钥匙丢了需要开锁", "手机落在出租车上了"],
    "utilities": ["家里停电了", "自来水停了一天了", "暖气片不热"],
}
NEW = [
    {"text": "商场门口两个人动手打起来了", "department": "police_public_order"},
    {"text": "酒吧里有客人互殴", "department": "police_public_order"},
    {"text": "我的自行车在楼下被人偷了", "department": "police_criminal"},
    {"text": "有人用假二维码骗走了我的钱", "department": "police_criminal"},
    {"text": "我家门口的车挡住路了，联系不上车主", "department": "convenience"},
    {"text": "孩子把钥匙弄丢了进不了家", "department": "convenience"},
    {"text": "整栋楼都停水了", "department": "utilities"},
    {"text": "家里燃气灶点不着，可能是没气了", "department": "utilities"},
    {"text": CONFLICT_TEXT, "department": "utilities"},  # conflict with the base: new label wins
    {"text": "小区停电两个小时了", "department": "utilities"},  # same as a base row, same label
    {"text": "整栋楼都停水了！", "department": "utilities"},  # duplicate within the new rows
    {"text": "酒吧里有客人互殴。", "department": "police_criminal"},  # duplicate within new rows, other label
    {"text": "家里停电了", "department": "utilities"},  # a test-set text: must not be trained on
]
# Every label moved to another channel: a model trained on this is deliberately worse.
ROTATE = {"police_public_order": "convenience", "police_criminal": "utilities", "convenience": "police_public_order", "utilities": "police_criminal"}


def run_cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("retrain-data")
    rows = tiny_rows()
    return {
        "base": write_jsonl(d / "base.jsonl", rows),
        "new": write_jsonl(d / "new.jsonl", NEW),
        "test": write_jsonl(d / "test.jsonl", [{"text": t, "department": k} for k, ts in HELD_OUT.items() for t in ts]),
        "rotated": write_jsonl(d / "rotated.jsonl", [{"text": r["text"], "department": ROTATE[r["department"]]} for r in rows]),
        "new_small": write_jsonl(d / "new_small.jsonl", NEW[:2]),
        "dir": d,
    }


@pytest.fixture(scope="module")
def bad_model(tmp_path_factory, files):
    """A model trained on the label-rotated tiny corpus."""
    out = tmp_path_factory.mktemp("bad") / "bad"
    train(TrainConfig(data=[str(files["rotated"])], out=str(out), val_folds=3), progress=False)
    return out


@pytest.fixture(scope="module")
def bad_registry(tmp_path_factory, bad_model):
    models = tmp_path_factory.mktemp("reg-bad") / "models"
    reg.promote(bad_model, models)
    return models


@pytest.fixture(scope="module")
def good_registry(tmp_path_factory, tiny_model_dir):
    models = tmp_path_factory.mktemp("reg-good") / "models"
    reg.promote(tiny_model_dir, models)
    return models


@pytest.fixture(scope="module")
def good_challenger(tmp_path_factory, files, bad_registry):
    """tiny corpus + new tickets, compared with the bad champion."""
    out = tmp_path_factory.mktemp("chal") / "good"
    cfg = RetrainConfig(base_data=[str(files["base"])], new_data=[str(files["new"])], test_data=[str(files["test"])], out=str(out), registry=str(bad_registry), val_folds=3)
    return retrain(cfg, progress=False)


@pytest.fixture(scope="module")
def worse_challenger(tmp_path_factory, files, good_registry):
    """rotated tiny corpus + two new tickets, compared with the good champion."""
    out = tmp_path_factory.mktemp("chal") / "worse"
    cfg = RetrainConfig(base_data=[str(files["rotated"])], new_data=[str(files["new_small"])], test_data=[str(files["test"])], out=str(out), registry=str(good_registry), val_folds=3)
    return retrain(cfg, progress=False)


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ---------------------------------------------------------------------------------------------
def test_merge_new_wins_conflicts_and_every_drop_is_counted():
    base = [CallRecord(r["text"], r["department"]) for r in tiny_rows()]
    new = [CallRecord(r["text"], r["department"]) for r in NEW]
    rows, stats = merge_records(base, new, exclude_keys={"家里停电了"})
    by_text = {r.text: (r.department, origin) for r, origin in rows}
    assert by_text[CONFLICT_TEXT] == ("utilities", "new")
    assert by_text["酒吧里有客人互殴"] == ("police_public_order", "new"), "within the new rows the first label is kept"
    assert "家里停电了" not in by_text
    assert (stats.conflicts_new_over_base, stats.new_same_as_base, stats.duplicates_in_new, stats.conflicts_in_new, stats.dropped_test_overlap) == (1, 1, 2, 1, 1)
    assert stats.training_rows == len(rows) == 48 + len(NEW) - 2 - 2 - 1  # replaced base rows, new duplicates, test text
    origins = [o for _, o in rows]
    assert origins == sorted(origins), "base rows first, then new rows"

    dup_base = base + [CallRecord("小区门口有人打架，快来!", "police_criminal")]
    _, s = merge_records(dup_base, [])
    assert (s.duplicates_in_base, s.conflicts_in_base, s.training_rows) == (1, 1, 48)


def test_retrain_writes_training_set_and_a_comparison_of_measured_numbers(good_challenger, bad_model, bad_registry, files):
    r = good_challenger
    out = r.out
    for f in ("config.json", "model.joblib", "comparison.json", "comparison.md", TRAINING_SET):
        assert (out / f).exists(), f
    trained = [json.loads(l) for l in (out / TRAINING_SET).read_text(encoding="utf-8").splitlines()]
    texts = {t["text"]: t for t in trained}
    assert texts[CONFLICT_TEXT]["department"] == "utilities" and texts[CONFLICT_TEXT]["origin"] == "new"
    assert "家里停电了" not in texts, "a test text must not be trained on"
    assert len(trained) == r.merge.training_rows == load_model(out).metrics["train_rows"]

    c = read_comparison(out)
    assert c["champion"]["name"] == reg.current_model_dir(bad_registry).name
    assert c["challenger"]["weights_sha256"] == reg.weights_sha256(out)
    assert c["test"]["rows"] == 12 and c["merge"]["conflicts_new_over_base"] == 1
    # the numbers are those of routing the test set with each model
    test = load_test_set([str(files["test"])]).records
    for side, path in (("champion", bad_model), ("challenger", out)):
        m = evaluate_records(load_model(path), test)["metrics"]
        assert c[side]["metrics"]["macro_f1"] == m["department"]["macro_f1"]
        assert c[side]["metrics"]["110_recall"] == m["channel"]["110_recall"]
    assert c["deltas"]["macro_f1"] == round(c["challenger"]["metrics"]["macro_f1"] - c["champion"]["metrics"]["macro_f1"], 4)
    md = (out / "comparison.md").read_text(encoding="utf-8")
    assert "110 recall" in md and "macro-F1" in md and "楼下有人打架了" not in md


def test_promote_refuses_a_worse_challenger_with_the_measured_reason(worse_challenger, good_registry, tiny_model_dir, files, tmp_path):
    models = copy(good_registry, tmp_path / "models")
    c = worse_challenger.comparison
    # independently measured: the rotated-label challenger is worse than the champion
    test = load_test_set([str(files["test"])]).records
    champ = evaluate_records(load_model(tiny_model_dir), test)["metrics"]["department"]["macro_f1"]
    chal = evaluate_records(load_model(worse_challenger.out), test)["metrics"]["department"]["macro_f1"]
    assert chal < champ and (c["champion"]["metrics"]["macro_f1"], c["challenger"]["metrics"]["macro_f1"]) == (champ, chal)

    with pytest.raises(PromotionRefused) as exc:
        promote_challenger(worse_challenger.out, models)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("refused: ")
    assert f"macro-F1 fell by {champ - chal:.4f}" in msg and f"champion {champ:.4f} → challenger {chal:.4f}" in msg
    assert reg.read_pointer(models, reg.CURRENT) == reg.read_pointer(good_registry, reg.CURRENT), "CURRENT must not move"
    assert len(reg.list_versions(models)) == 1

    # a margin wide enough lets it through; --force does too, and the history says it was forced
    tolerant = PromotionPolicy(min_110_recall_delta=-1.0, min_macro_f1_delta=-1.0)
    assert judge(c, tolerant).accepted
    forced = promote_challenger(worse_challenger.out, copy(good_registry, tmp_path / "m2"), force=True)
    assert forced.forced and reg.history(tmp_path / "m2")[-1]["forced"] is True


def test_promote_accepts_a_better_challenger_and_rollback_restores_the_champion(good_challenger, bad_registry, tmp_path):
    models = copy(bad_registry, tmp_path / "models")
    champion = reg.read_pointer(models, reg.CURRENT)
    c = good_challenger.comparison
    assert c["deltas"]["macro_f1"] > 0 and c["deltas"]["110_recall"] >= 0
    result = promote_challenger(good_challenger.out, models)
    assert result.verdict.accepted and not result.recompared and not result.forced
    assert reg.read_pointer(models, reg.CURRENT) == result.registered.name != champion
    assert reg.read_pointer(models, reg.PREVIOUS) == champion
    assert load_model(reg.current_model_dir(models)).version == good_challenger.model.version
    assert (result.registered / "comparison.json").exists() and not (result.registered / TRAINING_SET).exists()
    reg.rollback(models)
    assert reg.read_pointer(models, reg.CURRENT) == champion


def test_the_api_reload_serves_what_promote_and_rollback_point_at(good_challenger, bad_registry, bad_model, tmp_path):
    from serve.config import Settings
    from serve.state import ModelHolder

    models = copy(bad_registry, tmp_path / "models")
    holder = ModelHolder(Settings(_env_file=None, registry_dir=models, model_dir=None))
    assert holder.load().version == load_model(bad_model).version
    promote_challenger(good_challenger.out, models)
    assert holder.reload()[1].version == good_challenger.model.version
    reg.rollback(models)
    assert holder.reload()[1].version == load_model(bad_model).version


def test_promote_compares_again_when_the_champion_changed(worse_challenger, bad_registry, bad_model, tmp_path):
    chal_dir = copy(worse_challenger.out, tmp_path / "worse")
    models = copy(bad_registry, tmp_path / "models")  # CURRENT here is not the champion it was compared with
    result = promote_challenger(chal_dir, models, PromotionPolicy(-1.0, -1.0))
    assert result.recompared
    fresh = read_comparison(chal_dir)
    assert fresh["champion"]["weights_sha256"] == reg.weights_sha256(bad_model)
    assert fresh["merge"] == worse_challenger.comparison["merge"], "merge counts survive the new comparison"


def test_promote_refuses_without_a_comparison_or_with_one_for_another_model(tiny_model_dir, bad_model, good_challenger, tmp_path):
    models = tmp_path / "models"
    with pytest.raises(PromotionRefused, match="no comparison.json"):
        promote_challenger(tiny_model_dir, models)
    assert not models.exists() or reg.current_model_dir(models) is None
    other = copy(bad_model, tmp_path / "other")
    shutil.copy(good_challenger.out / "comparison.json", other / "comparison.json")
    with pytest.raises(PromotionRefused, match="another model"):
        promote_challenger(other, models)


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------
def test_cli_retrain_promote_rollback_models(files, bad_registry, tmp_path):
    models = copy(bad_registry, tmp_path / "models")
    out = tmp_path / "chal"
    # bad input: a column the new file does not have -> exit 2, one line
    r = run_cli("retrain", "--base-data", str(files["base"]), "--new-data", str(files["new"]), "--test-data", str(files["test"]),
                "--out", str(out), "--registry", str(models), "--label-column", "处置单位", "--no-verbose")
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and "'处置单位'" in r.stderr and r.stderr.count("\n") == 1

    r = run_cli("retrain", "--base-data", str(files["base"]), "--new-data", str(files["new"]), "--test-data", str(files["test"]),
                "--out", str(out), "--registry", str(models), "--no-verbose")
    assert r.exit_code == 0, r.output
    assert "1 base rows relabelled by new rows" in r.stdout and "| 110 recall |" in r.stdout and "promotion check: accepted" in r.stdout
    assert (out / "comparison.json").exists()

    # a margin no challenger can meet -> refused, exit 2, the metric named on one line
    r = run_cli("promote", str(out), "--registry", str(models), "--min-macro-f1-delta", "2")
    assert r.exit_code == 2 and r.stderr.startswith("error: refused: macro-F1 rose only by") and r.stderr.count("\n") == 1
    champion = reg.read_pointer(models, reg.CURRENT)

    r = run_cli("promote", str(out), "--registry", str(models))
    assert r.exit_code == 0, r.output
    assert reg.read_pointer(models, reg.PREVIOUS) == champion != reg.read_pointer(models, reg.CURRENT)
    r = run_cli("promote", str(out), "--registry", str(models))
    assert r.exit_code == 0 and "already the current model" in r.stdout

    r = run_cli("models", "--registry", str(models))
    assert r.exit_code == 0
    marks = {line.split("|")[2].strip(): line.split("|")[1].strip() for line in r.stdout.splitlines()[2:] if line.startswith("|")}
    assert marks[champion] == "^" and marks[reg.read_pointer(models, reg.CURRENT)] == "*"

    r = run_cli("rollback", "--registry", str(models))
    assert r.exit_code == 0 and reg.read_pointer(models, reg.CURRENT) == champion
    assert "again changes nothing" in r.stdout and "--to VERSION" in r.stdout  # a second rollback is not a silent undo
    r = run_cli("rollback", "--registry", str(models), "--to", "no-such-version")
    assert r.exit_code == 2 and "no such model folder" in r.stderr
    r = run_cli("rollback", "--registry", str(tmp_path / "empty"))
    assert r.exit_code == 2 and "no previous model" in r.stderr
    r = run_cli("promote", str(tmp_path / "nowhere"), "--registry", str(models))
    assert r.exit_code == 2 and "no config.json" in r.stderr


def test_cli_help_for_the_new_commands():
    for cmd in ("retrain", "promote", "rollback", "models"):
        r = run_cli(cmd, "--help")
        assert r.exit_code == 0 and "Usage" in r.stdout, cmd
