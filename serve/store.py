"""What the API writes to the database: routed calls, feedback and review-queue items.

Each function does its work in one transaction (all rows or none), masks text before it is stored,
and takes keyword arguments only.

Which routings enter the review queue (:func:`review_trigger`):

- ``override``: a danger rule overruled the model (the model's own department was not a 110 one);
- ``needs_review``: confidence below the review threshold (rules-only answers included).

Feedback enters it when the call-taker's final channel or department differs from the suggestion.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from data.masking import mask_pii
from model.router import Decision
from serve.db import PENDING, Feedback, ReloadRequest, ReviewItem, RoutedCall, utcnow

logger = logging.getLogger(__name__)


class UnknownCall(LookupError):
    """Feedback names a ``call_id`` that was never routed (finally, not as a preview)."""


@dataclass
class RoutedText:
    """One final routing to record: the (normalised) text, its decision and the request's ids."""

    text: str
    decision: Decision
    call_id: str | None = None
    received_on: str | None = None


def review_trigger(d: Decision) -> str | None:
    """Why a decision goes to supervisor review, or None.

    >>> from model.router import Router
    >>> review_trigger(Router(None).route("想问一下今天天气怎么样"))
    'needs_review'
    """
    if d.source == "override" and d.model_department is not None:
        return "override"  # the model said otherwise; a danger rule overruled it
    if d.needs_review:
        return "needs_review"
    return None


def _decision_fields(d: Decision) -> dict:
    return dict(
        channel=d.channel,
        department=d.department,
        confidence=float(d.confidence),
        channel_confidence=float(d.channel_confidence),
        source=d.source,
        danger=bool(d.danger),
        model_department=d.model_department,
        alternatives=[dict(a.__dict__) for a in d.alternatives],
        reasons=[mask_pii(r) for r in d.reasons],
        model_version=d.model_version,
        department_names=department_names(d),
    )


def department_names(d: Decision) -> dict[str, str]:
    """``{code: name}`` of the departments a decision mentions, in the taxonomy it was routed with:
    a review case keeps showing these names after a model with other departments is promoted."""
    names = {a.department: a.department_name for a in d.alternatives}
    names[d.department] = d.department_name
    return names


def record_routes(session: Session, *, items: list[RoutedText]) -> list[int | None]:
    """Store final routings: upsert ``routed_calls`` for items with a ``call_id`` and enqueue review
    items for those that need review. Returns the review item id per input (None: not queued).

    A call routed again (same ``call_id``) replaces its earlier routing, and updates its pending
    review item of the same trigger instead of adding a second one.
    """
    queued: list[int | None] = []
    with session.begin():
        for it in items:
            d, masked = it.decision, mask_pii(it.text)
            fields = _decision_fields(d)
            if it.call_id is not None:
                call = session.get(RoutedCall, it.call_id)
                if call is None:
                    session.add(RoutedCall(call_id=it.call_id, text_masked=masked, needs_review=bool(d.needs_review), received_on=it.received_on, **fields))
                    session.flush()  # a second item with the same call_id in this batch must find it
                else:
                    for k, v in dict(fields, text_masked=masked, needs_review=bool(d.needs_review), received_on=it.received_on).items():
                        setattr(call, k, v)
                    call.updated_at = utcnow()
            trigger = review_trigger(d)
            if trigger is None:
                queued.append(None)
                continue
            item = None
            if it.call_id is not None:
                item = session.scalars(
                    select(ReviewItem).where(ReviewItem.call_id == it.call_id, ReviewItem.trigger == trigger, ReviewItem.status == PENDING)
                ).first()
            if item is None:
                item = ReviewItem(call_id=it.call_id, trigger=trigger, text_masked=masked, status=PENDING, **fields)
                session.add(item)
            else:
                for k, v in dict(fields, text_masked=masked).items():
                    setattr(item, k, v)
            session.flush()
            queued.append(item.id)
    return queued


def record_feedback(
    session: Session, *, call_id: str, final_channel: str, final_department: str, operator: str | None = None,
    final_department_name: str | None = None,
) -> tuple[Feedback, int | None]:
    """Store what the call-taker did with ``call_id``; enqueue a review item when it contradicts the
    suggestion. Returns (feedback row, review item id or None). Raises :class:`UnknownCall`.

    Idempotent per call: the same decision sent again for the same routing (a client retrying after a
    503 or a timeout) returns the stored row and its review item instead of adding new ones."""
    with session.begin():
        call = session.get(RoutedCall, call_id)
        if call is None:
            raise UnknownCall(call_id)
        same = session.scalars(
            select(Feedback).where(Feedback.call_id == call_id, Feedback.final_channel == final_channel,
                                   Feedback.final_department == final_department, Feedback.suggested_department == call.department,
                                   Feedback.created_at >= call.updated_at).order_by(Feedback.id.desc())
        ).first()
        if same is not None:
            item = session.scalars(
                select(ReviewItem.id).where(ReviewItem.call_id == call_id, ReviewItem.trigger == "feedback",
                                            ReviewItem.feedback_channel == final_channel, ReviewItem.feedback_department == final_department)
                .order_by(ReviewItem.id.desc())
            ).first()
            same.repeated = True
            return same, item
        agrees = call.channel == final_channel and call.department == final_department
        fb = Feedback(
            call_id=call_id, final_channel=final_channel, final_department=final_department, operator=mask_pii(operator) if operator else None,
            text_masked=call.text_masked, suggested_channel=call.channel, suggested_department=call.department,
            suggested_confidence=call.confidence, model_version=call.model_version, agrees=agrees,
        )
        session.add(fb)
        review_id = None
        if not agrees:
            item = ReviewItem(
                call_id=call_id, trigger="feedback", text_masked=call.text_masked, channel=call.channel, department=call.department,
                confidence=call.confidence, channel_confidence=call.channel_confidence, source=call.source, danger=call.danger,
                model_department=call.model_department, alternatives=call.alternatives, reasons=call.reasons,
                model_version=call.model_version, feedback_channel=final_channel, feedback_department=final_department,
                operator=mask_pii(operator) if operator else None, status=PENDING,
                department_names={**(call.department_names or {}), **({final_department: final_department_name} if final_department_name else {})},
            )
            session.add(item)
            session.flush()
            review_id = item.id
        session.flush()
    return fb, review_id


def request_reload(session: Session, *, requested_by: str | None = None) -> int:
    """Record a reload request; returns its id (workers apply every id above the last they saw)."""
    with session.begin():
        req = ReloadRequest(requested_by=requested_by)
        session.add(req)
        session.flush()
        return req.id


def latest_reload(session: Session) -> int:
    """Id of the newest reload request (0: none yet)."""
    return int(session.scalar(select(func.max(ReloadRequest.id))) or 0)
