"""``GET /health`` (liveness, ok | degraded), ``GET /ready`` and ``GET /metrics`` (no key needed)."""
from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse

from serve.deps import DatabaseDep, MetricsDep
from serve.schemas import Health, Ready

router = APIRouter(tags=["health"])
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][^\s\\/:;,'\"()]{1,255}){2,64}")


def without_paths(reason: str | None) -> str | None:
    """``reason`` with every filesystem path cut to its last part: /health is unauthenticated, and the
    server's folders are nobody's business (the log has them)."""
    return None if reason is None else _PATH.sub(lambda m: re.split(r"[\\/]", m.group(0))[-1], reason)


@router.get("/health", response_model=Health, summary="Liveness; degraded with the reason on rules only")
async def health(request: Request) -> Health:
    served = request.app.state.models.current
    if served is None:
        return Health(status="degraded", reason="starting: no router loaded yet", model_version=None, source="rules")
    model = served.router.model
    clf = model.classifier if model is not None else None
    return Health(
        status=served.status, reason=without_paths(served.reason), model_version=served.version,
        source="model" if model is not None else "rules",
        backend=None if clf is None else getattr(clf, "backend_", getattr(clf, "model_class", "linear")),
        model_kind=None if clf is None else getattr(clf, "model_class", "linear"),
        latency_budget_ms=request.app.state.settings.latency_budget_ms if served.router.fallback is not None else None,
    )


@router.get("/ready", response_model=Ready, responses={503: {"model": Ready}}, summary="Ready to take calls (router loaded, database reachable)")
async def ready(request: Request, db: DatabaseDep):
    if request.app.state.models.current is None:
        return JSONResponse(Ready(ready=False, reason="starting: no router loaded yet").model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    problem = await request.app.state.ensure_tables()  # bounded: a hung database gives 503 in seconds
    if problem:
        return JSONResponse(Ready(ready=False, reason=problem).model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    return Ready(ready=True)


@router.get("/metrics", include_in_schema=False)
async def metrics(m: MetricsDep) -> Response:
    return Response(m.render(), media_type=m.content_type)
