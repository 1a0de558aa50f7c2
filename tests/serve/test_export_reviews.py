"""`hotline export-reviews`: decided reviews and contradicting feedback as labelled, masked rows, in
JSONL and CSV, that `hotline retrain --new-data` accepts."""
from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from data.loading import load_records
from model.router import Alternative, Decision
from serve.cli import app
from serve.db import Database
from serve.reviews_store import EXPORT_COLUMNS, decide_review, list_reviews
from serve.store import RoutedText, record_feedback, record_routes
from tests.factories import tiny_rows, write_jsonl

PHONE = "13812345678"


def decision(department: str, channel: str, needs_review: bool = True) -> Decision:
    return Decision(
        channel=channel, department=department, department_name=department, confidence=0.4, channel_confidence=0.8,
        needs_review=needs_review, source="model", reasons=["模型判断"], alternatives=[Alternative("convenience", "便民求助", "12345", 0.2)],
        links=[], model_version="tiny-test", danger=False, matched_rules=[], model_department=department,
    )


def run_cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A database holding every kind of case; returns (url, the label each exported call must get)."""
    d = tmp_path_factory.mktemp("export")
    url = f"sqlite:///{d / 'h.db'}"
    db = Database(url)
    calls = {
        "c1": (f"来电人{PHONE}说小区水管爆了到处是水", decision("convenience", "12345")),       # corrected -> utilities
        "c2": ("有人在网上冒充客服骗走两万元", decision("police_criminal", "110")),               # confirmed
        "c3": ("门口的车挡住出口了", decision("convenience", "12345")),                          # stays pending
        "c4": ("家里的燃气没了打不着火", decision("utilities", "12345", needs_review=False)),      # agreeing feedback
        "c5": ("停车场有人砸车偷东西", decision("convenience", "12345", needs_review=False)),      # contradicting feedback
        "c6": ("楼下饭店有人喝醉了打人", decision("police_criminal", "110")),                     # feedback, then supervisor
        "c7": ("车钥匙锁在车里了", decision("police_criminal", "110")),                         # decided, re-opened, changed
    }
    with db.session() as s:
        record_routes(s, items=[RoutedText(t, dec, cid) for cid, (t, dec) in calls.items()] + [RoutedText("楼道里两个人扭打起来", decision("utilities", "12345"))])
    with db.session() as s:
        record_feedback(s, call_id="c4", final_channel="12345", final_department="utilities")
    with db.session() as s:
        record_feedback(s, call_id="c5", final_channel="110", final_department="police_criminal", operator="A017")
    with db.session() as s:
        record_feedback(s, call_id="c6", final_channel="12345", final_department="convenience")
    with db.session() as s:
        items = list_reviews(s, status="pending", limit=100).items
    by = {(i.call_id, i.trigger): i.id for i in items}
    decisions = [
        (by[("c1", "needs_review")], dict(decision="correct", channel="12345", department="utilities")),
        (by[("c2", "needs_review")], dict(decision="confirm")),
        (by[("c6", "feedback")], dict(decision="correct", channel="110", department="police_public_order")),
        (by[("c7", "needs_review")], dict(decision="confirm")),
        (by[(None, "needs_review")], dict(decision="correct", channel="110", department="police_public_order")),
        (by[("c7", "needs_review")], dict(decision="correct", channel="12345", department="convenience", reopen=True)),
    ]
    for rid, kw in decisions:
        with db.session() as s:
            decide_review(s, review_id=rid, decided_by="S003 supervisor key#0000", **kw)
    db.dispose()
    expected = {
        "c1": ("utilities", "12345", "review"), "c2": ("police_criminal", "110", "review"), "c5": ("police_criminal", "110", "feedback"),
        "c6": ("police_public_order", "110", "review"), "c7": ("convenience", "12345", "review"), None: ("police_public_order", "110", "review"),
    }
    return url, expected


def test_export_jsonl_and_csv_hold_the_decided_labels_masked(seeded, tmp_path):
    url, expected = seeded
    out = {}
    for suffix in ("jsonl", "csv"):
        path = tmp_path / f"reviews.{suffix}"
        r = run_cli("export-reviews", "--out", str(path), "--database-url", url)
        assert r.exit_code == 0, r.output
        assert "wrote 6 labelled rows" in r.stdout and "5 from decided reviews, 1 from contradicting feedback" in r.stdout
        if suffix == "jsonl":
            out[suffix] = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        else:
            with open(path, encoding="utf-8-sig", newline="") as f:
                out[suffix] = [{k: (v or None) for k, v in row.items()} for row in csv.DictReader(f)]
    rows = out["jsonl"]
    assert list(rows[0]) == EXPORT_COLUMNS
    assert {r["call_id"]: (r["department"], r["channel"], r["source"]) for r in rows} == expected
    assert all(PHONE not in r["text"] for r in rows) and any("[手机号]" in r["text"] for r in rows)
    stamps = [r["decided_at"] for r in rows]
    assert stamps == sorted(stamps, reverse=True)  # newest first: retrain keeps the first of equal texts
    assert all((r["source"] == "review") == (r["review_id"] is not None) for r in rows)
    assert [(r["text"], r["department"], str(r["review_id"] or "")) for r in out["csv"]] == [(r["text"], r["department"], str(r["review_id"] or "")) for r in rows]
    for path in (tmp_path / "reviews.jsonl", tmp_path / "reviews.csv"):  # the loader retrain uses reads both
        loaded = load_records(path, channel_column="channel")
        assert [(x.department, x.channel) for x in loaded.records] == [(r["department"], r["channel"]) for r in rows] and not loaded.errors


def test_retrain_accepts_the_export(seeded, tmp_path, tiny_model_dir):
    url, expected = seeded
    export = tmp_path / "reviews.jsonl"
    assert run_cli("export-reviews", "--out", str(export), "--database-url", url).exit_code == 0
    assert run_cli("export-reviews", "--out", str(tmp_path / "reviews.csv"), "--database-url", url).exit_code == 0
    base = write_jsonl(tmp_path / "base.jsonl", tiny_rows())
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": "我的电瓶车被偷了", "department": "police_criminal"}, {"text": "家里停电了", "department": "utilities"},
                                                 {"text": "饭店里有人喝多了打人", "department": "police_public_order"}, {"text": "钥匙丢了需要开锁", "department": "convenience"}])
    out = tmp_path / "challenger"
    r = run_cli("retrain", "--base-data", str(base), "--new-data", str(export), "--new-data", str(tmp_path / "reviews.csv"),
                "--test-data", str(test), "--out", str(out), "--champion", str(tiny_model_dir), "--registry", str(tmp_path / "models"), "--no-verbose")
    assert r.exit_code == 0, r.output
    merge = json.loads((out / "comparison.json").read_text(encoding="utf-8"))["merge"]
    assert merge["new_rows"] == 2 * len(expected) and merge["duplicates_in_new"] == len(expected) and merge["new_bad_rows_skipped"] == 0
    trained = [json.loads(line) for line in (out / "training_set.jsonl").read_text(encoding="utf-8").splitlines()]
    new = {t["text"]: t["department"] for t in trained if t["origin"] == "new"}
    assert len(new) == len(expected) and "utilities" in new.values() and all(PHONE not in t for t in new)


def test_export_errors_are_one_line(tmp_path):
    r = run_cli("export-reviews", "--out", str(tmp_path / "x.xlsx"), "--database-url", f"sqlite:///{tmp_path / 'h.db'}")
    assert r.exit_code == 2 and "use .jsonl or .csv" in r.stderr and r.stderr.count("\n") == 1
    r = run_cli("export-reviews", "--out", str(tmp_path / "x.jsonl"), "--database-url", "postgresql://nobody:secret@127.0.0.1:1/none")
    assert r.exit_code == 2 and "unreachable" in r.stderr and "secret" not in r.stderr
    r = run_cli("export-reviews", "--out", str(tmp_path / "x.jsonl"), "--database-url", f"sqlite:///{tmp_path / 'empty.db'}")
    assert r.exit_code == 2 and "cannot read the review queue" in r.stderr and not (tmp_path / "x.jsonl").exists()
    r = run_cli("export-reviews", "--help")
    assert r.exit_code == 0 and "--database-url" in r.stdout


def test_csv_cells_that_a_spreadsheet_would_run_are_escaped(tmp_path):
    import csv as _csv

    from data.export import spreadsheet_safe
    from serve.reviews_store import write_labelled_rows

    evil = ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "＝1+1", "\t=1+1", "  =1+1", "\r=1"]
    for v in evil:
        assert spreadsheet_safe(v).startswith("'"), v
    assert spreadsheet_safe("家里停水了") == "家里停水了" and spreadsheet_safe(3) == 3
    rows = [{"text": v, "department": "utilities", "channel": "12345", "source": "review"} for v in evil]
    out = write_labelled_rows(rows, tmp_path / "x.csv")
    with open(out, encoding="utf-8-sig", newline="") as f:
        cells = [r["text"] for r in _csv.DictReader(f)]
    assert cells == ["'" + v for v in evil]
