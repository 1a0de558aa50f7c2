"""Issue 18, the analysts' items, through the `hotline` command as a subprocess: department lists that
differ between champion and challenger, one policy for repeated rows, the evaluation report (names,
counts, top confusions, CJK font or a stated fallback), help texts, --no-verbose, rollback, models."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model import registry as reg
from tests.factories import tiny_rows, write_csv, write_jsonl
from tests.training.test_retrain_promote import HELD_OUT, NEW

ROOT = Path(__file__).resolve().parents[2]
# The tiny corpus with one department renamed: a model trained on it has another department list.
RENAMED = {"utilities": "供电局"}


def hotline(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, "HOTLINE_REGISTRY_DIR": str(cwd / "models"), "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "serve.cli", *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("analyst")
    rows = tiny_rows()
    write_jsonl(d / "base.jsonl", rows)
    write_jsonl(d / "new.jsonl", NEW[:9])
    write_jsonl(d / "test.jsonl", [{"text": t, "department": k} for k, ts in HELD_OUT.items() for t in ts])
    write_jsonl(d / "renamed.jsonl", [{**r, "department": RENAMED.get(r["department"], r["department"])} for r in rows])
    # an export with one exact duplicate (line 50) and one same-text row with another label (line 51)
    write_csv(d / "repeats.csv", rows + [dict(rows[0]), {**rows[13], "department": "utilities"}])
    r = hotline("train", "--data", "base.jsonl", "--out", "m", "--test-data", "test.jsonl", "--no-verbose", cwd=d)
    assert r.returncode == 0, r.stderr
    return d


# ---------------------------------------------------------------------------------------------
# Item 3: different department lists are said, compared on what is shared, refused by default
# ---------------------------------------------------------------------------------------------
def test_retrain_and_promote_with_different_department_lists(work, tmp_path):
    r = hotline("train", "--data", str(work / "renamed.jsonl"), "--channel-column", "channel", "--out", "champ", "--no-verbose", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    reg.promote(tmp_path / "champ", tmp_path / "models")
    champion = reg.read_pointer(tmp_path / "models", reg.CURRENT)
    r = hotline("retrain", "--base-data", str(work / "base.jsonl"), "--new-data", str(work / "new.jsonl"), "--test-data",
                str(work / "test.jsonl"), "--out", "chal", "--no-verbose", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "1 only the champion has (供电局)" in r.stderr and "compared on the 9 test rows of the 3 shared departments" in r.stderr
    assert "promotion check: refused: the department lists differ" in r.stdout
    c = json.loads((tmp_path / "chal" / "comparison.json").read_text(encoding="utf-8"))
    assert c["labels"]["same"] is False and c["labels"]["only_champion"] == ["供电局"] and c["labels"]["test_rows_left_out"] == 3
    assert c["champion"]["metrics"]["n"] == c["challenger"]["metrics"]["n"] == 9, "both scored on the shared departments' rows only"
    assert c["champion"]["metrics"]["accuracy"] > 0.5, "the champion is judged on departments it has, not scored 0 on ones it lacks"
    assert "The department lists differ" in (tmp_path / "chal" / "comparison.md").read_text(encoding="utf-8")

    r = hotline("promote", "chal", cwd=tmp_path)
    assert r.returncode == 2 and "department lists differ" in r.stderr and "--allow-label-change" in r.stderr
    assert reg.read_pointer(tmp_path / "models", reg.CURRENT) == champion
    r = hotline("promote", "chal", "--allow-label-change", "--min-macro-f1-delta", "-1", "--min-110-recall-delta", "-1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "accepted:" in r.stdout and "department lists differ" in r.stdout and "allowed by --allow-label-change" in r.stdout
    assert reg.read_pointer(tmp_path / "models", reg.CURRENT) != champion


def test_no_shared_department_means_no_comparison_and_a_refusal(work, tmp_path):
    """The reported case: the champion scored 0.000 on labels it never had and promotion said accepted."""
    from model.artifacts import load_model
    from training.compare import compare_models, load_test_set
    from training.promote import PromotionPolicy, judge
    from training.train import TrainConfig, train

    rows = [{**r, "department": {"police_public_order": "派出所", "police_criminal": "刑侦大队", "convenience": "街道办",
                                 "utilities": "供电局"}[r["department"]]} for r in tiny_rows()]
    train(TrainConfig(data=[str(write_jsonl(tmp_path / "city.jsonl", rows))], out=str(tmp_path / "city"), channel_column="channel", val_folds=3), progress=False)
    c = compare_models(load_model(work / "m"), load_model(tmp_path / "city"), load_test_set([str(work / "test.jsonl")]))
    assert c["labels"]["comparable"] is False and c["labels"]["shared"] == 0
    assert c["deltas"]["macro_f1"] is None
    v = judge(c, PromotionPolicy())
    assert not v.accepted and "cannot be compared" in v.reason_line()


# ---------------------------------------------------------------------------------------------
# Item 4: one policy for repeated rows in train, retrain and evaluate
# ---------------------------------------------------------------------------------------------
def test_train_evaluate_retrain_drop_duplicates_and_report_conflicts_by_line(work, tmp_path):
    r = hotline("train", "--data", str(work / "repeats.csv"), "--out", "rm", "--no-verbose", cwd=tmp_path)
    assert r.returncode == 0, r.stderr  # no --lenient needed for a repeated row
    assert "1 exact duplicate row dropped" in r.stdout and "repeats.csv:50" in r.stdout
    assert "repeats.csv:51: same text as line 15 but another label ('utilities'; line 15 has 'police_criminal')" in r.stdout
    assert "'police_criminal' kept" in r.stdout
    m = json.loads((tmp_path / "rm" / "metrics.json").read_text(encoding="utf-8"))
    assert m["train_rows"] == 48 and m["input"]["exact_duplicates_dropped"] == 1 and m["input"]["label_conflicts_dropped"] == 1

    r = hotline("evaluate", "--model", str(work / "m"), "--data", str(work / "repeats.csv"), "--out", "rep", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "1 exact duplicate row dropped" in r.stdout and "repeats.csv:51: same text as line 15" in r.stdout
    assert json.loads((tmp_path / "rep" / "metrics.json").read_text(encoding="utf-8"))["n"] == 48
    assert "repeats.csv:51" in (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")

    r = hotline("retrain", "--base-data", str(work / "repeats.csv"), "--new-data", str(work / "new.jsonl"), "--test-data",
                str(work / "test.jsonl"), "--out", "chal", "--no-verbose", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "base data: 1 exact duplicate row dropped" in r.stdout and "base data: 1 row with the text of an earlier row" in r.stdout
    assert "repeats.csv:51: same text as line 15" in r.stdout
    merge = json.loads((tmp_path / "chal" / "comparison.json").read_text(encoding="utf-8"))["merge"]
    assert (merge["base_rows"], merge["duplicates_in_base"], merge["conflicts_in_base"]) == (50, 2, 1), "rows read, and every drop counted once"


# ---------------------------------------------------------------------------------------------
# Item 5: the report, help texts, --no-verbose, rollback, models
# ---------------------------------------------------------------------------------------------
def test_evaluate_report_names_departments_counts_and_top_confusions(work, tmp_path):
    from training.confusion import cjk_font

    if cjk_font() is None:
        pytest.skip("no CJK font installed (make fonts); the fallback is tested below")
    r = hotline("evaluate", "--model", str(work / "m"), "--data", str(work / "test.jsonl"), "--out", "rep", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "missing from font" not in r.stderr and "note:" not in r.stderr
    assert not (tmp_path / "rep" / "labels.json").exists(), "names are drawn, no separate legend"
    report = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text(encoding="utf-8"))
    top = metrics["top_confusions"]
    assert top, "the tiny model confuses some held-out calls"
    assert "| true department | predicted department | count | share of the true department's calls |" in report
    first = top[0]
    assert first["true_name"].split(" (")[0] != first["true"] and first["true"] in first["true_name"]  # 治安案件 (police_public_order)
    assert f"| {first['true_name']} | {first['predicted_name']} | {first['count']} | {first['share_of_true']:.1%} |" in report
    assert first["share_of_true"] == round(first["count"] / metrics["department"]["per_class"][first["true"]]["support"], 4)


def test_department_plot_draws_names_with_a_cjk_font_and_every_count(tmp_path):
    import numpy as np
    from matplotlib import font_manager

    from training.confusion import cjk_font, draw_department_confusion

    font = cjk_font()
    if font is None:
        pytest.skip("no CJK font installed (make fonts)")
    path = font_manager.findfont(font_manager.FontProperties(family=font), fallback_to_default=False)  # raises if not installed
    assert "dejavu" not in path.lower()
    matrix = np.array([[5, 2], [0, 7]])
    ticks, short = draw_department_confusion(tmp_path / "c.png", matrix, ["a", "b"], {"a": "治安案件", "b": "水电气热"}, font)
    assert ticks == ["治安案件", "水电气热"] and not short and (tmp_path / "c.png").stat().st_size > 1000
    ticks, short = draw_department_confusion(tmp_path / "d.png", matrix, ["a", "b"], {"a": "治安案件", "b": "水电气热"}, None)
    assert ticks == ["D1", "D2"] and short


def test_evaluate_without_a_cjk_font_says_so_and_writes_the_legend(tmp_path):
    rows = [{**r, "department": {"police_public_order": "派出所", "police_criminal": "刑侦大队", "convenience": "街道办",
                                 "utilities": "供电局"}[r["department"]]} for r in tiny_rows()]
    write_jsonl(tmp_path / "city.jsonl", rows)
    r = hotline("evaluate", "--cv", "2", "--data", "city.jsonl", "--channel-column", "channel", "--out", "rep", "--no-verbose",
                cwd=tmp_path, env={"HOTLINE_REPORT_FONT": "none"})
    assert r.returncode == 0, r.stderr
    assert "note: no CJK font found" in r.stderr and "make fonts" in r.stderr and "missing from font" not in r.stderr
    legend = json.loads((tmp_path / "rep" / "labels.json").read_text(encoding="utf-8"))
    assert sorted(legend.values()) == sorted({r["department"] for r in rows}) and "D1" in legend
    assert "no CJK font found" in (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")


def test_every_option_of_the_analyst_commands_has_help(work):
    r = hotline("evaluate", "--help", cwd=work, env={"COLUMNS": "250"})
    assert r.returncode == 0
    by_option = {line.split()[1]: line for line in r.stdout.splitlines() if line.strip("│ ").startswith("--")}
    assert "Skip bad rows" in by_option["--lenient"] and "true channel" in by_option["--channel-column"]
    assert "mapping each department" in by_option["--channel-map"]
    import typer

    from serve.cli import app

    group = typer.main.get_command(app)
    for name in ("train", "predict", "evaluate", "retrain", "promote", "rollback", "models", "export-reviews"):
        for p in group.commands[name].params:
            if p.param_type_name == "option":
                assert getattr(p, "help", None), f"hotline {name} {p.opts[0]} has no help text"


def test_no_verbose_draws_no_progress_bars(work, tmp_path):
    r = hotline("train", "--data", str(work / "base.jsonl"), "--out", "q", "--no-verbose", cwd=tmp_path)
    assert r.returncode == 0 and "saved linear-" in r.stdout
    assert "validation folds" not in r.stderr and "final fit" not in r.stderr and "%|" not in r.stderr, r.stderr
    r = hotline("evaluate", "--cv", "2", "--data", str(work / "base.jsonl"), "--out", "e", "--no-verbose", cwd=tmp_path)
    assert r.returncode == 0 and "cross-validation" not in r.stderr and "%|" not in r.stderr, r.stderr
    r = hotline("retrain", "--base-data", str(work / "base.jsonl"), "--new-data", str(work / "new.jsonl"), "--test-data",
                str(work / "test.jsonl"), "--out", "c", "--no-verbose", cwd=tmp_path)
    assert r.returncode == 0 and "%|" not in r.stderr and "INFO" not in r.stderr, r.stderr


def test_rollback_twice_changes_nothing_the_second_time(work, tmp_path):
    models = tmp_path / "models"
    r = hotline("train", "--data", str(work / "renamed.jsonl"), "--channel-column", "channel", "--out", "older", "--no-verbose", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    older = reg.promote(tmp_path / "older", models).name
    newer = reg.promote(work / "m", models).name
    r = hotline("rollback", cwd=tmp_path)
    assert r.returncode == 0 and f"current was {newer}, now {older}" in r.stdout
    r = hotline("rollback", cwd=tmp_path)
    assert r.returncode == 0 and "already rolled back" in r.stdout and "nothing changed" in r.stdout, r.stdout
    assert f"--to {newer}" in r.stdout and reg.read_pointer(models, reg.CURRENT) == older
    r = hotline("rollback", "--to", newer, cwd=tmp_path)
    assert r.returncode == 0 and reg.read_pointer(models, reg.CURRENT) == newer


def test_models_keeps_validation_and_test_numbers_in_their_own_columns(work, tmp_path):
    models = tmp_path / "models"
    name = reg.promote(work / "m", models).name
    r = hotline("models", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    table = [l for l in r.stdout.splitlines() if l.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    row = dict(zip(header, [c.strip() for c in next(l for l in table if name in l).strip("|").split("|")]))
    m = json.loads((work / "m" / "metrics.json").read_text(encoding="utf-8"))
    assert row["validation macro-F1"] == f"{m['validation_out_of_fold']['department']['macro_f1']:.3f}"
    assert row["test macro-F1"] == f"{m['test']['department']['macro_f1']:.3f}"
    assert row["validation 110 recall"] == f"{m['validation_out_of_fold']['channel']['110_recall']:.3f}"
    assert row["test 110 recall"] == f"{m['test']['channel']['110_recall']:.3f}" and row["test set"] == "test.jsonl"
    assert "validation: the training data's out-of-fold predictions" in r.stdout
