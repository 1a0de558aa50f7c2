"""Transfer orders over real HTTP: the life cycle from both sides, every invalid step (409 with the
state), idempotent creation, masking, listing and overdue, partner roles, and the outbox delivering
each notice exactly once to a partner that was down for a while."""
from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from serve.transfers.store import STEPS
from tests.serve.conftest import free_port

CT, SV, P110, P119 = "ct-tr-71c2", "sv-tr-93ad", "p110-tr-4e8b", "p119-tr-0c5f"
KEYS = f"{CT}:call_taker,{SV}:supervisor,{P110}:partner@110,{P119}:partner@119"
SUMMARY = "来电人王先生13812345678称楼下有人持刀打架，身份证320102198705061234"
_ids = itertools.count(1)
RUN = uuid.uuid4().hex[:6].replace("1", "a")  # the call_ids of one run; never a phone-like digit run


def h(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def srv(start_server, tiny_model_dir, tmp_path_factory):
    limits = tmp_path_factory.mktemp("limits") / "limits.json"
    limits.write_text(json.dumps({"110_first": 0.01, "normal": 1440}))
    return start_server(model_dir=tiny_model_dir, api_keys=KEYS, transfer_lines="110,12345,119", transfer_limits_path=limits)


def new_order(srv, *, key=CT, from_line="12345", to_line="110", urgency="normal", **extra) -> dict:
    body = {"call_id": f"tr-{RUN}-{next(_ids)}", "from_line": from_line, "to_line": to_line, "department": "police_criminal",
            "urgency": urgency, "summary": SUMMARY, "decision": {"action": "route", "department": "police_criminal"}, "model_version": "tiny", **extra}
    r = srv.client.post("/v1/transfers", json=body, headers=h(key))
    assert r.status_code == 201, r.text
    return r.json()


def act(srv, order_id: int, action: str, key: str, body: dict | None = None):
    return srv.client.post(f"/v1/transfers/{order_id}/{action}", json=body, headers=h(key))


WRITE_BACK = {"result": "已出警处置，嫌疑人王某已带回，联系电话13812345678", "handled_department": "police_public_order", "operator": "110-0032"}


def test_whole_life_cycle_from_both_sides(srv, caplog):
    caplog.set_level("DEBUG")
    o = new_order(srv, operator="C-017")
    assert o["state"] == "sent" and o["state_name"] == "已派出" and o["allowed_actions"] == []  # the sender waits
    assert "13812345678" not in o["summary"] and "320102198705061234" not in o["summary"] and "[手机号]" in o["summary"]
    seen = srv.client.get(f"/v1/transfers/{o['id']}", headers=h(P110)).json()
    assert sorted(seen["allowed_actions"]) == ["accept", "return"]
    for action, key, body, state in [("accept", P110, {"operator": "110-0032"}, "accepted"), ("handle", P110, None, "handled"),
                                     ("write_back", P110, WRITE_BACK, "written_back"), ("close", CT, {"operator": "C-017"}, "closed")]:
        r = act(srv, o["id"], action, key, body)
        assert r.status_code == 200, r.text
        assert r.json()["state"] == state
    final = srv.client.get(f"/v1/transfers/{o['id']}", headers=h(CT)).json()
    assert final["handled_department"] == "police_public_order" and "13812345678" not in final["result"]
    hist = final["history"]
    assert [(e["seq"], e["action"], e["from_state"], e["to_state"], e["line"]) for e in hist] == [
        (1, "create", None, "sent", "12345"), (2, "accept", "sent", "accepted", "110"), (3, "handle", "accepted", "handled", "110"),
        (4, "write_back", "handled", "written_back", "110"), (5, "close", "written_back", "closed", "12345")]
    assert hist[0]["actor"].startswith("C-017 call_taker key#") and hist[1]["actor"].startswith("110-0032 partner key#")
    assert all(e["at"] for e in hist) and hist[3]["detail"]["handled_department"] == "police_public_order"
    assert CT not in json.dumps(final) and P110 not in json.dumps(final)
    assert "transfer_step" in caplog.text or "transfer step" in caplog.text  # the steps are logged …
    assert "13812345678" not in caplog.text and "持刀" not in caplog.text and CT not in caplog.text  # … without the call or a key


def test_history_rows_cannot_be_changed_or_deleted(srv):
    from serve.transfers.tables import TransferEvent

    o = new_order(srv)
    with srv.app.state.db.session() as s:
        ev = s.query(TransferEvent).filter_by(order_id=o["id"]).one()
        ev.actor = "someone else"
        with pytest.raises(RuntimeError, match="append-only"):
            s.commit()
        s.rollback()
        s.delete(s.query(TransferEvent).filter_by(order_id=o["id"]).one())
        with pytest.raises(RuntimeError, match="append-only"):
            s.commit()
    assert srv.client.get(f"/v1/transfers/{o['id']}", headers=h(CT)).json()["history"] == o["history"]


def test_return_with_reason_then_resend_then_close_after_a_second_return(srv):
    o = new_order(srv)
    r = act(srv, o["id"], "return", P110, {})
    assert r.status_code == 422 and "原因" in r.json()["detail"]
    r = act(srv, o["id"], "return", P110, {"reason": "不属于公安职责，请联系王先生13812345678所在社区"})
    assert r.status_code == 200 and r.json()["state"] == "returned" and "13812345678" not in r.json()["return_reason"]
    assert sorted(r.json()["allowed_actions"]) == []  # the receiver has nothing to do on a returned order
    assert sorted(srv.client.get(f"/v1/transfers/{o['id']}", headers=h(CT)).json()["allowed_actions"]) == ["close", "resend"]
    assert act(srv, o["id"], "resend", CT, {"reason": "补充：现场有人受伤"}).json()["state"] == "sent"
    assert act(srv, o["id"], "return", P110, {"reason": "仍不属于"}).json()["state"] == "returned"
    assert act(srv, o["id"], "close", CT).json()["state"] == "closed"
    actions = [e["action"] for e in srv.client.get(f"/v1/transfers/{o['id']}", headers=h(P110)).json()["history"]]
    assert actions == ["create", "return", "resend", "return", "close"]


def test_same_call_id_returns_the_existing_order_200(srv):
    o = new_order(srv)
    body = {"call_id": o["call_id"], "from_line": "12345", "to_line": "110", "department": "police_criminal", "summary": "again"}
    r = srv.client.post("/v1/transfers", json=body, headers=h(CT))
    assert r.status_code == 200 and r.json()["id"] == o["id"] and r.json()["summary"] == o["summary"]
    assert len(r.json()["history"]) == 1  # no second create event


def test_racing_requests_one_order_one_winning_step(srv):
    """Concurrent creates with one call_id make one order (one 201, the rest 200); concurrent accept
    and return on it: exactly one wins, the others get 409, the history holds one step."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    body = {"call_id": f"race-{RUN}", "from_line": "12345", "to_line": "110", "department": "police_criminal", "summary": "有人打架"}

    def post(path, payload, key):
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            return c.post(path, json=payload, headers=h(key))

    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(lambda _: post("/v1/transfers", body, CT), range(8)))
    assert sorted(r.status_code for r in created) == [200] * 7 + [201] and len({r.json()["id"] for r in created}) == 1
    oid = created[0].json()["id"]
    with ThreadPoolExecutor(8) as pool:
        steps = list(pool.map(lambda i: post(f"/v1/transfers/{oid}/{'accept' if i % 2 else 'return'}", {"reason": "不属于"}, P110), range(8)))
    assert sorted(r.status_code for r in steps) == [200] + [409] * 7
    history = srv.client.get(f"/v1/transfers/{oid}", headers=h(CT)).json()["history"]
    assert [e["seq"] for e in history] == [1, 2]


def _order_in(srv, state: str) -> dict:
    """An order 12345 → 110 brought to ``state``."""
    o = new_order(srv)
    path = {"sent": [], "accepted": ["accept"], "returned": ["return"], "handled": ["accept", "handle"],
            "written_back": ["accept", "handle", "write_back"], "closed": ["accept", "handle", "write_back", "close"]}[state]
    bodies = {"return": {"reason": "不属于"}, "write_back": WRITE_BACK}
    for a in path:
        assert act(srv, o["id"], a, CT if a == "close" else P110, bodies.get(a)).status_code == 200
    return o


STATES = ["sent", "accepted", "returned", "handled", "written_back", "closed"]


@pytest.mark.parametrize("state", STATES)
def test_every_step_that_does_not_fit_answers_409_with_the_state(srv, state):
    o = _order_in(srv, state)
    before = srv.client.get(f"/v1/transfers/{o['id']}", headers=h(CT)).json()["history"]
    bodies = {"return": {"reason": "不属于"}, "write_back": WRITE_BACK}
    for action, (froms, _, side) in STEPS.items():
        for who, key in (("receiver", P110), ("sender", CT)):
            if state in froms and who == side:
                continue  # the one valid step (taken in the life-cycle tests)
            r = act(srv, o["id"], action, key, bodies.get(action))
            assert r.status_code == 409, (state, action, who, r.text)
            out = r.json()
            assert out["state"] == state and out["state_name"] and "该工单当前状态为" in out["detail"]
            if state in froms:
                assert "只有" in out["detail"]  # the state fits, the side does not: say whose step it is
    assert srv.client.get(f"/v1/transfers/{o['id']}", headers=h(CT)).json()["history"] == before  # nothing written


def test_bad_requests_are_clear(srv):
    assert srv.client.post("/v1/transfers/999999/accept", headers=h(P110)).status_code == 404
    assert srv.client.post("/v1/transfers/1/teleport", headers=h(P110)).status_code == 422
    base = {"call_id": "bad-1", "department": "police_criminal", "summary": "有人打架"}
    for lines, code in [({"from_line": "12345", "to_line": "12345"}, 422), ({"from_line": "12345", "to_line": "999"}, 422),
                        ({"from_line": "110", "to_line": "12345"}, 403)]:
        r = srv.client.post("/v1/transfers", json={**base, **lines}, headers=h(CT))
        assert r.status_code == code, r.text
    r = srv.client.post("/v1/transfers", json={**base, "from_line": "12345", "to_line": "110", "department": "nope"}, headers=h(CT))
    assert r.status_code == 422 and "nope" in r.json()["detail"]
    o = _order_in(srv, "handled")
    r = act(srv, o["id"], "write_back", P110, {**WRITE_BACK, "handled_department": "nope"})
    assert r.status_code == 422
    r = act(srv, o["id"], "write_back", P110, {"result": "已处置"})
    assert r.status_code == 422 and "handled_department" in r.json()["detail"]


def test_partner_sees_and_acts_only_on_its_own_line(srv):
    to110 = new_order(srv)
    to119 = new_order(srv, to_line="119")
    assert srv.client.get(f"/v1/transfers/{to110['id']}", headers=h(P119)).status_code == 404
    assert act(srv, to110["id"], "accept", P119).status_code == 404
    assert srv.client.get(f"/v1/transfers/{to119['id']}", headers=h(P110)).status_code == 404
    listed = srv.client.get("/v1/transfers", params={"limit": 500}, headers=h(P119)).json()
    assert listed["total"] >= 1 and all("119" in (o["from_line"], o["to_line"]) for o in listed["items"])
    assert to119["id"] in {o["id"] for o in listed["items"]} and to110["id"] not in {o["id"] for o in listed["items"]}
    # the platform's own keys see everything
    assert srv.client.get(f"/v1/transfers/{to119['id']}", headers=h(SV)).status_code == 200
    # a partner is no call-taker, and sends only from its own line
    assert srv.client.post("/v1/route", json={"text": "有人打架"}, headers=h(P110)).status_code == 403
    assert srv.client.get("/v1/reviews", headers=h(P110)).status_code == 403
    r = srv.client.post("/v1/transfers", json={"call_id": "p-1", "from_line": "12345", "to_line": "110", "department": "utilities", "summary": "停水"}, headers=h(P110))
    assert r.status_code == 403
    assert srv.client.get("/v1/transfers", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_partner_sends_an_order_and_the_platform_handles_it(srv):
    o = new_order(srv, key=P110, from_line="110", to_line="12345", department="utilities")
    assert o["allowed_actions"] == []
    assert act(srv, o["id"], "accept", P110).status_code == 409  # the sender may not accept its own order
    for a, body in [("accept", None), ("handle", None), ("write_back", {"result": "已修复", "handled_department": "utilities"})]:
        assert act(srv, o["id"], a, CT, body).status_code == 200
    assert act(srv, o["id"], "close", P110).json()["state"] == "closed"
    # a call_id of an order this partner may not see is not handed out
    hidden = new_order(srv, to_line="119")
    r = srv.client.post("/v1/transfers", json={"call_id": hidden["call_id"], "from_line": "110", "to_line": "12345", "department": "utilities", "summary": "x"}, headers=h(P110))
    assert r.status_code == 409


def test_listing_filters_and_overdue(srv):
    urgent = new_order(srv, urgency="110_first")  # limit 0.01 min = 0.6 s
    calm = new_order(srv, urgency="normal")
    time.sleep(1.0)
    overdue = srv.client.get("/v1/transfers", params={"overdue": "true", "limit": 500}, headers=h(SV)).json()
    ids = {o["id"] for o in overdue["items"]}
    assert urgent["id"] in ids and calm["id"] not in ids and all(o["overdue"] for o in overdue["items"])
    act(srv, urgent["id"], "accept", P110)
    act(srv, urgent["id"], "handle", P110)
    act(srv, urgent["id"], "write_back", P110, WRITE_BACK)  # written back: no longer overdue
    ids = {o["id"] for o in srv.client.get("/v1/transfers", params={"overdue": "true", "limit": 500}, headers=h(SV)).json()["items"]}
    assert urgent["id"] not in ids
    sent = srv.client.get("/v1/transfers", params={"state": "sent", "to_line": "110", "limit": 500}, headers=h(SV)).json()
    assert calm["id"] in {o["id"] for o in sent["items"]} and all(o["state"] == "sent" and o["to_line"] == "110" for o in sent["items"])
    assert srv.client.get("/v1/transfers", params={"state": "lost"}, headers=h(SV)).status_code == 422


def test_openapi_documents_the_transfer_models(srv):
    spec = srv.client.get("/openapi.json").json()
    assert {"TransferCreate", "TransferOut", "TransferStep", "TransferConflict"} <= set(spec["components"]["schemas"])
    assert "409" in spec["paths"]["/v1/transfers/{order_id}/{action}"]["post"]["responses"]


# --------------------------------------------------------------------------------------------------
# Outbox: a partner URL that is down for a while
# --------------------------------------------------------------------------------------------------
class Receiver:
    """A partner's notice endpoint on a fixed port, started late (connection refused until then)."""

    def __init__(self, port: int):
        self.port, self.got, self.lock = port, [], threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.got.append((self.headers.get("Idempotency-Key"), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.handler = Handler
        self.server = None

    def start(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()


def test_notices_reach_a_partner_that_was_down_exactly_once(start_server, tiny_model_dir):
    from sqlalchemy import select

    from serve.transfers.tables import OutboxNotice

    port = free_port()
    rx = Receiver(port)
    srv = start_server(model_dir=tiny_model_dir, api_keys=KEYS, transfer_lines="110,12345,119", partner_urls={"110": f"http://127.0.0.1:{port}/notices"},
                       outbox_poll_s=0.05, outbox_backoff_s=0.1, outbox_backoff_max_s=0.4, outbox_timeout_s=2)
    try:
        orders = [new_order(srv) for _ in range(8)]
        for o in orders[:4]:  # steps by 110 itself are not announced to 110; the close by 12345 is
            for a, body in [("accept", None), ("handle", None), ("write_back", WRITE_BACK)]:
                assert act(srv, o["id"], a, P110, body).status_code == 200
            assert act(srv, o["id"], "close", CT).status_code == 200
        new_order(srv, to_line="119")  # 119 has no URL: no notice
        time.sleep(1.5)  # the partner is down: attempts fail and back off
        with srv.app.state.db.session() as s:
            notices = list(s.scalars(select(OutboxNotice)))
        assert len(notices) == 12 and all(n.delivered_at is None and n.attempts >= 2 for n in notices)
        rx.start()
        deadline = time.monotonic() + 20
        while len(rx.got) < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # would any notice come twice?
        keys = [k for k, _ in rx.got]
        assert sorted(keys) == sorted(n.key for n in notices) and len(set(keys)) == len(keys) == 12
        payloads = {k: b for k, b in rx.got}
        created = payloads[f"transfer-{orders[0]['id']}-1"]
        assert created["action"] == "create" and created["state"] == "sent" and created["order"]["to_line"] == "110"
        assert "13812345678" not in json.dumps(payloads, ensure_ascii=False)
        assert payloads[f"transfer-{orders[0]['id']}-5"]["action"] == "close"
        with srv.app.state.db.session() as s:
            assert all(n.delivered_at is not None for n in s.scalars(select(OutboxNotice)))
        assert srv.metric("hotline_outbox_attempts_total", result="delivered") == 12 and srv.metric("hotline_outbox_attempts_total", result="failed") >= 24
        assert srv.metric("hotline_transfer_steps_total", action="close") == 4 and srv.metric("hotline_transfer_steps_total", action="create") == 9
    finally:
        rx.stop()


@pytest.mark.postgres
def test_life_cycle_conflicts_and_notices_on_postgresql(start_server, tiny_model_dir, pg_schema):
    _, url = pg_schema
    port = free_port()
    rx = Receiver(port)
    rx.start()
    srv = start_server(model_dir=tiny_model_dir, api_keys=KEYS, database_url=url, transfer_lines="110,12345,119",
                       partner_urls={"110": f"http://127.0.0.1:{port}/n"}, outbox_poll_s=0.05, outbox_backoff_s=0.1)
    try:
        o = new_order(srv)
        assert srv.client.post("/v1/transfers", json={"call_id": o["call_id"], "from_line": "12345", "to_line": "110", "department": "utilities",
                                                      "summary": "x"}, headers=h(CT)).status_code == 200
        for a, body in [("accept", None), ("handle", None), ("write_back", WRITE_BACK)]:
            assert act(srv, o["id"], a, P110, body).status_code == 200
        r = act(srv, o["id"], "accept", P110)
        assert r.status_code == 409 and r.json()["state"] == "written_back"
        assert act(srv, o["id"], "close", CT).status_code == 200
        assert srv.client.get(f"/v1/transfers/{o['id']}", headers=h(P119)).status_code == 404
        deadline = time.monotonic() + 10
        while len(rx.got) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert sorted(k for k, _ in rx.got) == sorted([f"transfer-{o['id']}-1", f"transfer-{o['id']}-5"])
    finally:
        srv.stop()
        rx.stop()
