"""The supervisor review queue over real HTTP: auth, filters, order, pages, decisions (409 and
re-open), statistics, and two supervisors deciding at once. Every test runs on SQLite and, when
HOTLINE_TEST_POSTGRES_URL is set, on the real PostgreSQL server (a fresh schema)."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from tests.factories import tiny_rows
from tests.serve.conftest import PG, PG_SKIP, postgres_schema

KEYS = {"call_taker": "ct-rv-61d0a2", "supervisor": "sv-rv-9e47c3", "admin": "ad-rv-05b8f1"}
AUTH = {role: {"Authorization": f"Bearer {k}"} for role, k in KEYS.items()}
SV = AUTH["supervisor"]
PHONE = "13912345678"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def rsrv(request, start_server, tiny_model_dir):
    """A server whose every routing needs review (threshold above 1), seeded with the tiny corpus
    (48 calls) plus one call with a phone number and one contradicting feedback."""
    kw = dict(model_dir=tiny_model_dir, api_keys=",".join(f"{k}:{r}" for r, k in KEYS.items()), review_threshold=1.01)
    if request.param == "postgresql":
        if not PG:
            pytest.skip(PG_SKIP)
        with postgres_schema() as (_, url):
            srv = start_server(database_url=url, **kw)
            _seed(srv)
            yield srv
            srv.stop()  # release its connections before the schema is dropped
    else:
        srv = start_server(**kw)
        _seed(srv)
        yield srv


def _seed(srv) -> None:
    items = [{"text": r["text"], "call_id": f"rv-{i}"} for i, r in enumerate(tiny_rows())]
    items.append({"text": f"来电人{PHONE}说家里停水了", "call_id": "rv-pii"})
    r = srv.client.post("/v1/route/batch", json={"items": items}, headers=AUTH["call_taker"])
    assert r.status_code == 200 and all(i["queued_for_review"] for i in r.json()["items"])
    d = r.json()["items"][-1]
    other = "police_criminal" if d["department"] != "police_criminal" else "utilities"
    fb = srv.client.post("/v1/feedback", json={"call_id": "rv-pii", "final_channel": "110" if other.startswith("police") else "12345", "final_department": other},
                         headers=AUTH["call_taker"])
    assert fb.status_code == 201 and fb.json()["queued_for_review"]


def get_all(srv, **params) -> dict:
    r = srv.client.get("/v1/reviews", params={"limit": 200, **params}, headers=SV)
    assert r.status_code == 200, r.text
    return r.json()


def pending_item(srv, **where):
    for it in get_all(srv)["items"]:
        if all(it[k] == v for k, v in where.items()):
            return it
    raise AssertionError(f"no pending item with {where}")


def decide(srv, review_id, headers=SV, **body):
    return srv.client.post(f"/v1/reviews/{review_id}", json=body, headers=headers)


def other_department(srv, item) -> tuple[str, str]:
    """A department of the served taxonomy that is not the item's suggestion, and its channel."""
    deps = srv.client.get("/v1/model", headers=SV).json()["taxonomy"]["departments"]
    d = next(d for d in deps if d["code"] != item["department"] and d["channel"] == item["channel"])
    return d["code"], d["channel"]


# --------------------------------------------------------------------------------------------------
def test_only_supervisors_and_admins_may_use_the_queue(rsrv):
    item = pending_item(rsrv)
    for path in ("/v1/reviews", "/v1/reviews/stats", f"/v1/reviews/{item['id']}"):
        assert rsrv.client.get(path).status_code == 401
        r = rsrv.client.get(path, headers=AUTH["call_taker"])
        assert r.status_code == 403 and "supervisor" in r.json()["detail"]
        assert rsrv.client.get(path, headers=SV).status_code == 200
        assert rsrv.client.get(path, headers=AUTH["admin"]).status_code == 200
    assert decide(rsrv, item["id"], headers=AUTH["call_taker"], decision="confirm").status_code == 403
    assert rsrv.client.get(f"/v1/reviews/{item['id']}", headers=SV).json()["status"] == "pending"


def test_the_queue_is_least_confident_first_masked_and_complete(rsrv):
    page = get_all(rsrv)
    items = page["items"]
    assert page["total"] == len(items) >= 49 and all(i["status"] == "pending" for i in items)
    confidences = [i["confidence"] for i in items]
    assert confidences == sorted(confidences)
    pii = [i for i in items if i["call_id"] == "rv-pii"]
    assert {i["trigger"] for i in pii} == {"needs_review", "feedback"}
    for i in pii:
        assert PHONE not in i["text_masked"] and "[手机号]" in i["text_masked"]
        assert i["reasons"] and i["department_name"] and i["model_version"]
    fb = next(i for i in pii if i["trigger"] == "feedback")
    assert fb["feedback_department"] and fb["feedback_department"] != fb["department"] and fb["feedback_department_name"]


def test_filters_and_pages(rsrv):
    everything = get_all(rsrv, status="all")["items"]
    for channel in ("110", "12345"):
        got = get_all(rsrv, status="all", channel=channel)
        assert got["total"] == sum(i["channel"] == channel for i in everything) > 0
        assert all(i["channel"] == channel for i in got["items"])
    dep = Counter(i["department"] for i in everything).most_common(1)[0][0]
    assert {i["id"] for i in get_all(rsrv, status="all", department=dep)["items"]} == {i["id"] for i in everything if i["department"] == dep}
    assert get_all(rsrv, status="all", trigger="feedback")["total"] == sum(i["trigger"] == "feedback" for i in everything) >= 1

    cs = sorted(i["confidence"] for i in everything)
    lo, hi = cs[len(cs) // 4], cs[3 * len(cs) // 4]
    got = get_all(rsrv, status="all", min_confidence=lo, max_confidence=hi)
    assert got["total"] == sum(lo <= c <= hi for c in cs) and all(lo <= i["confidence"] <= hi for i in got["items"])

    now = datetime.now(timezone.utc)
    assert get_all(rsrv, status="all", created_from=(now + timedelta(hours=1)).isoformat())["total"] == 0
    assert get_all(rsrv, status="all", created_to=(now + timedelta(hours=1)).isoformat())["total"] == len(everything)
    assert get_all(rsrv, status="all", created_to=(now - timedelta(days=1)).isoformat())["total"] == 0
    beijing = timezone(timedelta(hours=8))
    today_bj = datetime.now(beijing).replace(hour=0, minute=0, second=0, microsecond=0)
    assert get_all(rsrv, status="all", created_from=today_bj.isoformat(), created_to=(today_bj + timedelta(days=1)).isoformat())["total"] == len(everything)

    pages = [rsrv.client.get("/v1/reviews", params={"status": "all", "limit": 7, "offset": o}, headers=SV).json() for o in (0, 7, 14)]
    assert all(p["total"] == len(everything) and len(p["items"]) == 7 for p in pages)
    assert [i["id"] for p in pages for i in p["items"]] == [i["id"] for i in everything[:21]]

    for bad in ({"status": "maybe"}, {"min_confidence": 2}, {"limit": 0}, {"offset": -1}, {"channel": "119"},
                {"created_from": "yesterday"}, {"min_confidence": 0.8, "max_confidence": 0.2}):
        r = rsrv.client.get("/v1/reviews", params=bad, headers=SV)
        assert r.status_code == 422 and r.json()["detail"], bad


def test_confirm_then_409_then_reopen_and_correct(rsrv):
    item = pending_item(rsrv, trigger="needs_review")
    r = decide(rsrv, item["id"], decision="confirm", comment="建议正确", operator="S003")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "decided" and out["decision"] == "confirm" and out["replaced"] is None
    assert (out["decided_channel"], out["decided_department"]) == (item["channel"], item["department"])
    assert out["decided_by"].startswith("S003 supervisor key#") and KEYS["supervisor"] not in out["decided_by"]
    assert datetime.fromisoformat(out["decided_at"]) <= datetime.now(timezone.utc)

    dep, channel = other_department(rsrv, item)
    again = decide(rsrv, item["id"], decision="correct", department=dep)
    assert again.status_code == 409 and "reopen" in again.json()["detail"] and "confirm" in again.json()["detail"]
    stored = rsrv.client.get(f"/v1/reviews/{item['id']}", headers=SV).json()
    assert stored["decision"] == "confirm" and stored["comment"] == "建议正确"  # not silently overwritten

    r = decide(rsrv, item["id"], headers=AUTH["admin"], decision="correct", department=dep, comment="实为他部门", reopen=True)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["decision"], out["decided_department"], out["decided_channel"]) == ("correct", dep, channel)
    assert out["decided_by"].startswith("admin key#") and out["decided_department_name"] != dep
    assert out["replaced"]["decision"] == "confirm" and out["replaced"]["decided_by"].startswith("S003") and out["replaced"]["comment"] == "建议正确"
    assert item["id"] in {i["id"] for i in get_all(rsrv, status="decided")["items"]}
    assert item["id"] not in {i["id"] for i in get_all(rsrv)["items"]}


def test_decisions_are_validated(rsrv):
    item = pending_item(rsrv, trigger="needs_review")
    dep, channel = other_department(rsrv, item)
    wrong_channel = "12345" if channel == "110" else "110"
    cases = [
        ({"decision": "correct"}, 422, "改判需要选择部门"),
        ({"decision": "correct", "department": "no_such_dept"}, 422, "不在当前使用的分类中"),
        ({"decision": "correct", "department": dep, "channel": wrong_channel}, 422, "不符"),
        ({"decision": "correct", "department": item["department"]}, 422, "confirm"),
        ({"decision": "confirm", "department": dep}, 422, "correct"),
        ({"decision": "approve"}, 422, "decision"),
        ({"decision": "confirm", "note": "x"}, 422, "unknown field"),
    ]
    for body, code, word in cases:
        r = decide(rsrv, item["id"], **body)
        assert r.status_code == code and word in r.json()["detail"], (body, r.text)
        if code == 422 and body.get("decision") in ("correct", "confirm") and "note" not in body:
            assert len(r.json()["detail"]) < 60, r.text  # short: never the whole list of departments
    assert rsrv.client.get(f"/v1/reviews/{item['id']}", headers=SV).json()["status"] == "pending"
    assert decide(rsrv, 10**9, decision="confirm").status_code == 404
    assert rsrv.client.get(f"/v1/reviews/{10**9}", headers=SV).status_code == 404
    r = decide(rsrv, item["id"], decision="correct", department=dep, channel=int(channel), comment=f"已回拨{PHONE}核实")  # channel as a number is fine
    assert r.status_code == 200 and r.json()["decided_channel"] == channel
    assert PHONE not in r.json()["comment"] and "[手机号]" in r.json()["comment"]  # free text is masked before it is stored


def test_two_supervisors_deciding_at_once_one_wins(rsrv):
    item = pending_item(rsrv, trigger="needs_review")
    dep, _ = other_department(rsrv, item)
    bodies = [{"decision": "confirm"}, {"decision": "correct", "department": dep}] * 3
    barrier = threading.Barrier(len(bodies))
    codes: list[int] = []

    def go(body):
        barrier.wait()
        codes.append(decide(rsrv, item["id"], **body).status_code)

    threads = [threading.Thread(target=go, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] + [409] * (len(bodies) - 1)


def test_stats_count_what_supervisors_changed(rsrv):
    before = rsrv.client.get("/v1/reviews/stats", headers=SV).json()
    pending = get_all(rsrv)["items"]
    # decide three more: one confirm, two corrections (one of them to the other channel when possible)
    a, b, c = pending[:3]
    assert decide(rsrv, a["id"], decision="confirm").status_code == 200
    dep_b, _ = other_department(rsrv, b)
    assert decide(rsrv, b["id"], decision="correct", department=dep_b).status_code == 200
    deps = rsrv.client.get("/v1/model", headers=SV).json()["taxonomy"]["departments"]
    dep_c = next(d["code"] for d in deps if d["channel"] != c["channel"])
    assert decide(rsrv, c["id"], decision="correct", department=dep_c).status_code == 200

    st = rsrv.client.get("/v1/reviews/stats", headers=SV).json()
    assert st["pending"] == before["pending"] - 3 and st["decided"] == before["decided"] + 3
    assert st["corrected"] == before["corrected"] + 2 and st["channel_changed"] == before["channel_changed"] + 1

    decided = get_all(rsrv, status="decided")["items"]
    for group, field in (("by_department", "department"), ("by_channel", "channel")):
        expect = {}
        for i in decided:
            e = expect.setdefault(i[field], [0, 0, 0])
            e[0] += 1
            e[1] += i["decision"] == "correct"
            e[2] += i["decided_channel"] != i["channel"]
        got = {g["key"]: [g["decided"], g["corrected"], g["channel_changed"]] for g in st[group]}
        assert got == expect, group
        for g in st[group]:
            assert g["correction_rate"] == pytest.approx(g["corrected"] / g["decided"], abs=1e-4) and g["name"]
    assert st["correction_rate"] == pytest.approx(st["corrected"] / st["decided"], abs=1e-4)

    hist = st["pending_confidence_histogram"]
    assert len(hist) == 10 and hist[0]["low"] == 0 and hist[-1]["high"] == 1
    want = Counter(next((k for k in range(9) if i["confidence"] < (k + 1) / 10), 9) for i in get_all(rsrv)["items"])
    assert [h["count"] for h in hist] == [want.get(k, 0) for k in range(10)]
    assert sum(h["count"] for h in hist) == st["pending"]
