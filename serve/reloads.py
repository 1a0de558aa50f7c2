"""Hot reload across worker processes.

``hotline serve --workers N`` runs N processes, and ``POST /v1/admin/reload`` reaches only one of
them. So the reload is also recorded in the database (``reload_requests``), and every process polls
for requests it has not applied yet (every ``interval`` seconds) and reloads itself; replicas that
share a PostgreSQL database follow too. If the database is unreachable, the process that received
the request still reloads, and says so in the log.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

from starlette.concurrency import run_in_threadpool

from serve.db import Database
from serve.metrics import Metrics
from serve.state import ModelHolder, ReloadFailed, Served
from serve.store import latest_reload, request_reload

logger = logging.getLogger(__name__)


class ReloadCoordinator:
    """Apply reload requests from any process exactly once per process (best effort, idempotent)."""

    def __init__(self, models: ModelHolder, db: Database, metrics: Metrics):
        self.models = models
        self.db = db
        self.metrics = metrics
        self.seen = 0

    def _latest(self) -> int:
        with self.db.session() as s:
            return latest_reload(s)

    def start(self) -> None:
        """At startup: requests made before this process started are already reflected in what it loaded."""
        try:
            self.seen = self._latest()
        except Exception:
            logger.warning("cannot read reload requests; this worker follows reloads once the database answers")

    def request(self, requested_by: str | None) -> tuple[Served | None, Served]:
        """Record the request for the other processes, then reload this one (raises ReloadFailed)."""
        try:
            with self.db.session() as s:
                self.seen = max(self.seen, request_reload(s, requested_by=requested_by))
        except Exception:
            logger.warning("could not record the reload request: other worker processes will not reload", exc_info=True)
        return self.models.reload()

    async def watch(self, interval: float, before: Callable[[], object] | None = None) -> None:
        """Poll for reload requests made through other processes (runs until cancelled); ``before``
        runs first on each round (the app uses it to create the tables once a database comes back)."""
        while True:
            await asyncio.sleep(interval)
            try:
                if before is not None:
                    await run_in_threadpool(before)
                latest = await run_in_threadpool(self._latest)
            except Exception:
                continue  # database down: /ready says so; try again later
            if latest <= self.seen:
                continue
            self.seen = latest
            try:
                await run_in_threadpool(self.models.reload)
                self.metrics.reloads.labels("ok").inc()
            except ReloadFailed as exc:
                self.metrics.reloads.labels("failed").inc()
                logger.warning("reload requested by another worker failed: %s", exc)
