"""Three-way consult outcomes (三方通话, ``/v1/consults``): who keeps a call the router could not place.

``POST /v1/consults``   call_taker, supervisor, admin   record the outcome (201); the same outcome of a call
                                                         again answers the stored one (200), another one 409.
                                                         When the line that keeps the call is not the first
                                                         line, the transfer order to it is created in the
                                                         same transaction and returned under ``transfer``.
``GET /v1/consults``    supervisor, admin               list (``call_id``, ``kept_by_line``, ``outcome``; newest first)

The first line (``from_line``) is the key's line (``HOTLINE_HOME_LINE``), as for transfer orders; the
call-taker recorded is the key's owner (``key:call_taker:姓名``) or the ``operator`` given, beside the
key's role and fingerprint. Partner keys may not use these endpoints (403).
"""
from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from serve.advice import DEFAULT_CHANNEL_NAMES
from serve.deps import CallTakerDep, DbDep, MetricsDep, SupervisorDep
from serve.routes.transfers import ERRORS, MAX_ID, Caller, _check_department, _out, _unavailable, actor
from serve.schemas import ErrorOut
from serve.transfers.consult_schemas import ConsultCreate, ConsultList, ConsultOut
from serve.transfers.consults import ConsultConflict, ConsultOutcome, list_consults, record_consult
from serve.transfers.outbox import enqueuer
from serve.transfers.store import as_utc, get_order
from serve.transfers.tables import TransferOrder

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/consults", tags=["consults"])


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message)


def _lines(body: ConsultCreate, caller: Caller) -> tuple[str, str, str]:
    """(from_line, with_line, kept_by_line) of the outcome, or 422/403 saying what does not fit."""
    lines = caller.settings.lines
    first = body.from_line or caller.line
    for field, line in (("from_line", first), ("with_line", body.with_line), ("kept_by_line", body.kept_by_line)):
        if line is not None and line not in lines:
            raise _unprocessable(f"{field} {line} is not one of the transfer lines ({', '.join(lines)})")
    if first != caller.line:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"此密钥代表 {caller.line} 线，只能记录 {caller.line} 首接来电的三方通话 (from_line)")
    kept = body.kept_by_line
    if body.outcome == "still_unclear":
        if kept is not None and kept != first:
            raise _unprocessable("kept_by_line: when still unclear the first line keeps the call (kept_by_line must be from_line)")
        kept = first
    elif kept is None:
        raise _unprocessable("kept_by_line: required when outcome is agreed (the line that keeps the call)")
    other = body.with_line or (kept if kept != first else ("12345" if first == "110" else "110"))
    if other == first:
        raise _unprocessable("with_line: must differ from from_line (the line brought into the call)")
    if kept not in (first, other):
        raise _unprocessable(f"kept_by_line {kept}: must be the first line ({first}) or the line brought in ({other})")
    return first, other, kept


def _check(body: ConsultCreate, request: Request, first: str, kept: str) -> None:
    """422 for an agreed outcome without who or why, a department of another line, 110 先行 not to 110."""
    if body.outcome == "agreed":
        if not (body.agreed_by and body.agreed_by.strip()):
            raise _unprocessable("agreed_by: required when outcome is agreed (who on the other line agreed)")
        if not body.reason:
            raise _unprocessable("reason: required when outcome is agreed (why this line keeps the call)")
    if body.department is not None:
        _check_department(request, "department", body.department)
        served = request.app.state.models.current
        if served is not None and kept in served.router.taxonomy.channels:
            channel = served.router.taxonomy.channel_of(body.department)
            if channel != kept:
                raise _unprocessable(f"department {body.department!r} belongs to {channel}, not to the line that keeps the call ({kept})")
    if body.urgency == "110_first" and not (kept == "110" and first != "110"):
        raise _unprocessable("urgency 110_first: only when the call moves to 110 (kept_by_line 110, first line another)")


def _line_name(request: Request, line: str) -> str:
    served = request.app.state.models.current
    names = served.router.taxonomy.channels if served is not None else {}
    return names.get(line) or DEFAULT_CHANNEL_NAMES.get(line) or line


def _consult_out(c: ConsultOutcome, order: TransferOrder | None, caller: Caller, request: Request, db: Session | None = None) -> ConsultOut:
    """The answer for one outcome; its order with its history when ``db`` is given."""
    served = request.app.state.models.current
    tax = served.router.taxonomy if served is not None else None
    transfer = None
    if order is not None:
        transfer = _out(order, caller, get_order(db, order.id)[1] if db is not None else None)
    return ConsultOut(
        id=c.id, call_id=c.call_id, outcome="still_unclear" if c.still_unclear else "agreed", from_line=c.from_line, with_line=c.with_line,
        kept_by_line=c.kept_by_line, kept_by_line_name=_line_name(request, c.kept_by_line), agreed_by=c.agreed_by, call_taker=c.call_taker,
        reason=c.reason, department=c.department,
        department_name=tax[c.department].name if tax is not None and c.department and c.department in tax else None,
        urgency=c.urgency, summary=c.summary_masked, decision=c.decision or {}, model_version=c.model_version, created_at=as_utc(c.created_at),
        transfer_order_id=c.transfer_order_id, transfer=transfer)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ConsultOut, summary="Record a three-way consult's outcome (三方通话)",
             responses={200: {"model": ConsultOut, "description": "This outcome of the call was recorded before: returned as it is"},
                        409: {"model": ErrorOut, "description": "The call has another outcome, or an order to another line"},
                        422: {"model": ErrorOut}, **ERRORS})
def create(body: ConsultCreate, principal: CallTakerDep, db: DbDep, metrics: MetricsDep, request: Request, response: Response) -> ConsultOut:
    """Texts are masked before they are stored; the outcome and its transfer order (when the call
    moves to the other line) are committed together before the answer."""
    settings = request.app.state.settings
    caller = Caller(principal, settings.home_line, None, settings)
    first, other, kept = _lines(body, caller)
    _check(body, request, first, kept)
    try:
        result = record_consult(
            db, call_id=body.call_id, from_line=first, with_line=other, kept_by_line=kept, still_unclear=body.outcome == "still_unclear",
            agreed_by=body.agreed_by, reason=body.reason, department=body.department, urgency=body.urgency, summary=body.summary,
            decision=body.decision.model_dump(exclude_none=True), model_version=body.model_version,
            actor=actor(principal, body.operator or principal.name),
            limit_min=settings.transfer_limits.minutes(body.urgency, body.department or kept),
            notify=enqueuer(settings.partner_urls))
        out = _consult_out(result.consult, result.order, caller, request, db)
    except ConsultConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except SQLAlchemyError:
        raise _unavailable(metrics, "保存三方通话结果") from None
    if not result.created:
        response.status_code = status.HTTP_200_OK
    else:
        if result.order_created:
            metrics.transfer_steps.labels("create").inc()
        logger.info("consult recorded", extra={"fields": {"event": "consult_recorded", "consult_id": out.id, "from_line": first,
                                                          "kept_by_line": kept, "outcome": body.outcome, "order_id": out.transfer_order_id}})
    return out


@router.get("", response_model=ConsultList, responses={422: {"model": ErrorOut}, **ERRORS}, summary="List three-way consult outcomes")
def list_(principal: SupervisorDep, db: DbDep, metrics: MetricsDep, request: Request, call_id: Annotated[str | None, Query(max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")] = None,
          kept_by_line: Annotated[str | None, Query(pattern=r"^[0-9]{3,5}$")] = None,
          outcome: Literal["agreed", "still_unclear"] | None = None,
          limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0) -> ConsultList:
    """Newest first; each with its transfer order (without history) when one was made."""
    settings = request.app.state.settings
    caller = Caller(principal, settings.home_line, None, settings)
    try:
        page = list_consults(db, call_id=call_id, kept_by_line=kept_by_line, limit=limit, offset=offset,
                             still_unclear=None if outcome is None else outcome == "still_unclear")
    except SQLAlchemyError:
        raise _unavailable(metrics, "读取三方通话结果") from None
    return ConsultList(items=[_consult_out(c, o, caller, request) for c, o in page.items], total=page.total, limit=limit, offset=offset)
