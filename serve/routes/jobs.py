"""Retrain jobs over HTTP (role admin): start one, follow it, list them, cancel one.

``POST /v1/admin/retrain``                 start a background retrain (202, ``Location`` of the job)
``GET /v1/admin/jobs``                     every job of the registry, oldest first
``GET /v1/admin/jobs/{id}``                one job: state, stage, progress (epoch, step, ETA), log tail, result
``POST /v1/admin/jobs/{id}/cancel``        stop it (SIGTERM, then SIGKILL after a few seconds)

The job runs in its own process (:mod:`training.jobs`), so a fine-tune of an hour holds neither this
request nor a worker of the API; its record is a file in the registry's ``jobs/`` folder, the same one
``hotline jobs status`` reads. Data files are paths on the server (the admin's ticket exports); the
challenger is written to ``Settings.challengers_dir``/``name``. A job promotes only with ``promote``
and only when the promotion check accepts; the API then serves it after ``POST /v1/admin/reload``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from serve.deps import AdminDep, SettingsDep
from serve.schemas import ErrorOut

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/admin", tags=["admin"])
Files = list[str]


class RetrainRequest(BaseModel):
    """What ``hotline retrain`` takes, as JSON (file paths on the server)."""

    model_config = ConfigDict(extra="forbid")

    base_data: Files = Field(..., min_length=1, description="Base training set(s), e.g. data/corpus/train.jsonl")
    new_data: Files = Field(..., min_length=1, description="New labelled tickets (exports, `hotline export-reviews`)")
    test_data: Files = Field(..., min_length=1, description="The fixed test set both models are scored on")
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                             description="Challenger folder name inside HOTLINE_CHALLENGERS_DIR (default: the job id)")
    model: Literal["linear", "transformer"] = "linear"
    base_model: str | None = Field(None, description="transformer: local Hugging Face folder (default models/base/e5-small-zh)")
    params: dict[str, Any] = Field({}, description="transformer: classifier parameters, e.g. {\"epochs\": 4, \"num_layers\": 6}")
    text_column: str = "text"
    label_column: str = "department"
    channel_column: str | None = None
    taxonomy: str | None = None
    lenient: bool = False
    strip_boilerplate: bool = False
    seed: int = 13
    promote: bool = Field(False, description="Promote the challenger at the end if the promotion check accepts it")


class JobOut(BaseModel):
    """A job record (see :mod:`training.jobs`)."""

    id: str
    kind: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    stage: str | None = None
    created: str
    started: str | None = None
    finished: str | None = None
    updated: str | None = None
    pid: int | None = None
    progress: dict[str, Any] | None = Field(None, description="The training's newest progress bar (once the fine-tune has begun, its newest epoch bar): bar, step, total, rate, eta_s, epoch/epochs, eta_training_s")
    result: dict[str, Any] | None = Field(None, description="Once done: comparison table, deltas, verdict (accepted, reason), promoted")
    error: str | None = None
    log_tail: list[str] = []
    request: dict[str, Any] = {}


def _store(settings):
    from training.jobs import JobStore

    return JobStore(settings.registry_dir)


def _job_error(exc: Exception) -> HTTPException:
    from training.jobs import JobBusy

    if isinstance(exc, JobBusy):
        return HTTPException(status.HTTP_409_CONFLICT, str(exc))
    if str(exc).startswith("no job"):
        return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))
    return HTTPException(status.HTTP_409_CONFLICT, str(exc))


@router.post("/retrain", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut, summary="Start a background retrain",
             responses={409: {"model": ErrorOut, "description": "Another job is still running"},
                        422: {"model": ErrorOut, "description": "A data file or the base model is missing, or a bad parameter"}})
def start(body: RetrainRequest, principal: AdminDep, settings: SettingsDep, response: Response) -> JobOut:
    """Merge, train, compare and judge in a detached process; follow it at ``GET /v1/admin/jobs/{id}``."""
    from data.loading import DataError
    from training.jobs import JobError, start_retrain
    from training.promote import PromotionPolicy
    from training.retrain import RetrainConfig

    store = _store(settings)
    try:
        cfg = RetrainConfig(
            base_data=body.base_data, new_data=body.new_data, test_data=body.test_data, out=str(Path(settings.challengers_dir) / (body.name or "-")),
            text_column=body.text_column, label_column=body.label_column, channel_column=body.channel_column, registry=str(settings.registry_dir),
            strict=not body.lenient, strip_boilerplate=body.strip_boilerplate, taxonomy=body.taxonomy, seed=body.seed,
            target_110_recall=settings.target_110_recall, model=body.model, base_model=body.base_model, transformer=body.params,
        )
        policy = PromotionPolicy.from_settings(settings)
        job = start_retrain(store, cfg, policy, promote=body.promote, progress_interval=settings.job_progress_s,
                            challengers_dir=None if body.name else settings.challengers_dir)
    except JobError as exc:
        raise _job_error(exc) from None
    except (DataError, ValueError, FileNotFoundError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc).partition("\n")[0]) from None
    logger.info("retrain job started", extra={"fields": {"event": "job_started", "job": job["id"], "by": principal.key_id, "model": body.model}})
    response.headers["Location"] = f"/v1/admin/jobs/{job['id']}"
    return JobOut(**store.status(job["id"]))


@router.get("/jobs", response_model=list[JobOut], summary="Every background job, oldest first")
def list_jobs(_: AdminDep, settings: SettingsDep) -> list[JobOut]:
    return [JobOut(**j) for j in _store(settings).list()]


@router.get("/jobs/{job_id}", response_model=JobOut, responses={404: {"model": ErrorOut}}, summary="Follow a background job")
def job_status(job_id: str, _: AdminDep, settings: SettingsDep) -> JobOut:
    """State, stage, progress with ETA, the log's last lines; once done the comparison and the promotion
    decision. A job whose process died shows ``failed`` with the reason."""
    from training.jobs import JobError

    try:
        return JobOut(**_store(settings).status(job_id))
    except JobError as exc:
        raise _job_error(exc) from None


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}}, summary="Stop a background job")
async def cancel(job_id: str, principal: AdminDep, settings: SettingsDep) -> JobOut:
    from training.jobs import JobError

    store = _store(settings)
    try:
        await run_in_threadpool(store.cancel, job_id)
        return JobOut(**store.status(job_id))
    except JobError as exc:
        raise _job_error(exc) from None
