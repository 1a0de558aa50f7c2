"""Supervision of transfer orders (跟踪督办) over real HTTP, on SQLite and PostgreSQL: orders created and
advanced through the real endpoints, time limits per urgency and per department from a limits file
(tiny limits and a short sleep stand in for a clock), the overdue list and counts, returns with their
reasons, volumes per day each way and per department; and a bad limits file stops the server in one
line naming the file and the entry."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from serve.config import Settings, settings_error
from serve.transfers.limits import LimitsError, TransferLimits, load_limits
from tests.serve.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[2]
CT, SV, AD, P110 = "ct-sup-5d21", "sv-sup-8b4e", "ad-sup-2f70", "p110-sup-6c9a"
KEYS = f"{CT}:call_taker,{SV}:supervisor,{AD}:admin,{P110}:partner@110"
FAST = 0.01  # minutes: 0.6 s
LIMITS = {"110_first": FAST, "normal": 1440, "departments": {"police_public_order": {"normal": FAST}, "utilities": {"110_first": 600},
                                                          "公安局交通警察支队": {"normal": 120}}}
WRITE_BACK = {"result": "已出警处置", "handled_department": "police_public_order"}


def h(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def sup_server(tmp_path, tiny_model_dir, database_url):
    path = tmp_path / "limits.json"
    path.write_text(json.dumps(LIMITS), encoding="utf-8")
    srv = LiveServer(Settings(database_url=database_url, registry_dir=tmp_path / "models", model_dir=tiny_model_dir, api_keys=KEYS,
                              transfer_limits_path=path)).start()
    yield srv
    srv.stop()  # before the PostgreSQL schema is dropped


def test_overdue_returns_and_volumes(sup_server):
    srv, run = sup_server, uuid.uuid4().hex[:8]
    n = iter(range(1, 100))

    def order(department, urgency, key=CT, from_line="12345", to_line="110") -> dict:
        body = {"call_id": f"sup-{run}-{next(n)}", "from_line": from_line, "to_line": to_line, "department": department,
                "urgency": urgency, "summary": "来电人称有人打架，电话13812345678"}
        r = srv.client.post("/v1/transfers", json=body, headers=h(key))
        assert r.status_code == 201, r.text
        return r.json()

    def act(o, action, key, body=None):
        r = srv.client.post(f"/v1/transfers/{o['id']}/{action}", json=body, headers=h(key))
        assert r.status_code == 200, r.text
        return r.json()

    def report(**params) -> dict:
        r = srv.client.get("/v1/transfers/supervision", params=params, headers=h(SV))
        assert r.status_code == 200, r.text
        return r.json()

    first = order("police_criminal", "110_first")          # 110 先行: FAST for every department …
    dept_fast = order("police_public_order", "normal")      # … and normal is FAST for this department only
    calm = order("police_criminal", "normal")               # 1440 min
    dept_slow = order("utilities", "110_first")             # this department's 110 先行 limit: 600 min
    returned_late = order("police_public_order", "normal")  # FAST, and returned: the sender's turn, still open
    act(returned_late, "return", P110, {"reason": "不属于公安职责"})
    back1, back2 = order("police_criminal", "normal"), order("convenience", "normal")
    act(back1, "return", P110, {"reason": "不属于公安职责"})
    act(back2, "return", P110, {"reason": "请联系王先生13912345678所在社区"})
    incoming = order("utilities", "normal", key=P110, from_line="110", to_line="12345")
    act(incoming, "return", CT, {"reason": "不属于公安职责"})
    spans = {k: (datetime.fromisoformat(o["due_at"]) - datetime.fromisoformat(o["created_at"])).total_seconds()
             for k, o in {"first": first, "dept_fast": dept_fast, "calm": calm, "dept_slow": dept_slow}.items()}
    assert spans["first"] == pytest.approx(0.6, abs=0.01) and spans["dept_fast"] == pytest.approx(0.6, abs=0.01)
    assert spans["calm"] == pytest.approx(1440 * 60, abs=1) and spans["dept_slow"] == pytest.approx(600 * 60, abs=1)

    time.sleep(1.2)
    r = report(days=7)
    od = r["overdue"]
    assert [o["id"] for o in od["items"]] == [first["id"], dept_fast["id"], returned_late["id"]]  # most overdue first
    assert od["total"] == 3 and all(o["minutes_overdue"] > 0 for o in od["items"])
    minutes = [o["minutes_overdue"] for o in od["items"]]
    assert minutes == sorted(minutes, reverse=True)
    assert {c["key"]: c["count"] for c in od["by_department"]} == {"police_public_order": 2, "police_criminal": 1}
    assert {c["key"]: (c["count"], c["name"]) for c in od["by_urgency"]} == {"normal": (2, "一般"), "110_first": (1, "110 先行")}
    late = {o["id"]: o for o in od["items"]}
    assert late[returned_late["id"]]["state_name"] == "已退回" and late[returned_late["id"]]["waiting_line"] == "12345"
    assert late[first["id"]]["direction"] == "12345→110" and late[first["id"]]["waiting_line"] == "110"

    rt = r["returns"]
    assert rt["total"] == 4
    assert rt["by_reason"][0] == {"reason": "不属于公安职责", "count": 3} and len(rt["by_reason"]) == 2
    masked = rt["by_reason"][1]["reason"]
    assert "13912345678" not in masked and "[手机号]" in masked  # reasons are stored masked
    assert [x["order_id"] for x in rt["latest"]] == [incoming["id"], back2["id"], back1["id"], returned_late["id"]]  # newest first
    assert rt["latest"][0]["direction"] == "110→12345" and rt["latest"][0]["by_line"] == "12345"
    assert {c["key"]: c["count"] for c in rt["by_department"]} == {"police_public_order": 1, "police_criminal": 1, "convenience": 1, "utilities": 1}

    vol = r["volumes"]
    assert [d["label"] for d in vol["directions"]] == ["12345→110", "110→12345"]
    today = (datetime.now(timezone.utc) + timedelta(hours=8)).date()
    assert [d["day"] for d in vol["by_day"]] == [(today - timedelta(days=6 - i)).isoformat() for i in range(7)]
    assert vol["by_day"][-1]["counts"] == [7, 1] and all(d["total"] == 0 for d in vol["by_day"][:-1])
    assert [d["total"] for d in vol["directions"]] == [7, 1]
    depts = {d["key"]: d["counts"] for d in vol["by_department"]}
    assert depts == {"police_criminal": [3, 0], "police_public_order": [2, 0], "utilities": [1, 1], "convenience": [1, 0]}
    assert r["limits"]["departments"]["police_public_order"]["normal"] == FAST and r["limits"]["110_first"] == FAST
    assert r["limits_unknown_departments"] == ["公安局交通警察支队"]  # not a department of the served (tiny) taxonomy

    # Advance through the real endpoints: a written-back order and a resent one leave the overdue list.
    for action, body in [("accept", None), ("handle", None), ("write_back", WRITE_BACK)]:
        act(first, action, P110, body)
    resent = act(returned_late, "resend", CT, {"reason": "补充情况"})
    assert (datetime.fromisoformat(resent["due_at"]) - datetime.fromisoformat(resent["updated_at"])).total_seconds() == pytest.approx(0.6, abs=0.01)
    r = report(days=1, limit=1)
    assert [o["id"] for o in r["overdue"]["items"]] == [dept_fast["id"]] and first["id"] not in {o["id"] for o in r["overdue"]["items"]}
    assert len(r["volumes"]["by_day"]) == 1 and r["volumes"]["by_day"][0]["counts"] == [7, 1]
    time.sleep(0.8)
    late = {o["id"]: o for o in report()["overdue"]["items"]}
    assert set(late) == {dept_fast["id"], returned_late["id"]}  # written back: gone; resent: late again after its new limit
    assert late[returned_late["id"]]["state"] == "sent" and late[returned_late["id"]]["waiting_line"] == "110"


def test_only_supervisors_and_admins_see_it(sup_server):
    srv = sup_server
    assert srv.client.get("/v1/transfers/supervision", headers=h(AD)).status_code == 200
    assert srv.client.get("/v1/transfers/supervision", headers=h(CT)).status_code == 403
    assert srv.client.get("/v1/transfers/supervision", headers=h(P110)).status_code == 403
    assert srv.client.get("/v1/transfers/supervision").status_code == 401
    for bad in ({"days": 0}, {"days": 93}, {"days": "week"}, {"limit": 0}):
        r = srv.client.get("/v1/transfers/supervision", params=bad, headers=h(SV))
        assert r.status_code == 422 and r.json()["detail"], bad
    assert srv.client.get("/v1/transfers/999999", headers=h(SV)).status_code == 404  # ids still reach the order route


# -- the limits file -------------------------------------------------------------------------------
def test_limits_file_yaml_and_json(tmp_path):
    y = tmp_path / "limits.yaml"
    y.write_text("110_first: 20\nnormal: 600\ndepartments:\n  公安局交通警察支队: {normal: 120}\n  utilities: {110_first: 10}\n", encoding="utf-8")
    limits = Settings(transfer_limits_path=y).transfer_limits
    assert [limits.minutes(u, d) for u, d in [("normal", "公安局交通警察支队"), ("110_first", "公安局交通警察支队"), ("110_first", "utilities"),
                                              ("normal", "utilities"), ("normal", "convenience")]] == [120, 20, 10, 600, 600]
    j = tmp_path / "limits.json"
    j.write_text(json.dumps({"normal": 90}), encoding="utf-8")
    assert load_limits(j) == TransferLimits(normal=90) and load_limits(None) == TransferLimits() == Settings().transfer_limits
    assert TransferLimits().minutes("110_first", "x") == 30 and TransferLimits().minutes("normal", "x") == 1440


@pytest.mark.parametrize("name, text, expected", [
    ("limits.yaml", "departments:\n  公安局交通警察支队: {normal: -5}\n", "departments.公安局交通警察支队.normal: Input should be greater than 0"),
    ("limits.yaml", "normal: 1440\nurgent: 5\n", "urgent: Extra inputs are not permitted"),
    ("limits.yaml", "departments:\n  utilities: {normal: '120'}\n", "departments.utilities.normal: Input should be a valid number"),
    ("limits.yaml", "departments:\n  utilities: {slow: 5}\n", "departments.utilities.slow: Extra inputs are not permitted"),
    ("limits.yaml", "normal: 9999999\n", "normal: Input should be less than or equal to"),
    ("limits.yaml", "- 30\n- 1440\n", "must be a mapping"),
    ("limits.yaml", "normal: [1440\n", "not valid YAML"),
    ("limits.json", '{"normal": 1440,}', "not valid JSON"),
])
def test_a_bad_limits_file_names_the_file_and_the_entry(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LimitsError, match="^" + str(path).replace(".", r"\.")):
        load_limits(path)
    with pytest.raises(ValueError) as info:
        Settings(transfer_limits_path=path)
    message = settings_error(info.value)
    assert message.startswith(f"HOTLINE_TRANSFER_LIMITS_PATH: {path}: ") and expected in message, message


def test_the_old_per_urgency_variable_is_refused_not_ignored(monkeypatch):
    with pytest.raises(ValueError, match="HOTLINE_TRANSFER_LIMITS_PATH"):
        Settings(transfer_limits_min={"normal": 1})
    monkeypatch.setenv("HOTLINE_TRANSFER_LIMITS_MIN", '{"normal": 1}')
    with pytest.raises(ValueError, match="replaced by HOTLINE_TRANSFER_LIMITS_PATH"):
        Settings()


def test_hotline_serve_stops_at_start_up_on_a_bad_limits_file(tmp_path):
    path = tmp_path / "limits.yaml"
    path.write_text("110_first: 30\ndepartments:\n  公安局交通警察支队: {normal: 0}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(PYTHONPATH=str(ROOT), HOTLINE_DATABASE_URL=f"sqlite:///{tmp_path / 'h.db'}", HOTLINE_REGISTRY_DIR=str(tmp_path / "models"),
               HOTLINE_TRANSFER_LIMITS_PATH=str(path))
    r = subprocess.run([sys.executable, "-m", "serve.cli", "serve", "--port", "1"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert str(path) in r.stderr and "departments.公安局交通警察支队.normal" in r.stderr and "greater than 0" in r.stderr
    assert not (tmp_path / "h.db").exists()  # stopped before anything was opened
