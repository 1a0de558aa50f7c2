"""Notices to partners' URLs through an outbox: a partner that is down loses nothing.

Each step of an order that a partner with a URL (``Settings.partner_urls``) did not take itself is
written as a notice into the ``outbox`` table in the step's own transaction (:func:`enqueue`). A
background task in the app's lifespan (:func:`run`) sends the due notices as JSON ``POST`` with an
``Idempotency-Key`` header; a 2xx marks the notice delivered, anything else (refused connection,
timeout, 5xx) schedules the next attempt after ``outbox_backoff_s × 2^(attempts-1)`` seconds, at
most ``outbox_backoff_max_s``. A notice is claimed before it is sent (a conditional ``UPDATE`` on
its ``next_attempt_at``), so several worker processes never send the same notice at once; should
an answer be lost after the partner got the notice, the repeat carries the same key.

Delivered notices are kept ``outbox_keep_days`` (30) and then deleted (:func:`prune_delivered`, by
the same task once an hour and by ``hotline db prune-outbox``); a notice not yet delivered is never
deleted, however old.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from serve.db import Database
from serve.transfers.store import ACTION_NAMES, STATE_NAMES, side_of
from serve.transfers.tables import OutboxNotice, TransferEvent, TransferOrder

logger = logging.getLogger(__name__)
BATCH = 50  # notices sent per pass
CLAIM_S = 60.0  # a claimed notice is left alone this long by other workers (longer than one attempt)
PRUNE_EVERY_S = 3600.0  # how often the task deletes delivered notices past outbox_keep_days


def notice_payload(order: TransferOrder, event: TransferEvent) -> dict:
    """What a partner receives: the step and the order as it is after it (masked text only)."""
    return {
        "order_id": order.id, "call_id": order.call_id, "seq": event.seq, "action": event.action, "action_name": ACTION_NAMES[event.action],
        "state": order.state, "state_name": STATE_NAMES[order.state], "by_line": event.line, "at": event.at.isoformat(),
        "detail": event.detail, "order": {
            "from_line": order.from_line, "to_line": order.to_line, "department": order.department, "urgency": order.urgency,
            "summary": order.summary_masked, "handled_department": order.handled_department,
        },
    }


def enqueuer(partner_urls: dict[str, str]):
    """A ``notify`` for :mod:`serve.transfers.store`: a notice for the order's other side, if that
    side is a partner with a URL (nothing otherwise)."""

    def enqueue(session: Session, order: TransferOrder, event: TransferEvent) -> None:
        other = order.to_line if side_of(order, event.line) == "sender" else order.from_line
        if other == event.line or other not in partner_urls:
            return
        session.add(OutboxNotice(key=f"transfer-{order.id}-{event.seq}", line=other, payload=notice_payload(order, event),
                                 next_attempt_at=event.at))

    return enqueue


def backoff(attempts: int, base_s: float, max_s: float) -> float:
    """Seconds before the next attempt after ``attempts`` failures.

    >>> [backoff(n, 2, 60) for n in (1, 2, 3, 6, 7)]
    [2, 4, 8, 60, 60]
    """
    return min(max_s, base_s * 2 ** (attempts - 1))


def deliver_due(db: Database, partner_urls: dict[str, str], *, base_s: float, max_s: float, timeout_s: float,
                client: httpx.Client) -> tuple[int, int]:
    """Send the notices that are due; returns (delivered, failed)."""
    now = datetime.now(timezone.utc)
    with db.session() as s:
        due = list(s.scalars(select(OutboxNotice).where(OutboxNotice.delivered_at.is_(None), OutboxNotice.next_attempt_at <= now)
                             .order_by(OutboxNotice.id).limit(BATCH)))
    delivered = failed = 0
    for n in due:
        url = partner_urls.get(n.line)
        with db.session() as s, s.begin():  # claim it: no other worker sends it meanwhile
            claimed = s.execute(update(OutboxNotice).where(OutboxNotice.id == n.id, OutboxNotice.next_attempt_at == n.next_attempt_at,
                                                           OutboxNotice.delivered_at.is_(None))
                                .values(next_attempt_at=now + timedelta(seconds=CLAIM_S)).execution_options(synchronize_session=False)).rowcount
        if claimed != 1:
            continue
        error = None
        if url is None:
            error = "no URL for this partner now"
        else:
            try:
                r = client.post(url, json=n.payload, headers={"Idempotency-Key": n.key}, timeout=timeout_s)
                if not 200 <= r.status_code < 300:
                    error = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                error = type(exc).__name__
        with db.session() as s, s.begin():
            done = datetime.now(timezone.utc)
            if error is None:
                values = dict(delivered_at=done, attempts=n.attempts + 1, last_error=None)
                delivered += 1
            else:
                values = dict(attempts=n.attempts + 1, last_error=error[:200],
                              next_attempt_at=done + timedelta(seconds=backoff(n.attempts + 1, base_s, max_s)))
                failed += 1
                logger.info("notice not delivered; will retry", extra={"fields": {"event": "outbox_retry", "notice": n.key, "line": n.line,
                                                                                  "attempts": n.attempts + 1, "error": error}})
            s.execute(update(OutboxNotice).where(OutboxNotice.id == n.id).values(**values).execution_options(synchronize_session=False))
    return delivered, failed


def prune_delivered(db: Database, keep_days: float, now: datetime | None = None) -> int:
    """Delete the notices delivered more than ``keep_days`` days before ``now``; returns how many.
    Undelivered notices stay, whatever their age."""
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=keep_days)
    with db.session() as s, s.begin():
        return s.execute(delete(OutboxNotice).where(OutboxNotice.delivered_at.is_not(None), OutboxNotice.delivered_at < cutoff)
                         .execution_options(synchronize_session=False)).rowcount


async def run(db: Database, settings, ready=lambda: True, metrics=None) -> None:
    """The lifespan's task: every ``outbox_poll_s``, send what is due (in a worker thread); once an
    hour (and at start), delete delivered notices older than ``outbox_keep_days``."""
    pruned_at = float("-inf")
    with httpx.Client() as client:
        while True:
            try:
                if ready() and asyncio.get_running_loop().time() - pruned_at >= PRUNE_EVERY_S:
                    pruned_at = asyncio.get_running_loop().time()  # a failed prune waits for the next hour too
                    n = await run_in_threadpool(prune_delivered, db, settings.outbox_keep_days)
                    if n:
                        logger.info("delivered notices pruned", extra={"fields": {"event": "outbox_pruned", "deleted": n}})
                if ready() and settings.partner_urls:
                    delivered, failed = await run_in_threadpool(
                        deliver_due, db, settings.partner_urls, base_s=settings.outbox_backoff_s, max_s=settings.outbox_backoff_max_s,
                        timeout_s=settings.outbox_timeout_s, client=client)
                    if metrics is not None:
                        metrics.outbox.labels("delivered").inc(delivered)
                        metrics.outbox.labels("failed").inc(failed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is down: try again next round
                logger.warning("outbox pass failed", extra={"fields": {"event": "outbox_error", "error": type(exc).__name__}})
            await asyncio.sleep(settings.outbox_poll_s)
