"""``POST /v1/route`` and ``POST /v1/route/batch``: route call summaries (role call_taker).

A final routing (``preview`` false) is stored when it has a ``call_id`` (so feedback can refer to
it) or needs supervisor review. Storing goes through the write-behind queue (:mod:`serve.writer`):
the answer waits for it at most ``HOTLINE_DB_WRITE_WAIT_S``, so a slow or hung database never holds a
call; the write still happens when the database answers. If the queue is full, the call is still
answered (``queued_for_review`` false, counted in /metrics).
"""
from __future__ import annotations

import logging
import time

from fastapi import APIRouter, HTTPException, Request, status
from sqlalchemy.exc import IntegrityError

from data.cleaning import normalize_text
from data.masking import mask_pii
from model.router import Decision
from serve.advice import to_response
from serve.batching import BudgetExceeded, fell_back
from serve.deps import Routing, RoutingDep
from serve.schemas import BatchRequest, BatchResponse, ErrorOut, RouteRequest, RouteResponse
from serve.store import RoutedText, record_routes, review_trigger

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["routing"])

ERRORS = {
    400: {"model": ErrorOut, "description": "Body is not JSON or not UTF-8"},
    401: {"model": ErrorOut, "description": "Missing or unknown API key"},
    403: {"model": ErrorOut, "description": "The key's role may not route"},
    413: {"model": ErrorOut, "description": "Body or batch too large"},
    415: {"model": ErrorOut, "description": "Not Content-Type: application/json"},
    422: {"model": ErrorOut, "description": "Invalid fields (empty or too long text, wrong types, unknown fields)"},
    503: {"model": ErrorOut, "description": "A batch went over its CPU budget (nothing stored: send smaller batches)"},
}


def check_length(text: str, limit: int, where: str) -> None:
    if len(text) > limit:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"{where} is {len(text)} characters long; the limit is {limit} (HOTLINE_MAX_TEXT_CHARS)",
        )


def store_routes(db, items: list[RoutedText]) -> list[int | None]:
    """Write routed calls in one transaction (the write-behind queue's store function)."""
    for attempt in range(2):
        try:
            with db.session() as s:
                return record_routes(s, items=items)
        except IntegrityError:  # the same new call_id from two requests at once: the retry updates it
            if attempt:
                raise
    raise AssertionError("unreachable")


async def route_requests(request: Request, reqs: list[RouteRequest], ctx: Routing) -> list[RouteResponse]:
    """Route, count, store what must be stored, log (masked), and build the answers."""
    router, metrics = ctx.router, ctx.metrics
    stripper = request.app.state.stripper
    texts = [stripper(r.text) if stripper else r.text for r in reqs]
    try:
        decisions: list[Decision] = await request.app.state.batcher.route(router, texts)
    except BudgetExceeded as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": "1"}) from None
    metrics.observe_decisions(decisions, sum(fell_back(router, d) for d in decisions))

    queued = [False] * len(reqs)  # in the review queue, or on its way there (the write still pending)
    keep = [i for i, (r, d) in enumerate(zip(reqs, decisions)) if not r.preview and (r.call_id is not None or review_trigger(d))]
    if keep:
        items = [RoutedText(normalize_text(texts[i]), decisions[i], reqs[i].call_id, reqs[i].received_on) for i in keep]
        try:
            ids = await request.app.state.writer.submit(items)
        except Exception as exc:  # queue full, or the database refused this lone item: answered anyway
            metrics.db_errors.inc()
            logger.error("could not store %d routed calls (%s); answered anyway", len(items), type(exc).__name__)
        else:
            for i, rid in zip(keep, ids or [None] * len(keep)):
                trigger = review_trigger(decisions[i])
                queued[i] = rid is not None if ids is not None else trigger is not None
                if queued[i]:
                    metrics.review_items.labels(trigger).inc()

    latency_ms = (time.perf_counter() - request.state.t0) * 1000
    names = router.taxonomy.channels
    out = []
    for r, d, text, q in zip(reqs, decisions, texts, queued):
        fields = {
            "event": "route", "call_id": r.call_id, "preview": r.preview, "channel": d.channel, "department": d.department,
            "source": d.source, "confidence": d.confidence, "needs_review": d.needs_review, "danger": d.danger,
            "received_on": r.received_on, "text_chars": len(text), "queued": q, "latency_ms": round(latency_ms, 2),
        }
        logger.log(logging.DEBUG if r.preview else logging.INFO, "routed", extra={"fields": fields})
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("routed text", extra={"fields": {"call_id": r.call_id, "text_masked": mask_pii(text)[:200]}})
        out.append(to_response(d, channel_names=names, received_on=r.received_on, call_id=r.call_id, queued=q, latency_ms=latency_ms))
    return out


@router.post("/route", response_model=RouteResponse, responses=ERRORS, summary="Route one call summary")
async def route_one(body: RouteRequest, request: Request, ctx: RoutingDep) -> RouteResponse:
    """Suggest a channel (110 or 12345) and a department for one call summary, with reasons,
    alternatives, the lines to link in, and transfer advice when ``received_on`` is the other line.

    Example: ``{"text": "小区门口有人拿刀砍人", "received_on": "12345"}`` → channel 110, 刑事案件,
    ``police_first`` true, transfer to 110 (urgent).
    """
    check_length(body.text, ctx.settings.max_text_chars, "text")
    return (await route_requests(request, [body], ctx))[0]


@router.post("/route/batch", response_model=BatchResponse, responses=ERRORS, summary="Route several call summaries")
async def route_batch(body: BatchRequest, request: Request, ctx: RoutingDep) -> BatchResponse:
    """Route up to ``HOTLINE_MAX_BATCH`` summaries in one request (back-office re-routing); answers
    come in the order of ``items``."""
    settings = ctx.settings
    if len(body.items) > settings.max_batch:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"batch has {len(body.items)} items; the limit is {settings.max_batch} (HOTLINE_MAX_BATCH)")
    for i, item in enumerate(body.items):
        check_length(item.text, settings.max_text_chars, f"items[{i}].text")
    items = await route_requests(request, body.items, ctx)
    return BatchResponse(items=items, model_version=ctx.router.model_version, latency_ms=round((time.perf_counter() - request.state.t0) * 1000, 3))
