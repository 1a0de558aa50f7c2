"""Outbox pruning: notices delivered more than ``HOTLINE_OUTBOX_KEEP_DAYS`` ago are deleted, by the
server's outbox task and by `hotline db prune-outbox`; a notice not yet delivered never is."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select

from serve.db import Database
from serve.transfers.outbox import prune_delivered
from serve.transfers.tables import OutboxNotice

ROOT = Path(__file__).resolve().parents[2]


def seed(db: Database, now: datetime) -> None:
    """Four notices: delivered 40 and 10 days ago, one undelivered for 100 days (a partner long gone),
    one delivered just now."""
    def notice(key: str, created_days: float, delivered_days: float | None) -> OutboxNotice:
        created = now - timedelta(days=created_days)
        return OutboxNotice(key=key, line="110", payload={"order_id": 1, "seq": 1}, created_at=created, attempts=3, next_attempt_at=created,
                            delivered_at=None if delivered_days is None else now - timedelta(days=delivered_days))

    with db.session() as s, s.begin():
        s.add_all([notice("d40", 41, 40), notice("d10", 10, 10), notice("never", 100, None), notice("d0", 0.01, 0)])


def keys(db: Database) -> set[str]:
    with db.session() as s:
        return set(s.scalars(select(OutboxNotice.key)))


def test_only_delivered_notices_past_the_limit_are_deleted(database_url):
    db = Database(database_url)
    now = datetime.now(timezone.utc)
    try:
        seed(db, now)
        assert prune_delivered(db, 30, now=now) == 1 and keys(db) == {"d10", "never", "d0"}
        assert prune_delivered(db, 30, now=now) == 0  # again: nothing more
        assert prune_delivered(db, 5, now=now) == 1 and keys(db) == {"never", "d0"}
        assert prune_delivered(db, 0.001, now=now + timedelta(days=1000)) == 1 and keys(db) == {"never"}  # undelivered: never, however old
    finally:
        db.dispose()


def test_the_command_uses_the_setting_and_refuses_a_database_without_an_outbox(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    db = Database(url)
    seed(db, datetime.now(timezone.utc))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}, "PYTHONPATH": str(ROOT), "HOTLINE_OUTBOX_KEEP_DAYS": "5"}

    def run(*args: str):
        return subprocess.run([sys.executable, "-m", "serve.cli", "db", "prune-outbox", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    r = run("--database-url", url)
    assert r.returncode == 0 and "deleted 2 notices delivered more than 5 days ago" in r.stdout, r.stderr
    assert keys(db) == {"never", "d0"}
    db.dispose()
    r = run("--database-url", f"sqlite:///{tmp_path / 'typo.db'}")
    assert r.returncode == 2 and "no outbox table" in r.stderr and r.stderr.count("\n") == 1


def test_the_server_prunes_at_start(start_server, tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    db = Database(url)
    seed(db, datetime.now(timezone.utc))
    srv = start_server(database_url=url, outbox_keep_days=7)
    try:
        deadline = time.monotonic() + 15
        while keys(db) != {"never", "d0"}:
            assert time.monotonic() < deadline, keys(db)
            time.sleep(0.1)
    finally:
        srv.stop()
        db.dispose()
