"""Prometheus metrics for one app (its own registry, so several apps can live in one process).

========================================  ==============================================================
``hotline_http_requests_total``           requests by method, route template and status code
``hotline_http_request_seconds``          request latency histogram by route template
``hotline_routes_total``                  routing decisions by channel and source (model|rules|override)
``hotline_routes_needs_review_total``     decisions below the review threshold (low confidence)
``hotline_low_confidence_ratio``          needs_review / routes since start
``hotline_model_fallbacks_total``         decisions answered by the rules because the model failed
``hotline_latency_fallback_total``       decisions the linear fallback answered: the transformer's queue would break the budget
``hotline_model_degraded``                1 while serving rules only (no usable model)
``hotline_model_reloads_total``           reloads by result (ok|failed)
``hotline_review_items_total``            items enqueued for supervisor review, by trigger
``hotline_db_errors_total``               failed database writes (the call was still answered)
``hotline_transfer_steps_total``          transfer-order steps committed, by action (create, accept, …)
``hotline_outbox_attempts_total``         notices to partners by result (delivered|failed: retried later)
========================================  ==============================================================

With ``hotline serve --workers N`` each worker process keeps its own counts.
"""
from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from model.fallback import LATENCY_FALLBACK_KIND
from model.router import Decision

BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The service's counters and histograms, in a private :class:`CollectorRegistry`."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        disable_created_metrics()  # no ``*_created`` series: they double the output and nobody graphs them
        r = self.registry = CollectorRegistry()
        self.requests = Counter("hotline_http_requests", "HTTP requests", ["method", "path", "status"], registry=r)
        self.latency = Histogram("hotline_http_request_seconds", "HTTP request latency (seconds)", ["path"], buckets=BUCKETS, registry=r)
        self.routes = Counter("hotline_routes", "Routing decisions", ["channel", "source"], registry=r)
        self.actions = Counter("hotline_route_actions", "Actions suggested: 110_first (110 先行), consult (三方通话), route", ["action"], registry=r)
        self.needs_review = Counter("hotline_routes_needs_review", "Decisions below the review threshold", registry=r)
        self.low_confidence_ratio = Gauge("hotline_low_confidence_ratio", "Share of decisions below the review threshold", registry=r)
        self.fallbacks = Counter("hotline_model_fallbacks", "Decisions answered by the rules because the model failed", registry=r)
        self.latency_fallbacks = Counter("hotline_latency_fallback", "Decisions answered by the linear fallback because the transformer's queue would break the latency budget", registry=r)
        self.degraded = Gauge("hotline_model_degraded", "1 while serving rules only", registry=r)
        self.reloads = Counter("hotline_model_reloads", "Model reloads", ["result"], registry=r)
        self.review_items = Counter("hotline_review_items", "Items enqueued for supervisor review", ["trigger"], registry=r)
        self.db_errors = Counter("hotline_db_errors", "Routed calls answered but not stored (refused, or the write queue full)", registry=r)
        self.db_pending = Gauge("hotline_db_write_pending", "Routed calls waiting to be written (the database slow or down)", registry=r)
        self.transfer_steps = Counter("hotline_transfer_steps", "Transfer-order steps committed (create, accept, return, …)", ["action"], registry=r)
        self.outbox = Counter("hotline_outbox_attempts", "Notices to partners: delivered, or failed (retried later)", ["result"], registry=r)
        self._n_routes = 0
        self._n_review = 0

    def observe_decisions(self, decisions: list[Decision], fallbacks: int) -> None:
        """Count decisions (called on the event loop, so the running totals need no lock)."""
        for d in decisions:
            self.routes.labels(d.channel, d.source).inc()
            self.actions.labels(d.action).inc()
            if d.model_kind == LATENCY_FALLBACK_KIND:
                self.latency_fallbacks.inc()
            if d.needs_review:
                self.needs_review.inc()
                self._n_review += 1
        self._n_routes += len(decisions)
        if fallbacks:
            self.fallbacks.inc(fallbacks)
        if self._n_routes:
            self.low_confidence_ratio.set(self._n_review / self._n_routes)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware: count and time every HTTP request by its route template (``/v1/route``,
    not the raw path, so the label set stays small). Stores the start time in ``scope["state"]["t0"]``."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        scope.setdefault("state", {})["t0"] = t0
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or ("/static" if scope.get("path", "").startswith("/static/") else "other")
            self.metrics.requests.labels(scope["method"], path, str(status["code"])).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - t0)
