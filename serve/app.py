"""The HTTP service: ``create_app()`` builds it from one :class:`~serve.config.Settings`.

``hotline serve`` runs it with uvicorn (``serve.app:create_app``, ``factory=True``). Startup loads
the model (or, if it is missing or corrupt, runs on rules only and says ``degraded`` in /health),
creates the database tables, and warms the router. Resources:

=====================================  ======================  ===========================================
``POST /v1/route``                     call_taker              route one summary
``POST /v1/route/batch``               call_taker              route up to ``max_batch`` summaries
``POST /v1/feedback``                  call_taker              what the call-taker did
``GET /v1/model``                      any key                 the model being served
``POST /v1/admin/reload``              admin                   hot reload of the promoted model
``POST /v1/admin/retrain``             admin                   start a background retrain job (202)
``GET /v1/admin/jobs[/{id}]``          admin                   follow jobs: state, stage, progress, ETA, result
``POST /v1/admin/jobs/{id}/cancel``    admin                   stop a job
``GET /v1/reviews[/stats|/{id}]``      supervisor              the review queue (filters, pages), statistics
``POST /v1/reviews/{id}``              supervisor              confirm or correct (409 if decided, unless reopen)
``/v1/reviews/{me,history,bulk}``      supervisor              reviewer name, per-reviewer history, bulk confirm
``POST|DELETE /v1/reviews/{id}/claim`` supervisor              claim a case / give it up (claims expire)
``POST /v1/transfers``                 call_taker, partner     create a transfer order (idempotent by call_id)
``GET /v1/transfers[/{id}]``           call_taker, partner     list (state, to_line, overdue) / one with history
``POST /v1/transfers/{id}/{action}``   call_taker, partner     a life-cycle step by its side (409 if it does not fit)
``POST /v1/consults``                  call_taker              a three-way consult's outcome (+ its transfer order)
``GET /v1/consults``                   supervisor              consult outcomes (call_id, kept_by_line, outcome)
``GET /v1/transfers/supervision``      supervisor              跟踪督办: overdue orders, returns and reasons, volumes
``GET /health`` ``/ready`` ``/metrics``  none                    liveness, readiness, Prometheus
``GET /``                              none (page asks a key)  the call-taker page
``GET /review``                        none (page asks a key)  the supervisor page
=====================================  ======================  ===========================================

Errors are always JSON ``{"detail": "...", "errors"?: [...]}``, never a stack trace.

>>> from serve.config import Settings
>>> app = create_app(Settings(database_url="sqlite://"))
>>> sorted(p for p in app.openapi()["paths"] if p.startswith("/v1"))
['/v1/admin/jobs', '/v1/admin/jobs/{job_id}', '/v1/admin/jobs/{job_id}/cancel', '/v1/admin/reload', '/v1/admin/retrain', '/v1/consults', '/v1/feedback', '/v1/model', '/v1/reviews', '/v1/reviews/bulk', '/v1/reviews/history', '/v1/reviews/me', '/v1/reviews/stats', '/v1/reviews/{review_id}', '/v1/reviews/{review_id}/claim', '/v1/route', '/v1/route/batch', '/v1/transfers', '/v1/transfers/supervision', '/v1/transfers/{order_id}', '/v1/transfers/{order_id}/{action}']
"""
from __future__ import annotations

import asyncio
import gc
import logging
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from data.cleaning import BoilerplateStripper
from pydantic import ValidationError

from serve.auth import check_bind
from serve.batching import RouteBatcher
from serve.config import Settings, get_settings, settings_error
from serve.db import Database
from serve.migrations import MigrationError
from serve.logs import configure_logging
from serve.metrics import Metrics, MetricsMiddleware
from serve.middleware import BodyGuard, CatchAll, LoopbackOnly, SecurityHeaders
from serve.reloads import ReloadCoordinator
from serve.routes import consults, feedback, health, jobs, model, pages, review_work, reviews, routing, transfers
from serve.transfers import outbox
from serve.routes.routing import store_routes
from serve.writer import WriteBehind
from serve.routes.pages import STATIC_DIR
from serve.state import ModelHolder
from serve.routes import supervision

logger = logging.getLogger(__name__)
RELOAD_POLL_SECONDS = 2.0  # how soon the other worker processes follow a reload
GC_GEN0_THRESHOLD = 20_000  # Python's default (700) runs a collection every few requests


def tune_gc() -> None:
    """After the model is loaded: move everything alive (the model's ~10⁵ vocabulary objects) out of
    the collector's reach (``gc.freeze``) and collect the young generation less often. Each request
    allocates thousands of short-lived objects; with the defaults the cyclic collector took ~5% of
    a worker's CPU under load (bench/load_api.py). Reference counting still frees everything."""
    gc.collect()
    gc.freeze()
    _, g1, g2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, g1, g2)


def _loc(loc) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "request body"


def _message(err: dict) -> str:
    kind, msg = err.get("type", ""), str(err.get("msg", ""))
    if kind == "missing" and tuple(err.get("loc", ())) == ("body",):
        return "request body: a JSON object is required"
    if kind == "extra_forbidden":
        return f"{_loc(err['loc'])}: unknown field"
    if kind == "model_attributes_type" and tuple(err.get("loc", ())) == ("body",):
        return "request body: must be a JSON object"
    return f"{_loc(err.get('loc', ()))}: {msg.removeprefix('Value error, ')}"


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errs = exc.errors()
    bad_json = [e for e in errs if e.get("type") == "json_invalid"]
    if bad_json:
        why = (bad_json[0].get("ctx") or {}).get("error", "")
        return JSONResponse({"detail": f"request body is not valid JSON ({why})" if why else "request body is not valid JSON"}, status.HTTP_400_BAD_REQUEST)
    errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": _message(e), "type": e.get("type")} for e in errs]  # no "input": never echo call text
    return JSONResponse({"detail": "; ".join(e["msg"] for e in errors), "errors": errors}, status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse({"detail": str(exc.detail)}, exc.status_code, headers=getattr(exc, "headers", None))


def _local_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) with its scripts from the ``swagger-ui-bundle`` package, never a CDN;
    without the package, no ``/docs`` (``/openapi.json`` stays)."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return
    from fastapi.openapi.docs import get_swagger_ui_html

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="hotline-router API", swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css", swagger_favicon_url="/docs-assets/favicon-32x32.png")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service. ``settings`` default: :func:`serve.config.get_settings` (``HOTLINE_*``).

    Raises ``ValueError`` for an unusable configuration: malformed ``HOTLINE_API_KEYS``, or no keys
    while ``HOTLINE_HOST`` is not loopback.
    """
    if settings is None:
        try:
            settings = get_settings()
        except ValidationError as exc:  # one line, not a traceback from inside uvicorn
            raise SystemExit(f"error: {settings_error(exc)}") from None
    configure_logging("INFO")
    keys = settings.key_ring
    try:
        check_bind(settings.host, keys)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    metrics = Metrics()
    models = ModelHolder(settings)
    db = Database(settings.database_url, create=False, timeout_s=settings.db_timeout_s, migrate_wait_s=settings.db_migrate_wait_s)
    writer = WriteBehind(partial(store_routes, db), wait_s=settings.db_write_wait_s, max_pending=settings.db_max_pending,
                         on_error=metrics.db_errors.inc)
    reloads = ReloadCoordinator(models, db, metrics)
    tables = {"ok": False}

    def ensure_tables() -> str | None:
        """None when the database answers and has our tables (created on first success), else why not."""
        problem = db.ping()
        if problem is None and not tables["ok"]:
            try:
                db.create_tables()
                tables["ok"] = True
            except MigrationError as exc:  # says why (revisions and tables, no secrets)
                problem = f"cannot upgrade the database: {exc}"
            except Exception as exc:
                problem = f"cannot create tables: {type(exc).__name__}"
        return problem

    async def ensure_tables_bounded() -> str | None:
        """:func:`ensure_tables`, or why not within the database timeout (a hung server holds a thread, not the caller)."""
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.ensure_future(run_in_threadpool(ensure_tables))), settings.db_timeout_s + 1)
        except asyncio.TimeoutError:
            return f"database did not answer within {settings.db_timeout_s + 1:g} s"

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        writer.start()
        problem = await ensure_tables_bounded()
        if problem:
            logger.error("database not ready; calls are answered but not stored", extra={"fields": {"event": "db_not_ready", "reason": problem}})
        await run_in_threadpool(reloads.start)
        await run_in_threadpool(models.load)
        tune_gc()
        if not keys.enabled:
            logger.warning("auth is off (no HOTLINE_API_KEYS): for a local trial on loopback only")
        watcher = asyncio.create_task(reloads.watch(app.state.reload_poll_seconds, before=lambda: tables["ok"] or ensure_tables()))
        notices = asyncio.create_task(outbox.run(db, settings, ready=lambda: tables["ok"], metrics=metrics))
        yield
        watcher.cancel()
        notices.cancel()
        await run_in_threadpool(writer.stop)
        db.dispose()

    app = FastAPI(
        title="hotline-router",
        version="0.1.0",
        description="Route Chinese hotline call summaries to 110 or 12345 and a department.",
        lifespan=lifespan,
        docs_url=None,  # served below from local assets: a call centre's browser need not reach a CDN
        redoc_url=None,
    )
    _local_docs(app)
    app.include_router(supervision.router)  # before the transfers' /{order_id}: /v1/transfers/supervision is not an order id
    app.state.settings = settings
    app.state.keys = keys
    app.state.metrics = metrics
    app.state.models = models
    app.state.db = db
    app.state.ensure_tables = ensure_tables_bounded
    app.state.writer = writer
    app.state.reloads = reloads
    app.state.reload_poll_seconds = RELOAD_POLL_SECONDS
    app.state.batcher = RouteBatcher(bulk_cpu_budget_s=settings.batch_cpu_budget_s,
                                     latency_budget_s=settings.latency_budget_ms / 1000 if settings.latency_budget_ms else None)
    app.state.stripper = BoilerplateStripper() if settings.strip_boilerplate else None
    metrics.db_pending.set_function(lambda: writer.pending)
    metrics.degraded.set_function(lambda: 0.0 if models.current is not None and models.current.status == "ok" else 1.0)

    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Outermost last: metrics see every request, including those the body guard refuses and the 500s.
    app.add_middleware(CatchAll)
    app.add_middleware(BodyGuard, max_bytes=settings.max_batch * (settings.max_text_chars * 6 + 512) + 4096, max_items=settings.max_batch)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(SecurityHeaders)
    if not keys.enabled:  # outermost: nothing is answered on a non-loopback socket without keys
        app.add_middleware(LoopbackOnly)

    for module in (routing, feedback, review_work, reviews, transfers, consults, model, jobs, health, pages):  # review_work first: /v1/reviews/me before /{review_id}
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
