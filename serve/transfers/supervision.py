"""Supervision of transfer orders (跟踪督办): what is overdue, what came back and why, how many each way.

Everything is counted in the database (``GROUP BY`` through SQLAlchemy; the same statements on SQLite
and PostgreSQL) and read by :func:`supervision_report`:

- **overdue**: orders not yet written back (sent, accepted, handled, or returned and not yet resent
  or closed) whose deadline (``due_at``: sent + the limit of its urgency and department) has passed;
  counts by department and by urgency, and the list, most overdue first. Not limited to the window:
  an order ten days late is still late.
- **returns** in the window: counts by reason (the reason as the receiving side wrote it, masked),
  by department, and the latest returns.
- **volumes** in the window: orders sent per day each way (``12345→110``, ``110→12345``, …) and per
  department. Days are calendar days at ``utc_offset_h`` (China: +8), the window is the last ``days``
  of them, today included.
- **consults** in the window (三方通话, :mod:`serve.transfers.consults`): outcomes per day, by outcome
  (agreed / still unclear, the default) and by the line that kept the call, and the latest outcomes
  (masked reason, who on the other line agreed).

>>> from serve.db import Database
>>> from serve.transfers.store import create_order, step
>>> db = Database("sqlite://")
>>> with db.session() as s:
...     o, _ = create_order(s, call_id="C1", from_line="12345", to_line="110", department="police_traffic", urgency="110_first",
...                         summary="路口两车相撞", decision={}, model_version=None, actor="ct", limit_min=-1)
...     _ = step(s, order_id=o.id, action="return", line="110", actor="p", reason="不属于公安职责")
...     r = supervision_report(s, days=7)
>>> r["overdue"]["total"], r["overdue"]["items"][0]["waiting_line"], r["returns"]["by_reason"]
(1, '12345', [{'reason': '不属于公安职责', 'count': 1}])
>>> [(d["label"], d["total"]) for d in r["volumes"]["directions"]]
[('12345→110', 1)]
>>> r["consults"]["total"], r["consults"]["by_outcome"]
(0, {'agreed': 0, 'still_unclear': 0})
"""
from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable

from sqlalchemy import Date, cast, func, select
from sqlalchemy.orm import Session

from serve.transfers.consults import ConsultOutcome
from serve.transfers.store import OPEN_STATES, RETURNED, STATE_NAMES, as_utc
from serve.transfers.tables import TransferEvent, TransferOrder

URGENCY_NAMES = {"110_first": "110 先行", "normal": "一般"}


def local_day(session: Session, column, utc_offset_h: int):
    """SQL for the calendar day of ``column`` (a UTC time) at ``utc_offset_h``: 'YYYY-MM-DD' or a date."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone("UTC", column) + timedelta(hours=utc_offset_h), Date)
    return func.date(column, f"{utc_offset_h:+d} hours")  # SQLite keeps UTC times as text


def window_start(now: datetime, days: int, utc_offset_h: int) -> tuple[datetime, list[str]]:
    """(the UTC time the window starts: local midnight ``days - 1`` days ago, the window's days oldest first).

    >>> window_start(datetime(2026, 12, 6, 17, 0, tzinfo=timezone.utc), 2, 8)
    (datetime.datetime(2026, 12, 5, 16, 0, tzinfo=datetime.timezone.utc), ['2026-12-06', '2026-12-07'])
    """
    offset = timedelta(hours=utc_offset_h)
    today = (now + offset).date()
    first = today - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=timezone.utc) - offset
    return since, [(first + timedelta(days=i)).isoformat() for i in range(days)]


def _day(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _top(counts: Counter[str], limit: int | None = None) -> list[tuple[str, int]]:
    """Most first, then by name."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def _overdue(session: Session, now: datetime, limit: int) -> dict[str, Any]:
    late = TransferOrder.state.in_(OPEN_STATES) & (TransferOrder.due_at < now)
    per_department: Counter[str] = Counter()
    per_urgency: Counter[str] = Counter()
    for department, urgency, n in session.execute(select(TransferOrder.department, TransferOrder.urgency, func.count(TransferOrder.id))
                                                  .where(late).group_by(TransferOrder.department, TransferOrder.urgency)):
        per_department[department] += int(n)
        per_urgency[urgency] += int(n)
    by_department = [{"key": k, "count": c} for k, c in _top(per_department)]
    by_urgency = [{"key": k, "name": URGENCY_NAMES.get(k, k), "count": c} for k, c in _top(per_urgency)]
    orders = session.scalars(select(TransferOrder).where(late).order_by(TransferOrder.due_at, TransferOrder.id).limit(limit))
    items = [{
        "id": o.id, "call_id": o.call_id, "from_line": o.from_line, "to_line": o.to_line, "direction": f"{o.from_line}→{o.to_line}",
        "department": o.department, "urgency": o.urgency, "urgency_name": URGENCY_NAMES.get(o.urgency, o.urgency),
        "state": o.state, "state_name": STATE_NAMES[o.state],
        "waiting_line": o.from_line if o.state == RETURNED else o.to_line,  # whose turn it is
        "created_at": as_utc(o.created_at), "due_at": as_utc(o.due_at),
        "minutes_overdue": (now - as_utc(o.due_at)).total_seconds() / 60,
    } for o in orders]
    return {"total": sum(d["count"] for d in by_department), "by_department": by_department, "by_urgency": by_urgency, "items": items}


def _returns(session: Session, since: datetime, limit: int) -> dict[str, Any]:
    in_window = (TransferEvent.action == "return") & (TransferEvent.at >= since)
    sub = (select(TransferEvent.detail["reason"].as_string().label("reason"), TransferOrder.department.label("department"))
           .join(TransferOrder, TransferOrder.id == TransferEvent.order_id).where(in_window).subquery())
    # one pass over the events: counts per (reason, department), summed both ways here (a few hundred groups at most)
    by_reason: Counter[str] = Counter()
    by_department: Counter[str] = Counter()
    for reason, department, n in session.execute(select(sub.c.reason, sub.c.department, func.count()).group_by(sub.c.reason, sub.c.department)):
        by_reason[reason or ""] += int(n)
        by_department[department] += int(n)

    rows = session.execute(select(TransferEvent, TransferOrder).join(TransferOrder, TransferOrder.id == TransferEvent.order_id)
                           .where(in_window).order_by(TransferEvent.at.desc(), TransferEvent.id.desc()).limit(limit)).all()
    latest = [{
        "order_id": o.id, "call_id": o.call_id, "from_line": o.from_line, "to_line": o.to_line, "direction": f"{o.from_line}→{o.to_line}",
        "department": o.department, "reason": (e.detail or {}).get("reason", ""),
        "named_department": (e.detail or {}).get("department"), "by_line": e.line, "at": as_utc(e.at),
        "state": o.state, "state_name": STATE_NAMES[o.state],
    } for e, o in rows]
    return {"total": sum(by_reason.values()), "by_reason": [{"reason": k, "count": c} for k, c in _top(by_reason, limit)],
            "by_department": [{"key": k, "count": c} for k, c in _top(by_department, limit)], "latest": latest}


def _volumes(session: Session, since: datetime, days: list[str], utc_offset_h: int,
             directions: Iterable[tuple[str, str]]) -> dict[str, Any]:
    sub = (select(local_day(session, TransferOrder.created_at, utc_offset_h).label("day"), TransferOrder.from_line.label("f"),
                  TransferOrder.to_line.label("t"), TransferOrder.department.label("department"))
           .where(TransferOrder.created_at >= since).subquery())
    n = func.count()
    per_day = session.execute(select(sub.c.day, sub.c.f, sub.c.t, n).group_by(sub.c.day, sub.c.f, sub.c.t)).all()
    per_dept = session.execute(select(sub.c.department, sub.c.f, sub.c.t, n).group_by(sub.c.department, sub.c.f, sub.c.t)).all()
    pairs = list(dict.fromkeys([*directions, *sorted({(f, t) for _, f, t, _ in per_day})]))
    col = {p: i for i, p in enumerate(pairs)}
    table = {d: [0] * len(pairs) for d in days}
    for day, f, t, c in per_day:
        if _day(day) in table:  # a row at the window's edge (clock skew) is left out rather than shown as another day
            table[_day(day)][col[(f, t)]] += int(c)
    depts: dict[str, list[int]] = {}
    for dept, f, t, c in per_dept:
        depts.setdefault(dept, [0] * len(pairs))[col[(f, t)]] += int(c)
    return {
        "directions": [{"from_line": f, "to_line": t, "label": f"{f}→{t}", "total": sum(r[col[(f, t)]] for r in table.values())} for f, t in pairs],
        "by_day": [{"day": d, "counts": table[d], "total": sum(table[d])} for d in days],
        "by_department": sorted(({"key": k, "counts": v, "total": sum(v)} for k, v in depts.items()), key=lambda r: (-r["total"], r["key"])),
    }


def _consults(session: Session, since: datetime, days: list[str], utc_offset_h: int, lines: Iterable[str], limit: int) -> dict[str, Any]:
    sub = (select(local_day(session, ConsultOutcome.created_at, utc_offset_h).label("day"), ConsultOutcome.still_unclear.label("unclear"),
                  ConsultOutcome.kept_by_line.label("kept")).where(ConsultOutcome.created_at >= since).subquery())
    groups = session.execute(select(sub.c.day, sub.c.unclear, sub.c.kept, func.count()).group_by(sub.c.day, sub.c.unclear, sub.c.kept)).all()
    kept_lines = list(dict.fromkeys([*lines, *sorted({k for _, _, k, _ in groups})]))
    col = {line: i for i, line in enumerate(kept_lines)}
    table = {d: {"day": d, "agreed": 0, "still_unclear": 0, "kept": [0] * len(kept_lines), "total": 0} for d in days}
    for day, unclear, kept, n in groups:
        row = table.get(_day(day))
        if row is None:  # at the window's edge (clock skew): left out rather than shown as another day
            continue
        row["still_unclear" if unclear else "agreed"] += int(n)
        row["kept"][col[kept]] += int(n)
        row["total"] += int(n)
    by_day = [table[d] for d in days]
    found = session.scalars(select(ConsultOutcome).where(ConsultOutcome.created_at >= since)
                            .order_by(ConsultOutcome.created_at.desc(), ConsultOutcome.id.desc()).limit(limit))
    latest = [{
        "id": c.id, "call_id": c.call_id, "at": as_utc(c.created_at), "outcome": "still_unclear" if c.still_unclear else "agreed",
        "from_line": c.from_line, "with_line": c.with_line, "kept_by_line": c.kept_by_line, "agreed_by": c.agreed_by, "reason": c.reason,
        "department": c.department, "transfer_order_id": c.transfer_order_id,
    } for c in found]
    return {
        "total": sum(r["total"] for r in by_day),
        "by_outcome": {k: sum(r[k] for r in by_day) for k in ("agreed", "still_unclear")},
        "lines": kept_lines,
        "by_line": [{"key": line, "count": sum(r["kept"][i] for r in by_day)} for i, line in enumerate(kept_lines)],
        "by_day": by_day,
        "latest": latest,
    }


def supervision_report(session: Session, *, days: int = 7, utc_offset_h: int = 8, directions: Iterable[tuple[str, str]] = (),
                       now: datetime | None = None, overdue_limit: int = 100, returns_limit: int = 20,
                       lines: Iterable[str] = ()) -> dict[str, Any]:
    """The supervision figures (see the module doc) as plain data for :class:`serve.transfers.schemas.SupervisionOut`.

    ``directions``: (from_line, to_line) pairs shown even with no orders (others appear when they have some);
    ``lines``: the lines shown as keeping consulted calls even with none (others appear when they have some).
    """
    now = now or datetime.now(timezone.utc)
    since, day_list = window_start(now, days, utc_offset_h)
    return {
        "now": now, "since": since, "days": days, "utc_offset_h": utc_offset_h,
        "overdue": _overdue(session, now, overdue_limit),
        "returns": _returns(session, since, returns_limit),
        "volumes": _volumes(session, since, day_list, utc_offset_h, directions),
        "consults": _consults(session, since, day_list, utc_offset_h, lines, returns_limit),
    }
