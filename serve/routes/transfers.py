"""Transfer orders between the lines (``/v1/transfers``): the platform's own keys and partners.

Who acts for which line: the platform's own keys (call_taker, supervisor, admin; or anyone when
auth is off) act for ``Settings.home_line`` and see every order; a ``partner@LINE`` key acts for
``LINE`` and sees only orders sent to or from it (404 for the others). Each step belongs to one
side (:data:`serve.transfers.store.STEPS`); a step that does not fit the order's state or the
caller's side answers **409** with the current state (``detail`` in Chinese, ``state``,
``allowed_actions``). Every acknowledged step is committed before the answer.

``POST /v1/transfers``                      create (201), or the existing order of that call_id (200)
``GET /v1/transfers/{id}``                  one order with its history
``GET /v1/transfers?state=&to_line=&overdue=``  list (oldest due first, pages)
``POST /v1/transfers/{id}/{action}``        accept, return, handle, write_back (receiver); close, resend (sender)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from serve.auth import Principal
from serve.config import Settings
from serve.deps import DbDep, MetricsDep, require
from data.masking import mask_pii
from serve.schemas import ErrorOut
from serve.transfers.outbox import enqueuer
from serve.transfers.schemas import State, StepAction, TransferConflict, TransferCreate, TransferEventOut, TransferList, TransferOut, TransferStep
from serve.transfers.store import (ACTION_NAMES, STATE_NAMES, InvalidStep, OrderNotFound, allowed_actions, as_utc, create_order, get_order,
                                   is_overdue, list_orders, step)
from serve.transfers.tables import TransferEvent, TransferOrder

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/transfers", tags=["transfers"])
_call_taker, _partner = require("call_taker"), require("partner")


@dataclass(frozen=True)
class Caller:
    """Who calls, the line they act for, and the line they are confined to (partners) or None."""

    principal: Principal
    line: str
    visible_to: str | None
    settings: Settings


async def get_caller(request: Request) -> Caller:
    """A platform key (call_taker or higher) or a partner key; 401/403 otherwise."""
    settings: Settings = request.app.state.settings
    try:
        principal = await _call_taker(request)
    except HTTPException as exc:
        if exc.status_code != status.HTTP_403_FORBIDDEN:
            raise
        principal = await _partner(request)
    if principal.is_partner:
        return Caller(principal, principal.line, principal.line, settings)
    return Caller(principal, settings.home_line, None, settings)


def actor(principal: Principal, operator: str | None) -> str:
    """``"110-0032 partner key#3f2a"``: who acted (the operator's id masked), never the key.

    >>> actor(Principal("partner", "key#3f2a", "110"), "110-0032")
    '110-0032 partner key#3f2a'
    """
    who = f"{principal.role} {principal.key_id}" if principal.role else "anonymous (auth off)"
    return f"{mask_pii(operator.strip())} {who}" if operator and operator.strip() else who


MAX_ID = 2**31 - 1  # the id columns are 32-bit integers on PostgreSQL: a larger id is a 422, not a 500
CallerDep = Annotated[Caller, Depends(get_caller)]
OrderId = Annotated[int, Path(ge=1, le=MAX_ID)]
ERRORS = {401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 503: {"model": ErrorOut, "description": "Database unavailable"}}


def _out(order: TransferOrder, caller: Caller, events: list[TransferEvent] | None = None) -> TransferOut:
    history = None if events is None else [
        TransferEventOut(seq=e.seq, action=e.action, action_name=ACTION_NAMES[e.action], from_state=e.from_state, to_state=e.to_state,
                         line=e.line, actor=e.actor, detail=e.detail or {}, at=as_utc(e.at)) for e in events]
    return TransferOut(
        id=order.id, call_id=order.call_id, from_line=order.from_line, to_line=order.to_line, department=order.department,
        urgency=order.urgency, summary=order.summary_masked, decision=order.decision or {}, model_version=order.model_version,
        state=order.state, state_name=STATE_NAMES[order.state], return_reason=order.return_reason, result=order.result,
        handled_department=order.handled_department, created_by=order.created_by, created_at=as_utc(order.created_at),
        updated_at=as_utc(order.updated_at), due_at=as_utc(order.due_at), overdue=is_overdue(order),
        allowed_actions=allowed_actions(order, caller.line), history=history,
    )


def _unavailable(metrics, what: str) -> HTTPException:
    metrics.db_errors.inc()
    logger.error("transfer orders: could not %s", what, extra={"fields": {"event": "transfer_db_error"}})
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"数据库暂不可用：未能{what}，请重试")


def _check_sender_department(request: Request, db, order_id: int, visible_to: str | None, department: str) -> None:
    """422 (in Chinese) when a model is served and ``department`` is not one of its departments on the
    order's sending line (a return or close names where the matter belongs on the sending side)."""
    served = request.app.state.models.current
    if served is None:
        return
    line = get_order(db, order_id, visible_to=visible_to)[0].from_line  # OrderNotFound: 404 as for the step itself
    db.rollback()  # end the read: the step opens its own transaction
    tax = served.router.taxonomy
    if department not in tax:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"department：“{department}”不是当前分类中的部门；派出方 {line} 的部门有：{'、'.join(tax.codes_for(line)) or '（无）'}")
    if tax.channel_of(department) != line:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"department：“{department}”属于 {tax.channel_of(department)}，不是派出方 {line} 的部门；"
                            f"退回或办结时请填写派出方的部门：{'、'.join(tax.codes_for(line)) or '（无）'}")


def _check_department(request: Request, field: str, department: str) -> None:
    """422 when a model is served and ``department`` is not in its taxonomy."""
    served = request.app.state.models.current
    if served is not None and department not in served.router.taxonomy:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"{field} {department!r} is not a department of the served taxonomy; known: {', '.join(served.router.taxonomy.codes)}")


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TransferOut, summary="Create a transfer order (一键转接)",
             responses={200: {"model": TransferOut, "description": "An order with this call_id exists already: it is returned as it is"},
                        409: {"model": ErrorOut, "description": "The call_id belongs to an order this key may not see"}, 422: {"model": ErrorOut}, **ERRORS})
def create(body: TransferCreate, caller: CallerDep, db: DbDep, metrics: MetricsDep, request: Request, response: Response) -> TransferOut:
    """The sending line is the caller's own (``home_line`` for the platform's keys, the partner's line
    for a partner); the summary is masked before it is stored. Committed before the answer."""
    lines = caller.settings.lines
    for field, line in (("from_line", body.from_line), ("to_line", body.to_line)):
        if line not in lines:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{field} {line} is not one of the transfer lines ({', '.join(lines)})")
    if body.from_line == body.to_line:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "to_line: must differ from from_line")
    if body.from_line != caller.line:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"此密钥代表 {caller.line} 线，只能以 {caller.line} 为派出方 (from_line)")
    _check_department(request, "department", body.department)
    try:
        order, created = create_order(
            db, call_id=body.call_id, from_line=body.from_line, to_line=body.to_line, department=body.department, urgency=body.urgency,
            summary=body.summary, decision=body.decision.model_dump(exclude_none=True), model_version=body.model_version,
            actor=actor(caller.principal, body.operator), limit_min=caller.settings.transfer_limits.minutes(body.urgency, body.department),
            notify=enqueuer(caller.settings.partner_urls),
        )
        if caller.visible_to is not None and caller.visible_to not in (order.from_line, order.to_line):
            raise HTTPException(status.HTTP_409_CONFLICT, f"call_id {body.call_id} 已被另一工单使用")
        order, events = get_order(db, order.id)
    except SQLAlchemyError:
        raise _unavailable(metrics, "保存工单") from None
    if not created:
        response.status_code = status.HTTP_200_OK
    else:
        metrics.transfer_steps.labels("create").inc()
        logger.info("transfer created", extra={"fields": {"event": "transfer_created", "order_id": order.id, "from_line": order.from_line,
                                                          "to_line": order.to_line, "urgency": order.urgency, "by": order.created_by}})
    return _out(order, caller, events)


@router.get("", response_model=TransferList, responses={422: {"model": ErrorOut}, **ERRORS}, summary="List transfer orders")
def list_(caller: CallerDep, db: DbDep, metrics: MetricsDep, state: State | None = None,
          to_line: Annotated[str | None, Query(pattern=r"^[0-9]{3,5}$")] = None, from_line: Annotated[str | None, Query(pattern=r"^[0-9]{3,5}$")] = None,
          overdue: bool | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0) -> TransferList:
    """Filters: ``state``, ``to_line``, ``from_line``, ``overdue`` (true: not yet written back and past
    its time limit). A partner sees only its own line's orders."""
    try:
        page = list_orders(db, state=state, to_line=to_line, from_line=from_line, overdue=overdue, visible_to=caller.visible_to, limit=limit, offset=offset)
    except SQLAlchemyError:
        raise _unavailable(metrics, "读取工单") from None
    return TransferList(items=[_out(o, caller) for o in page.items], total=page.total, limit=limit, offset=offset, line=caller.line)


@router.get("/{order_id}", response_model=TransferOut, responses={404: {"model": ErrorOut}, **ERRORS}, summary="One transfer order with its history")
def one(order_id: OrderId, caller: CallerDep, db: DbDep, metrics: MetricsDep) -> TransferOut:
    try:
        order, events = get_order(db, order_id, visible_to=caller.visible_to)
    except OrderNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"没有编号为 {order_id} 的工单") from None
    except SQLAlchemyError:
        raise _unavailable(metrics, "读取工单") from None
    return _out(order, caller, events)


@router.post("/{order_id}/{action}", response_model=TransferOut, summary="One step of the life cycle",
             responses={404: {"model": ErrorOut}, 409: {"model": TransferConflict, "description": "The step does not fit the order's state or the caller's side"},
                        422: {"model": ErrorOut}, **ERRORS})
def take_step(order_id: OrderId, action: StepAction, caller: CallerDep, db: DbDep, metrics: MetricsDep, request: Request,
              body: Annotated[TransferStep | None, Body()] = None):
    """``accept``, ``return`` (``reason``; optional ``department`` of the sending line), ``handle``,
    ``write_back`` (``result``, ``handled_department``) by the receiving line; ``close`` (of a returned
    order: optional ``department`` of the sending line) and ``resend`` by the sending line. Answers the order with its
    history once the step is committed."""
    if action == "write_back" and body is not None and body.handled_department:
        _check_department(request, "handled_department", body.handled_department)
    settings = caller.settings
    body = body or TransferStep()
    try:
        if body.department is not None and action in ("return", "close"):
            _check_sender_department(request, db, order_id, caller.visible_to, body.department)
        order = step(db, order_id=order_id, action=action, line=caller.line, actor=actor(caller.principal, body.operator),
                     reason=body.reason, result=body.result, handled_department=body.handled_department, department=body.department,
                     visible_to=caller.visible_to,
                     limits=settings.transfer_limits, notify=enqueuer(settings.partner_urls))
        order, events = get_order(db, order.id)
    except OrderNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"没有编号为 {order_id} 的工单") from None
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except InvalidStep as exc:
        o = exc.order
        return JSONResponse(TransferConflict(detail=str(exc), state=o.state, state_name=STATE_NAMES[o.state],
                                             allowed_actions=allowed_actions(o, caller.line)).model_dump(), status.HTTP_409_CONFLICT)
    except SQLAlchemyError:
        raise _unavailable(metrics, "保存这一步") from None
    metrics.transfer_steps.labels(action).inc()
    logger.info("transfer step", extra={"fields": {"event": "transfer_step", "order_id": order.id, "action": action, "state": order.state,
                                                  "line": caller.line, "seq": order.seq}})
    return _out(order, caller, events)
