"""Schema revisions (serve/migrations, Alembic): head matches the models, a new database is created at
head, a database an earlier version made is completed and stamped with its rows kept, several
processes starting at once migrate once, and what cannot be migrated is refused without a change.
SQLite, and PostgreSQL when HOTLINE_TEST_POSTGRES_URL is set (a schema per test, dropped after)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from serve import migrations
from serve.db import Database, ReviewItem, make_engine, text_hash
from serve.migrations.metadata import target_metadata

ROOT = Path(__file__).resolve().parents[2]
ADDED_COLUMNS = {"review_items": {"department_names", "text_hash", "claimed_by", "claimed_until"}, "routed_calls": {"department_names"}}


def differences(engine: sa.Engine, metadata: sa.MetaData | None = None) -> list:
    """What Alembic's autogenerate sees between the database and the models (types included)."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, metadata if metadata is not None else target_metadata())


def tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_one_head():
    """Two branches that each added a revision after the same one leave two heads: re-point one's down_revision."""
    assert len(migrations.heads()) == 1, f"several heads {migrations.heads()}: set one new revision's down_revision to the other"


def test_a_new_database_is_created_at_head_and_matches_the_models(database_url):
    db = Database(database_url)
    try:
        assert migrations.current(db.engine) == migrations.heads()
        assert tables(db.engine) == set(target_metadata().tables) | {"alembic_version"}
        assert differences(db.engine) == []
        # the safety net can fail: a model the revisions do not create is a difference
        extra = sa.MetaData()
        for t in target_metadata().tables.values():
            t.to_metadata(extra)
        sa.Table("example_notes", extra, sa.Column("id", sa.Integer, primary_key=True))
        assert [d[0] for d in differences(db.engine, extra)] == ["add_table"]
        assert db.create_tables() == migrations.heads()  # again: nothing to do
    finally:
        db.dispose()


def test_downgrade_to_base_and_back(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'h.db'}")
    from alembic import command

    migrations.upgrade(engine)

    with migrations.locked(engine) as conn:
        command.downgrade(migrations.config(conn), "base")
    assert tables(engine) == {"alembic_version"} and migrations.current(engine) == ()
    assert migrations.upgrade(engine) == migrations.heads() and differences(engine) == []
    engine.dispose()


def old_schema(engine: sa.Engine) -> sa.MetaData:
    """The tables of an earlier version: routed_calls, feedback, review_items, reload_requests as they
    were before the columns added since (and before review_decisions and the transfer tables)."""
    meta = sa.MetaData()
    for name in ("routed_calls", "feedback", "review_items", "reload_requests"):
        t = target_metadata().tables[name]
        drop = ADDED_COLUMNS.get(name, set())
        cols = [sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable) for c in t.columns if c.name not in drop]
        idx = [sa.Index(i.name, *[c.name for c in i.columns]) for i in t.indexes if not {c.name for c in i.columns} & drop]
        sa.Table(name, meta, *cols, *idx)
    meta.create_all(engine)
    return meta


def test_a_database_of_an_earlier_version_is_completed_and_stamped(database_url):
    engine = make_engine(database_url)
    old_items = old_schema(engine).tables["review_items"]
    at = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
    rows = [dict(id=i, call_id=f"old-{i}", trigger="needs_review", text_masked=t, channel="12345", department="utilities", confidence=0.4,
                 channel_confidence=0.9, source="model", danger=False, alternatives=[], reasons=["旧版本"], status=s, created_at=at)
            for i, t, s in [(1, "小区停水了", "pending"), (2, "楼道灯坏了", "decided")]]
    with engine.begin() as c:
        c.execute(old_items.insert(), rows[:1])
        c.execute(old_items.insert().values(**rows[1], decision="correct", decided_channel="12345", decided_department="convenience",
                                            decided_by="S003 supervisor key#0a1b", decided_at=at))
    assert migrations.current(engine) == ()
    db = Database(database_url)  # what start-up does
    try:
        assert migrations.current(db.engine) == migrations.heads() and differences(db.engine) == []
        for table, cols in ADDED_COLUMNS.items():
            assert cols <= {c["name"] for c in sa.inspect(db.engine).get_columns(table)}
        with db.session() as s:
            items = s.scalars(sa.select(ReviewItem).order_by(ReviewItem.id)).all()
            assert [(i.id, i.text_masked, i.status) for i in items] == [(1, "小区停水了", "pending"), (2, "楼道灯坏了", "decided")]
            assert [i.text_hash for i in items] == [text_hash("小区停水了"), text_hash("楼道灯坏了")]
            history = s.execute(sa.text("SELECT review_id, reviewer, decision, department FROM review_decisions")).all()
            assert [tuple(h) for h in history] == [(2, "S003 supervisor key#0a1b", "correct", "convenience")]
    finally:
        db.dispose()
        engine.dispose()


def test_a_foreign_table_is_refused_and_nothing_changes(database_url):
    """A review_items table without a column that cannot be added in place: a clear error, no table created, no stamp."""
    engine = make_engine(database_url)
    with engine.begin() as c:
        c.execute(sa.text("CREATE TABLE review_items (id INTEGER PRIMARY KEY, note TEXT)"))
    try:
        with pytest.raises(migrations.MigrationError, match="review_items.trigger is missing and not nullable"):
            Database(database_url)
        assert tables(engine) == {"review_items"} and migrations.current(engine) == ()
    finally:
        engine.dispose()


def test_a_database_of_a_newer_version_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    Database(url).dispose()
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dfeedbeef'"))
    with pytest.raises(migrations.MigrationError, match="f00dfeedbeef"):
        migrations.upgrade(engine)
    engine.dispose()


# ---------------------------------------------------------------------------------------------
# Several processes starting at once (uvicorn --workers N, replicas)
# ---------------------------------------------------------------------------------------------

START = textwrap.dedent("""
    import sys, time
    from serve.db import Database
    start = float(sys.argv[2])
    time.sleep(max(0.0, start - time.time()))  # every process begins at the same instant
    Database(sys.argv[1]).dispose()
    print("done", time.time())
""")


def _starts(url: str, n: int, at: float) -> list[subprocess.Popen]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return [subprocess.Popen([sys.executable, "-c", START, url, str(at)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(n)]


def test_concurrent_starts_migrate_once(database_url):
    procs = _starts(database_url, 4, time.time() + 4.0)  # 4 s: time for every interpreter to import
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [e for _, e in outs]
    engine = make_engine(database_url)
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == list(migrations.heads())
    assert differences(engine) == []
    engine.dispose()


def test_a_start_waits_for_the_upgrade_in_progress(database_url):
    """While one process holds the migration lock, another start waits for it (and creates nothing)."""
    engine = make_engine(database_url)
    try:
        with migrations.locked(engine) as conn:
            conn.execute(sa.text("CREATE TABLE held_by_first (id INTEGER PRIMARY KEY)"))
            (proc,) = _starts(database_url, 1, 0)
            time.sleep(4.0)
            assert proc.poll() is None, proc.communicate()
            assert "review_items" not in tables(engine)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert {"held_by_first", "review_items"} <= tables(engine) and migrations.current(engine) == migrations.heads()
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------
# The next engineer's job: a new table is one autogenerated revision away
# ---------------------------------------------------------------------------------------------

NEXT_TABLE = textwrap.dedent("""
    import shutil, sys
    from pathlib import Path
    from typer.testing import CliRunner
    import sqlalchemy as sa
    from sqlalchemy.orm import Mapped, mapped_column
    import serve.migrations as m
    from serve.db import Base, Database

    # a copy of the revisions, so that the test does not write into the source tree
    work = Path(sys.argv[1]) / "migrations"
    shutil.copytree(m.HERE, work, ignore=shutil.ignore_patterns("__pycache__"))
    m.HERE = work
    from serve.cli import app
    r = CliRunner().invoke(app, ["db", "revision", "-m", "nothing yet"])
    print("unchanged", "nothing to write" in r.output and not list(work.glob("versions/*_nothing_yet.py")))

    class ExampleNote(Base):
        __tablename__ = "example_notes"
        id: Mapped[int] = mapped_column(primary_key=True)
        call_id: Mapped[str] = mapped_column(sa.String(128), index=True)
        kept_by: Mapped[str] = mapped_column(sa.String(8))

    url = f"sqlite:///{sys.argv[1]}/h.db"
    before = Database(url)
    assert "example_notes" not in sa.inspect(before.engine).get_table_names()
    r = CliRunner().invoke(app, ["db", "revision", "-m", "add example_notes"])
    assert r.exit_code == 0, r.output
    written = next(work.glob("versions/*_add_example_notes.py"))
    print("revision", written.name, "create_table('example_notes'" in written.read_text())
    db = Database(url)
    print("heads", m.heads(), "current", m.current(db.engine))
    print("columns", sorted(c["name"] for c in sa.inspect(db.engine).get_columns("example_notes")))
""")


def test_adding_a_table_is_one_revision(tmp_path):
    r = subprocess.run([sys.executable, "-c", NEXT_TABLE, str(tmp_path)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert lines["unchanged"] == "True"  # models at head: no empty revision is written
    assert lines["revision"].endswith("_add_example_notes.py True")
    new_head = lines["revision"].split("_", 1)[0]
    assert lines["heads"] == f"('{new_head}',) current ('{new_head}',)"
    assert lines["columns"] == "['call_id', 'id', 'kept_by']"
    assert not list((ROOT / "serve/migrations/versions").glob("*example_notes*"))  # the source tree is untouched


def test_the_db_commands(tmp_path):
    from typer.testing import CliRunner

    from serve.cli import app

    def run(*args: str):
        return CliRunner().invoke(app, ["db", *args, "--database-url", url])

    url = f"sqlite:///{tmp_path / 'h.db'}"
    engine = make_engine(url)
    old_schema(engine)
    head = migrations.heads()[0]
    r = run("current")
    assert r.exit_code == 1 and "database: none" in r.stdout and f"head:     {head}" in r.stdout and "hotline db upgrade" in r.stderr
    r = run("upgrade")
    assert r.exit_code == 0 and f"database at {head} (was none" in r.stdout and differences(engine) == []
    assert run("upgrade").stdout.strip() == f"database already at {head}"
    assert run("current").exit_code == 0
    with engine.begin() as c:
        c.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dfeedbeef'"))
    r = run("upgrade")
    assert r.exit_code == 2 and r.stderr.startswith("error: cannot upgrade the database from f00dfeedbeef") and r.stderr.count("\n") == 1
    engine.dispose()


def test_a_server_on_a_database_it_cannot_upgrade_says_why_and_still_routes(start_server, tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    Database(url).dispose()
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dfeedbeef'"))  # as a newer version would leave it
    engine.dispose()
    srv = start_server(database_url=url)
    try:
        r = srv.client.get("/ready")
        assert r.status_code == 503 and "cannot upgrade the database from f00dfeedbeef" in r.json()["reason"]
        assert srv.client.post("/v1/route", json={"text": "小区门口有人拿刀砍人"}).json()["action"] == "110_first"
    finally:
        srv.stop()
