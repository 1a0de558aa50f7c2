"""Working the review queue together (role supervisor): who am I, claims, bulk confirm, history.

``GET /v1/reviews/me``
    The reviewer name this request is recorded under and whether it comes from the key
    (``HOTLINE_API_KEYS`` entry ``key:supervisor:name``). When it does not, the page asks the
    supervisor for a name once, remembers it in the browser (localStorage) and sends it as
    ``operator``; that name is self-declared, the key's role and fingerprint are recorded beside it.
``POST /v1/reviews/{id}/claim`` / ``DELETE …/claim``
    Claim a pending case for ``Settings.review_claim_minutes`` (renew by claiming again) / give it
    up. **409** (Chinese text: who holds it, until when) while another reviewer's claim holds.
``POST /v1/reviews/bulk``
    ``{"ids": [3, 5, 8], "decision": "confirm"}``: confirm each suggestion; answers which were
    confirmed and which were skipped and why (decided, claimed, not_found, not_served).
``GET /v1/reviews/history``
    ``?reviewer=王班长`` (default everybody): decisions newest first, and counts per reviewer.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError

from serve.db import ReviewItem
from serve.deps import DbDep, MetricsDep, RouterDep, SettingsDep, SupervisorDep
from serve.review_work import bulk_confirm, decide_group, claim_review, release_claim, reviewer_history
from serve.reviews_store import AlreadyDecided, ClaimedByOther, ReviewNotFound, as_utc
from serve.routes.reviews import ERRORS, MAX_ID, _unavailable, claimed_message, decided_by, reviewer_of, to_out
from serve.schemas import ErrorOut, ReviewOut, SafeStr, _In

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/reviews", tags=["reviews"])


class MeOut(BaseModel):
    reviewer: str = Field(..., description="The name decisions and claims are recorded under")
    from_key: bool = Field(..., description="True: the key names its owner; the page need not ask")
    claim_minutes: float


class ClaimRequest(_In):
    model_config = ConfigDict(extra="forbid")
    operator: str | None = Field(None, max_length=32, description="The reviewer's name when the key has none")


class BulkRequest(_In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"ids": [3, 5, 8], "decision": "confirm"}]})
    ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(..., min_length=1, max_length=200)
    decision: Literal["confirm"]
    operator: str | None = Field(None, max_length=32)
    group: bool = Field(False, description="Also give the other pending cases with the same masked text each confirmed route")


class Skipped(BaseModel):
    id: int
    reason: Literal["decided", "claimed", "not_found", "not_served"]


class BulkOut(BaseModel):
    decided: list[int]
    group_decided: list[int] = Field(default_factory=list, description="group: the other cases of the confirmed cases' groups")
    skipped: list[Skipped]


class HistoryEntry(BaseModel):
    review_id: int
    reviewer: str
    decision: Literal["confirm", "correct"]
    how: str = Field(..., description="single | group | bulk | reopen")
    channel: str | None
    department: str | None
    department_name: str | None
    suggested_department: str | None
    text_masked: str | None
    comment: str | None
    decided_at: datetime


class ReviewerCountsOut(BaseModel):
    reviewer: str
    decided: int
    corrected: int
    last_at: datetime | None


class HistoryOut(BaseModel):
    items: list[HistoryEntry]
    total: int
    reviewers: list[ReviewerCountsOut]


@router.get("/me", response_model=MeOut, responses=ERRORS, summary="The reviewer name this key is recorded under")
def me(principal: SupervisorDep, settings: SettingsDep, operator: Annotated[SafeStr | None, Query(max_length=32)] = None) -> MeOut:
    return MeOut(reviewer=reviewer_of(principal, operator), from_key=bool(principal.name), claim_minutes=settings.review_claim_minutes)


@router.get("/history", response_model=HistoryOut, responses=ERRORS, summary="What each reviewer decided, and when")
def history(
    _: SupervisorDep, db: DbDep, metrics: MetricsDep,
    reviewer: Annotated[SafeStr | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> HistoryOut:
    try:
        rows, total, counts = reviewer_history(db, reviewer=reviewer, limit=limit, offset=offset)
    except SQLAlchemyError:
        raise _unavailable(metrics, "read the review history") from None
    items = [
        HistoryEntry(review_id=d.review_id, reviewer=d.reviewer, decision=d.decision, how=d.how, channel=d.channel, department=d.department,
                     department_name=d.department_name, suggested_department=d.suggested_department, text_masked=text, comment=d.comment,
                     decided_at=as_utc(d.decided_at))
        for d, text in rows
    ]
    return HistoryOut(items=items, total=total, reviewers=[ReviewerCountsOut(reviewer=c.reviewer, decided=c.decided, corrected=c.corrected,
                                                                             last_at=as_utc(c.last_at)) for c in counts])


@router.post("/bulk", response_model=BulkOut, responses={422: {"model": ErrorOut}, **ERRORS}, summary="Confirm the suggestion of several cases")
def bulk(body: BulkRequest, principal: SupervisorDep, db: DbDep, router_: RouterDep, metrics: MetricsDep) -> BulkOut:
    tax = router_.taxonomy
    by, reviewer = decided_by(principal, body.operator), reviewer_of(principal, body.operator)
    grouped: list[int] = []
    try:
        out = bulk_confirm(db, ids=body.ids, decided_by=by, reviewer=reviewer, served=lambda code: code in tax)
        if body.group:
            for rid in out.decided:
                item = db.get(ReviewItem, rid)
                db.rollback()  # decide_group opens its own transactions
                grouped += [i for i in decide_group(db, item=item, decided_by=by, reviewer=reviewer) if i not in out.decided and i not in grouped]
    except SQLAlchemyError:
        raise _unavailable(metrics, "store the decisions") from None
    logger.info("reviews confirmed in bulk", extra={"fields": {"event": "review_bulk", "decided": out.decided, "skipped": len(out.skipped)}})
    return BulkOut(decided=out.decided, group_decided=grouped, skipped=[Skipped(id=i, reason=r) for i, r in out.skipped])


@router.post(
    "/{review_id}/claim", response_model=ReviewOut,
    responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut, "description": "Decided, or claimed by another reviewer"}, **ERRORS},
    summary="Claim a pending case (so another supervisor does not work on it)",
)
def claim(review_id: Annotated[int, Path(ge=1, le=MAX_ID)], principal: SupervisorDep, db: DbDep, router_: RouterDep, settings: SettingsDep,
          metrics: MetricsDep, body: ClaimRequest | None = None) -> ReviewOut:
    reviewer = reviewer_of(principal, body.operator if body else None)
    try:
        item = claim_review(db, review_id=review_id, reviewer=reviewer, minutes=settings.review_claim_minutes)
    except ReviewNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no review item {review_id}") from None
    except AlreadyDecided:
        raise HTTPException(status.HTTP_409_CONFLICT, "该案例已复核") from None
    except ClaimedByOther as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, claimed_message(exc.item)) from None
    except SQLAlchemyError:
        raise _unavailable(metrics, "claim the case") from None
    return to_out(item, router_.taxonomy)


@router.delete("/{review_id}/claim", status_code=204, responses=ERRORS, summary="Give up one's claim on a case")
def unclaim(review_id: Annotated[int, Path(ge=1, le=MAX_ID)], principal: SupervisorDep, db: DbDep, metrics: MetricsDep,
            operator: Annotated[SafeStr | None, Query(max_length=32)] = None) -> Response:
    try:
        release_claim(db, review_id=review_id, reviewer=reviewer_of(principal, operator))
    except SQLAlchemyError:
        raise _unavailable(metrics, "release the claim") from None
    return Response(status_code=204)

