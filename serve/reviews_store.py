"""The supervisor review queue in the database: list, decide, statistics, and export for retraining.

Functions take a SQLAlchemy ``Session`` and keyword arguments only; writes happen in one
transaction. Texts here are the masked texts :mod:`serve.store` wrote (exports mask them again).

Deciding is race-free on SQLite and PostgreSQL alike: the row is changed by one conditional
``UPDATE … WHERE status = 'pending'`` (or, when re-opening, ``WHERE decided_at = <the decision being
replaced>``), so of two supervisors deciding the same case at once exactly one wins and the other
gets :class:`AlreadyDecided`.

>>> from serve.db import Database
>>> db = Database("sqlite://")
>>> with db.session() as s:
...     page = list_reviews(s, status="pending")
>>> page.total, page.items
(0, [])
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session


from data.export import write_table
from data.masking import mask_pii
from serve.db import DECIDED, PENDING, Feedback, ReviewDecision, ReviewItem

logger = logging.getLogger(__name__)

CONFIRM, CORRECT = "confirm", "correct"
HISTOGRAM_BINS = 10  # confidence histogram: [0, 0.1), [0.1, 0.2), … [0.9, 1.0]
EXPORT_COLUMNS = ["text", "department", "channel", "source", "review_id", "call_id", "decision", "decided_at"]


class ReviewNotFound(LookupError):
    """No review item has this id."""


class InvalidDecision(ValueError):
    """The decision does not fit the item: ``confirm`` with another route, ``correct`` to the suggestion."""


class AlreadyDecided(RuntimeError):
    """The review item was decided already (``item`` holds that decision); re-open it explicitly to change it."""

    def __init__(self, item: ReviewItem):
        super().__init__(f"review {item.id} was already decided ({item.decision}) by {item.decided_by} at {as_utc(item.decided_at)}")
        self.item = item


class ClaimedByOther(RuntimeError):
    """Another reviewer claimed the item and the claim has not expired (``item`` shows who, until when)."""

    def __init__(self, item: ReviewItem):
        super().__init__(f"review {item.id} is claimed by {item.claimed_by} until {as_utc(item.claimed_until)}")
        self.item = item


def claim_free(reviewer: str | None, now: datetime):
    """SQL condition: nobody else holds an unexpired claim on the item (``reviewer``'s own claim is free to them)."""
    return or_(ReviewItem.claimed_by.is_(None), ReviewItem.claimed_until < now, ReviewItem.claimed_by == (reviewer or ""))


def claimed_by_other(item: ReviewItem, reviewer: str | None, now: datetime) -> bool:
    until = as_utc(item.claimed_until)
    return bool(item.claimed_by) and until is not None and until >= now and item.claimed_by != (reviewer or "")


def as_utc(t: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time stored here is UTC."""
    if t is None:
        return None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


# --------------------------------------------------------------------------------------------------
# Listing
# --------------------------------------------------------------------------------------------------
@dataclass
class ReviewPage:
    """One page of the queue: ``items`` (least confident first) and ``total`` matching the filters.
    Grouped (``group=True``): one item per masked text, ``total`` counts groups, ``sizes`` maps each
    shown item's id to the number of matching items with its text."""

    items: list[ReviewItem]
    total: int
    limit: int = 50
    offset: int = 0
    sizes: dict[int, int] = field(default_factory=dict)


def list_reviews(
    session: Session,
    *,
    status: str | None = PENDING,
    channel: str | None = None,
    department: str | None = None,
    trigger: str | None = None,
    min_confidence: float | None = None,
    max_confidence: float | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    q: str | None = None,
    group: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> ReviewPage:
    """The review items matching every given filter, least confident first (then oldest first).

    ``status`` None lists both; ``channel``/``department`` filter the *suggested* route;
    ``min_confidence``/``max_confidence`` are inclusive; ``created_from`` is inclusive and
    ``created_to`` exclusive (naive datetimes are UTC); ``q`` keeps items whose masked text contains
    it (literally: ``%`` and ``_`` are not wildcards). ``group`` shows one row per identical masked
    text (the least confident item of the group, ordered by it) with the group's size.
    """
    where = []
    if status:
        where.append(ReviewItem.status == status)
    if channel:
        where.append(ReviewItem.channel == channel)
    if department:
        where.append(ReviewItem.department == department)
    if trigger:
        where.append(ReviewItem.trigger == trigger)
    if min_confidence is not None:
        where.append(ReviewItem.confidence >= min_confidence)
    if max_confidence is not None:
        where.append(ReviewItem.confidence <= max_confidence)
    if created_from is not None:
        where.append(ReviewItem.created_at >= as_utc(created_from))
    if created_to is not None:
        where.append(ReviewItem.created_at < as_utc(created_to))
    if q:
        where.append(ReviewItem.text_masked.contains(q, autoescape=True))
    if group:
        return _grouped(session, where, limit, offset)
    total = int(session.scalar(select(func.count(ReviewItem.id)).where(*where)) or 0)
    items = list(
        session.scalars(select(ReviewItem).where(*where).order_by(ReviewItem.confidence.asc(), ReviewItem.id.asc()).limit(limit).offset(offset))
    )
    return ReviewPage(items=items, total=total, limit=limit, offset=offset)


def _grouped(session: Session, where: list, limit: int, offset: int) -> ReviewPage:
    """One row per ``text_hash``: the group's least confident item (lowest id among equals)."""
    key = ReviewItem.text_hash  # always set: on insert/update, and filled for older rows at startup (serve.db)
    groups = select(key.label("k"), func.count(ReviewItem.id).label("n"), func.min(ReviewItem.confidence).label("c")).where(*where).group_by(key).subquery()
    total = int(session.scalar(select(func.count()).select_from(groups)) or 0)
    rows = session.execute(select(groups.c.k, groups.c.n, groups.c.c).order_by(groups.c.c.asc(), groups.c.k.asc()).limit(limit).offset(offset)).all()
    items, sizes = [], {}
    for k, n, c in rows:
        item = session.scalars(select(ReviewItem).where(*where, key == k, ReviewItem.confidence == c).order_by(ReviewItem.id.asc()).limit(1)).first()
        if item is not None:
            items.append(item)
            sizes[item.id] = int(n)
    return ReviewPage(items=items, total=total, limit=limit, offset=offset, sizes=sizes)


# --------------------------------------------------------------------------------------------------
# Deciding
# --------------------------------------------------------------------------------------------------
@dataclass
class PastDecision:
    """A decision that a re-opening replaced (kept in the answer and the log, for the audit trail)."""

    decision: str
    channel: str | None
    department: str | None
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None = None


def decide_review(
    session: Session,
    *,
    review_id: int,
    decision: str,
    channel: str | None = None,
    department: str | None = None,
    comment: str | None = None,
    decided_by: str | None = None,
    reviewer: str | None = None,
    department_name: str | None = None,
    reopen: bool = False,
    how: str = "single",
) -> tuple[ReviewItem, PastDecision | None]:
    """Record a supervisor's decision; returns (the updated item, the decision it replaced or None).

    ``confirm`` records the suggestion as the right route (``channel``/``department`` ignored);
    ``correct`` records ``channel``/``department`` (validated by the caller against the taxonomy).
    ``comment`` is free text and is masked before it is stored.
    Raises :class:`ReviewNotFound`; :class:`InvalidDecision` for ``confirm`` with a route other than
    the suggestion, or ``correct`` to the suggested department; :class:`AlreadyDecided` when the
    item is decided and ``reopen`` is false (or another supervisor decided it a moment earlier);
    :class:`ClaimedByOther` while another reviewer's claim on it has not expired. Each decision is
    also appended to ``review_decisions`` (``reviewer``, ``how``: single | group | bulk | reopen), and
    deciding releases the claim.
    """
    if decision not in (CONFIRM, CORRECT):
        raise ValueError(f"decision must be {CONFIRM} or {CORRECT}, not {decision!r}")
    with session.begin():
        item = session.get(ReviewItem, review_id, populate_existing=True)
        if item is None:
            raise ReviewNotFound(review_id)
        now = datetime.now(timezone.utc)
        if claimed_by_other(item, reviewer, now):
            raise ClaimedByOther(item)
        if decision == CONFIRM and (department not in (None, item.department) or channel not in (None, item.channel)):
            raise InvalidDecision("确认只能保留建议的部门；要换部门请改判（decision correct）")
        if decision == CORRECT and department == item.department:
            raise InvalidDecision(f"“{department}”就是建议的部门，请确认（decision confirm）")
        previous = None
        if item.status == DECIDED:
            if not reopen:
                raise AlreadyDecided(item)
            previous = PastDecision(item.decision or "", item.decided_channel, item.decided_department, item.decided_by, as_utc(item.decided_at), item.comment)
            guard = ReviewItem.decided_at == item.decided_at  # nobody re-decided it since we read it
        else:
            guard = ReviewItem.status == PENDING
        if decision == CONFIRM:
            channel, department = item.channel, item.department
            department_name = (item.department_names or {}).get(department, department_name)
        values = dict(
            status=DECIDED, decision=decision, decided_channel=channel, decided_department=department,
            comment=mask_pii(comment) if comment else None, decided_by=decided_by, decided_at=now, claimed_by=None, claimed_until=None,
        )
        stmt = update(ReviewItem).where(ReviewItem.id == review_id, guard, claim_free(reviewer, now)).values(**values).execution_options(synchronize_session=False)
        if session.execute(stmt).rowcount != 1:
            current = session.get(ReviewItem, review_id, populate_existing=True)
            if current.status == PENDING and claimed_by_other(current, reviewer, now):
                raise ClaimedByOther(current)
            raise AlreadyDecided(current)
        session.add(ReviewDecision(
            review_id=review_id, reviewer=(reviewer or decided_by or "anonymous")[:64], decided_by=decided_by, decision=decision,
            channel=channel, department=department, department_name=department_name, suggested_department=item.department,
            how="reopen" if previous is not None else how, comment=values["comment"], decided_at=now,
        ))
        item = session.get(ReviewItem, review_id, populate_existing=True)
    return item, previous


# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------
@dataclass
class GroupCounts:
    """Decided reviews of one suggested department or channel: how many, how many changed."""

    key: str
    decided: int
    corrected: int
    channel_changed: int

    @property
    def correction_rate(self) -> float:
        return self.corrected / self.decided if self.decided else 0.0


@dataclass
class ReviewStats:
    pending: int
    decided: int
    corrected: int
    channel_changed: int
    by_department: list[GroupCounts] = field(default_factory=list)
    by_channel: list[GroupCounts] = field(default_factory=list)
    histogram: list[tuple[float, float, int]] = field(default_factory=list)  # (low, high, pending items)

    @property
    def correction_rate(self) -> float:
        return self.corrected / self.decided if self.decided else 0.0


def _bin_expr():
    """The histogram bin of ``confidence`` (0..HISTOGRAM_BINS-1) as a portable CASE expression
    (CAST to integer truncates on SQLite but rounds on PostgreSQL, so it is not used)."""
    whens = [(ReviewItem.confidence < (i + 1) / HISTOGRAM_BINS, i) for i in range(HISTOGRAM_BINS - 1)]
    return case(*whens, else_=HISTOGRAM_BINS - 1)


def review_stats(session: Session) -> ReviewStats:
    """How often supervisors changed the suggestion (overall, per suggested department and channel)
    and a confidence histogram of the pending items."""
    corrected = func.sum(case((ReviewItem.decision == CORRECT, 1), else_=0))
    moved = func.sum(case((ReviewItem.decided_channel != ReviewItem.channel, 1), else_=0))

    def grouped(column) -> list[GroupCounts]:
        rows = session.execute(
            select(column, func.count(ReviewItem.id), corrected, moved).where(ReviewItem.status == DECIDED).group_by(column)
        ).all()
        out = [GroupCounts(str(k), int(n), int(c or 0), int(m or 0)) for k, n, c, m in rows]
        return sorted(out, key=lambda g: (-g.decided, g.key))

    by_department, by_channel = grouped(ReviewItem.department), grouped(ReviewItem.channel)
    bin_ = _bin_expr().label("bin")
    counts = dict(session.execute(select(bin_, func.count(ReviewItem.id)).where(ReviewItem.status == PENDING).group_by(bin_)).all())
    histogram = [(i / HISTOGRAM_BINS, (i + 1) / HISTOGRAM_BINS, int(counts.get(i, 0))) for i in range(HISTOGRAM_BINS)]
    return ReviewStats(
        pending=sum(n for _, _, n in histogram),
        decided=sum(g.decided for g in by_channel),
        corrected=sum(g.corrected for g in by_channel),
        channel_changed=sum(g.channel_changed for g in by_channel),
        by_department=by_department,
        by_channel=by_channel,
        histogram=histogram,
    )


# --------------------------------------------------------------------------------------------------
# Export for retraining
# --------------------------------------------------------------------------------------------------
def labelled_rows(session: Session) -> list[dict[str, Any]]:
    """Decided reviews and contradicting feedback as labelled rows (``EXPORT_COLUMNS``), newest first.

    - a decided review gives its decided route (``confirm``: the suggestion), ``source="review"``;
    - a feedback whose route differs from the suggestion gives the call-taker's route,
      ``source="feedback"``, unless a supervisor decided a review of the same call (their word wins);
    - one row per call: the latest decision of a call (reviews without a call id are kept each).

    Newest first, because ``hotline retrain`` keeps the first of several rows with the same text.
    """
    rows: list[dict[str, Any]] = []
    seen_calls: set[str] = set()
    decided = session.scalars(select(ReviewItem).where(ReviewItem.status == DECIDED).order_by(ReviewItem.decided_at.desc(), ReviewItem.id.desc()))
    for r in decided:
        if r.call_id is not None:
            if r.call_id in seen_calls:
                continue
            seen_calls.add(r.call_id)
        rows.append(dict(
            text=mask_pii(r.text_masked), department=r.decided_department, channel=r.decided_channel, source="review",
            review_id=r.id, call_id=r.call_id, decision=r.decision, decided_at=as_utc(r.decided_at),
        ))
    reviewed_calls = set(seen_calls)
    feedback = session.scalars(select(Feedback).where(Feedback.agrees.is_(False)).order_by(Feedback.created_at.desc(), Feedback.id.desc()))
    for fb in feedback:
        if fb.call_id in reviewed_calls or fb.call_id in seen_calls:
            continue
        seen_calls.add(fb.call_id)
        rows.append(dict(
            text=mask_pii(fb.text_masked), department=fb.final_department, channel=fb.final_channel, source="feedback",
            review_id=None, call_id=fb.call_id, decision=None, decided_at=as_utc(fb.created_at),
        ))
    rows.sort(key=lambda row: row["decided_at"] or datetime.min.replace(tzinfo=timezone.utc), reverse=True)
    return rows


def write_labelled_rows(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write rows as JSONL (``.jsonl``) or CSV (``.csv``, UTF-8 with BOM for Excel, cells safe from
    formula injection) by the suffix (:func:`data.export.write_table`). Raises ``ValueError`` for any
    other suffix."""
    if Path(path).suffix.lower() not in (".jsonl", ".csv"):
        raise ValueError(f"{path}: the export format follows the suffix; use .jsonl or .csv")
    return write_table(rows, path, columns=EXPORT_COLUMNS)
