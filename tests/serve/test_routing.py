"""POST /v1/route and /v1/route/batch over real HTTP."""
from __future__ import annotations

import concurrent.futures as cf

from model.router import Router
from tests.factories import TINY

DANGER = "小区门口有人拿刀砍人，地上有血"


def test_route_gives_the_full_answer(server):
    text = TINY["utilities"][0]
    r = server.client.post("/v1/route", json={"text": text})
    assert r.status_code == 200, r.text
    d = r.json()
    expected = server.app.state.models.current.router.route(text)  # the same router, called directly
    assert (d["channel"], d["department"], d["source"]) == (expected.channel, expected.department, expected.source)
    assert d["department_name"] == expected.department_name and d["department_name"] != d["department"]
    assert d["channel_name"].startswith(d["channel"])
    assert 0 <= d["confidence"] <= 1 and 0 <= d["channel_confidence"] <= 1
    assert d["model_version"] == server.app.state.models.current.version
    assert d["reasons"] and all(isinstance(x, str) for x in d["reasons"])
    assert all(a["department"] != d["department"] for a in d["alternatives"])
    assert d["latency_ms"] > 0 and d["transfer"] is None


def test_danger_override_says_110_first_and_transfers_from_12345(server):
    r = server.client.post("/v1/route", json={"text": DANGER, "received_on": "12345"})
    d = r.json()
    assert r.status_code == 200 and d["channel"] == "110" and d["danger"] and d["police_first"]
    assert any("110" in line and "先行" in line for line in d["advice"])
    t = d["transfer"]
    assert t["from_line"] == "12345" and t["to_line"] == "110" and t["urgent"] and "一键转接" in t["message"]
    assert "120" in [link["number"] for link in d["links"]]  # blood: ambulance


def test_three_outcomes_each_with_one_action(server):
    first = server.client.post("/v1/route", json={"text": DANGER, "received_on": "12345"}).json()
    assert (first["action"], first["action_name"], first["consult"]) == ("110_first", "110 先行", None)
    follow_up = "工单编号20180103138815《关于小区门口有人打架的问题》处理结果不满意"
    consult = server.client.post("/v1/route", json={"text": follow_up, "received_on": "12345"}).json()
    assert (consult["action"], consult["action_name"]) == ("consult", "三方通话") and not consult["police_first"]
    assert consult["consult"]["with_line"] == "110" and consult["transfer"] is None  # the consult decides, not a transfer
    assert consult["advice"][0] == consult["consult"]["message"] and not any("先行" in a for a in consult["advice"])
    on_110 = server.client.post("/v1/route", json={"text": follow_up, "received_on": "110"}).json()
    assert on_110["consult"]["with_line"] == "12345"
    plain = server.client.post("/v1/route", json={"text": TINY["utilities"][0], "received_on": "12345"}).json()
    assert plain["action"] == "route" and plain["consult"] is None and plain["department_confidence"] == plain["confidence"]
    metrics = server.client.get("/metrics").text
    assert 'hotline_route_actions_total{action="consult"}' in metrics


def test_transfer_only_when_the_line_differs(server):
    d110 = server.client.post("/v1/route", json={"text": DANGER, "received_on": 110}).json()
    assert d110["transfer"] is None
    other = next(t for t in TINY["utilities"] if server.app.state.models.current.router.route(t).channel == "12345")
    d = server.client.post("/v1/route", json={"text": other, "received_on": "110"}).json()
    assert d["channel"] == "12345" and d["transfer"]["to_line"] == "12345" and not d["transfer"]["urgent"]
    assert "12345" in d["transfer"]["message"]


def test_batch_answers_in_order_like_single_routes(server):
    texts = [TINY["police_criminal"][0], TINY["convenience"][1], DANGER, TINY["utilities"][2]]
    r = server.client.post("/v1/route/batch", json={"items": [{"text": t} for t in texts]})
    assert r.status_code == 200, r.text
    got = [(i["channel"], i["department"]) for i in r.json()["items"]]
    single = [(d["channel"], d["department"]) for d in (server.client.post("/v1/route", json={"text": t}).json() for t in texts)]
    assert got == single and r.json()["model_version"] == server.app.state.models.current.version


def test_concurrent_requests_get_their_own_answers(server):
    """Dynamic batching must not mix answers up between concurrent requests."""
    texts = [t for dep in TINY.values() for t in dep[:6]]
    expected = {t: server.app.state.models.current.router.route(t).department for t in texts}
    with cf.ThreadPoolExecutor(12) as pool:
        got = list(pool.map(lambda t: (t, server.client.post("/v1/route", json={"text": t, "preview": True}).json()["department"]), texts * 3))
    assert all(dep == expected[t] for t, dep in got)


def test_preview_stores_nothing_final_with_call_id_is_stored(server):
    before = server.counts()
    server.client.post("/v1/route", json={"text": TINY["convenience"][0], "call_id": "prev-1", "preview": True})
    assert server.counts() == before
    r = server.client.post("/v1/route", json={"text": "我车被堵了，车主电话13812345678，车牌苏A12345", "call_id": "final-1"})
    assert r.status_code == 200 and r.json()["call_id"] == "final-1"
    from serve.db import RoutedCall

    with server.app.state.db.session() as s:
        row = s.get(RoutedCall, "final-1")
    assert row is not None and "13812345678" not in row.text_masked and "[手机号]" in row.text_masked and "[车牌]" in row.text_masked


def test_needs_review_routes_enter_the_queue(start_server, tiny_model_dir):
    srv = start_server(model_dir=tiny_model_dir, review_threshold=1.01)  # every model answer is "unsure"
    r = srv.client.post("/v1/route", json={"text": TINY["utilities"][3]})
    assert r.json()["needs_review"] and r.json()["queued_for_review"]
    r2 = srv.client.post("/v1/route", json={"text": TINY["utilities"][3], "preview": True})
    assert r2.json()["needs_review"] and not r2.json()["queued_for_review"]
    assert srv.counts()["review_items"] == 1
    assert srv.metric("hotline_review_items_total", trigger="needs_review") == 1
    assert srv.metric("hotline_low_confidence_ratio") == 1.0


def test_model_exception_falls_back_to_rules_and_is_counted(server):
    router: Router = server.app.state.models.current.router
    clf = router.model.classifier
    real = clf.transform_rows  # the first step of scoring, whichever path the router takes

    def flaky(texts):
        if any("BOOM" in t for t in texts):
            raise RuntimeError("simulated model failure")
        return real(texts)

    before = server.metric("hotline_model_fallbacks_total")
    clf.transform_rows = flaky
    try:
        with cf.ThreadPoolExecutor(4) as pool:  # concurrent: a failing text must not drag its batch-mates down
            futs = [pool.submit(server.client.post, "/v1/route", json={"text": t}) for t in ["BOOM 有人拿刀砍人", TINY["utilities"][0], TINY["convenience"][0]]]
            answers = [f.result() for f in futs]
    finally:
        del clf.transform_rows
    assert all(a.status_code == 200 for a in answers)
    boom, ok1, ok2 = (a.json() for a in answers)
    assert boom["source"] in ("rules", "override") and boom["model_version"] is None and boom["channel"] == "110"
    assert ok1["source"] != "rules" and ok1["model_version"] is not None and ok2["model_version"] is not None
    assert server.metric("hotline_model_fallbacks_total") == before + 1
    assert server.client.get("/health").json()["status"] == "ok"


def test_an_unexpected_error_is_a_json_500_with_a_masked_log(server, caplog):
    import logging

    from serve.logs import JsonFormatter

    rules = server.app.state.models.current.router.rules
    real = rules.matches

    def broken(text):
        raise RuntimeError(f"bug while reading {text}")

    rules.matches = broken
    try:
        with caplog.at_level(logging.ERROR):
            r = server.client.post("/v1/route", json={"text": "来电人电话13812345678说有人打架"})
    finally:
        del rules.matches
    assert rules.matches == real
    assert r.status_code == 500 and r.json()["detail"].startswith("internal error (ref ")
    assert "Traceback" not in r.text and "bug while reading" not in r.text
    logged = "\n".join(JsonFormatter().format(rec) for rec in caplog.records if rec.name.startswith("serve"))
    assert "bug while reading" in logged and "internal error" not in logged and "13812345678" not in logged
    assert server.client.post("/v1/route", json={"text": "家里停水了"}).status_code == 200


def test_a_review_budget_setting_sets_the_review_threshold(start_server, tiny_model_dir):
    import pytest
    from pydantic import ValidationError

    from model.thresholds import review_threshold_for_budget
    from serve.config import Settings

    srv = start_server(model_dir=tiny_model_dir, review_budget=0.4)
    router = srv.app.state.models.current.router
    expected = review_threshold_for_budget(router.model.thresholds["confidence_quantiles"], 0.4)
    assert router.review_threshold == pytest.approx(expected)
    for text in TINY["utilities"][:4] + TINY["convenience"][:4]:
        d = srv.client.post("/v1/route", json={"text": text}).json()
        if d["source"] == "model":
            assert d["needs_review"] == (d["confidence"] < expected)
    with pytest.raises(ValidationError):
        Settings(review_budget=1.5)
