"""Closing the loop (issue 19): what happened to transfer orders, as labelled rows for ``hotline export-reviews``.

An order labels its call with what actually happened to it, masked, marked by its source:

- **written back** (source ``write_back``, :func:`serve.transfers.store.written_back_rows`): the
  department of the receiving line that handled it; the receiving line is the channel;
- **returned** (source ``returned``, :func:`returned_rows`): the receiving line sent it back naming the
  department of the *sending* line that should take it (``return`` with ``department``); the sending
  line is the channel.

Precedence within one order (the latest word on what happened wins):

1. a write-back (after the returned order was resent) wins over any earlier return;
2. the sender closing the returned order with a ``department`` (who handled it in the end) wins over
   the return's department;
3. otherwise the order's **last** return counts (returned, resent, returned again: the second return);
4. a returned order the sender resent, and that is not yet written back or returned again, gives no
   row: it is in flight, and the sender disagreed with the return.

A returned (or closed-after-return) order whose last return named no department, and that was not
closed with one, gives no row: it is counted (``unnamed``) so the export can say how many.
Across sources, an order's row (``write_back`` or ``returned``) wins over a consult outcome, a
supervisor's review and the call-taker's feedback on the same call (see :func:`order_rows`).

>>> from serve.db import Database
>>> from serve.transfers.store import create_order, step
>>> db = Database("sqlite://")
>>> def returned(call_id, department):
...     with db.session() as s:
...         o, _ = create_order(s, call_id=call_id, from_line="12345", to_line="110", department="police_criminal", urgency="normal",
...                             summary="王先生13812345678反映楼道堆物", decision={}, model_version=None, actor="ct", limit_min=60)
...         return step(s, order_id=o.id, action="return", line="110", actor="p", reason="不属于公安职责", department=department)
>>> _ = returned("R1", "fire_safety"), returned("R2", None)
>>> with db.session() as s:
...     rows, unnamed = returned_rows(s)
>>> [(r["call_id"], r["department"], r["channel"], r["source"], r["text"]) for r in rows], unnamed
([('R1', 'fire_safety', '12345', 'returned', '某先生[手机号]反映楼道堆物')], 1)
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from data.masking import mask_pii
from serve.transfers.store import CLOSED, RETURNED, as_utc, written_back_rows
from serve.transfers.tables import TransferEvent, TransferOrder

CHANNELS = ("110", "12345")  # the lines the model routes to; orders from or to other lines are no label
ORDER_SOURCES = ("write_back", "returned")


def returned_rows(session: Session, channels: tuple[str, ...] = CHANNELS) -> tuple[list[dict[str, Any]], int]:
    """(rows of returned orders that name a department, newest first; how many returned orders named none).

    Rows have the review export's columns; ``decided_at`` is the time of the step that named the
    department (the last return, or the close). Orders from lines outside ``channels`` are left out."""
    found = session.execute(
        select(TransferOrder, TransferEvent).join(TransferEvent, TransferEvent.order_id == TransferOrder.id)
        .where(TransferOrder.state.in_((RETURNED, CLOSED)), TransferOrder.handled_department.is_(None),  # never written back
               TransferOrder.from_line.in_(channels), TransferEvent.action.in_(("return", "close")))
        .order_by(TransferOrder.id, TransferEvent.seq)).all()
    label: dict[int, tuple[TransferOrder, TransferEvent | None]] = {}
    for order, event in found:  # steps oldest first: the last return, then a close naming a department, win
        department = (event.detail or {}).get("department")
        if event.action == "return":
            label[order.id] = (order, event if department else None)
        elif department:
            label[order.id] = (order, event)
    rows = [dict(text=mask_pii(o.summary_masked), department=e.detail["department"], channel=o.from_line, source="returned",
                 review_id=None, call_id=o.call_id, decision=None, decided_at=as_utc(e.at))
            for o, e in label.values() if e is not None]
    rows.sort(key=lambda r: r["decided_at"], reverse=True)
    return rows, sum(1 for _, e in label.values() if e is None)


def order_rows(session: Session, channels: tuple[str, ...] = CHANNELS) -> tuple[list[dict[str, Any]], int]:
    """Written-back and returned orders as labelled rows (at most one per order: a written-back order is
    never a returned row), newest first, and the count of returns that named no department."""
    returned, unnamed = returned_rows(session, channels)
    rows = written_back_rows(session, channels) + returned
    return sorted(rows, key=lambda r: r["decided_at"], reverse=True), unnamed


def with_order_rows(session: Session, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """``rows`` (reviews and feedback) with the orders' rows merged in, newest first: an order's row
    wins over a review or feedback of the same call. Returns (rows, returns that named no department)."""
    handled, unnamed = order_rows(session)
    done = {r["call_id"] for r in handled}
    merged = handled + [r for r in rows if r["call_id"] is None or r["call_id"] not in done]
    return sorted(merged, key=lambda r: r["decided_at"], reverse=True), unnamed
