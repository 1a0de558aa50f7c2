"""Closing issue 19's loop over real HTTP, on SQLite and PostgreSQL: a return names the department of
the SENDING line that should take the matter (validated: 422 in Chinese otherwise); `hotline
export-reviews` (run as a process) exports returned orders as labelled rows (source returned) with
the documented precedence (a later write-back wins, a close naming a department wins over the
return, the last return counts, a resent order in flight is no label, an order's row wins over the
consult of the call) and counts the returns that named no department; the rows load as `hotline
retrain` reads them. And the supervision report counts three-way consults per day, by outcome and by
the line that kept the call, with the latest ones (masked)."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from data.loading import load_records
from serve.config import Settings
from tests.serve.conftest import LiveServer, run_export_reviews

ROOT = Path(__file__).resolve().parents[2]
CT, SV, P110 = "ct-loop-3c7a", "sv-loop-6e0b", "p110-loop-9d4f"
KEYS = f"{CT}:call_taker,{SV}:supervisor,{P110}:partner@110"
PHONE = "13912345678"


def h(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def loop_server(tmp_path, tiny_model_dir, database_url):
    srv = LiveServer(Settings(database_url=database_url, registry_dir=tmp_path / "models", model_dir=tiny_model_dir, api_keys=KEYS)).start()
    yield srv, database_url
    srv.stop()  # before the PostgreSQL schema is dropped


class Orders:
    def __init__(self, srv):
        self.srv, self.run, self.n = srv, uuid.uuid4().hex[:8].replace("1", "a"), 0

    def new(self, key=CT, from_line="12345", to_line="110", department="police_criminal") -> dict:
        self.n += 1
        body = {"call_id": f"loop-{self.run}-{self.n}", "from_line": from_line, "to_line": to_line, "department": department,
                "summary": f"来电人{PHONE}反映第{self.n}件事"}
        r = self.srv.client.post("/v1/transfers", json=body, headers=h(key))
        assert r.status_code == 201, r.text
        return r.json()

    def step(self, order: dict, action: str, key: str, body: dict | None = None, status: int = 200) -> dict:
        r = self.srv.client.post(f"/v1/transfers/{order['id']}/{action}", json=body, headers=h(key))
        assert r.status_code == status, r.text
        return r.json()


def export(tmp_path: Path, url: str) -> tuple[str, dict[str, dict]]:
    stdout, rows = run_export_reviews(tmp_path, url)
    assert len({x["call_id"] for x in rows}) == len(rows)  # one row per call
    return stdout, {x["call_id"]: x for x in rows}


def test_returns_name_the_senders_department_and_become_labelled_rows(loop_server, tmp_path):
    srv, url = loop_server
    o = Orders(srv)
    why = {"reason": f"不属于公安职责，请联系业主{PHONE}"}

    named = o.new()  # returned naming a 12345 department: a row (convenience, 12345)
    done = o.step(named, "return", P110, {**why, "department": "convenience"})
    assert done["state"] == "returned" and done["history"][-1]["detail"] == {"reason": "不属于公安职责，请联系业主[手机号]", "department": "convenience"}
    unnamed = o.new()  # returned with a reason only: counted, not exported
    assert "department" not in o.step(unnamed, "return", P110, why)["history"][-1]["detail"]

    # Bad departments: 422 in Chinese, and the order is left as it was.
    late_wb = o.new()
    r = srv.client.post(f"/v1/transfers/{late_wb['id']}/return", json={**why, "department": "police_public_order"}, headers=h(P110))
    assert r.status_code == 422 and "属于 110，不是派出方 12345 的部门" in r.json()["detail"] and "convenience" in r.json()["detail"]
    r = srv.client.post(f"/v1/transfers/{late_wb['id']}/return", json={**why, "department": "消防救援"}, headers=h(P110))
    assert r.status_code == 422 and "不是当前分类中的部门" in r.json()["detail"]
    r = srv.client.post(f"/v1/transfers/{late_wb['id']}/accept", json={"department": "convenience"}, headers=h(P110))
    assert r.status_code == 422 and "只能在退回" in r.json()["detail"]
    r = srv.client.post(f"/v1/transfers/{late_wb['id']}/return", json={**why, "department": ""}, headers=h(P110))
    assert r.status_code == 422
    assert srv.client.get(f"/v1/transfers/{late_wb['id']}", headers=h(P110)).json()["state"] == "sent"
    # … then returned naming utilities, resent by 12345, and written back by 110: the later write-back wins.
    o.step(late_wb, "return", P110, {**why, "department": "utilities"})
    o.step(late_wb, "resend", CT, {"reason": "涉及人身安全，请出警"})
    for action, body in [("accept", None), ("handle", None), ("write_back", {"result": "已出警", "handled_department": "police_public_order"})]:
        o.step(late_wb, action, P110, body)
    r = srv.client.post(f"/v1/transfers/{late_wb['id']}/close", json={"department": "convenience"}, headers=h(CT))
    assert r.status_code == 422 and "已回写" in r.json()["detail"]

    closed = o.new()  # returned naming utilities; 12345 closes it saying convenience handled it: the close wins
    o.step(closed, "return", P110, {**why, "department": "utilities"})
    r = srv.client.post(f"/v1/transfers/{closed['id']}/close", json={"department": "police_criminal"}, headers=h(CT))
    assert r.status_code == 422  # a 110 department cannot have handled it on 12345's side
    assert o.step(closed, "close", CT, {"department": "convenience"})["state"] == "closed"
    in_flight = o.new()  # returned naming convenience, resent: 12345 disagreed, no label while it is under way
    o.step(in_flight, "return", P110, {**why, "department": "convenience"})
    o.step(in_flight, "resend", CT)
    again = o.new()  # returned naming utilities, resent, returned again without one: the last return counts
    o.step(again, "return", P110, {**why, "department": "utilities"})
    o.step(again, "resend", CT)
    o.step(again, "return", P110, why)
    incoming = o.new(key=P110, from_line="110", to_line="12345", department="utilities")  # 12345 returns to 110, naming a 110 department
    r = srv.client.post(f"/v1/transfers/{incoming['id']}/return", json={**why, "department": "utilities"}, headers=h(CT))
    assert r.status_code == 422 and "不是派出方 110 的部门" in r.json()["detail"]
    o.step(incoming, "return", CT, {"reason": "有人持刀，请 110 处置", "department": "police_criminal"})

    # A consult kept by 110 made an order; 110 returned it naming a 12345 department: the return wins over the consult.
    consult = {"call_id": f"loop-{o.run}-consult", "outcome": "agreed", "from_line": "12345", "kept_by_line": "110", "agreed_by": "110-0032",
               "reason": "对方称有人受伤", "department": "police_public_order", "summary": f"来电人{PHONE}称邻居吵架"}
    r = srv.client.post("/v1/consults", json=consult, headers=h(CT))
    assert r.status_code == 201, r.text
    o.step(r.json()["transfer"], "return", P110, {"reason": "经核实无人受伤，属邻里纠纷", "department": "convenience"})

    latest = {x["order_id"]: x for x in srv.client.get("/v1/transfers/supervision", headers=h(SV)).json()["returns"]["latest"]}
    assert latest[named["id"]]["named_department"] == "convenience" and latest[unnamed["id"]]["named_department"] is None

    stdout, rows = export(tmp_path, url)
    assert "1 from written-back transfers, 0 from three-way consults, 4 from returned transfers" in stdout, stdout
    assert "2 returns named no department (not exported)" in stdout
    got = {cid: (x["department"], x["channel"], x["source"]) for cid, x in rows.items()}
    assert got == {
        named["call_id"]: ("convenience", "12345", "returned"),
        late_wb["call_id"]: ("police_public_order", "110", "write_back"),
        closed["call_id"]: ("convenience", "12345", "returned"),
        incoming["call_id"]: ("police_criminal", "110", "returned"),
        consult["call_id"]: ("convenience", "12345", "returned"),
    }
    assert all(PHONE not in x["text"] and "[手机号]" in x["text"] for x in rows.values())
    loaded = load_records(tmp_path / "export.jsonl", channel_column="channel")  # what `hotline retrain --new-data` reads
    assert len(loaded.records) == 5 and not loaded.errors
    assert {(r.department, r.channel) for r in loaded.records} >= {("convenience", "12345"), ("police_criminal", "110")}


def test_supervision_counts_consults_by_outcome_and_kept_line(loop_server):
    srv, _ = loop_server
    run = uuid.uuid4().hex[:8].replace("1", "a")

    def consult(i: int, **body) -> dict:
        r = srv.client.post("/v1/consults", json={"call_id": f"lc-{run}-{i}", "from_line": "12345", "summary": "来电人称邻居吵架", **body},
                            headers=h(CT))
        assert r.status_code == 201, r.text
        return r.json()

    agreed = {"outcome": "agreed", "agreed_by": f"110 接警员老周 {PHONE}", "reason": f"来电人{PHONE}称对方拿着刀"}
    consult(1, kept_by_line="110", department="police_public_order", **agreed)
    consult(2, kept_by_line="110", **agreed)
    consult(3, kept_by_line="12345", with_line="110", department="convenience", **{**agreed, "reason": "纯属邻里纠纷，12345 受理"})
    consult(4, outcome="still_unclear")
    last = consult(5, outcome="still_unclear", reason="双方说法不一")

    r = srv.client.get("/v1/transfers/supervision", params={"days": 7}, headers=h(SV))
    assert r.status_code == 200, r.text
    c = r.json()["consults"]
    assert c["total"] == 5 and c["by_outcome"] == {"agreed": 3, "still_unclear": 2}
    assert c["lines"] == ["12345", "110"] and c["by_line"] == [{"key": "12345", "name": None, "count": 3}, {"key": "110", "name": None, "count": 2}]
    today = (datetime.now(timezone.utc) + timedelta(hours=8)).date()
    assert [d["day"] for d in c["by_day"]] == [(today - timedelta(days=6 - i)).isoformat() for i in range(7)]
    assert c["by_day"][-1] == {"day": today.isoformat(), "agreed": 3, "still_unclear": 2, "kept": [3, 2], "total": 5}
    assert all(d["total"] == 0 for d in c["by_day"][:-1])
    latest = c["latest"]
    assert [x["call_id"] for x in latest] == [f"lc-{run}-{i}" for i in (5, 4, 3, 2, 1)]  # newest first
    assert latest[0]["id"] == last["id"] and latest[0]["outcome"] == "still_unclear" and latest[0]["kept_by_line"] == "12345"
    assert latest[1]["reason"] == "仍不明确，首接方保留" and latest[1]["agreed_by"] is None
    first = latest[-1]
    assert (first["outcome"], first["kept_by_line"], first["department"]) == ("agreed", "110", "police_public_order")
    assert first["transfer_order_id"] is not None and latest[2]["transfer_order_id"] is None  # kept by the first line: no order
    assert PHONE not in json.dumps(latest, ensure_ascii=False) and "[手机号]" in first["reason"] and "[手机号]" in first["agreed_by"]
    r = srv.client.get("/v1/transfers/supervision", params={"days": 1, "limit": 2}, headers=h(SV))
    c = r.json()["consults"]
    assert len(c["by_day"]) == 1 and c["total"] == 5 and len(c["latest"]) == 2
