"""Bad input gets a 4xx with a clear message, never a stack trace, and changes nothing."""
from __future__ import annotations

import json

import pytest

LIMIT, BATCH = 50, 3


@pytest.fixture(scope="module")
def strict(start_server, tiny_model_dir):
    srv = start_server(model_dir=tiny_model_dir, max_text_chars=LIMIT, max_batch=BATCH)
    srv.client.post("/v1/route", json={"text": "家里停水了", "call_id": "known-1"})  # for feedback cases
    return srv


J = {"content-type": "application/json"}
CASES = [
    # (name, path, raw body, headers, status, words the message must contain)
    ("empty text", "/v1/route", {"text": ""}, J, 422, ["text", "empty"]),
    ("whitespace text", "/v1/route", {"text": " \n\t　 "}, J, 422, ["text", "empty"]),
    ("text over the limit", "/v1/route", {"text": "停" * (LIMIT + 1)}, J, 422, [str(LIMIT + 1), str(LIMIT)]),
    ("text is a number", "/v1/route", {"text": 12345}, J, 422, ["text", "string"]),
    ("text is null", "/v1/route", {"text": None}, J, 422, ["text"]),
    ("text is a list", "/v1/route", {"text": ["有人打架"]}, J, 422, ["text"]),
    ("text missing", "/v1/route", {"call_id": "x"}, J, 422, ["text", "required"]),
    ("unknown field", "/v1/route", {"text": "有人打架", "txt": "x"}, J, 422, ["txt", "unknown"]),
    ("bad received_on", "/v1/route", {"text": "有人打架", "received_on": "119"}, J, 422, ["received_on"]),
    ("bad call_id", "/v1/route", {"text": "有人打架", "call_id": "a b<script>"}, J, 422, ["call_id"]),
    ("preview not a bool", "/v1/route", {"text": "有人打架", "preview": "maybe"}, J, 422, ["preview"]),
    ("invalid JSON", "/v1/route", b'{"text": "x",', J, 400, ["JSON"]),
    ("body is a list", "/v1/route", [{"text": "有人打架"}], J, 422, ["object"]),
    ("empty body", "/v1/route", b"", J, 422, ["body"]),
    ("GB18030 body", "/v1/route", json.dumps({"text": "有人打架"}, ensure_ascii=False).encode("gb18030"), J, 400, ["UTF-8"]),
    ("not JSON content type", "/v1/route", b'{"text": "x"}', {"content-type": "text/plain"}, 415, ["application/json"]),
    ("form content type", "/v1/route", b"text=x", {"content-type": "application/x-www-form-urlencoded"}, 415, ["application/json"]),
    ("batch too large", "/v1/route/batch", {"items": [{"text": "有人打架"}] * (BATCH + 1)}, J, 413, [str(BATCH + 1), str(BATCH)]),
    ("empty batch", "/v1/route/batch", {"items": []}, J, 422, ["items"]),
    ("batch item too long", "/v1/route/batch", {"items": [{"text": "有人打架"}, {"text": "停" * (LIMIT + 1)}]}, J, 422, ["items[1].text"]),
    ("batch item blank", "/v1/route/batch", {"items": [{"text": "有人打架"}, {"text": "  "}]}, J, 422, ["items[1].text"]),
    ("batch not a list", "/v1/route/batch", {"items": "有人打架"}, J, 422, ["items"]),
    ("body over the byte limit", "/v1/route/batch", {"items": [{"text": "停" * LIMIT}] * (BATCH * 40)}, J, 413, ["limit"]),
    ("feedback bad channel", "/v1/feedback", {"call_id": "known-1", "final_channel": "911", "final_department": "utilities"}, J, 422, ["final_channel"]),
    ("feedback unknown department", "/v1/feedback", {"call_id": "known-1", "final_channel": "12345", "final_department": "水务局"}, J, 422, ["水务局", "known"]),
    ("feedback unknown call", "/v1/feedback", {"call_id": "never-routed", "final_channel": "12345", "final_department": "utilities"}, J, 404, ["never-routed"]),
    ("feedback missing fields", "/v1/feedback", {"call_id": "known-1"}, J, 422, ["final_channel", "final_department"]),
]


@pytest.mark.parametrize("name,path,body,headers,status,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_clearly_and_changes_nothing(strict, name, path, body, headers, status, words):
    before_rows = strict.counts()
    before_routes = strict.client.get("/metrics").text.count("hotline_routes_total{")
    routes_total = sum(float(l.rsplit(" ", 1)[1]) for l in strict.client.get("/metrics").text.splitlines() if l.startswith("hotline_routes_total{"))
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
    r = strict.client.post(path, content=raw, headers=headers)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail
    for w in words:
        assert w in detail, (w, detail)
    assert "Traceback" not in r.text and 'File "' not in r.text
    assert strict.counts() == before_rows
    after = sum(float(l.rsplit(" ", 1)[1]) for l in strict.client.get("/metrics").text.splitlines() if l.startswith("hotline_routes_total{"))
    assert after == routes_total and before_routes >= 1


def test_the_limit_itself_is_accepted(strict):
    r = strict.client.post("/v1/route", json={"text": "停" * LIMIT})
    assert r.status_code == 200
    r = strict.client.post("/v1/route/batch", json={"items": [{"text": "有人打架"}] * BATCH})
    assert r.status_code == 200 and len(r.json()["items"]) == BATCH


def test_validation_errors_do_not_echo_the_text(strict):
    r = strict.client.post("/v1/route", json={"text": "电话13812345678", "unexpected": "电话13812345678"})
    assert r.status_code == 422 and "13812345678" not in r.text


def test_unknown_paths_and_methods_are_json_errors(strict):
    assert strict.client.get("/v1/nope").status_code == 404
    r = strict.client.get("/v1/route")
    assert r.status_code == 405 and isinstance(r.json()["detail"], str)
