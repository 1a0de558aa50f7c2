"""``GET /v1/model`` (any key) and ``POST /v1/admin/reload`` (role admin)."""
from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, status

from serve.deps import AdminDep, AnyKeyDep, MetricsDep, ModelsDep, ServedDep, SettingsDep
from serve.schemas import ErrorOut, Limits, ModelInfo, ReloadResponse, TaxonomyOut, Thresholds
from serve.state import ReloadFailed

logger = logging.getLogger(__name__)
router = APIRouter(tags=["model"])


@router.get("/v1/model", response_model=ModelInfo, summary="The model being served")
async def model_info(_: AnyKeyDep, served: ServedDep, settings: SettingsDep) -> ModelInfo:
    """Version, status, thresholds, taxonomy and stored metrics of the model being served (or of the
    rules, when degraded)."""
    r = served.router
    m = r.model
    return ModelInfo(
        version=r.model_version,
        status=served.status,
        reason=served.reason,
        source="model" if m is not None else "rules",
        model_dir=served.model_dir.name if served.model_dir else None,
        loaded_at=served.loaded_at,
        load_seconds=served.load_seconds,
        thresholds=Thresholds(review=r.review_threshold, channel_110=r.channel_110),
        taxonomy=TaxonomyOut(**r.taxonomy.to_dict()),
        metrics=m.metrics if m is not None else {},
        limits=Limits(max_text_chars=settings.max_text_chars, max_batch=settings.max_batch),
        auth=settings.key_ring.enabled,
    )


@router.post(
    "/v1/admin/reload",
    response_model=ReloadResponse,
    responses={409: {"model": ErrorOut, "description": "No model could be loaded; the previous one is still served"}},
    tags=["admin"],
    summary="Load the promoted model without a restart",
)
def reload_model(request: Request, principal: AdminDep, models: ModelsDep, metrics: MetricsDep) -> ReloadResponse:
    """Load HOTLINE_MODEL_DIR or the registry's CURRENT model, warm it, then swap it in. Requests in
    flight finish on the model they started with; none is dropped. Other worker processes follow
    within a few seconds (see serve/reloads.py)."""
    before = models.current
    try:
        _, new = request.app.state.reloads.request(principal.key_id)
    except ReloadFailed as exc:
        metrics.reloads.labels("failed").inc()
        still = before.version if before is not None and before.version else "rules only"
        logger.warning("reload failed", extra={"fields": {"event": "reload_failed", "by": principal.key_id, "still_serving": still}})
        raise HTTPException(status.HTTP_409_CONFLICT, f"reload failed: {exc}; still serving {still}") from None
    metrics.reloads.labels("ok").inc()
    return ReloadResponse(
        reloaded=True, previous_version=before.version if before else None, version=new.version, status=new.status,
        reason=new.reason, load_seconds=new.load_seconds,
    )
