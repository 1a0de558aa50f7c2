"""Closing the loop: `hotline export-reviews` (run as a process) also exports written-back transfer
orders as labelled rows: masked text, the department that actually handled the call, source
write_back; such a row wins over the call-taker's feedback on the same call."""
from __future__ import annotations

from pathlib import Path

from data.loading import load_records
from serve.db import Database
from serve.store import RoutedText, record_feedback, record_routes
from serve.transfers.store import create_order, step
from tests.serve.conftest import run_export_reviews
from tests.serve.test_export_reviews import PHONE, decision

ROOT = Path(__file__).resolve().parents[2]


def _order(db: Database, call_id: str, to_line: str, steps: list[str], handled: str = "utilities") -> None:
    with db.session() as s:
        o, _ = create_order(s, call_id=call_id, from_line="12345" if to_line != "12345" else "110", to_line=to_line, department="police_criminal",
                            urgency="normal", summary=f"来电人{PHONE}称{call_id}家门口燃气管道漏气", decision={}, model_version="tiny", actor="ct", limit_min=60)
    for a in steps:
        with db.session() as s:
            step(s, order_id=o.id, action=a, line=to_line if a != "close" else o.from_line, actor="p",
                 result="燃气公司已关阀维修" if a == "write_back" else None, handled_department=handled if a == "write_back" else None)


def test_written_back_orders_are_exported_as_labelled_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    db = Database(url)
    import serve.transfers.tables  # noqa: F401  (registers the tables)
    db.create_tables()
    with db.session() as s:
        record_routes(s, items=[RoutedText("w1的家门口燃气管道漏气", decision("convenience", "12345", needs_review=False), "w1"),
                                RoutedText("车被堵了", decision("utilities", "12345", needs_review=False), "f1")])
    with db.session() as s:
        record_feedback(s, call_id="w1", final_channel="110", final_department="police_public_order")
    with db.session() as s:
        record_feedback(s, call_id="f1", final_channel="12345", final_department="convenience")
    _order(db, "w1", "110", ["accept", "handle", "write_back"], handled="police_public_order")  # wins over w1's feedback
    _order(db, "w2", "12345", ["accept", "handle", "write_back", "close"])
    _order(db, "w3", "110", ["accept"])  # not written back: no label yet
    _order(db, "w4", "119", ["accept", "handle", "write_back"])  # a line the model does not route to
    db.dispose()

    stdout, rows = run_export_reviews(tmp_path, url)
    assert "wrote 3 labelled rows" in stdout and "1 from contradicting feedback, 2 from written-back transfers" in stdout
    assert {x["call_id"]: (x["department"], x["channel"], x["source"]) for x in rows} == {
        "w1": ("police_public_order", "110", "write_back"), "w2": ("utilities", "12345", "write_back"), "f1": ("convenience", "12345", "feedback")}
    assert all(PHONE not in x["text"] for x in rows) and all("[手机号]" in x["text"] for x in rows if x["source"] == "write_back")
    loaded = load_records(tmp_path / "export.jsonl", channel_column="channel")  # what `hotline retrain --new-data` reads
    assert len(loaded.records) == 3 and not loaded.errors
