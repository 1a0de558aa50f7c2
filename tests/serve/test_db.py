"""The database layer: what is stored, masking, transactions; SQLite by default and PostgreSQL by URL."""
from __future__ import annotations

import pytest
from sqlalchemy import select, text

from model.router import Alternative, Decision
from serve.db import Database, ReviewItem, RoutedCall, make_engine
from serve.store import RoutedText, UnknownCall, record_feedback, record_routes, review_trigger
from tests.serve.conftest import PG


def decision(**kw) -> Decision:
    base = dict(
        channel="12345", department="utilities", department_name="水电气热", confidence=0.9, channel_confidence=0.95,
        needs_review=False, source="model", reasons=["模型判断为水电气热"], alternatives=[Alternative("convenience", "便民求助", "12345", 0.05)],
        links=[], model_version="linear-test", danger=False, matched_rules=[], model_department="utilities",
    )
    return Decision(**{**base, **kw})


OVERRIDE = dict(channel="110", department="fire", source="override", danger=True, needs_review=True, model_department="utilities")


@pytest.fixture
def db(tmp_path):
    return Database(f"sqlite:///{tmp_path / 'h.db'}")


def test_default_is_a_sqlite_file(tmp_path, monkeypatch):
    from serve.config import Settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HOTLINE_DATABASE_URL", raising=False)
    d = Database(Settings(_env_file=None).database_url)
    assert d.dialect == "sqlite" and (tmp_path / "hotline.db").exists() and d.ping() is None


def test_review_triggers():
    assert review_trigger(decision()) is None
    assert review_trigger(decision(needs_review=True)) == "needs_review"
    assert review_trigger(decision(**OVERRIDE)) == "override"
    rules_only_danger = decision(channel="110", department="fire", source="override", danger=True, model_department=None, model_version=None)
    assert review_trigger(rules_only_danger) is None  # no model to disagree with


def test_routes_are_masked_upserted_and_queued_once(db):
    t = "王先生13812345678说3栋2单元501室着火了"
    with db.session() as s:
        ids = record_routes(s, items=[RoutedText(t, decision(**OVERRIDE), "c1"), RoutedText("停水了", decision(), None)])
    assert ids[0] is not None and ids[1] is None
    with db.session() as s:
        record_routes(s, items=[RoutedText(t + "，火很大", decision(**OVERRIDE), "c1")])  # same call again
        items = s.scalars(select(ReviewItem)).all()
        call = s.get(RoutedCall, "c1")
    assert len(items) == 1 and items[0].trigger == "override" and items[0].status == "pending"
    for stored in (items[0].text_masked, call.text_masked):
        assert "13812345678" not in stored and "王先生" not in stored and "501" not in stored and "火很大" in stored
    assert items[0].model_department == "utilities" and items[0].alternatives[0]["department"] == "convenience"


def test_the_same_call_twice_in_one_batch_keeps_the_last(db):
    with db.session() as s:
        record_routes(s, items=[RoutedText("停水了", decision(), "dup"), RoutedText("停电了", decision(department="convenience"), "dup")])
    with db.session() as s:
        assert s.query(RoutedCall).count() == 1 and s.get(RoutedCall, "dup").department == "convenience"


def test_database_down_calls_are_still_answered(start_server, tiny_model_dir):
    srv = start_server(model_dir=tiny_model_dir, database_url="postgresql://nobody@127.0.0.1:1/none")
    r = srv.client.get("/ready")
    assert r.status_code == 503 and "unreachable" in r.json()["reason"]
    r = srv.client.post("/v1/route", json={"text": "家里停水了", "call_id": "db-down"})
    assert r.status_code == 200 and r.json()["queued_for_review"] is False and r.json()["department"]
    # Not lost: the write waits in the write-behind queue and is retried until the database answers.
    assert srv.metric("hotline_db_write_pending") == 1 and srv.metric("hotline_db_errors_total") == 0
    r = srv.client.post("/v1/feedback", json={"call_id": "db-down", "final_channel": "12345", "final_department": "utilities"})
    assert r.status_code == 503 and "not stored" in r.json()["detail"] and "Traceback" not in r.text


def test_feedback_needs_a_routed_call_and_compares(db):
    with db.session() as s, pytest.raises(UnknownCall):
        record_feedback(s, call_id="nope", final_channel="110", final_department="fire")
    with db.session() as s:
        record_routes(s, items=[RoutedText("停水了", decision(), "c2")])
        fb, rid = record_feedback(s, call_id="c2", final_channel="12345", final_department="utilities")
        assert fb.agrees and rid is None
        fb, rid = record_feedback(s, call_id="c2", final_channel="12345", final_department="convenience", operator="A1")
        assert not fb.agrees and rid is not None
        item = s.get(ReviewItem, rid)
        assert (item.trigger, item.feedback_department, item.operator) == ("feedback", "convenience", "A1")


def test_a_failed_write_leaves_nothing_behind(db):
    """One transaction: when the second item fails, the first is not stored either."""
    bad = decision(needs_review=True)
    bad.channel = None  # NOT NULL column: the insert fails
    with db.session() as s, pytest.raises(Exception):
        record_routes(s, items=[RoutedText("停水了", decision(needs_review=True), "ok-1"), RoutedText("停电了", bad, "bad-1")])
    with db.session() as s:
        assert s.query(RoutedCall).count() == 0 and s.query(ReviewItem).count() == 0


def test_unreachable_database_is_reported_without_password():
    d = Database("postgresql://user:secret@127.0.0.1:1/none", create=False)
    reason = d.ping()
    assert reason and "secret" not in reason and "unreachable" in reason


# --------------------------------------------------------------------------------------------------
# PostgreSQL, against the real server (.ci/run sets HOTLINE_TEST_POSTGRES_URL)
# --------------------------------------------------------------------------------------------------
# the pg_schema fixture (a per-test schema) is in tests/serve/conftest.py


@pytest.mark.postgres
def test_postgres_through_the_real_server(pg_schema, start_server, tiny_model_dir):
    schema, url = pg_schema
    srv = start_server(model_dir=tiny_model_dir, database_url=url, review_threshold=1.01)
    try:
        assert srv.app.state.db.dialect == "postgresql"
        assert srv.client.get("/ready").json()["ready"] is True
        d = srv.client.post("/v1/route", json={"text": "来电13812345678，家里停水了", "call_id": "pg-1"}).json()
        assert d["queued_for_review"]
        r = srv.client.post("/v1/feedback", json={"call_id": "pg-1", "final_channel": "110", "final_department": "police_criminal"})
        assert r.status_code == 201 and r.json()["queued_for_review"]
    finally:
        srv.stop()  # release its connections before the schema is dropped
    eng = make_engine(PG)
    with eng.connect() as c:
        rows = c.execute(text(f'SELECT trigger, text_masked FROM "{schema}".review_items ORDER BY id')).all()
        n_fb = c.execute(text(f'SELECT count(*) FROM "{schema}".feedback')).scalar()
        n_calls = c.execute(text(f'SELECT count(*) FROM "{schema}".routed_calls')).scalar()
    eng.dispose()
    assert [t for t, _ in rows] == ["needs_review", "feedback"] and all("13812345678" not in m for _, m in rows)
    assert n_fb == 1 and n_calls == 1
