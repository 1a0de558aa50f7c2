"""POST /v1/feedback over real HTTP, and what it leaves in the database."""
from __future__ import annotations

import time

from sqlalchemy import select

from serve.db import Feedback, ReviewItem
from tests.factories import TINY


def _route(srv, text, call_id):
    r = srv.client.post("/v1/route", json={"text": text, "call_id": call_id})
    assert r.status_code == 200
    return r.json()


def test_agreeing_feedback_is_stored_and_not_queued(server):
    d = _route(server, TINY["utilities"][1], "fb-agree")
    before = server.counts()
    r = server.client.post("/v1/feedback", json={"call_id": "fb-agree", "final_channel": d["channel"], "final_department": d["department"], "operator": "A017"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["agrees_with_suggestion"] and not body["queued_for_review"] and body["review_id"] is None
    after = server.counts()
    assert after["feedback"] == before["feedback"] + 1 and after["review_items"] == before["review_items"]
    with server.app.state.db.session() as s:
        fb = s.get(Feedback, body["id"])
    assert fb.operator == "A017" and fb.suggested_department == d["department"] and fb.text_masked


def test_contradicting_feedback_enters_the_review_queue(server):
    text = "手机号13912345678的来电人说家里停电了"
    d = _route(server, text, "fb-contra")
    other = next(dep for dep in ("police_criminal", "convenience") if dep != d["department"])
    channel = "110" if other.startswith("police") else "12345"
    r = server.client.post("/v1/feedback", json={"call_id": "fb-contra", "final_channel": channel, "final_department": other})
    assert r.status_code == 201
    body = r.json()
    assert not body["agrees_with_suggestion"] and body["queued_for_review"]
    assert (body["suggested_channel"], body["suggested_department"]) == (d["channel"], d["department"])
    with server.app.state.db.session() as s:
        item = s.get(ReviewItem, body["review_id"])
        fbs = s.scalars(select(Feedback).where(Feedback.call_id == "fb-contra")).all()
    assert item.trigger == "feedback" and item.status == "pending"
    assert (item.department, item.feedback_department, item.feedback_channel) == (d["department"], other, channel)
    assert "13912345678" not in item.text_masked and "[手机号]" in item.text_masked
    assert item.model_version == d["model_version"] and item.alternatives == d["alternatives"]
    assert len(fbs) == 1 and "13912345678" not in fbs[0].text_masked
    assert server.metric("hotline_review_items_total", trigger="feedback") >= 1


def test_feedback_follows_the_latest_final_routing(server):
    _route(server, TINY["utilities"][0], "fb-twice")
    d2 = _route(server, TINY["police_criminal"][0], "fb-twice")  # the call-taker re-routed the same call
    r = server.client.post("/v1/feedback", json={"call_id": "fb-twice", "final_channel": d2["channel"], "final_department": d2["department"]})
    assert r.json()["agrees_with_suggestion"]


def test_the_same_feedback_sent_again_is_stored_once(server):
    server.client.post("/v1/route", json={"text": "家里停水了", "call_id": "fb-idem"})
    body = {"call_id": "fb-idem", "final_channel": "110", "final_department": "police_criminal"}
    first = server.client.post("/v1/feedback", json=body)
    assert first.status_code == 201 and first.json()["queued_for_review"]
    before = server.counts()
    again = [server.client.post("/v1/feedback", json=body) for _ in range(4)]
    assert all(r.status_code == 200 and r.json()["id"] == first.json()["id"] and r.json()["review_id"] == first.json()["review_id"] for r in again)
    assert server.counts() == before
    other = server.client.post("/v1/feedback", json={**body, "final_department": "police_public_order"})
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]


def test_feedback_on_a_call_whose_routing_is_still_being_written_waits_for_it(start_server, tiny_model_dir):
    """A slow database: the routing is answered before it is stored (db_write_wait_s), and the
    call-taker's feedback that follows at once finds the call once the queued write lands."""
    srv = start_server(model_dir=tiny_model_dir, db_write_wait_s=0.05)
    writer = srv.app.state.writer
    store = writer.store

    def slow_store(items):
        time.sleep(0.6)
        return store(items)

    writer.store = slow_store
    d = _route(srv, TINY["utilities"][1], "fb-slow")
    assert writer.pending  # answered, not yet written
    r = srv.client.post("/v1/feedback", json={"call_id": "fb-slow", "final_channel": d["channel"], "final_department": d["department"]})
    assert r.status_code == 201, r.text
    writer.store = store
    r = srv.client.post("/v1/feedback", json={"call_id": "never-routed", "final_channel": "12345", "final_department": "utilities"})
    assert r.status_code == 404  # nothing pending: no wait
