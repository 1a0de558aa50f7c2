"""Supervision of transfer orders for supervisors (跟踪督办): ``GET /v1/transfers/supervision``.

Its own router, included before :mod:`serve.routes.transfers` so that ``/v1/transfers/supervision``
is not taken for an order id. Supervisor or admin keys only (partners and call-takers: 403); the
figures cover every line's orders. See :mod:`serve.transfers.supervision` for what is counted.
"""
from __future__ import annotations

import logging
from itertools import chain
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from sqlalchemy.exc import SQLAlchemyError

from serve.deps import DbDep, MetricsDep, SettingsDep, SupervisorDep
from serve.schemas import ErrorOut
from serve.transfers.schemas import SupervisionOut
from serve.transfers.supervision import supervision_report

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/transfers", tags=["transfers"])
ERRORS = {401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 503: {"model": ErrorOut, "description": "Database unavailable"}}


@router.get("/supervision", response_model=SupervisionOut, responses={422: {"model": ErrorOut}, **ERRORS},
            summary="Supervision (跟踪督办): overdue orders, returns and their reasons, volumes each way, three-way consults")
def supervision(_: SupervisorDep, db: DbDep, settings: SettingsDep, metrics: MetricsDep, request: Request,
                days: Annotated[int, Query(ge=1, le=92, description="The window of returns and volumes: the last N days, today included")] = 7,
                limit: Annotated[int, Query(ge=1, le=500, description="Most overdue orders listed (latest returns, reasons: at most 50)")] = 100) -> SupervisionOut:
    """Overdue orders now (counts by department and urgency; the list, most overdue first), returns
    in the window (counts by reason and department; the latest), orders sent per day each way
    and per department, and three-way consults per day (by outcome and by the line that kept the
    call; the latest). Days are counted at ``HOTLINE_SUPERVISION_UTC_OFFSET_H``."""
    home = settings.home_line
    directions = list(chain.from_iterable(((home, line), (line, home)) for line in settings.lines if line != home))
    try:
        report = supervision_report(db, days=days, utc_offset_h=settings.supervision_utc_offset_h, directions=directions,
                                    overdue_limit=limit, returns_limit=min(limit, 50), lines=[home, *(x for x in settings.lines if x != home)])
    except SQLAlchemyError:
        metrics.db_errors.inc()
        logger.error("transfer supervision: database error", extra={"fields": {"event": "transfer_db_error"}})
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "数据库暂不可用：未能读取督办数据，请重试") from None
    limits = settings.transfer_limits
    served = request.app.state.models.current
    unknown = sorted(set(limits.departments) - set(served.router.taxonomy.codes)) if served is not None else []
    return SupervisionOut(**report, limits=limits.model_dump(by_alias=True), limits_unknown_departments=unknown)
