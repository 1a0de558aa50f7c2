"""How long does the 转办督办 report take on a year of transfer orders? Prints its command and one table.

    python -m bench.supervision_query [--orders 100000] [--postgres URL]

Fills a fresh SQLite file (and, with ``--postgres``, a fresh schema on that server, dropped afterwards)
with ``--orders`` synthetic orders spread over the last 365 days (both directions, 20 departments,
a realistic mix of states: most closed, some returned, some still open and overdue) and their
events, through the real tables; then times :func:`serve.transfers.supervision.supervision_report`
for a 7- and a 30-day window (median and max of 5 runs after one warm-up). The page asks for it every
30 s per open supervisor page. Synthetic data: this measures the queries, not the routing.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert, text

from serve.db import Database, make_engine
from serve.transfers.supervision import supervision_report
from serve.transfers.tables import TransferEvent, TransferOrder

DEPARTMENTS = [f"dept_{i:02d}" for i in range(20)]
REASONS = ["不属于公安职责", "不属于本部门受理范围", "信息不全，无法核实", "重复派单", "已由其他部门处置"]
PATHS = [  # (share, actions after create, final state)
    (0.70, ["accept", "handle", "write_back", "close"], "closed"),
    (0.10, ["return", "close"], "closed"),
    (0.05, ["return"], "returned"),
    (0.10, ["accept", "handle", "write_back"], "written_back"),
    (0.05, ["accept"], "accepted"),
]
TO_STATE = {"create": "sent", "accept": "accepted", "return": "returned", "handle": "handled", "write_back": "written_back", "close": "closed"}


def fill(db: Database, n: int, seed: int = 0) -> int:
    """``n`` orders over the last year and their events; returns the number of events."""
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    orders, events = [], []
    for i in range(1, n + 1):
        created = now - timedelta(seconds=rng.uniform(0, 365 * 86400))
        urgency = "110_first" if rng.random() < 0.2 else "normal"
        frm, to = ("12345", "110") if rng.random() < 0.6 else ("110", "12345")
        r, acc = rng.random(), 0.0
        for share, actions, final in PATHS:
            acc += share
            if r <= acc:
                break
        due = created + timedelta(minutes=30 if urgency == "110_first" else 1440)
        orders.append(dict(id=i, call_id=f"b-{i}", from_line=frm, to_line=to, department=rng.choice(DEPARTMENTS), urgency=urgency,
                           summary_masked="来电人称……", decision={}, model_version="bench", state=final, seq=len(actions) + 1,
                           created_by="bench", created_at=created, updated_at=created, due_at=due))
        at = created
        for seq, action in enumerate(["create", *actions], start=1):
            detail = {"reason": rng.choice(REASONS)} if action == "return" else {}
            events.append(dict(order_id=i, seq=seq, action=action, from_state=None, to_state=TO_STATE[action], line=to, actor="bench",
                               detail=detail, at=at))
            at = at + timedelta(minutes=rng.uniform(1, 120))
    with db.engine.begin() as c:
        for start in range(0, len(orders), 5000):
            c.execute(insert(TransferOrder), orders[start:start + 5000])
        for start in range(0, len(events), 5000):
            c.execute(insert(TransferEvent), events[start:start + 5000])
    return len(events)


def time_report(db: Database, days: int, runs: int = 5) -> tuple[float, float, dict]:
    with db.session() as s:
        report = supervision_report(s, days=days, directions=[("12345", "110"), ("110", "12345")])  # warm-up
    took = []
    for _ in range(runs):
        with db.session() as s:
            t0 = time.perf_counter()
            supervision_report(s, days=days, directions=[("12345", "110"), ("110", "12345")])
            took.append((time.perf_counter() - t0) * 1000)
    return statistics.median(took), max(took), report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--postgres", default=None, help="postgresql://… (a schema is created and dropped)")
    args = ap.parse_args()
    print("command: python -m bench.supervision_query " + " ".join(sys.argv[1:]))
    targets = [("SQLite", f"sqlite:///{Path(tempfile.mkdtemp(prefix='supq-')) / 'h.db'}", None)]
    if args.postgres:
        schema = f"bench_sup_{uuid.uuid4().hex[:8]}"
        sep = "&" if "?" in args.postgres else "?"
        targets.append(("PostgreSQL", f"{args.postgres}{sep}options=-csearch_path%3D{schema}", schema))
    rows = []
    for name, url, schema in targets:
        admin = None
        if schema:
            admin = make_engine(args.postgres).execution_options(isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            db = Database(url)
            t0 = time.perf_counter()
            n_events = fill(db, args.orders)
            fill_s = time.perf_counter() - t0
            for days in (7, 30):
                med, worst, rep = time_report(db, days)
                rows.append((name, args.orders, n_events, days, med, worst, rep["overdue"]["total"], rep["returns"]["total"],
                             sum(d["total"] for d in rep["volumes"]["directions"]), fill_s))
            db.dispose()
        finally:
            if admin is not None:
                with admin.connect() as c:
                    c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
    print("| database | orders | events | window (days) | report median ms | max ms | overdue | returns in window | sent in window |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, n, ev, days, med, worst, od, rt, sent, _ in rows:
        print(f"| {name} | {n:,} | {ev:,} | {days} | {med:.0f} | {worst:.0f} | {od:,} | {rt:,} | {sent:,} |")


if __name__ == "__main__":
    main()
