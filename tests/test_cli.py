"""The `hotline` command end to end, through a real subprocess as a user would run it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import tiny_rows, write_csv, write_jsonl

ROOT = Path(__file__).resolve().parents[1]


def hotline(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, "HOTLINE_REGISTRY_DIR": str(cwd / "models"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "serve.cli", *args], cwd=cwd, env={**e, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    rows = tiny_rows()
    write_csv(d / "tickets.csv", [{"诉求内容": r["text"], "处置单位": r["department"]} for r in rows], encoding="gb18030")
    held_out = [{"text": "楼下有人打架了", "department": "police_public_order"}, {"text": "家里停电了", "department": "utilities"}]
    write_jsonl(d / "test.jsonl", held_out)
    write_jsonl(d / "test_cn.jsonl", [{"诉求内容": r["text"], "处置单位": r["department"]} for r in held_out])
    return d


def test_help_for_every_command(workdir):
    for cmd in ["train", "predict", "evaluate", "serve", "build-default", "corpus"]:
        r = hotline(cmd, "--help", cwd=workdir)
        assert r.returncode == 0 and "Usage" in r.stdout, cmd


def test_train_predict_evaluate_end_to_end(workdir):
    r = hotline("train", "--data", "tickets.csv", "--text-column", "诉求内容", "--label-column", "处置单位", "--out", "m", "--test-data", "test_cn.jsonl", cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert "saved linear-" in r.stdout and "validation (out-of-fold)" in r.stdout and "test:" in r.stdout
    # The operating point is shown, not set silently: the 110 threshold and review budget trade-offs.
    assert "operating points" in r.stdout and "(chosen)" in r.stdout and "review budget" in r.stdout
    assert "Operating points" in (workdir / "m" / "README.md").read_text(encoding="utf-8")
    assert "no channel information" not in r.stderr
    write_csv(workdir / "in.csv", [{"id": "7", "text": "楼道里有人打架", "备注": "夜班"}, {"id": "8", "text": "我家车被堵了", "备注": ""}])
    r = hotline("predict", "--model", "m", "--input", "in.csv", "--output", "out.jsonl", cwd=workdir)
    assert r.returncode == 0, r.stderr
    out = [json.loads(l) for l in (workdir / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [o["id"] for o in out] == ["7", "8"] and out[0]["备注"] == "夜班"
    for key in ("channel", "department", "confidence", "needs_review", "source", "alternatives", "reasons"):
        assert key in out[0]
    assert out[0]["channel"] == "110"
    r = hotline("evaluate", "--model", "m", "--data", "test.jsonl", "--out", "rep", cwd=workdir)
    assert r.returncode == 0, r.stderr
    for f in ("metrics.json", "report.md", "misrouted_110.jsonl", "confusion_department.png", "reliability.png", "coverage.png"):
        assert (workdir / "rep" / f).exists(), f
    assert json.loads((workdir / "rep" / "metrics.json").read_text())["n"] == 2


def test_evaluate_rules_only_and_cross_validation(workdir):
    r = hotline("evaluate", "--rules-only", "--data", "test.jsonl", "--out", "rules", cwd=workdir)
    assert r.returncode == 0 and "110 recall" in r.stdout, r.stderr
    r = hotline("evaluate", "--cv", "3", "--data", "tickets.csv", "--text-column", "诉求内容", "--label-column", "处置单位", "--out", "cv", cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert json.loads((workdir / "cv" / "metrics.json").read_text())["n"] == len(tiny_rows())


def test_bad_input_exits_2_with_a_one_line_reason(workdir):
    r = hotline("train", "--data", "tickets.csv", "--text-column", "内容", "--out", "x", cwd=workdir)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "'诉求内容'" in r.stderr and "Traceback" not in r.stderr
    r = hotline("predict", "--model", "nowhere", "--input", "test.jsonl", "--output", "o.jsonl", cwd=workdir)
    assert r.returncode == 2 and "no config.json" in r.stderr
    (workdir / "bad.jsonl").write_text('{"text": "有人打架", "department": "警察"}\n', encoding="utf-8")
    r = hotline("evaluate", "--rules-only", "--data", "bad.jsonl", cwd=workdir)
    assert r.returncode == 2 and "bad.jsonl:1" in r.stderr and "unknown label" in r.stderr


def test_predict_without_model_uses_rules_and_says_so(workdir):
    r = hotline("predict", "--input", "test.jsonl", "--output", "r.jsonl", cwd=workdir)
    assert r.returncode == 0 and "rules only" in r.stderr
    first = json.loads((workdir / "r.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["source"] in ("override", "rules") and first["channel"] == "110"


def test_rules_only_evaluation_judges_each_rule(workdir):
    r = hotline("evaluate", "--rules-only", "--data", "test.jsonl", "--out", "rules2", cwd=workdir)
    assert r.returncode == 0, r.stderr
    rows = json.loads((workdir / "rules2" / "rules.json").read_text(encoding="utf-8"))
    by_id = {x["rule"]: x for x in rows}
    assert by_id["violence_now"]["fires"] == 1 and by_id["violence_now"]["channel_precision"] == 1.0
    assert by_id["r_utilities"]["fires"] == 1 and by_id["r_utilities"]["department_precision"] == 1.0


def test_corpus_extend_adds_rows_and_names_the_bad_line(workdir, tmp_path):
    import shutil

    from data.corpus import CORPUS_DIR

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("train.jsonl", "test.jsonl", "stats.json"):
        shutil.copy(CORPUS_DIR / name, corpus / name)
    n_train = len((corpus / "train.jsonl").read_text(encoding="utf-8").splitlines())
    test_before = (corpus / "test.jsonl").read_bytes()
    good = [{"text": "我家猫跑隔壁楼顶上下不来了", "channel": "12345", "department": "convenience", "style": "short", "hard": False}]
    write_jsonl(tmp_path / "s_good.jsonl", good)
    r = hotline("corpus", "extend", str(tmp_path / "s_good.jsonl"), "--corpus-dir", str(corpus), cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rows_added"] == 1
    assert len((corpus / "train.jsonl").read_text(encoding="utf-8").splitlines()) == n_train + 1
    assert (corpus / "test.jsonl").read_bytes() == test_before
    write_jsonl(tmp_path / "s_bad.jsonl", good + [{"text": "井盖没了", "channel": "110", "department": "utilities", "style": "short", "hard": True}])
    r = hotline("corpus", "extend", str(tmp_path / "s_bad.jsonl"), "--corpus-dir", str(corpus), cwd=workdir)
    assert r.returncode == 2 and "s_bad.jsonl:2:" in r.stderr and "Traceback" not in r.stderr


def test_predict_writes_the_format_its_output_suffix_names(workdir):
    import csv as _csv

    from openpyxl import load_workbook

    write_csv(workdir / "in2.csv", [{"id": "1", "text": "楼道里有人拿刀砍人"}, {"id": "2", "text": "=1+1 家里停水了"}])
    for suffix in (".csv", ".xlsx", ".jsonl"):
        r = hotline("predict", "--model", "m", "--input", "in2.csv", "--output", f"routed{suffix}", cwd=workdir)
        assert r.returncode == 0, r.stderr
    with open(workdir / "routed.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(_csv.DictReader(f))
    assert [r["id"] for r in rows] == ["1", "2"] and rows[0]["action"] == "110_first" and rows[1]["text"].startswith("'=")
    sheet = load_workbook(workdir / "routed.xlsx").active
    header = [c.value for c in sheet[1]]
    assert "action" in header and sheet.cell(2, header.index("channel") + 1).value == "110"
    assert json.loads((workdir / "routed.jsonl").read_text(encoding="utf-8").splitlines()[0])["action"] == "110_first"
    r = hotline("predict", "--model", "m", "--input", "in2.csv", "--output", "routed.txt", cwd=workdir)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and ".xlsx" in r.stderr and not (workdir / "routed.txt").exists()


def test_predict_skips_and_reports_empty_rows_keeping_order_and_ids(workdir):
    write_csv(workdir / "gaps.csv", [{"id": "a", "text": "家里停水了"}, {"id": "b", "text": "  "}, {"id": "c", "text": "有人拿刀砍人"}])
    r = hotline("predict", "--model", "m", "--input", "gaps.csv", "--output", "gaps.jsonl", cwd=workdir)
    assert r.returncode == 0, r.stderr
    out = [json.loads(l) for l in (workdir / "gaps.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [o["id"] for o in out] == ["a", "c"] and "1 rows skipped (lines 3)" in r.stdout
    r = hotline("predict", "--model", "m", "--input", "gaps.csv", "--output", "x.jsonl", "--text-column", "诉求", cwd=workdir)
    assert r.returncode == 2 and "--text-column to map it" in r.stderr and "--label-column" not in r.stderr


def _readme_command(word: str) -> list[str]:
    """The README's example line for `hotline <word>`, split as a shell would (comments dropped)."""
    import shlex

    line = next(l for l in (ROOT / "README.md").read_text(encoding="utf-8").splitlines() if l.startswith(f"hotline {word} "))
    return shlex.split(line.split("#")[0])[1:]


def test_the_readme_retrain_and_promote_examples_run_as_written(tmp_path):
    """A newcomer's README lines, run in a fresh folder with the shipped corpus and a small ticket export."""
    from openpyxl import Workbook

    (tmp_path / "data").symlink_to(ROOT / "data")
    wb = Workbook()
    ws = wb.active
    ws.append(["text", "department"])
    for r in tiny_rows():
        ws.append([r["text"], r["department"]])
    wb.save(tmp_path / "tickets.xlsx")
    retrain = _readme_command("retrain")
    assert "tickets.xlsx" in retrain and "challengers/next" in retrain
    r = hotline(*retrain, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = hotline(*_readme_command("promote"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    assert (tmp_path / "models" / "CURRENT").exists()
    # One rule for both commands: nothing is trained into the registry.
    r = hotline("train", "--data", "tickets.xlsx", "--out", "models/mine", cwd=tmp_path)
    assert r.returncode == 2 and "inside the model registry" in r.stderr


def test_train_help_groups_the_transformer_options_and_the_rejected_ones_are_gone(workdir):
    """Issue 20: `hotline train --help` puts the options only --model transformer reads under their own
    heading; the options the benchmarks rejected (--teacher, --count-override, its --rules) are refused."""
    r = hotline("train", "--help", cwd=workdir, env={"COLUMNS": "200", "TERM": "dumb"})
    assert r.returncode == 0, r.stderr
    import re

    general_text, _, transformer_text = r.stdout.partition("transformer (--model transformer)")
    assert transformer_text, r.stdout

    def options(text):  # the option each help line names first
        return {m.group(1) for m in re.finditer(r"^[│|\s*]*(--[a-z0-9-]+)", text, re.M)}

    general, transformer = options(general_text), options(transformer_text)
    for option in ("--base-model", "--param", "--int8-min-agreement"):
        assert option in transformer and option not in general
    for option in ("--data", "--out", "--target-110-recall", "--review-budget"):
        assert option in general and option not in transformer
    for gone in ("--teacher", "--count-override", "--rules"):
        assert gone not in r.stdout
    data = write_jsonl(workdir / "tiny-gone.jsonl", tiny_rows())
    r = hotline("train", "--data", str(data), "--out", str(workdir / "never"), "--count-override", cwd=workdir)
    assert r.returncode == 2 and "--count-override" in r.stderr and not (workdir / "never").exists()
