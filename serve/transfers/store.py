"""Transfer orders in the database: create (idempotent by ``call_id``), step through the life cycle,
read with history, list.

Life cycle (each step by the side it belongs to)::

    sent ──accept──▶ accepted ──handle──▶ handled ──write_back──▶ written_back ──close──▶ closed
      │  (receiver)              (receiver)          (receiver)                  (sender)
      └──return──▶ returned ──close──▶ closed          returned ──resend──▶ sent
         (receiver, a reason)   (sender)                          (sender)

A step is one transaction: the order row is changed by a conditional ``UPDATE … WHERE seq = <the
step read>`` and the step's event (and any notice for the other side's URL) is inserted beside it,
so of two steps racing on one order exactly one wins, on SQLite and PostgreSQL alike, and the
history is never rewritten. The caller answers only after the commit.

>>> from serve.db import Database
>>> db = Database("sqlite://")
>>> with db.session() as s:
...     order, created = create_order(s, call_id="C1", from_line="12345", to_line="110", department="police_criminal",
...                                   urgency="110_first", summary="王先生13812345678称被打", decision={}, model_version=None,
...                                   actor="ct key#0001", limit_min=30)
...     order = step(s, order_id=order.id, action="accept", line="110", actor="partner key#0002")
>>> (created, order.state, order.summary_masked)
(True, 'accepted', '某先生[手机号]称被打')
>>> with db.session() as s:
...     step(s, order_id=order.id, action="close", line="110", actor="x")
Traceback (most recent call last):
...
serve.transfers.store.InvalidStep: 该工单当前状态为“已接收”，不能执行“办结关闭”（只有派出方可以办结关闭）
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from data.masking import mask_pii
from serve.transfers.limits import TransferLimits
from serve.transfers.tables import TransferEvent, TransferOrder

SENT, ACCEPTED, RETURNED, HANDLED, WRITTEN_BACK, CLOSED = "sent", "accepted", "returned", "handled", "written_back", "closed"
STATES = (SENT, ACCEPTED, RETURNED, HANDLED, WRITTEN_BACK, CLOSED)
OPEN_STATES = (SENT, ACCEPTED, RETURNED, HANDLED)  # not yet written back: these can become overdue
RECEIVER, SENDER = "receiver", "sender"
# action -> (states it may start from, the state it leads to, the side that may take it)
STEPS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "accept": ((SENT,), ACCEPTED, RECEIVER),
    "return": ((SENT,), RETURNED, RECEIVER),
    "handle": ((ACCEPTED,), HANDLED, RECEIVER),
    "write_back": ((HANDLED,), WRITTEN_BACK, RECEIVER),
    "close": ((WRITTEN_BACK, RETURNED), CLOSED, SENDER),
    "resend": ((RETURNED,), SENT, SENDER),
}
STATE_NAMES = {SENT: "已派出", ACCEPTED: "已接收", RETURNED: "已退回", HANDLED: "已处置", WRITTEN_BACK: "已回写", CLOSED: "已办结"}
ACTION_NAMES = {"create": "派单", "accept": "接收", "return": "退回", "handle": "处置", "write_back": "反馈回写", "close": "办结关闭", "resend": "重新派单"}
SIDE_NAMES = {RECEIVER: "接收方", SENDER: "派出方"}

# Notify: called with (session, order, event) inside the step's transaction; may add an outbox notice (serve.transfers.outbox.enqueuer).
Notify = Callable[[Session, TransferOrder, TransferEvent], None]


class OrderNotFound(LookupError):
    """No order has this id (or the caller may not see it)."""


class InvalidStep(RuntimeError):
    """The step does not fit the order's state, or belongs to the other side; ``order`` is as it is now."""

    def __init__(self, order: TransferOrder, message: str):
        super().__init__(message)
        self.order = order


def as_utc(t: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time stored here is UTC."""
    if t is None:
        return None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def side_of(order: TransferOrder, line: str) -> str | None:
    """``receiver``, ``sender`` or None (the line is neither end of the order)."""
    return RECEIVER if line == order.to_line else SENDER if line == order.from_line else None


def allowed_actions(order: TransferOrder, line: str | None = None) -> list[str]:
    """The steps the order's state allows now (for ``line``'s side only, when given)."""
    side = side_of(order, line) if line is not None else None
    return [a for a, (froms, _, who) in STEPS.items() if order.state in froms and (line is None or who == side)]


def _event(session: Session, order: TransferOrder, *, action: str, from_state: str | None, line: str, actor: str,
           detail: dict[str, Any], at: datetime, notify: Notify | None) -> TransferEvent:
    ev = TransferEvent(order_id=order.id, seq=order.seq, action=action, from_state=from_state, to_state=order.state, line=line,
                       actor=actor, detail=detail, at=at)
    session.add(ev)
    session.flush()
    if notify is not None:
        notify(session, order, ev)
    return ev


def create_order(session: Session, *, call_id: str, from_line: str, to_line: str, department: str, urgency: str, summary: str,
                 decision: dict[str, Any], model_version: str | None, actor: str, limit_min: float,
                 notify: Notify | None = None) -> tuple[TransferOrder, bool]:
    """Create an order in state ``sent`` (its ``create`` event and notice in the same transaction);
    returns (order, True). An order with this ``call_id`` already there is returned as it is:
    (order, False), also when another request created it a moment earlier."""
    try:
        with session.begin():
            return add_order(session, call_id=call_id, from_line=from_line, to_line=to_line, department=department, urgency=urgency,
                             summary=summary, decision=decision, model_version=model_version, actor=actor, limit_min=limit_min, notify=notify)
    except IntegrityError:  # a concurrent create with the same call_id won
        found = session.scalar(select(TransferOrder).where(TransferOrder.call_id == call_id))
        if found is None:
            raise
        return found, False


def add_order(session: Session, *, call_id: str, from_line: str, to_line: str, department: str, urgency: str, summary: str,
              decision: dict[str, Any], model_version: str | None, actor: str, limit_min: float,
              notify: Notify | None = None) -> tuple[TransferOrder, bool]:
    """:func:`create_order` inside the caller's own transaction (e.g. with the consult that decided
    the transfer, :mod:`serve.transfers.consults`): the caller commits, and handles the
    ``IntegrityError`` of a concurrent create with the same ``call_id``."""
    existing = session.scalar(select(TransferOrder).where(TransferOrder.call_id == call_id))
    if existing is not None:
        return existing, False
    now = datetime.now(timezone.utc)
    order = TransferOrder(call_id=call_id, from_line=from_line, to_line=to_line, department=department, urgency=urgency,
                          summary_masked=mask_pii(summary), decision=decision, model_version=model_version, state=SENT, seq=1,
                          created_by=actor, created_at=now, updated_at=now, due_at=now + timedelta(minutes=limit_min))
    session.add(order)
    session.flush()
    _event(session, order, action="create", from_state=None, line=from_line, actor=actor, detail={}, at=now, notify=notify)
    return order, True


def step(session: Session, *, order_id: int, action: str, line: str, actor: str, reason: str | None = None,
         result: str | None = None, handled_department: str | None = None, department: str | None = None,
         limits: TransferLimits | None = None, visible_to: str | None = None, notify: Notify | None = None) -> TransferOrder:
    """Take one step for ``line``'s side; returns the order after it (committed).

    ``return`` needs ``reason``; ``write_back`` needs ``result`` and ``handled_department``; texts
    are masked. ``department`` (optional, kept in the step's event ``detail``): on ``return``, the
    department of the *sending* line that should take the matter; on ``close`` of a returned order,
    the sending line's department that handled it (the caller checks it against the taxonomy). ``resend`` restarts the time limit (``limits``: the order's urgency and department). Raises :class:`OrderNotFound`
    (also when ``visible_to`` is given and the order is not that line's) and :class:`InvalidStep`.
    """
    if action not in STEPS:
        raise ValueError(f"unknown action {action!r}")
    froms, to_state, side = STEPS[action]
    if action == "return" and not (reason and reason.strip()):
        raise ValueError("退回须说明原因 (reason)")
    if action == "write_back" and not (result and result.strip() and handled_department):
        raise ValueError("反馈回写须填写处置结果 (result) 和实际承办部门 (handled_department)")
    if department is not None and action not in ("return", "close"):
        raise ValueError("department 只能在退回 (return) 或办结退回的工单 (close) 时填写")
    with session.begin():
        order = session.get(TransferOrder, order_id, populate_existing=True)
        if order is None or (visible_to is not None and visible_to not in (order.from_line, order.to_line)):
            raise OrderNotFound(order_id)
        label = f"该工单当前状态为“{STATE_NAMES[order.state]}”，不能执行“{ACTION_NAMES[action]}”"
        if side_of(order, line) != side:
            raise InvalidStep(order, f"{label}（只有{SIDE_NAMES[side]}可以{ACTION_NAMES[action]}）")
        if order.state not in froms:
            raise InvalidStep(order, label)
        if action == "close" and department is not None and order.state != RETURNED:
            raise ValueError("department 只能在办结已退回的工单时填写（已回写的工单以回写的实际承办部门为准）")
        now = datetime.now(timezone.utc)
        values: dict[str, Any] = dict(state=to_state, seq=order.seq + 1, updated_at=now)
        detail: dict[str, Any] = {}
        if reason:
            detail["reason"] = mask_pii(reason.strip())
        if action == "return":
            values["return_reason"] = detail["reason"]
        if department is not None:
            detail["department"] = department
        if action == "write_back":
            detail.update(result=mask_pii(result.strip()), handled_department=handled_department)
            values.update(result=detail["result"], handled_department=handled_department)
        if action == "resend" and limits is not None:
            values["due_at"] = now + timedelta(minutes=limits.minutes(order.urgency, order.department))
        stmt = (update(TransferOrder).where(TransferOrder.id == order_id, TransferOrder.seq == order.seq)
                .values(**values).execution_options(synchronize_session=False))
        if session.execute(stmt).rowcount != 1:  # another step landed since we read the order
            order = session.get(TransferOrder, order_id, populate_existing=True)
            raise InvalidStep(order, f"该工单刚被另一方更新，当前状态为“{STATE_NAMES[order.state]}”，请刷新后再操作")
        from_state = order.state
        order = session.get(TransferOrder, order_id, populate_existing=True)
        _event(session, order, action=action, from_state=from_state, line=line, actor=actor, detail=detail, at=now, notify=notify)
    return order


def get_order(session: Session, order_id: int, *, visible_to: str | None = None) -> tuple[TransferOrder, list[TransferEvent]]:
    """The order and its history, oldest step first. Raises :class:`OrderNotFound`."""
    order = session.get(TransferOrder, order_id)
    if order is None or (visible_to is not None and visible_to not in (order.from_line, order.to_line)):
        raise OrderNotFound(order_id)
    events = list(session.scalars(select(TransferEvent).where(TransferEvent.order_id == order_id).order_by(TransferEvent.seq)))
    return order, events


@dataclass
class OrderPage:
    items: list[TransferOrder]
    total: int
    limit: int
    offset: int


def list_orders(session: Session, *, state: str | None = None, to_line: str | None = None, from_line: str | None = None,
                overdue: bool | None = None, visible_to: str | None = None, now: datetime | None = None,
                limit: int = 50, offset: int = 0) -> OrderPage:
    """Orders matching every given filter, oldest due first. ``overdue`` True: not yet written back
    and past ``due_at``; False: the others."""
    where = []
    if visible_to is not None:
        where.append(or_(TransferOrder.from_line == visible_to, TransferOrder.to_line == visible_to))
    if state:
        where.append(TransferOrder.state == state)
    if to_line:
        where.append(TransferOrder.to_line == to_line)
    if from_line:
        where.append(TransferOrder.from_line == from_line)
    if overdue is not None:
        late = TransferOrder.state.in_(OPEN_STATES) & (TransferOrder.due_at < (now or datetime.now(timezone.utc)))
        where.append(late if overdue else ~late)
    total = int(session.scalar(select(func.count(TransferOrder.id)).where(*where)) or 0)
    items = list(session.scalars(select(TransferOrder).where(*where).order_by(TransferOrder.due_at, TransferOrder.id).limit(limit).offset(offset)))
    return OrderPage(items, total, limit, offset)


def is_overdue(order: TransferOrder, now: datetime | None = None) -> bool:
    return order.state in OPEN_STATES and as_utc(order.due_at) < (now or datetime.now(timezone.utc))


def written_back_rows(session: Session, channels: tuple[str, ...] = ("110", "12345")) -> list[dict[str, Any]]:
    """Written-back orders as labelled rows for ``hotline export-reviews`` (the review export's columns):
    the masked summary, the department that actually handled it, the receiving line as the channel,
    ``source="write_back"``, newest write-back first. Orders to lines the model does not route to
    (``channels``) are left out."""
    rows = session.execute(
        select(TransferOrder, TransferEvent.at).join(TransferEvent, TransferEvent.order_id == TransferOrder.id)
        .where(TransferEvent.action == "write_back", TransferOrder.handled_department.is_not(None), TransferOrder.to_line.in_(channels))
        .order_by(TransferEvent.at.desc(), TransferOrder.id.desc())
    ).all()
    return [dict(text=mask_pii(o.summary_masked), department=o.handled_department, channel=o.to_line, source="write_back",
                 review_id=None, call_id=o.call_id, decision=None, decided_at=as_utc(at)) for o, at in rows]
