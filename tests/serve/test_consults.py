"""Three-way consult outcomes (三方通话) over real HTTP: the outcome with its transfer order made in the
same transaction (both or neither), the default outcome, every invalid input, roles, idempotency
under racing requests, masking, listing, and the outcomes as labelled rows of `hotline export-reviews`."""
from __future__ import annotations

import itertools
import json
import uuid
from pathlib import Path

import pytest

from serve.transfers.tables import OutboxNotice, TransferEvent, TransferOrder
from tests.serve.conftest import run_export_reviews

CT, CT2, SV, AD, P110 = "ct-cs-5a1e", "ct-cs-7b2f", "sv-cs-93ad", "ad-cs-0e4c", "p110-cs-4e8b"
KEYS = f"{CT}:call_taker:李接线,{CT2}:call_taker,{SV}:supervisor,{AD}:admin,{P110}:partner@110"
PHONE = "13812345678"
SUMMARY = f"来电人王先生{PHONE}称邻居吵架，对方拿着刀在门口晃"
RUN = uuid.uuid4().hex[:6].replace("1", "a")  # the call_ids of one run; never a phone-like digit run
_ids = itertools.count(1)
ROOT = Path(__file__).resolve().parents[2]


def h(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def call_id() -> str:
    return f"cs-{RUN}-{next(_ids)}"


def agreed(**extra) -> dict:
    """110 keeps the call: the outcome of a consult taken on 12345."""
    return {"call_id": call_id(), "outcome": "agreed", "from_line": "12345", "kept_by_line": "110", "agreed_by": f"110 接警员老周 {PHONE}",
            "reason": f"来电人{PHONE}确认对方手里有刀，110 受理", "department": "police_public_order", "urgency": "110_first",
            "summary": SUMMARY, "decision": {"action": "consult", "department": "convenience"}, "model_version": "tiny", **extra}


@pytest.fixture(scope="module")
def srv(start_server, tiny_model_dir):
    return start_server(model_dir=tiny_model_dir, api_keys=KEYS, partner_urls={"110": "http://127.0.0.1:9/notices"})


def stored(srv, cid: str) -> dict[str, int]:
    """Rows of this call in the consult, order, event and outbox tables, read straight from the database."""
    from serve.transfers.consults import ConsultOutcome

    with srv.app.state.db.session() as s:
        orders = [o.id for o in s.query(TransferOrder).filter_by(call_id=cid)]
        return {"consults": s.query(ConsultOutcome).filter_by(call_id=cid).count(), "orders": len(orders),
                "events": s.query(TransferEvent).filter(TransferEvent.order_id.in_(orders)).count() if orders else 0,
                "notices": sum(1 for n in s.query(OutboxNotice) if n.payload.get("call_id") == cid)}


def test_110_keeps_it_makes_the_transfer_order_linked_to_the_consult(srv, caplog):
    caplog.set_level("DEBUG")
    body = agreed()
    r = srv.client.post("/v1/consults", json=body, headers=h(CT))
    assert r.status_code == 201, r.text
    c = r.json()
    assert (c["outcome"], c["from_line"], c["with_line"], c["kept_by_line"], c["kept_by_line_name"]) == ("agreed", "12345", "110", "110", "110 报警服务台")
    assert c["department"] == "police_public_order" and c["department_name"] == "治安案件" and c["urgency"] == "110_first"
    assert c["call_taker"].startswith("李接线 call_taker key#")  # the key's owner, never the key
    assert PHONE not in json.dumps(c, ensure_ascii=False) and "[手机号]" in c["reason"] and "[手机号]" in c["agreed_by"] and "[手机号]" in c["summary"]
    t = c["transfer"]
    assert t["id"] == c["transfer_order_id"] and (t["from_line"], t["to_line"], t["urgency"], t["state"], t["state_name"]) == ("12345", "110", "110_first", "sent", "已派出")
    assert t["department"] == "police_public_order" and t["decision"]["consult_id"] == c["id"] and t["decision"]["action"] == "consult"
    assert [e["action"] for e in t["history"]] == ["create"] and t["model_version"] == "tiny"
    # the partner sees the order and may accept it; the platform's supervisor finds the consult by call_id
    seen = srv.client.get(f"/v1/transfers/{t['id']}", headers=h(P110)).json()
    assert sorted(seen["allowed_actions"]) == ["accept", "return"]
    listed = srv.client.get("/v1/consults", params={"call_id": body["call_id"]}, headers=h(SV)).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == c["id"] and listed["items"][0]["transfer"]["id"] == t["id"]
    assert stored(srv, body["call_id"]) == {"consults": 1, "orders": 1, "events": 1, "notices": 1}  # the partner is told, through the outbox
    assert "consult recorded" in caplog.text and PHONE not in caplog.text and "拿着刀" not in caplog.text and CT not in caplog.text


def test_the_same_outcome_again_answers_the_stored_one_and_another_outcome_is_409(srv):
    body = agreed()
    first = srv.client.post("/v1/consults", json=body, headers=h(CT)).json()
    again = srv.client.post("/v1/consults", json={**body, "reason": "重发"}, headers=h(CT))
    assert again.status_code == 200 and again.json()["id"] == first["id"] and again.json()["transfer"]["id"] == first["transfer"]["id"]
    other = srv.client.post("/v1/consults", json={"call_id": body["call_id"], "outcome": "still_unclear", "summary": SUMMARY}, headers=h(CT))
    assert other.status_code == 409 and "已记录" in other.json()["detail"] and str(first["id"]) in other.json()["detail"]
    assert stored(srv, body["call_id"]) == {"consults": 1, "orders": 1, "events": 1, "notices": 1}


def test_the_default_outcome_keeps_the_call_on_the_first_line_without_an_order(srv):
    cid = call_id()
    r = srv.client.post("/v1/consults", json={"call_id": cid, "outcome": "still_unclear", "summary": SUMMARY}, headers=h(CT2))
    assert r.status_code == 201, r.text
    c = r.json()
    assert (c["outcome"], c["from_line"], c["with_line"], c["kept_by_line"]) == ("still_unclear", "12345", "110", "12345")
    assert c["reason"] == "仍不明确，首接方保留" and c["agreed_by"] is None and c["transfer"] is None and c["transfer_order_id"] is None
    assert c["call_taker"].startswith("call_taker key#") and c["urgency"] is None
    assert stored(srv, cid) == {"consults": 1, "orders": 0, "events": 0, "notices": 0}


def test_12345_keeps_it_with_its_department_and_no_order(srv):
    body = agreed(kept_by_line="12345", department="utilities", urgency="normal", reason="对方确认无人身危险，属供水问题")
    r = srv.client.post("/v1/consults", json=body, headers=h(CT))
    assert r.status_code == 201 and r.json()["transfer"] is None and r.json()["department_name"]
    assert r.json()["with_line"] == "110"  # the line brought in defaults to 110 on a 12345 desk
    assert stored(srv, body["call_id"])["orders"] == 0


def test_110_keeps_it_without_naming_a_department_the_order_goes_to_the_line(srv):
    body = agreed(urgency="normal")
    del body["department"]
    r = srv.client.post("/v1/consults", json=body, headers=h(CT))
    assert r.status_code == 201 and r.json()["department"] is None
    assert r.json()["transfer"]["department"] == "110" and r.json()["transfer"]["urgency"] == "normal"


INVALID = [  # (what is changed, the status, a word the answer names)
    ({"call_id": PHONE}, 422, "call_id"),
    ({"call_id": "a b"}, 422, "call_id"),
    ({"outcome": "maybe"}, 422, "outcome"),
    ({"kept_by_line": "999"}, 422, "kept_by_line"),
    ({"kept_by_line": "abc"}, 422, "kept_by_line"),
    ({"kept_by_line": None}, 422, "kept_by_line"),
    ({"from_line": "999"}, 422, "from_line"),
    ({"from_line": "110", "kept_by_line": "110", "urgency": "normal", "department": None}, 403, "12345"),  # the key's line is 12345
    ({"with_line": "12345"}, 422, "with_line"),
    ({"agreed_by": None}, 422, "agreed_by"),
    ({"agreed_by": "   "}, 422, "agreed_by"),
    ({"agreed_by": "x" * 65}, 422, "agreed_by"),
    ({"reason": None}, 422, "reason"),
    ({"reason": " \n "}, 422, "reason"),
    ({"reason": "x" * 2001}, 422, "reason"),
    ({"reason": "有\x00人"}, 422, "reason"),
    ({"department": "nope"}, 422, "nope"),
    ({"department": "utilities"}, 422, "utilities"),  # a 12345 department for the line 110
    ({"urgency": "now"}, 422, "urgency"),
    ({"kept_by_line": "12345", "department": "utilities", "urgency": "110_first"}, 422, "urgency"),  # 110 先行 but the call stays
    ({"summary": ""}, 422, "summary"),
    ({"summary": None}, 422, "summary"),
    ({"decision": {"action": "teleport"}}, 422, "decision"),
    ({"colour": "red"}, 422, "colour"),
    ({"operator": "x" * 33}, 422, "operator"),
]


@pytest.mark.parametrize("change,code,word", INVALID, ids=[str(i) for i in range(len(INVALID))])
def test_every_invalid_input_is_refused_saying_what_and_stores_nothing(srv, change, code, word):
    body = {k: v for k, v in {**agreed(), **change}.items() if v is not None}  # None: the field is left out
    r = srv.client.post("/v1/consults", json=body, headers=h(CT))
    assert r.status_code == code, r.text
    assert word in r.json()["detail"]
    assert stored(srv, body["call_id"]) == {"consults": 0, "orders": 0, "events": 0, "notices": 0}


def test_still_unclear_keeps_the_first_line_or_is_refused(srv):
    body = {"call_id": call_id(), "outcome": "still_unclear", "kept_by_line": "110", "summary": SUMMARY}
    r = srv.client.post("/v1/consults", json=body, headers=h(CT))
    assert r.status_code == 422 and "first line" in r.json()["detail"]
    assert srv.client.post("/v1/consults", json={**body, "kept_by_line": "12345"}, headers=h(CT)).status_code == 201
    for bad in ("not json", "[]"):
        r = srv.client.post("/v1/consults", content=bad, headers={**h(CT), "Content-Type": "application/json"})
        assert r.status_code in (400, 422) and r.json()["detail"]


def test_roles(srv):
    body = agreed()
    assert srv.client.post("/v1/consults", json=body).status_code == 401
    assert srv.client.post("/v1/consults", json=body, headers=h("nope")).status_code == 401
    assert srv.client.post("/v1/consults", json=body, headers=h(P110)).status_code == 403  # the partner is no call-taker
    for key in (P110, CT, CT2):
        assert srv.client.get("/v1/consults", headers=h(key)).status_code == 403
    assert srv.client.get("/v1/consults").status_code == 401
    assert stored(srv, body["call_id"])["consults"] == 0
    for key in (SV, AD):  # supervisors and admins record outcomes too (roles nest) and list them
        assert srv.client.post("/v1/consults", json=agreed(), headers=h(key)).status_code == 201
        assert srv.client.get("/v1/consults", headers=h(key)).status_code == 200


def test_listing_filters_and_pages(srv):
    ids = [srv.client.post("/v1/consults", json=agreed(), headers=h(CT)).json()["id"] for _ in range(2)]
    unclear = srv.client.post("/v1/consults", json={"call_id": call_id(), "outcome": "still_unclear", "summary": "工单回访"}, headers=h(CT)).json()
    every = srv.client.get("/v1/consults", params={"limit": 500}, headers=h(SV)).json()
    assert every["total"] == len(every["items"]) >= 3 and [c["id"] for c in every["items"]][:3] == [unclear["id"], ids[1], ids[0]]  # newest first
    kept110 = srv.client.get("/v1/consults", params={"kept_by_line": "110", "limit": 500}, headers=h(SV)).json()["items"]
    assert all(c["kept_by_line"] == "110" and c["transfer"]["to_line"] == "110" and c["transfer"]["history"] is None for c in kept110)
    flagged = srv.client.get("/v1/consults", params={"outcome": "still_unclear", "limit": 500}, headers=h(SV)).json()["items"]
    assert unclear["id"] in {c["id"] for c in flagged} and all(c["outcome"] == "still_unclear" for c in flagged)
    page = srv.client.get("/v1/consults", params={"limit": 1, "offset": 1}, headers=h(SV)).json()
    assert page["items"][0]["id"] == every["items"][1]["id"] and page["total"] == every["total"]
    for params in ({"limit": 0}, {"offset": -1}, {"outcome": "x"}, {"kept_by_line": "x"}, {"call_id": "a b"}, {"offset": 2**31}):
        assert srv.client.get("/v1/consults", params=params, headers=h(SV)).status_code == 422, params


def test_racing_requests_store_one_outcome_and_one_order(srv):
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    body = agreed()

    def post(_):
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            return c.post("/v1/consults", json=body, headers=h(CT))

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(8)))
    assert sorted(r.status_code for r in answers) == [200] * 7 + [201], [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1 and len({r.json()["transfer"]["id"] for r in answers}) == 1
    assert stored(srv, body["call_id"]) == {"consults": 1, "orders": 1, "events": 1, "notices": 1}


def test_an_order_made_before_by_one_click_transfer_becomes_the_consults_order(srv):
    cid = call_id()
    r = srv.client.post("/v1/transfers", json={"call_id": cid, "from_line": "12345", "to_line": "110", "department": "police_criminal",
                                               "summary": SUMMARY}, headers=h(CT))
    assert r.status_code == 201
    linked = srv.client.post("/v1/consults", json={**agreed(), "call_id": cid}, headers=h(CT))
    assert linked.status_code == 201 and linked.json()["transfer"]["id"] == r.json()["id"]
    assert stored(srv, cid)["orders"] == 1


def test_a_failure_after_the_order_is_written_stores_neither_and_answers_503(start_server, tiny_model_dir):
    """The database refuses the last statement of the request (linking the consult to its order): the
    order, its event and its notice, written before in the same transaction, are gone too."""
    from sqlalchemy import text

    srv = start_server(model_dir=tiny_model_dir, api_keys=KEYS, partner_urls={"110": "http://127.0.0.1:9/notices"})
    with srv.app.state.db.engine.begin() as c:
        c.execute(text("CREATE TRIGGER no_link BEFORE UPDATE OF transfer_order_id ON consult_outcomes "
                       "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"))
    body = agreed()
    r = srv.client.post("/v1/consults", json=body, headers=h(CT))
    assert r.status_code == 503 and "数据库暂不可用" in r.json()["detail"]
    assert stored(srv, body["call_id"]) == {"consults": 0, "orders": 0, "events": 0, "notices": 0}
    with srv.app.state.db.engine.begin() as c:
        c.execute(text("DROP TRIGGER no_link"))
    r = srv.client.post("/v1/consults", json=body, headers=h(CT))  # the call-taker's retry, the same body
    assert r.status_code == 201 and stored(srv, body["call_id"]) == {"consults": 1, "orders": 1, "events": 1, "notices": 1}


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_outcomes_orders_races_and_conflicts_on_both_databases(start_server, tiny_model_dir, db, request):
    """On SQLite and PostgreSQL: racing requests store one outcome and one order; an order of the call
    to a third line makes the consult a 409 that stores nothing."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    url = request.getfixturevalue("pg_schema")[1] if db == "postgresql" else None
    srv = start_server(model_dir=tiny_model_dir, api_keys=KEYS, transfer_lines="110,12345,119", **({"database_url": url} if url else {}))
    try:
        body = agreed()

        def post(_):
            with httpx.Client(base_url=srv.url, timeout=30) as c:
                return c.post("/v1/consults", json=body, headers=h(CT))

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(post, range(6)))
        assert sorted(r.status_code for r in answers) == [200] * 5 + [201], [r.text for r in answers]
        assert len({r.json()["transfer"]["id"] for r in answers}) == 1
        assert srv.client.post("/v1/consults", json=agreed(kept_by_line="12345", department="utilities", urgency="normal"), headers=h(CT)).status_code == 201
        cid = call_id()
        to119 = srv.client.post("/v1/transfers", json={"call_id": cid, "from_line": "12345", "to_line": "119", "department": "police_rescue",
                                                       "summary": SUMMARY}, headers=h(CT))
        assert to119.status_code == 201
        r = srv.client.post("/v1/consults", json={**agreed(), "call_id": cid}, headers=h(CT))
        assert r.status_code == 409 and "119" in r.json()["detail"]
        assert stored(srv, cid) == {"consults": 0, "orders": 1, "events": 1, "notices": 0}
        listed = srv.client.get("/v1/consults", params={"kept_by_line": "110"}, headers=h(SV)).json()
        assert listed["total"] == 1 and listed["items"][0]["transfer"]["id"] == answers[0].json()["transfer"]["id"]
    finally:
        srv.stop()  # before the schema is dropped


def test_consult_outcomes_are_labelled_rows_of_export_reviews(tmp_path):
    """Agreed outcomes naming a department are rows (source consult, the line that kept the call as
    the channel); the default outcome is none; a written-back order of the same call wins."""
    from serve.db import Database
    from serve.store import RoutedText, record_feedback, record_routes
    from serve.transfers.consults import record_consult
    from serve.transfers.store import step
    from tests.serve.test_export_reviews import decision

    url = f"sqlite:///{tmp_path / 'h.db'}"
    db = Database(url)
    db.create_tables()

    def consult(cid, kept, department, unclear=False):
        with db.session() as s:
            return record_consult(s, call_id=cid, from_line="12345", with_line="110", kept_by_line=kept, still_unclear=unclear,
                                  agreed_by="老周", reason="三方确认", department=department, urgency="normal",
                                  summary=f"来电人{PHONE}称{cid}门口有人吵架", decision={"action": "consult"}, model_version="tiny",
                                  actor="ct", limit_min=60)

    with db.session() as s:
        record_routes(s, items=[RoutedText("k1门口有人吵架", decision("convenience", "12345", needs_review=False), "k1")])
    with db.session() as s:
        record_feedback(s, call_id="k1", final_channel="12345", final_department="civil_affairs")  # the consult wins over it
    consult("k1", "110", "police_public_order")
    consult("k2", "12345", "civil_affairs")
    consult("k3", "12345", None, unclear=True)  # still unclear: no label
    consult("k4", "12345", None)  # no department named: no label
    w = consult("k5", "110", "police_public_order")
    for a in ("accept", "handle", "write_back"):
        with db.session() as s:
            step(s, order_id=w.order.id, action=a, line="110", actor="p", result="已调解" if a == "write_back" else None,
                 handled_department="police_criminal" if a == "write_back" else None)
    db.dispose()

    stdout, rows = run_export_reviews(tmp_path, url)
    assert "wrote 3 labelled rows" in stdout and "2 from three-way consults" in stdout, stdout
    assert {x["call_id"]: (x["department"], x["channel"], x["source"]) for x in rows} == {
        "k1": ("police_public_order", "110", "consult"), "k2": ("civil_affairs", "12345", "consult"), "k5": ("police_criminal", "110", "write_back")}
    assert all(PHONE not in x["text"] and "[手机号]" in x["text"] for x in rows)
