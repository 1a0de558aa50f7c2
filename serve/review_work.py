"""Working the review queue together: claims, group decisions, bulk confirm, and each reviewer's history.

- **Claims**: a reviewer claims a pending case (:func:`claim_review`) so another does not work on it
  at the same time; a claim expires after ``Settings.review_claim_minutes`` (a closed browser tab
  never locks a case for good), is renewed by claiming again, and ends with the decision or
  :func:`release_claim`. Deciding a case someone else holds answers :class:`ClaimedByOther`.
- **Groups**: identical masked summaries are one row in the grouped queue; :func:`decide_group`
  gives every pending case of the group the route chosen for one of them (``confirm`` where that
  route was its suggestion, else ``correct``), skipping cases another reviewer holds.
- **Bulk confirm**: :func:`bulk_confirm` confirms the suggestion of several cases, one by one, and
  says which could not be confirmed and why.
- **History**: :func:`reviewer_history` lists what a reviewer decided and when (``review_decisions``),
  with counts per reviewer, like the per-annotator views of Argilla and Label Studio.

Every write is one conditional ``UPDATE`` (race-free on SQLite and PostgreSQL alike).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from serve.db import PENDING, ReviewDecision, ReviewItem
from serve.reviews_store import (
    CONFIRM, CORRECT, AlreadyDecided, ClaimedByOther, InvalidDecision, ReviewNotFound, claim_free, claimed_by_other, decide_review,
)


# --------------------------------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------------------------------
def claim_review(session: Session, *, review_id: int, reviewer: str, minutes: float) -> ReviewItem:
    """Claim (or renew the claim on) a pending case for ``minutes``. Raises :class:`ReviewNotFound`,
    :class:`AlreadyDecided`, or :class:`ClaimedByOther` when another reviewer's claim still holds."""
    now = datetime.now(timezone.utc)
    with session.begin():
        stmt = (
            update(ReviewItem)
            .where(ReviewItem.id == review_id, ReviewItem.status == PENDING, claim_free(reviewer, now))
            .values(claimed_by=reviewer, claimed_until=now + timedelta(minutes=minutes))
            .execution_options(synchronize_session=False)
        )
        changed = session.execute(stmt).rowcount
        item = session.get(ReviewItem, review_id, populate_existing=True)
        if item is None:
            raise ReviewNotFound(review_id)
        if changed != 1:
            if item.status != PENDING:
                raise AlreadyDecided(item)
            raise ClaimedByOther(item)
    return item


def release_claim(session: Session, *, review_id: int, reviewer: str) -> bool:
    """Give up ``reviewer``'s claim on a case; True when there was one to give up."""
    with session.begin():
        stmt = (
            update(ReviewItem).where(ReviewItem.id == review_id, ReviewItem.claimed_by == reviewer)
            .values(claimed_by=None, claimed_until=None).execution_options(synchronize_session=False)
        )
        return session.execute(stmt).rowcount == 1


# --------------------------------------------------------------------------------------------------
# Groups and bulk
# --------------------------------------------------------------------------------------------------
def decide_group(
    session: Session, *, item: ReviewItem, department_name: str | None = None, decided_by: str | None, reviewer: str | None,
    comment: str | None = None,
) -> list[int]:
    """After ``item`` was decided: give the other pending cases with the same masked text the same
    route. Returns their ids; cases decided meanwhile or held by another reviewer are left alone."""
    now = datetime.now(timezone.utc)
    with session.begin():
        members = list(session.scalars(
            select(ReviewItem).where(ReviewItem.text_hash == item.text_hash, ReviewItem.id != item.id, ReviewItem.status == PENDING)
            .order_by(ReviewItem.id)
        ))
    done: list[int] = []
    for m in members:
        if claimed_by_other(m, reviewer, now):
            continue
        same = m.department == item.decided_department
        try:
            decide_review(
                session, review_id=m.id, decision=CONFIRM if same else CORRECT, channel=None if same else item.decided_channel,
                department=None if same else item.decided_department, comment=comment, decided_by=decided_by, reviewer=reviewer,
                department_name=department_name, how="group",
            )
        except (AlreadyDecided, ClaimedByOther, InvalidDecision, ReviewNotFound):
            continue
        done.append(m.id)
    return done


@dataclass
class BulkResult:
    decided: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (id, why: not_found | decided | claimed | not_served)


def bulk_confirm(session: Session, *, ids: list[int], decided_by: str | None, reviewer: str | None, served=lambda code: True) -> BulkResult:
    """Confirm the suggestion of each case in ``ids`` (in that order). ``served(code)`` says whether a
    suggested department is still in the served taxonomy; a suggestion that is not is skipped
    (``not_served``: it needs a correction to a current department)."""
    out = BulkResult()
    for rid in dict.fromkeys(ids):
        item = session.get(ReviewItem, rid, populate_existing=True)
        suggested = None if item is None else item.department
        session.rollback()  # end the read transaction before decide_review begins its own
        if suggested is None:
            out.skipped.append((rid, "not_found"))
            continue
        if not served(suggested):
            out.skipped.append((rid, "not_served"))
            continue
        try:
            decide_review(session, review_id=rid, decision=CONFIRM, decided_by=decided_by, reviewer=reviewer, how="bulk")
            out.decided.append(rid)
        except ReviewNotFound:
            out.skipped.append((rid, "not_found"))
        except AlreadyDecided:
            out.skipped.append((rid, "decided"))
        except ClaimedByOther:
            out.skipped.append((rid, "claimed"))
    return out


# --------------------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------------------
@dataclass
class ReviewerCounts:
    reviewer: str
    decided: int
    corrected: int
    last_at: datetime | None


def reviewer_history(session: Session, *, reviewer: str | None = None, limit: int = 50, offset: int = 0):
    """(decisions newest first with their cases' masked text, their total, counts per reviewer).
    ``reviewer`` None: everybody's decisions."""
    where = [ReviewDecision.reviewer == reviewer] if reviewer else []
    total = int(session.scalar(select(func.count(ReviewDecision.id)).where(*where)) or 0)
    rows = session.execute(
        select(ReviewDecision, ReviewItem.text_masked).join(ReviewItem, ReviewItem.id == ReviewDecision.review_id, isouter=True)
        .where(*where).order_by(ReviewDecision.decided_at.desc(), ReviewDecision.id.desc()).limit(limit).offset(offset)
    ).all()
    corrected = func.sum(case((ReviewDecision.decision == CORRECT, 1), else_=0))
    per = session.execute(
        select(ReviewDecision.reviewer, func.count(ReviewDecision.id), corrected, func.max(ReviewDecision.decided_at))
        .group_by(ReviewDecision.reviewer).order_by(func.count(ReviewDecision.id).desc(), ReviewDecision.reviewer)
    ).all()
    counts = [ReviewerCounts(r, int(n), int(c or 0), t) for r, n, c, t in per]
    return [(d, text) for d, text in rows], total, counts
