"""``POST /v1/feedback``: what the call-taker actually did with a routed call (role call_taker).

Stored for retraining beside the suggestion; feedback that contradicts the suggestion also enters
the supervisor review queue (same transaction).
"""
from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, Response, status
from sqlalchemy.exc import SQLAlchemyError

from serve.deps import CallTakerDep, DbDep, MetricsDep, RouterDep, SettingsDep
from serve.schemas import ErrorOut, FeedbackRequest, FeedbackResponse
from serve.store import UnknownCall, record_feedback

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["feedback"])


@router.post(
    "/feedback",
    status_code=status.HTTP_201_CREATED,
    response_model=FeedbackResponse,
    responses={404: {"model": ErrorOut, "description": "call_id was never routed"}, 422: {"model": ErrorOut}, 503: {"model": ErrorOut}},
    summary="Record what the call-taker did",
)
def feedback(body: FeedbackRequest, principal: CallTakerDep, db: DbDep, router_: RouterDep, metrics: MetricsDep, settings: SettingsDep,
             request: Request, response: Response) -> FeedbackResponse:
    """Example: ``{"call_id": "C20261124-0001", "final_channel": "110", "final_department": "police_criminal"}``.

    The call must have been routed before with this ``call_id`` (and ``preview`` false). A routing is
    answered before it is stored when the database is slow: feedback on a call not found waits (at
    most ``db_feedback_wait_s``) for this process's queued writes, then looks again. Sending the
    same decision again for the same routing is safe: the stored one is returned (200, same id)."""
    tax = router_.taxonomy
    if body.final_department not in tax:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"final_department {body.final_department!r} is not a department of the served taxonomy; known: {', '.join(tax.codes)}",
        )

    def record():
        return record_feedback(
            db, call_id=body.call_id, final_channel=body.final_channel, final_department=body.final_department,
            operator=body.operator or (principal.key_id if principal.role else None), final_department_name=tax[body.final_department].name,
        )

    try:
        try:
            fb, review_id = record()
        except UnknownCall:
            if not request.app.state.writer.pending:
                raise
            request.app.state.writer.settle(settings.db_feedback_wait_s)  # its routing may be on its way
            fb, review_id = record()
    except UnknownCall:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"call_id {body.call_id!r} was never routed: route it first with this call_id (and preview false)",
        ) from None
    except SQLAlchemyError:
        metrics.db_errors.inc()
        logger.exception("could not store feedback")
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "database unavailable: feedback not stored, please retry") from None
    if getattr(fb, "repeated", False):
        response.status_code = status.HTTP_200_OK
    elif review_id is not None:
        metrics.review_items.labels("feedback").inc()
    logger.info(
        "feedback",
        extra={"fields": {"event": "feedback", "call_id": body.call_id, "agrees": fb.agrees, "final_channel": body.final_channel,
                          "final_department": body.final_department, "queued": review_id is not None}},
    )
    return FeedbackResponse(
        id=fb.id, call_id=fb.call_id, agrees_with_suggestion=fb.agrees, suggested_channel=fb.suggested_channel,
        suggested_department=fb.suggested_department, queued_for_review=review_id is not None, review_id=review_id,
    )
