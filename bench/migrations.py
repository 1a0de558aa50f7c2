"""What the schema upgrade at start-up costs (issue 19, Alembic). Prints its command and one table.

    python -m bench.migrations [--rows 100000] [--postgres postgresql://postgres@127.0.0.1:5432/test]

Per backend (SQLite file; PostgreSQL in a scratch schema, dropped after, when a URL is given or
``HOTLINE_TEST_POSTGRES_URL`` is set): the upgrade of a new database, the upgrade of one already at
head (what every later start pays), and the adoption of a database an earlier version made (the
tables of ``tests/serve/test_migrations.old_schema``) holding ``--rows`` review items, half of them
decided: columns added, every ``text_hash`` filled, the history started from the decided items.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa

from serve.db import Database, make_engine
from tests.serve.test_migrations import old_schema


@contextmanager
def scratch(backend: str, pg: str | None) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as d:
            yield f"sqlite:///{Path(d) / 'h.db'}"
        return
    schema = f"bench_migrations_{uuid.uuid4().hex[:8]}"
    admin = make_engine(pg).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{pg}{'&' if '?' in pg else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(backend: str, pg: str | None, rows: int) -> str:
    with scratch(backend, pg) as url:
        db = Database(url, create=False)
        fresh = timed(db.create_tables)
        at_head = min(timed(db.create_tables) for _ in range(3))
        db.dispose()
    with scratch(backend, pg) as url:
        engine = make_engine(url, timeout_s=120)
        items = old_schema(engine).tables["review_items"]
        at = datetime.now(timezone.utc)
        with engine.begin() as c:
            c.execute(items.insert(), [dict(id=i, call_id=f"c{i}", trigger="needs_review", text_masked=f"第{i}号来电：小区停水了", channel="12345",
                                            department="utilities", confidence=0.4, channel_confidence=0.9, source="model", danger=False,
                                            alternatives=[], reasons=[], created_at=at, status="decided" if i % 2 else "pending",
                                            decision="confirm" if i % 2 else None, decided_by="S1" if i % 2 else None,
                                            decided_at=at if i % 2 else None) for i in range(1, rows + 1)])
        engine.dispose()
        db = Database(url, create=False, migrate_wait_s=600)
        adopt = timed(db.create_tables)
        with db.engine.connect() as c:
            hashed = c.execute(sa.text("SELECT count(*) FROM review_items WHERE text_hash IS NOT NULL")).scalar()
            history = c.execute(sa.text("SELECT count(*) FROM review_decisions")).scalar()
        db.dispose()
    return f"| {backend} | {fresh * 1000:.0f} ms | {at_head * 1000:.0f} ms | {adopt:.1f} s | {hashed:,} / {history:,} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000, help="Review items in the earlier version's database")
    ap.add_argument("--postgres", default=os.environ.get("HOTLINE_TEST_POSTGRES_URL"), help="PostgreSQL server (a scratch schema is used)")
    args = ap.parse_args()
    print("$ python -m bench.migrations " + " ".join(sys.argv[1:]))
    print(f"| backend | new database | already at head | earlier version, {args.rows:,} review items | hashes filled / history rows |")
    print("| --- | --- | --- | --- | --- |")
    for backend in ("sqlite", "postgresql") if args.postgres else ("sqlite",):
        print(measure(backend, args.postgres, args.rows), flush=True)


if __name__ == "__main__":
    main()
