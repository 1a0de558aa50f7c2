"""Three-way consult outcomes (三方通话): which line keeps a call the router could not place.

When the router answers ``consult``, the call-taker brings the other line into the call and records
the outcome: the line that keeps the call, who on the other line agreed, why, and the department when
the keeping line names one. "Still unclear → the first line keeps it" (仍不明确，首接方保留) is the
default outcome (``still_unclear``). When the line that keeps the call is not the first line, the
transfer order to it (:mod:`serve.transfers.store`) is created in the **same transaction** as the
outcome: both are stored, or neither. The order's ``decision`` names the consult (``consult_id``)
and the outcome names its order (``transfer_order_id``).

``consult_outcomes``
    One row per call (unique ``call_id``); every text masked (:func:`data.masking.mask_pii`).

Outcomes that name a department (and are not the default) are labelled rows for ``hotline
export-reviews`` (:func:`consult_rows`, source ``consult``).

>>> from serve.db import Database
>>> db = Database("sqlite://")
>>> with db.session() as s:
...     r = record_consult(s, call_id="C9", from_line="12345", with_line="110", kept_by_line="110", still_unclear=False,
...                        agreed_by="110-0032", reason="来电人13812345678称对方手里有刀", department="police_criminal",
...                        urgency="110_first", summary="邻居吵架，对方拿着刀", decision={"action": "consult"}, model_version=None,
...                        actor="call_taker key#0001", limit_min=30)
...     (r.created, r.consult.reason, r.order.to_line, r.order.urgency, r.order.decision["consult_id"] == r.consult.id)
(True, '来电人[手机号]称对方手里有刀', '110', '110_first', True)
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from data.masking import mask_pii
from serve.db import Base, utcnow
from serve.transfers.store import Notify, add_order, as_utc
from serve.transfers.tables import TransferOrder

UNCLEAR_REASON = "仍不明确，首接方保留"  # the default outcome's reason when none is given


class ConsultOutcome(Base):
    """The outcome of one three-way consult (one per call)."""

    __tablename__ = "consult_outcomes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(128), unique=True)
    from_line: Mapped[str] = mapped_column(String(8))  # the first line (首接方), where the call came in
    with_line: Mapped[str] = mapped_column(String(8))  # the line brought into the call
    kept_by_line: Mapped[str] = mapped_column(String(8), index=True)
    still_unclear: Mapped[bool] = mapped_column(Boolean, default=False)  # the default outcome: the first line keeps it
    agreed_by: Mapped[str | None] = mapped_column(String(64))  # the other line's operator, as typed (masked)
    call_taker: Mapped[str] = mapped_column(String(128))  # the key's owner or fingerprint and role, never a key
    reason: Mapped[str] = mapped_column(Text)  # masked
    department: Mapped[str | None] = mapped_column(String(128))
    urgency: Mapped[str | None] = mapped_column(String(16))  # of the transfer order, when one was made
    summary_masked: Mapped[str] = mapped_column(Text)
    decision: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the routing decision that asked for the consult
    model_version: Mapped[str | None] = mapped_column(String(128))
    transfer_order_id: Mapped[int | None] = mapped_column(ForeignKey("transfer_orders.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class ConsultConflict(RuntimeError):
    """The call has an outcome (or an order) that says otherwise; ``consult`` is the stored one, if any."""

    def __init__(self, message: str, consult: ConsultOutcome | None = None):
        super().__init__(message)
        self.consult = consult


@dataclass
class ConsultResult:
    consult: ConsultOutcome
    order: TransferOrder | None
    created: bool  # False: this call's outcome was stored before (the same one), returned as it is
    order_created: bool = False


def _existing(session: Session, found: ConsultOutcome, kept_by_line: str, still_unclear: bool) -> ConsultResult:
    if (found.kept_by_line, found.still_unclear) != (kept_by_line, still_unclear):
        what = "仍不明确，首接方保留" if found.still_unclear else f"由 {found.kept_by_line} 受理"
        raise ConsultConflict(f"该来电的三方通话结果已记录（{what}，编号 {found.id}），不能改为另一结果", found)
    order = session.get(TransferOrder, found.transfer_order_id) if found.transfer_order_id else None
    return ConsultResult(found, order, False)


def record_consult(session: Session, *, call_id: str, from_line: str, with_line: str, kept_by_line: str, still_unclear: bool,
                   agreed_by: str | None, reason: str | None, department: str | None, urgency: str, summary: str,
                   decision: dict[str, Any], model_version: str | None, actor: str, limit_min: float,
                   notify: Notify | None = None) -> ConsultResult:
    """Store the outcome, and the transfer order to ``kept_by_line`` when that is not ``from_line``
    (department: the one named, else the line itself, for it to assign), in one transaction.

    The same outcome again for a call returns the stored one (``created`` False); another outcome
    for the call raises :class:`ConsultConflict`, as does an order of the call to another line."""
    def lookup() -> ConsultOutcome | None:
        return session.scalar(select(ConsultOutcome).where(ConsultOutcome.call_id == call_id))

    try:
        with session.begin():
            found = lookup()
            if found is not None:
                return _existing(session, found, kept_by_line, still_unclear)
            transfer = kept_by_line != from_line
            c = ConsultOutcome(
                call_id=call_id, from_line=from_line, with_line=with_line, kept_by_line=kept_by_line, still_unclear=still_unclear,
                agreed_by=mask_pii(agreed_by.strip()) if agreed_by and agreed_by.strip() else None, call_taker=actor,
                reason=mask_pii(reason.strip()) if reason and reason.strip() else UNCLEAR_REASON, department=department,
                urgency=urgency if transfer else None, summary_masked=mask_pii(summary), decision=decision, model_version=model_version,
                created_at=datetime.now(timezone.utc))
            session.add(c)
            session.flush()
            order, order_created = None, False
            if transfer:
                order, order_created = add_order(
                    session, call_id=call_id, from_line=from_line, to_line=kept_by_line, department=department or kept_by_line,
                    urgency=urgency, summary=summary, decision={**decision, "consult_id": c.id}, model_version=model_version,
                    actor=actor, limit_min=limit_min, notify=notify)
                if order.to_line != kept_by_line:
                    raise ConsultConflict(f"该来电已有转往 {order.to_line} 的工单（编号 {order.id}），与三方通话结果不符")
                c.transfer_order_id = order.id
                session.flush()
            return ConsultResult(c, order, True, order_created)
    except IntegrityError:  # a concurrent request stored this call's outcome (or order) first
        found = lookup()
        if found is None:
            raise
        return _existing(session, found, kept_by_line, still_unclear)


@dataclass
class ConsultPage:
    items: list[tuple[ConsultOutcome, TransferOrder | None]]
    total: int


def list_consults(session: Session, *, call_id: str | None = None, kept_by_line: str | None = None, still_unclear: bool | None = None,
                  limit: int = 50, offset: int = 0) -> ConsultPage:
    """Outcomes matching every given filter, newest first, each with its transfer order (or None)."""
    where = []
    if call_id:
        where.append(ConsultOutcome.call_id == call_id)
    if kept_by_line:
        where.append(ConsultOutcome.kept_by_line == kept_by_line)
    if still_unclear is not None:
        where.append(ConsultOutcome.still_unclear.is_(still_unclear))
    total = int(session.scalar(select(func.count(ConsultOutcome.id)).where(*where)) or 0)
    rows = session.execute(
        select(ConsultOutcome, TransferOrder).outerjoin(TransferOrder, TransferOrder.id == ConsultOutcome.transfer_order_id)
        .where(*where).order_by(ConsultOutcome.created_at.desc(), ConsultOutcome.id.desc()).limit(limit).offset(offset)).all()
    return ConsultPage([(c, o) for c, o in rows], total)


def consult_rows(session: Session, channels: tuple[str, ...] = ("110", "12345")) -> list[dict[str, Any]]:
    """Agreed outcomes that name a department, as labelled rows for ``hotline export-reviews`` (the
    review export's columns): the masked summary, the department, the line that kept the call as the
    channel, ``source="consult"``, newest first. The default outcome (still unclear) is no label: it
    says only who keeps the call, not where it belongs."""
    found = session.scalars(
        select(ConsultOutcome).where(ConsultOutcome.still_unclear.is_(False), ConsultOutcome.department.is_not(None),
                                     ConsultOutcome.kept_by_line.in_(channels))
        .order_by(ConsultOutcome.created_at.desc(), ConsultOutcome.id.desc()))
    return [dict(text=mask_pii(c.summary_masked), department=c.department, channel=c.kept_by_line, source="consult",
                 review_id=None, call_id=c.call_id, decision=None, decided_at=as_utc(c.created_at)) for c in found]


def with_consult_rows(session: Session, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` (the export's labelled rows) with the consult rows merged in, newest first: a call's
    consult outcome wins over a review or feedback of the same call, an order's row (source
    ``write_back`` or ``returned``, what actually happened) wins over the consult. The database is
    at the current schema (the export upgrades it first), so the table is there."""
    handled = {r["call_id"] for r in rows if r["source"] in ("write_back", "returned")}
    consulted = [r for r in consult_rows(session) if r["call_id"] not in handled]
    ids = {r["call_id"] for r in consulted}
    kept = [r for r in rows if r["call_id"] is None or r["call_id"] not in ids]
    return sorted(kept + consulted, key=lambda r: r["decided_at"], reverse=True)
