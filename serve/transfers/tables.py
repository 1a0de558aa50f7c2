"""The transfer-order tables, on the same metadata (and database) as the review queue.

The schema revisions (:mod:`serve.migrations`) create them; a change here needs a revision (see
"How to add a table" there). Every text stored here is masked.

``transfer_orders``
    One row per order (unique ``call_id``): where from and to, the department, urgency, the masked
    summary, the routing decision that suggested it, and the current ``state``; ``due_at`` is when
    an order not yet written back becomes overdue.
``transfer_events``
    The order's history (全程可溯): one row per step, with who, when and what was said. Rows are
    only ever inserted, never updated or deleted; ``seq`` numbers an order's steps 1, 2, 3…
``outbox``
    Notices to a partner's URL, written in the same transaction as the step they announce, sent
    by :mod:`serve.transfers.outbox` until the partner accepts them (``delivered_at``).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from serve.db import Base, utcnow


class TransferOrder(Base):
    """One transfer order; ``state`` is sent, accepted, returned, handled, written_back or closed."""

    __tablename__ = "transfer_orders"
    __table_args__ = (Index("ix_transfer_orders_state_due", "state", "due_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(128), unique=True)
    from_line: Mapped[str] = mapped_column(String(8), index=True)
    to_line: Mapped[str] = mapped_column(String(8), index=True)
    department: Mapped[str] = mapped_column(String(128))
    urgency: Mapped[str] = mapped_column(String(16))
    summary_masked: Mapped[str] = mapped_column(Text)
    decision: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # action, department, follow_up of the routing
    model_version: Mapped[str | None] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    seq: Mapped[int] = mapped_column(Integer, default=1)  # the number of the last event (guards concurrent steps)
    return_reason: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    handled_department: Mapped[str | None] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TransferEvent(Base):
    """One step of one order (append-only)."""

    __tablename__ = "transfer_events"
    __table_args__ = (UniqueConstraint("order_id", "seq", name="uq_transfer_events_order_seq"),
                      Index("ix_transfer_events_action_at", "action", "at"))  # supervision: returns and volumes in a window

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("transfer_orders.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))  # create, accept, return, handle, write_back, close, resend
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    line: Mapped[str] = mapped_column(String(8))  # the side that acted
    actor: Mapped[str] = mapped_column(String(128))  # operator + role + key fingerprint, never a key
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # reason, result, handled_department (masked)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


@event.listens_for(TransferEvent, "before_update")
@event.listens_for(TransferEvent, "before_delete")
def _history_is_append_only(mapper, connection, target: TransferEvent) -> None:
    """An order's history is never rewritten: changing or deleting a step through the ORM is a bug."""
    raise RuntimeError(f"transfer_events are append-only: step {target.seq} of order {target.order_id} may not be changed or deleted")


class OutboxNotice(Base):
    """A notice for one partner's URL, sent until delivered; ``key`` is its idempotency key."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    line: Mapped[str] = mapped_column(String(8))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(200))
