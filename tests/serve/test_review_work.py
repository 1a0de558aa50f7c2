"""Working the review queue together, over real HTTP: the reviewer's name (from the key or the page),
claims that keep two supervisors apart and expire, groups of identical texts decided at once, text
search, bulk confirm, the per-reviewer history; cases that keep the taxonomy they were routed with
after a model with other departments is served; a database of the previous version keeps working.
The queue tests run on SQLite and, when HOTLINE_TEST_POSTGRES_URL is set, on PostgreSQL."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, text, update

from serve.db import ReviewItem
from tests.factories import tiny_rows, write_jsonl
from tests.serve.conftest import PG, PG_SKIP, postgres_schema

CT, SVA, SVB = "ct-rw-5d1c09", "sv-rw-a81f3e", "sv-rw-b27c64"
A = {"Authorization": f"Bearer {SVA}"}   # a named key: 王班长
B = {"Authorization": f"Bearer {SVB}"}   # an unnamed key: the page sends the name it asked for
KEYS = f"{CT}:call_taker,{SVA}:supervisor:王班长,{SVB}:supervisor"
SAME = "家里停水了什么时候来水"


def seed(srv, prefix: str = "rw") -> None:
    items = [{"text": r["text"], "call_id": f"{prefix}-{i}"} for i, r in enumerate(tiny_rows()[:20])]
    items += [{"text": SAME, "call_id": f"{prefix}-same-{i}"} for i in range(3)]
    r = srv.client.post("/v1/route/batch", json={"items": items}, headers={"Authorization": f"Bearer {CT}"})
    assert r.status_code == 200 and all(i["queued_for_review"] for i in r.json()["items"]), r.text


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def wsrv(request, start_server, tiny_model_dir):
    kw = dict(model_dir=tiny_model_dir, api_keys=KEYS, review_threshold=1.01)
    if request.param == "postgresql":
        if not PG:
            pytest.skip(PG_SKIP)
        with postgres_schema() as (_, url):
            srv = start_server(database_url=url, **kw)
            seed(srv)
            yield srv
            srv.stop()
    else:
        srv = start_server(**kw)
        seed(srv)
        yield srv


def listing(srv, headers=A, **params) -> dict:
    r = srv.client.get("/v1/reviews", params={"limit": 200, **params}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def decide(srv, rid, headers=A, **body):
    return srv.client.post(f"/v1/reviews/{rid}", json=body, headers=headers)


def served_other(srv, item) -> str:
    deps = srv.client.get("/v1/model", headers=A).json()["taxonomy"]["departments"]
    return next(d["code"] for d in deps if d["code"] != item["department"])


def test_the_reviewer_is_the_keys_name_else_the_name_the_page_gives(wsrv):
    me = wsrv.client.get("/v1/reviews/me", headers=A).json()
    assert me["reviewer"] == "王班长" and me["from_key"] is True and me["claim_minutes"] == 10
    me = wsrv.client.get("/v1/reviews/me", params={"operator": "S007"}, headers=B).json()
    assert me["reviewer"] == "S007" and me["from_key"] is False
    assert wsrv.client.get("/v1/reviews/me", headers={"Authorization": f"Bearer {CT}"}).status_code == 403


def test_claims_keep_two_supervisors_apart_release_and_expire(wsrv):
    item = listing(wsrv, q="打架")["items"][0]
    rid = item["id"]
    r = wsrv.client.post(f"/v1/reviews/{rid}/claim", headers=A)
    assert r.status_code == 200 and r.json()["claimed_by"] == "王班长"
    until = datetime.fromisoformat(r.json()["claimed_until"])
    assert timedelta(minutes=9) < until - datetime.now(timezone.utc) <= timedelta(minutes=10)
    assert wsrv.client.post(f"/v1/reviews/{rid}/claim", headers=A).status_code == 200  # renewing one's own claim
    # B can neither claim nor decide it while A's claim holds; the answer says who holds it (Chinese)
    r = wsrv.client.post(f"/v1/reviews/{rid}/claim", json={"operator": "S007"}, headers=B)
    assert r.status_code == 409 and "王班长" in r.json()["detail"] and "处理" in r.json()["detail"]
    r = decide(wsrv, rid, headers=B, decision="confirm", operator="S007")
    assert r.status_code == 409 and "王班长" in r.json()["detail"]
    assert listing(wsrv, q="打架")["items"][0]["claimed_by"] == "王班长"
    # released: B may claim it
    assert wsrv.client.delete(f"/v1/reviews/{rid}/claim", headers=A).status_code == 204
    assert wsrv.client.post(f"/v1/reviews/{rid}/claim", json={"operator": "S007"}, headers=B).json()["claimed_by"] == "S007"
    # expired: A may take it over (the claim's end is moved into the past, as time would)
    with wsrv.app.state.db.session() as s, s.begin():
        s.execute(update(ReviewItem).where(ReviewItem.id == rid).values(claimed_until=datetime.now(timezone.utc) - timedelta(seconds=1)))
    assert wsrv.client.post(f"/v1/reviews/{rid}/claim", headers=A).json()["claimed_by"] == "王班长"
    r = decide(wsrv, rid, decision="confirm")
    assert r.status_code == 200 and r.json()["claimed_by"] is None  # deciding ends the claim
    assert wsrv.client.post(f"/v1/reviews/{rid}/claim", headers=A).status_code == 409  # decided: nothing to claim


def test_identical_texts_are_one_row_and_a_correction_applies_to_the_group(wsrv):
    flat = listing(wsrv, q=SAME)
    assert flat["total"] == 3 and {i["group_size"] for i in flat["items"]} == {1}
    grouped = listing(wsrv, group="true")
    same = [i for i in grouped["items"] if i["text_masked"] == SAME]
    assert len(same) == 1 and same[0]["group_size"] == 3
    assert grouped["total"] == len(grouped["items"]) == listing(wsrv)["total"] - 2
    conf = [i["confidence"] for i in grouped["items"]]
    assert conf == sorted(conf)

    dep = served_other(wsrv, same[0])
    r = decide(wsrv, same[0]["id"], decision="correct", department=dep, group=True)
    assert r.status_code == 200, r.text
    others = set(r.json()["group_decided"])
    assert len(others) == 2 and same[0]["id"] not in others
    decided = listing(wsrv, status="decided", q=SAME)["items"]
    assert len(decided) == 3 and {i["decided_department"] for i in decided} == {dep}
    assert listing(wsrv, q=SAME)["total"] == 0
    hist = wsrv.client.get("/v1/reviews/history", params={"reviewer": "王班长"}, headers=A).json()["items"]
    assert sorted(h["how"] for h in hist if h["text_masked"] == SAME) == ["group", "group", "single"]


def test_search_finds_text_literally(wsrv):
    got = listing(wsrv, q="被偷")
    assert got["total"] >= 1 and all("被偷" in i["text_masked"] for i in got["items"])
    assert listing(wsrv, q="%")["total"] == 0 and listing(wsrv, q="_")["total"] == 0  # not wildcards
    assert listing(wsrv, q="没有这样的摘要")["total"] == 0


def test_bulk_confirm_confirms_each_and_says_what_it_skipped(wsrv):
    pending = listing(wsrv)["items"]
    a, b, c, held = pending[:4]
    done = listing(wsrv, status="decided")["items"][0]["id"]
    assert wsrv.client.post(f"/v1/reviews/{held['id']}/claim", json={"operator": "S007"}, headers=B).status_code == 200
    r = wsrv.client.post("/v1/reviews/bulk", json={"ids": [a["id"], b["id"], c["id"], done, held["id"], 2**31 - 1], "decision": "confirm"}, headers=A)
    assert r.status_code == 200, r.text
    assert r.json()["decided"] == [a["id"], b["id"], c["id"]]
    assert {(s["id"], s["reason"]) for s in r.json()["skipped"]} == {(done, "decided"), (held["id"], "claimed"), (2**31 - 1, "not_found")}
    for it in (a, b, c):
        got = wsrv.client.get(f"/v1/reviews/{it['id']}", headers=A).json()
        assert got["decision"] == "confirm" and got["decided_department"] == it["department"] and got["decided_by"].startswith("王班长 supervisor key#")
    assert wsrv.client.get(f"/v1/reviews/{held['id']}", headers=A).json()["status"] == "pending"
    assert wsrv.client.post("/v1/reviews/bulk", json={"ids": [], "decision": "confirm"}, headers=A).status_code == 422
    assert wsrv.client.post("/v1/reviews/bulk", json={"ids": [a["id"]], "decision": "correct"}, headers=A).status_code == 422


def test_history_shows_what_each_reviewer_decided_and_when(wsrv):
    pending = listing(wsrv)["items"]
    x, y = pending[0], pending[1]
    assert decide(wsrv, x["id"], headers=B, decision="confirm", operator="S007").status_code in (200, 409)  # 409 only if held
    dep = served_other(wsrv, y)
    assert decide(wsrv, y["id"], headers=B, decision="correct", department=dep, operator="S008").status_code == 200
    h = wsrv.client.get("/v1/reviews/history", params={"reviewer": "S008"}, headers=A).json()
    assert h["total"] == 1 and h["items"][0]["review_id"] == y["id"] and h["items"][0]["department"] == dep
    assert h["items"][0]["department_name"] and h["items"][0]["text_masked"] == y["text_masked"] and h["items"][0]["decision"] == "correct"
    mine = wsrv.client.get("/v1/reviews/history", params={"reviewer": "王班长", "limit": 200}, headers=A).json()
    assert mine["total"] >= 6 and all(i["reviewer"] == "王班长" for i in mine["items"])
    times = [i["decided_at"] for i in mine["items"]]
    assert times == sorted(times, reverse=True)
    everyone = wsrv.client.get("/v1/reviews/history", headers=A).json()
    counts = {c["reviewer"]: c for c in everyone["reviewers"]}
    assert counts["王班长"]["decided"] == mine["total"] and counts["S008"] == {**counts["S008"], "decided": 1, "corrected": 1}
    assert everyone["total"] == sum(c["decided"] for c in everyone["reviewers"])


# --------------------------------------------------------------------------------------------------
def test_cases_keep_the_taxonomy_they_were_routed_with(start_server, tiny_model_dir, tmp_path):
    """Routed with the tiny model, reviewed after a model with other department codes is served."""
    from training.train import TrainConfig, train

    rows = [dict(r, department=r["department"] + "_v2") for r in tiny_rows()]
    other = tmp_path / "v2"
    train(TrainConfig(data=[str(write_jsonl(tmp_path / "v2.jsonl", rows))], out=str(other), val_folds=3, taxonomy="infer"), progress=False)
    db = f"sqlite:///{tmp_path / 'hotline.db'}"
    old = start_server(model_dir=tiny_model_dir, api_keys=KEYS, review_threshold=1.01, database_url=db)
    seed(old, "tx")
    names = {d["code"]: d["name"] for d in old.client.get("/v1/model", headers=A).json()["taxonomy"]["departments"]}
    old.stop()
    new = start_server(model_dir=other, api_keys=KEYS, review_threshold=1.01, database_url=db)
    served = {d["code"] for d in new.client.get("/v1/model", headers=A).json()["taxonomy"]["departments"]}
    assert served and not served & set(names)

    items = listing(new)["items"]
    assert items
    for it in items:
        assert it["department_name"] == names[it["department"]] != it["department"]  # the names it was routed with
        assert all(a["department_name"] == names[a["department"]] for a in it["alternatives"])
        assert it["served"] is False
    it = items[0]
    r = decide(new, it["id"], decision="correct", department=next(iter(names)))  # a code of the old taxonomy
    assert r.status_code == 422 and "不在当前使用的分类中" in r.json()["detail"] and len(r.json()["detail"]) < 60
    r = decide(new, it["id"], decision="confirm")
    assert r.status_code == 422 and names[it["department"]] in r.json()["detail"] and "改判" in r.json()["detail"]
    target = sorted(served)[0]
    r = decide(new, it["id"], decision="correct", department=target)
    assert r.status_code == 200 and r.json()["decided_department"] == target and r.json()["department_name"] == names[it["department"]]
    bulk = new.client.post("/v1/reviews/bulk", json={"ids": [items[1]["id"]], "decision": "confirm"}, headers=A).json()
    assert bulk["skipped"] == [{"id": items[1]["id"], "reason": "not_served"}]


OLD_REVIEW_ITEMS = """CREATE TABLE review_items (
    id INTEGER NOT NULL, call_id VARCHAR(128), "trigger" VARCHAR(16) NOT NULL, text_masked TEXT NOT NULL,
    channel VARCHAR(8) NOT NULL, department VARCHAR(128) NOT NULL, confidence FLOAT NOT NULL, channel_confidence FLOAT NOT NULL,
    source VARCHAR(16) NOT NULL, danger BOOLEAN NOT NULL, model_department VARCHAR(128), alternatives JSON NOT NULL,
    reasons JSON NOT NULL, model_version VARCHAR(128), feedback_channel VARCHAR(8), feedback_department VARCHAR(128),
    operator VARCHAR(128), created_at DATETIME NOT NULL, status VARCHAR(16) NOT NULL, decision VARCHAR(16),
    decided_channel VARCHAR(8), decided_department VARCHAR(128), comment TEXT, decided_by VARCHAR(64), decided_at DATETIME,
    PRIMARY KEY (id))"""  # as the previous version created it (CreateTable of its serve/db.py, SQLite dialect)


def _old_row(i: int, txt: str) -> tuple:
    alts = '[{"department": "convenience", "department_name": "便民服务", "channel": "12345", "probability": 0.2, "source": "model"}]'
    return (i, f"old-{i}", "needs_review", txt, "12345", "utilities", 0.4, 0.9, "model", 0, "utilities", alts, '["旧版本"]', "v-old",
            "2026-12-01 08:00:00.000000", "pending")


def test_a_sqlite_database_of_the_previous_version_keeps_working(start_server, tiny_model_dir, tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as con:
        con.execute(OLD_REVIEW_ITEMS)
        con.executemany(
            "INSERT INTO review_items (id, call_id, \"trigger\", text_masked, channel, department, confidence, channel_confidence, source, danger,"
            " model_department, alternatives, reasons, model_version, created_at, status) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [_old_row(1, SAME), _old_row(2, SAME), _old_row(3, "楼里的水管漏水了要维修")],
        )
        con.execute("INSERT INTO review_items (id, call_id, \"trigger\", text_masked, channel, department, confidence, channel_confidence, source,"
                    " danger, model_department, alternatives, reasons, model_version, created_at, status, decision, decided_channel,"
                    " decided_department, decided_by, decided_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,'correct','110','police_criminal',"
                    " 'S003 supervisor key#0a1b', '2026-12-01 09:00:00.000000')", _old_row(4, "车窗被砸车里的包被偷")[:-1] + ("decided",))
    srv = start_server(model_dir=tiny_model_dir, api_keys=KEYS, database_url=f"sqlite:///{path}")
    cols = {c["name"] for c in inspect(srv.app.state.db.engine).get_columns("review_items")}
    assert {"department_names", "text_hash", "claimed_by", "claimed_until"} <= cols
    got = listing(srv, group="true")
    assert got["total"] == 2 and {i["group_size"] for i in got["items"]} == {1, 2}
    old = next(i for i in got["items"] if i["group_size"] == 2)
    assert old["department_name"] not in ("", "utilities")  # no names were stored: the served taxonomy's name
    assert srv.client.post(f"/v1/reviews/{old['id']}/claim", headers=A).status_code == 200
    r = decide(srv, old["id"], decision="confirm", group=True)
    assert r.status_code == 200 and len(r.json()["group_decided"]) == 1
    hist = srv.client.get("/v1/reviews/history", headers=A).json()
    assert hist["total"] == 3  # the decision made before the upgrade, then the two of the group
    assert hist["items"][-1]["review_id"] == 4 and hist["items"][-1]["reviewer"] == "S003 supervisor key#0a1b"


def test_export_reviews_reads_a_database_of_the_previous_version(tmp_path):
    """`hotline export-reviews` as a process, on a SQLite file no new server has opened yet."""
    import json
    import os
    import subprocess
    import sys

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as con:
        con.execute(OLD_REVIEW_ITEMS)
        row = _old_row(1, "楼里的水管漏水了要维修")[:-1] + ("decided",)
        con.execute(
            "INSERT INTO review_items (id, call_id, \"trigger\", text_masked, channel, department, confidence, channel_confidence, source, danger,"
            " model_department, alternatives, reasons, model_version, created_at, status, decision, decided_channel, decided_department, decided_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,'confirm','12345','utilities','2026-12-01 09:00:00.000000')", row,
        )
    from serve.db import Base, make_engine

    engine = make_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine, tables=[Base.metadata.tables["feedback"]])  # unchanged since the previous version
    engine.dispose()
    out = tmp_path / "reviews.jsonl"
    r = subprocess.run([sys.executable, "-m", "serve.cli", "export-reviews", "--out", str(out), "--database-url", f"sqlite:///{path}"],
                       capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(x["text"], x["department"], x["source"]) for x in rows] == [("楼里的水管漏水了要维修", "utilities", "review")]


def test_a_postgresql_database_of_the_previous_version_keeps_working(pg_schema, start_server, tiny_model_dir):
    """The previous version's tables on PostgreSQL: today's tables without the columns added since."""
    from serve.db import Base, make_engine

    _, url = pg_schema
    engine = make_engine(url)
    Base.metadata.create_all(engine, tables=[Base.metadata.tables["review_items"], Base.metadata.tables["routed_calls"]])
    with engine.begin() as c:
        for col in ("department_names", "text_hash", "claimed_by", "claimed_until"):
            c.execute(text(f"ALTER TABLE review_items DROP COLUMN {col}"))
        c.execute(text("ALTER TABLE routed_calls DROP COLUMN department_names"))
        c.execute(text("INSERT INTO review_items (call_id, \"trigger\", text_masked, channel, department, confidence, channel_confidence, source,"
                       " danger, alternatives, reasons, created_at, status) VALUES ('old-1', 'needs_review', :t, '12345', 'utilities', 0.4, 0.9,"
                       " 'model', false, '[]', '[]', now(), 'pending')"), {"t": SAME})
    engine.dispose()
    srv = start_server(model_dir=tiny_model_dir, api_keys=KEYS, database_url=url, review_threshold=1.01)
    try:
        seed(srv, "pg-old")
        got = listing(srv, group="true", q=SAME)
        assert got["total"] == 1 and got["items"][0]["group_size"] == 4
        assert decide(srv, got["items"][0]["id"], decision="confirm", group=True).status_code == 200
        assert listing(srv, q=SAME)["total"] == 0
    finally:
        srv.stop()
