"""Input no database stores and no reader sees is refused at the edge with a 422 naming the field,
and never costs another item's record (issue 17, items 4, 7 and 8)."""
from __future__ import annotations

import pytest

SURROGATE = "家里停水了\ud800"


def raw_post(server, path: str, body: str, **headers):
    """POST a JSON body as written (json.dumps escapes a lone surrogate as \\ud800, as a client would)."""
    return server.client.post(path, content=body.encode("utf-8"), headers={"Content-Type": "application/json", **headers})


@pytest.mark.parametrize("bad,why", [("\\ud800", "surrogate"), ("\\u0000", "U+0000"), ("\\u0007", "U+0007")])
def test_bad_characters_in_text_are_a_422_naming_the_field(server, bad, why):
    r = raw_post(server, "/v1/route", '{"text": "家里停水了' + bad + '"}')
    assert r.status_code == 422 and "text" in r.json()["detail"] and why in r.json()["detail"]


def test_one_bad_item_in_a_batch_refuses_the_batch_and_stores_nothing_half(server):
    before = server.counts()
    body = '{"items": [{"text": "家里停水了", "call_id": "edge-ok"}, {"text": "停电了\\u0000", "call_id": "edge-bad"}]}'
    r = raw_post(server, "/v1/route/batch", body)
    assert r.status_code == 422 and "items[1].text" in r.json()["detail"]
    assert server.counts() == before


@pytest.mark.parametrize("field", ["operator"])
def test_bad_characters_in_feedback_fields_are_a_422(server, field):
    server.client.post("/v1/route", json={"text": "家里停水了", "call_id": "edge-fb"})
    body = '{"call_id": "edge-fb", "final_channel": "12345", "final_department": "utilities", "%s": "A\\u0000"}' % field
    r = raw_post(server, "/v1/feedback", body)
    assert r.status_code == 422 and field in r.json()["detail"]


@pytest.mark.parametrize("text", ["\u200b\u200b", "\ufeff", "\u0301\u0301", "。，、", "   ", "\u2060"])
def test_content_free_texts_are_refused(server, text):
    r = server.client.post("/v1/route", json={"text": text})
    assert r.status_code == 422 and "text" in r.json()["detail"]


@pytest.mark.parametrize("path", ["/v1/reviews/9223372036854775808", "/v1/reviews/2147483648", "/v1/reviews?offset=9223372036854775808",
                                  "/v1/reviews?offset=1e19", "/v1/reviews?department=a%00b", "/v1/reviews/0"])
def test_huge_ids_offsets_and_nul_filters_are_a_422(server, path):
    r = server.client.get(path)
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("call_id", ["13812345678", "8613812345678", "320102198705061234"])
def test_a_phone_or_id_number_as_call_id_is_refused(server, call_id):
    r = server.client.post("/v1/route", json={"text": "家里停水了", "call_id": call_id})
    assert r.status_code == 422 and "call_id" in r.json()["detail"] and call_id not in r.text


def test_an_operator_is_stored_masked(server):
    server.client.post("/v1/route", json={"text": "家里停水了", "call_id": "edge-op"})
    r = server.client.post("/v1/feedback", json={"call_id": "edge-op", "final_channel": "110", "final_department": "police_criminal", "operator": "13812345678"})
    assert r.status_code == 201
    from serve.db import Feedback

    with server.app.state.db.session() as s:
        assert s.query(Feedback).filter_by(call_id="edge-op").one().operator == "[手机号]"


@pytest.mark.postgres
def test_on_postgresql_nul_and_surrogates_are_refused_before_the_database(pg_schema, start_server, tiny_model_dir):
    _, url = pg_schema
    srv = start_server(model_dir=tiny_model_dir, database_url=url)
    try:
        assert raw_post(srv, "/v1/route", '{"text": "家里停水了\\u0000", "call_id": "pg-nul"}').status_code == 422
        assert raw_post(srv, "/v1/route", '{"text": "家里停水了\\ud800", "call_id": "pg-sur"}').status_code == 422
        ok = srv.client.post("/v1/route", json={"text": "家里停水了", "call_id": "pg-ok"})
        assert ok.status_code == 200
        fb = raw_post(srv, "/v1/feedback", '{"call_id": "pg-ok", "final_channel": "110", "final_department": "police_criminal", "operator": "A\\u0000"}')
        assert fb.status_code == 422 and "operator" in fb.json()["detail"]
        assert srv.client.get("/v1/reviews?department=a%00b").status_code == 422
        assert srv.client.get("/v1/reviews").status_code == 200
    finally:
        srv.stop()
