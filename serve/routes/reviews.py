"""The supervisor review queue (role supervisor): list, decide, statistics.

``GET /v1/reviews``
    Filters ``status`` (pending by default, decided or all), ``q`` (text search in the masked summary), ``channel`` and ``department`` (of the
    suggestion), ``trigger``, ``min_confidence``/``max_confidence`` (inclusive), ``created_from``
    (inclusive) and ``created_to`` (exclusive; ISO 8601, naive = UTC). Least confident first,
    ``limit``/``offset`` pages with the ``total`` that matched. ``group=true``: one row per identical
    masked text with ``group_size``.
``GET /v1/reviews/{id}``
    One item.
``POST /v1/reviews/{id}``
    ``{"decision": "confirm"}`` or ``{"decision": "correct", "department": "utilities"}`` (+ optional
    ``channel``, ``comment``, ``operator``). A decided item answers **409** unless the request says
    ``"reopen": true``; then the new decision replaces the old one, which is returned under
    ``replaced`` and logged. ``decided_by`` records ``operator`` and the key's role and fingerprint
    (``S003 supervisor key#3f2a``), never the key.
    ``"group": true`` gives every other pending case with the same masked text the same route (their
    ids under ``group_decided``). A correction must name a department of the *served* taxonomy (a
    short Chinese 422 otherwise); a case routed with an earlier taxonomy keeps that taxonomy's names
    (stored with it), and its suggestion can only be confirmed while the served taxonomy still has it.
    A case another reviewer claimed answers **409** (claims: :mod:`serve.routes.review_work`).
``GET /v1/reviews/stats``
    Decided reviews per suggested department and channel (corrected, correction rate, moved to the
    other channel) and a confidence histogram of the pending items.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from sqlalchemy.exc import SQLAlchemyError

from data.masking import mask_pii
from data.taxonomy import Taxonomy
from serve.auth import Principal
from serve.db import ReviewItem
from serve.deps import DbDep, MetricsDep, RouterDep, SupervisorDep
from serve.review_work import decide_group
from serve.reviews_store import (
    CONFIRM, CORRECT, AlreadyDecided, ClaimedByOther, GroupCounts, InvalidDecision, ReviewNotFound, as_utc, decide_review, list_reviews, review_stats,
)
from serve.schemas import (
    AlternativeOut,
    CorrectionCounts,
    ErrorOut,
    HistogramBin,
    PastDecisionOut,
    ReviewDecisionRequest,
    ReviewDecisionResponse,
    ReviewList,
    ReviewOut,
    ReviewStatsOut,
    SafeStr,
)

logger = logging.getLogger(__name__)
MAX_ID = 2**31 - 1  # the id columns are 32-bit integers on PostgreSQL: a larger id or offset is a 422, not a 500
router = APIRouter(prefix="/v1/reviews", tags=["reviews"])

ERRORS = {
    401: {"model": ErrorOut, "description": "Missing or unknown API key"},
    403: {"model": ErrorOut, "description": "The key's role is below supervisor"},
    503: {"model": ErrorOut, "description": "Database unavailable"},
}


def _name(tax: Taxonomy, code: str | None, stored: dict | None = None) -> str | None:
    """A department's name: as stored with the case (the taxonomy it was routed with), else the served one's, else the code."""
    if code is None:
        return None
    if stored and stored.get(code):
        return str(stored[code])
    return tax[code].name if code in tax else code


def to_out(item: ReviewItem, tax: Taxonomy, cls: type[ReviewOut] = ReviewOut, group_size: int = 1, **extra) -> ReviewOut:
    """The API view of a stored review item. The case's own departments (suggestion, model's view,
    alternatives, call-taker's) keep the names of the taxonomy it was routed with; a decided
    department is one of the served taxonomy (it was validated against it)."""
    names = item.department_names or {}
    return cls(
        id=item.id, call_id=item.call_id, trigger=item.trigger, text_masked=item.text_masked, channel=item.channel,
        department=item.department, department_name=_name(tax, item.department, names), confidence=item.confidence,
        channel_confidence=item.channel_confidence, source=item.source, danger=bool(item.danger), model_department=item.model_department,
        reasons=list(item.reasons or []), alternatives=[AlternativeOut(**a) for a in (item.alternatives or [])],
        model_version=item.model_version, feedback_channel=item.feedback_channel, feedback_department=item.feedback_department,
        feedback_department_name=_name(tax, item.feedback_department, names), operator=item.operator, created_at=as_utc(item.created_at),
        status=item.status, decision=item.decision, decided_channel=item.decided_channel, decided_department=item.decided_department,
        decided_department_name=_name(tax, item.decided_department), comment=item.comment, decided_by=item.decided_by,
        decided_at=as_utc(item.decided_at), model_department_name=_name(tax, item.model_department, names),
        served=item.department in tax, group_size=group_size, claimed_by=item.claimed_by, claimed_until=as_utc(item.claimed_until), **extra,
    )


def _unavailable(metrics, what: str) -> HTTPException:
    metrics.db_errors.inc()
    logger.exception("review queue: could not %s", what)
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"database unavailable: could not {what}, please retry")


def reviewer_of(principal: Principal, operator: str | None) -> str:
    """Who reviews: the key's name where ``HOTLINE_API_KEYS`` gives one (the page then asks nothing),
    else the name the page asked for once (``operator``, self-declared), else the key's fingerprint.

    >>> reviewer_of(Principal("supervisor", "key#3f2a", "王班长"), "S003")
    '王班长'
    >>> reviewer_of(Principal("supervisor", "key#3f2a"), " S003 "), reviewer_of(Principal("supervisor", "key#3f2a"), None)
    ('S003', 'key#3f2a')
    """
    if principal.name:
        return principal.name
    if operator and operator.strip():
        return mask_pii(operator.strip())[:32]
    return principal.key_id if principal.role else "anonymous"


def decided_by(principal: Principal, operator: str | None) -> str:
    """``"S003 supervisor key#3f2a"``: who decided, without the key itself.

    >>> decided_by(Principal("supervisor", "key#3f2a"), "S003")
    'S003 supervisor key#3f2a'
    >>> decided_by(Principal(None), None)
    'anonymous (auth off)'
    """
    who = f"{principal.role} {principal.key_id}" if principal.role else "anonymous (auth off)"
    name = principal.name or (operator.strip() if operator and operator.strip() else None)
    return f"{mask_pii(name)[:24]} {who}" if name else who


@router.get("", response_model=ReviewList, responses={422: {"model": ErrorOut}, **ERRORS}, summary="The review queue, least confident first")
def reviews(
    _: SupervisorDep,
    db: DbDep,
    router_: RouterDep,
    metrics: MetricsDep,
    status_: Annotated[Literal["pending", "decided", "all"], Query(alias="status", description="pending (default), decided or all")] = "pending",
    channel: Annotated[Literal["110", "12345"] | None, Query(description="Suggested channel")] = None,
    department: Annotated[SafeStr | None, Query(max_length=128, description="Suggested department code")] = None,
    trigger: Annotated[Literal["needs_review", "override", "feedback"] | None, Query()] = None,
    min_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
    created_from: Annotated[datetime | None, Query(description="Inclusive, ISO 8601 (naive = UTC)")] = None,
    created_to: Annotated[datetime | None, Query(description="Exclusive, ISO 8601 (naive = UTC)")] = None,
    q: Annotated[SafeStr | None, Query(max_length=200, description="Only cases whose masked summary contains this text")] = None,
    group: Annotated[bool, Query(description="One row per identical masked summary, with group_size")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> ReviewList:
    """Example: ``GET /v1/reviews?status=pending&channel=110&max_confidence=0.5&limit=20``."""
    if min_confidence is not None and max_confidence is not None and min_confidence > max_confidence:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "min_confidence is above max_confidence")
    try:
        page = list_reviews(
            db, status=None if status_ == "all" else status_, channel=channel, department=department, trigger=trigger,
            min_confidence=min_confidence, max_confidence=max_confidence, created_from=created_from, created_to=created_to,
            q=q.strip() if q else None, group=group, limit=limit, offset=offset,
        )
    except SQLAlchemyError:
        raise _unavailable(metrics, "read the review queue") from None
    tax = router_.taxonomy
    return ReviewList(items=[to_out(i, tax, group_size=page.sizes.get(i.id, 1)) for i in page.items], total=page.total, limit=limit, offset=offset)


@router.get("/stats", response_model=ReviewStatsOut, responses=ERRORS, summary="How often supervisors changed the suggestion")
def stats(_: SupervisorDep, db: DbDep, router_: RouterDep, metrics: MetricsDep) -> ReviewStatsOut:
    try:
        st = review_stats(db)
    except SQLAlchemyError:
        raise _unavailable(metrics, "compute review statistics") from None
    tax = router_.taxonomy

    def counts(g: GroupCounts, name: str | None) -> CorrectionCounts:
        return CorrectionCounts(key=g.key, name=name or g.key, decided=g.decided, corrected=g.corrected,
                                correction_rate=round(g.correction_rate, 4), channel_changed=g.channel_changed)

    return ReviewStatsOut(
        pending=st.pending, decided=st.decided, corrected=st.corrected, correction_rate=round(st.correction_rate, 4),
        channel_changed=st.channel_changed,
        by_department=[counts(g, _name(tax, g.key)) for g in st.by_department],
        by_channel=[counts(g, tax.channels.get(g.key)) for g in st.by_channel],
        pending_confidence_histogram=[HistogramBin(low=lo, high=hi, count=n) for lo, hi, n in st.histogram],
    )


@router.get("/{review_id}", response_model=ReviewOut, responses={404: {"model": ErrorOut}, **ERRORS}, summary="One review item")
def review(review_id: Annotated[int, Path(ge=1, le=MAX_ID)], _: SupervisorDep, db: DbDep, router_: RouterDep, metrics: MetricsDep) -> ReviewOut:
    try:
        item = db.get(ReviewItem, review_id)
    except SQLAlchemyError:
        raise _unavailable(metrics, "read the review item") from None
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no review item {review_id}")
    return to_out(item, router_.taxonomy)


@router.post(
    "/{review_id}",
    response_model=ReviewDecisionResponse,
    responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut, "description": "Already decided; send reopen: true to change it"}, 422: {"model": ErrorOut}, **ERRORS},
    summary="Confirm or correct a review item",
)
def decide(review_id: Annotated[int, Path(ge=1, le=MAX_ID)], body: ReviewDecisionRequest, principal: SupervisorDep, db: DbDep, router_: RouterDep, metrics: MetricsDep) -> ReviewDecisionResponse:
    """Example: ``{"decision": "correct", "department": "utilities", "comment": "停水属于供水"}``."""
    tax = router_.taxonomy
    channel, department = body.channel, body.department
    if body.decision == CORRECT:
        if department is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "改判需要选择部门（department）")
        if department not in tax:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"部门“{mask_pii(department)[:40]}”不在当前使用的分类中，请从列表中选择")
        derived = tax.channel_of(department)
        if channel is not None and channel != derived:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"线路 {channel} 与部门“{tax[department].name}”（{derived}）不符")
        channel = derived
    reviewer, by = reviewer_of(principal, body.operator), decided_by(principal, body.operator)
    try:
        if body.decision == CONFIRM:
            current = db.get(ReviewItem, review_id)
            suggested = None if current is None else (current.department, _name(tax, current.department, current.department_names))
            db.rollback()  # decide_review opens its own transaction
            if suggested is not None and suggested[0] not in tax:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"建议部门“{suggested[1]}”已不在当前分类中，请改判")
        item, previous = decide_review(
            db, review_id=review_id, decision=body.decision, channel=channel, department=department, comment=body.comment,
            decided_by=by, reviewer=reviewer, department_name=_name(tax, department), reopen=body.reopen,
        )
        group_ids = decide_group(db, item=item, department_name=_name(tax, item.decided_department, item.department_names),
                                 decided_by=by, reviewer=reviewer, comment=body.comment) if body.group else []
    except ReviewNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no review item {review_id}") from None
    except InvalidDecision as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except ClaimedByOther as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, claimed_message(exc.item)) from None
    except AlreadyDecided as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"{exc}; send \"reopen\": true to replace that decision",
        ) from None
    except SQLAlchemyError:
        raise _unavailable(metrics, "store the decision") from None
    logger.info(
        "review decided",
        extra={"fields": {"event": "review_decided", "review_id": review_id, "decision": item.decision, "department": item.decided_department,
                          "channel": item.decided_channel, "decided_by": item.decided_by, "reopened": previous is not None,
                          "replaced": None if previous is None else {"decision": previous.decision, "department": previous.department, "decided_by": previous.decided_by}}},
    )
    replaced = None
    if previous is not None:
        replaced = PastDecisionOut(decision=previous.decision, channel=previous.channel, department=previous.department,
                                   decided_by=previous.decided_by, decided_at=previous.decided_at, comment=previous.comment)
    return to_out(item, tax, ReviewDecisionResponse, replaced=replaced, group_decided=group_ids)


def claimed_message(item: ReviewItem) -> str:
    """409 text for a case another reviewer holds: who, and until when (UTC)."""
    until = as_utc(item.claimed_until)
    return f"该案例正由 {item.claimed_by} 处理（认领至 {until:%H:%M} UTC）" if until else f"该案例正由 {item.claimed_by} 处理"
