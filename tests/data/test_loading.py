from __future__ import annotations

import json

import pytest

from data.loading import DataError, describe_input, load_many, load_records
from data.taxonomy import default_taxonomy
from tests.factories import tiny_rows, write_csv, write_jsonl

ROWS = [
    {"工单编号": "A1", "诉求内容": "小区门口有人打架", "处置单位": "police_public_order"},
    {"工单编号": "A2", "诉求内容": "家里停水了", "处置单位": "utilities"},
]


def test_csv_utf8_with_column_mapping(tmp_path):
    path = write_csv(tmp_path / "t.csv", ROWS)
    res = load_records(path, text_column="诉求内容", label_column="处置单位", id_column="工单编号", taxonomy=default_taxonomy())
    assert [r.department for r in res.records] == ["police_public_order", "utilities"]
    assert [r.channel for r in res.records] == ["110", "12345"]
    assert res.records[0].id == "A1" and res.records[0].line == 2


def test_csv_gb18030_detected(tmp_path):
    path = write_csv(tmp_path / "t.csv", ROWS, encoding="gb18030")
    res = load_records(path, text_column="诉求内容", label_column="处置单位")
    assert res.records[1].text == "家里停水了"


def test_csv_utf8_bom(tmp_path):
    path = write_csv(tmp_path / "t.csv", ROWS, encoding="utf-8-sig")
    assert len(load_records(path, text_column="诉求内容", label_column="处置单位").records) == 2


def test_undecodable_line_is_reported_with_its_line(tmp_path):
    path = tmp_path / "mixed.csv"
    good = "text,department\n有人打架,police_public_order\n停水了,utilities\n".encode("utf-8")
    bad = b"\xff\xfe\xfa broken,utilities\n"
    path.write_bytes(good + bad + "停电了,utilities\n".encode("utf-8"))
    with pytest.raises(DataError) as exc:
        load_records(path)
    assert "mixed.csv:4" in str(exc.value) and "undecodable" in str(exc.value)
    res = load_records(path, strict=False)
    assert len(res.records) == 3 and [e.line for e in res.errors] == [4]


def test_wrong_column_lists_the_columns(tmp_path):
    path = write_csv(tmp_path / "t.csv", ROWS)
    with pytest.raises(DataError) as exc:
        load_records(path, text_column="内容", label_column="处置单位")
    msg = str(exc.value)
    assert "'内容'" in msg and "'诉求内容'" in msg and "'工单编号'" in msg


@pytest.mark.parametrize(
    "row, kind, fragment",
    [
        ({"text": "   ", "department": "utilities"}, "empty", "empty"),
        ({"text": "停水了", "department": ""}, "missing_label", "missing label"),
        ({"text": "停水了", "department": "water_bureau"}, "unknown_label", "unknown label 'water_bureau'"),
    ],
)
def test_bad_rows_strict_and_lenient(tmp_path, row, kind, fragment):
    rows = [{"text": "有人打架", "department": "police_public_order"}, row]
    path = write_csv(tmp_path / "t.csv", rows)
    with pytest.raises(DataError) as exc:
        load_records(path, taxonomy=default_taxonomy())
    assert "t.csv:3" in str(exc.value) and fragment in str(exc.value)
    res = load_records(path, taxonomy=default_taxonomy(), strict=False)
    assert len(res.records) == 1
    assert [(e.line, e.kind) for e in res.errors] == [(3, kind)]
    assert "1 bad rows skipped" in res.error_summary()


def test_duplicates_and_conflicting_labels(tmp_path):
    rows = [
        {"text": "有人打架", "department": "police_public_order"},
        {"text": "有人打架。", "department": "police_public_order"},
        {"text": "有人 打架", "department": "utilities"},
    ]
    # One policy: neither is a bad row (strict loading does not fail); both are dropped and reported.
    res = load_records(write_csv(tmp_path / "d.csv", rows), strict=True)
    assert len(res.records) == 1 and res.errors == []
    assert [(e.line, e.message) for e in res.duplicates] == [(3, "duplicate of line 2")]
    assert [e.line for e in res.conflicts] == [4] and "another label ('utilities'; line 2 has 'police_public_order')" in res.conflicts[0].message
    report = res.input_report()
    assert (report["exact_duplicates_dropped"], report["label_conflicts_dropped"]) == (1, 1)
    lines = describe_input(report)
    assert lines[0].startswith("1 exact duplicate row dropped") and lines[0].endswith("d.csv:3")
    assert "d.csv:4: same text as line 2" in lines[1] and "'police_public_order' kept" in lines[1]


def test_malformed_csv_row_says_which_line(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("text,department\n有人打架,police_public_order\n停水了,utilities,extra\n", encoding="utf-8")
    res = load_records(path, strict=False)
    assert res.errors[0].line == 3 and "expected 2 fields" in res.errors[0].message


def test_jsonl_bad_json_and_non_object(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "停水了", "department": "utilities"}\n{"text": oops}\n[1, 2]\n', encoding="utf-8")
    res = load_records(path, strict=False)
    assert len(res.records) == 1
    assert [(e.line, e.kind) for e in res.errors] == [(2, "malformed"), (3, "malformed")]
    assert "not valid JSON" in res.errors[0].message


def test_excel(tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["诉求内容", "处置单位", "来源"])
    ws.append(["小区停电了", "utilities", "热线"])
    ws.append([None, "utilities", "热线"])
    ws.append(["车被堵了", "convenience", "网站"])
    wb.save(tmp_path / "t.xlsx")
    res = load_records(tmp_path / "t.xlsx", text_column="诉求内容", label_column="处置单位", strict=False)
    assert [r.text for r in res.records] == ["小区停电了", "车被堵了"]
    assert res.records[1].extra == {"来源": "网站"} and res.records[1].line == 4
    assert res.errors[0].line == 3


def test_broken_excel_file(tmp_path):
    (tmp_path / "b.xlsx").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .xlsx"):
        load_records(tmp_path / "b.xlsx")


def test_hf_dataset():
    from datasets import Dataset

    ds = Dataset.from_list([{"content": "有人打架", "label": "police_public_order"}, {"content": "", "label": "utilities"}])
    res = load_records(ds, text_column="content", label_column="label", strict=False)
    assert len(res.records) == 1 and res.errors[0].line == 2


def test_channel_column_normalised_and_checked(tmp_path):
    rows = [
        {"text": "有人打架", "department": "police_public_order", "handled_by_police": "yes"},
        {"text": "停水了", "department": "utilities", "handled_by_police": "yes"},
        {"text": "停电了", "department": "utilities", "handled_by_police": "maybe"},
    ]
    res = load_records(write_csv(tmp_path / "c.csv", rows), channel_column="handled_by_police", taxonomy=default_taxonomy(), strict=False)
    assert len(res.records) == 1 and res.records[0].channel == "110"
    assert "contradicts" in res.errors[0].message and "cannot read 'maybe'" in res.errors[1].message


def test_unsupported_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_records(tmp_path / "nope.csv")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="unsupported file type"):
        load_records(tmp_path / "x.txt")


def test_load_many_deduplicates_across_files(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", tiny_rows()[:5])
    b = write_jsonl(tmp_path / "b.jsonl", tiny_rows()[3:8])
    res = load_many([a, b])
    assert len(res.records) == 8 and res.errors == [] and len(res.duplicates) == 2 and "duplicate of" in res.duplicates[0].message
    c = write_jsonl(tmp_path / "c.jsonl", [{**tiny_rows()[0], "department": "utilities"}])
    res = load_many([a, c])
    assert len(res.records) == 5 and res.conflicts[0].line == 1 and "a.jsonl:1" in res.conflicts[0].message


def test_max_chars(tmp_path):
    path = write_jsonl(tmp_path / "l.jsonl", [{"text": "长" * 50, "department": "utilities"}])
    res = load_records(path, max_chars=10, strict=False)
    assert res.errors[0].kind == "too_long"
