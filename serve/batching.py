"""Dynamic batching of routing requests.

Scoring a batch costs less per text than scoring texts one by one (the linear model: about 0.33 ms
a text in batches of ten against 0.7 ms alone; numpy's per-call overhead is shared), so concurrent
requests are routed together: while one batch is being scored, new requests queue up and form the
next batch. A fast router (rules, linear model) scores on the event loop; a slow one (transformer) in
a worker thread, so that the server keeps reading requests meanwhile. An idle server routes a lone
request at once (a batch of one); nothing ever waits on a timer.

Two lanes. **Live** requests (a call-taker's single route, or a batch of at most ``live_max_texts``)
are batched together as above. **Bulk** requests (a back-office batch) never join them: they are routed
one request at a time, in chunks of ``bulk_chunk`` texts in a worker thread, so that a live call waits
for at most the interpreter's switch interval, not for a whole back-office batch; and each bulk request
has a CPU budget (``bulk_cpu_budget_s``): past it, the request fails with :class:`BudgetExceeded` (the
API answers 503: nothing was stored, the client splits the batch and retries).

**Latency budget.** With ``latency_budget_s`` and a slow router that carries a linear ``fallback``
(:mod:`model.fallback`), a live request whose predicted wait for the slow model (the batch in flight
plus the queue, :mod:`serve.budget`) would break the budget is answered by the fallback on the event
loop instead; its decisions say so (``model_kind`` "linear (latency fallback)"). Every batch of the
slow model is timed to correct the prediction; while the fallback answers, the slow model, when idle,
scores a call in the background at most every ``PROBE_EVERY_S`` (answer discarded) so that a speed
recorded on a busier machine cannot keep it out for good.

Each request routes with the router it took when it started, so a hot reload never mixes models
inside a request. If the model fails on a batch of several texts, each text is routed again on its
own, so only a text the model really fails on falls back to the rules.

>>> import asyncio
>>> from model.router import Router
>>> [d.channel for d in asyncio.run(RouteBatcher().route(Router(None), ["有人拿刀砍人"]))]
['110']
"""
from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass
from typing import Sequence

import anyio.to_thread

from model.fallback import LATENCY_FALLBACK_KIND
from model.router import Decision, Router
from serve.budget import BatchCost, over_budget

logger = logging.getLogger(__name__)
PROBE_EVERY_S = 5.0  # while the fallback answers: how often an idle slow model is timed in the background


def fell_back(router: Router, decision: Decision) -> bool:
    """True when ``router`` has a model but ``decision`` came from the rules (the model failed)."""
    return router.model is not None and decision.model_version is None


def route_texts(router: Router, texts: Sequence[str]) -> list[Decision]:
    """``router.route_batch`` with per-text retry when the model failed on a batch of several."""
    decisions = router.route_batch(list(texts))
    if len(texts) > 1 and any(fell_back(router, d) for d in decisions):
        decisions = [router.route(t) if fell_back(router, d) else d for t, d in zip(texts, decisions)]
    return decisions


class BudgetExceeded(RuntimeError):
    """A bulk request used more CPU time than its budget; the message says how much of it was done."""


def _timed(router: Router, texts: Sequence[str]) -> tuple[list[Decision], float]:
    """:func:`route_texts` and the CPU seconds this thread spent on it."""
    t0 = time.thread_time()
    out = route_texts(router, texts)
    return out, time.thread_time() - t0


@dataclass
class _Job:
    router: Router
    texts: list[str]
    future: asyncio.Future


class RouteBatcher:
    """Collects concurrent route calls into batches of at most ``max_texts`` texts (one event loop).

    Parameters
    ----------
    max_texts : int, default 64
        Most texts scored in one batch (a large batch request is never split and may exceed it).
    inline_when_fast : bool, default True
        Route on the event loop when the router is fast (:attr:`model.router.Router.fast`: rules or
        the linear model, under a millisecond a text): handing a batch to a worker thread and back
        costs more CPU than that under load. A slow model (the transformer) always routes in a
        worker thread so the server keeps accepting requests meanwhile.
    inline_max_texts : int, default 32
        Largest batch routed on the event loop (~10 ms of a fast router); a larger one goes to a
        worker thread so it does not hold up live calls.
    live_max_texts : int, default 4
        A request with more texts than this is a bulk request (its own lane, below).
    bulk_chunk : int, default 16
        Texts routed at a time for a bulk request.
    bulk_cpu_budget_s : float or None, default None
        CPU seconds a bulk request may use; None: no limit.
    latency_budget_s : float or None, default None
        p99 seconds a live request may wait for a slow model before its router's ``fallback`` answers
        it instead (see the module docstring); None: always wait.
    """

    def __init__(self, max_texts: int = 64, inline_when_fast: bool = True, inline_max_texts: int = 32,
                 live_max_texts: int = 4, bulk_chunk: int = 16, bulk_cpu_budget_s: float | None = None,
                 latency_budget_s: float | None = None):
        self.max_texts = max_texts
        self.inline_when_fast = inline_when_fast
        self.inline_max_texts = inline_max_texts
        self.live_max_texts = live_max_texts
        self.bulk_chunk = bulk_chunk
        self.bulk_cpu_budget_s = bulk_cpu_budget_s
        self.latency_budget_s = latency_budget_s
        self.costs: weakref.WeakKeyDictionary[Router, BatchCost] = weakref.WeakKeyDictionary()  # per slow router
        self._inflight: dict[int, tuple[int, float]] = {}  # id(router) -> (texts, start) of its batch being scored
        self.latency_fallbacks = 0
        self._last_probe: dict[int, float] = {}  # id(router) -> when its last background timing started
        self._probes: set[asyncio.Task] = set()
        self._pending: list[_Job] = []
        self._task: asyncio.Task | None = None
        self._bulk_lock: asyncio.Lock | None = None
        self.batches = 0

    async def route(self, router: Router, texts: Sequence[str]) -> list[Decision]:
        """Route ``texts`` with ``router``; returns one decision per text, in order. Raises
        :class:`BudgetExceeded` when a bulk request goes over its CPU budget."""
        if len(texts) > self.live_max_texts:
            return await self._route_bulk(router, list(texts))
        if self._too_slow(router, len(texts)):
            return self._route_fallback(router, list(texts))
        fut = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(router, list(texts), fut))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await fut

    def cost(self, router: Router) -> BatchCost:
        """The batch-cost model of a slow ``router``, first from the speed its training recorded."""
        cost = self.costs.get(router)
        if cost is None:
            cost = self.costs[router] = BatchCost.from_speed(router.model.metrics.get("speed") if router.model is not None else None)
        return cost

    def _too_slow(self, router: Router, n: int) -> bool:
        """True when ``n`` more texts would wait past the latency budget for ``router``'s model and
        its fallback can answer instead."""
        if self.latency_budget_s is None or router.fallback is None or router.fast:
            return False
        queued = sum(len(j.texts) for j in self._pending if j.router is router and not j.future.done())
        return over_budget(self.cost(router), self.latency_budget_s, inflight=self._inflight.get(id(router)), queued=queued, texts=n,
                           max_texts=self.max_texts, now=time.perf_counter())

    def _route_fallback(self, router: Router, texts: list[str]) -> list[Decision]:
        """Route with ``router.fallback`` (fast: on the event loop); its model decisions say so."""
        decisions = route_texts(router.fallback, texts)
        for d in decisions:
            if d.model_kind is not None:
                d.model_kind = LATENCY_FALLBACK_KIND
        self.latency_fallbacks += len(decisions)
        self._maybe_probe(router, texts)
        return decisions

    def _maybe_probe(self, router: Router, texts: list[str]) -> None:
        """Time the slow model on ``texts`` in the background (answer discarded) when it is idle and
        was not timed in the last :data:`PROBE_EVERY_S` seconds."""
        now = time.perf_counter()
        if id(router) in self._inflight or any(j.router is router for j in self._pending) or now - self._last_probe.get(id(router), -PROBE_EVERY_S) < PROBE_EVERY_S:
            return
        self._last_probe[id(router)] = now
        task = asyncio.get_running_loop().create_task(self._probe(router, texts))
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    async def _probe(self, router: Router, texts: list[str]) -> None:
        try:
            await self._timed_batch(router, texts)
        except Exception:  # a timing only: nobody waits for its answer
            logger.exception("timing the slow model in the background failed")

    async def _timed_batch(self, router: Router, texts: list[str]) -> list[Decision] | None:
        """``route_texts`` of a slow router in a worker thread, marked in flight (the budget's
        predictions wait for it) and timed (:meth:`serve.budget.BatchCost.observe`)."""
        start = self._inflight[id(router)] = (len(texts), time.perf_counter())
        try:
            decisions = await anyio.to_thread.run_sync(route_texts, router, texts)
        finally:
            if self._inflight.get(id(router)) is start:
                self._inflight.pop(id(router))
        self.cost(router).observe(len(texts), time.perf_counter() - start[1])
        return decisions

    async def _route_bulk(self, router: Router, texts: list[str]) -> list[Decision]:
        """One bulk request at a time, chunk by chunk in a worker thread, within its CPU budget."""
        if self._bulk_lock is None:
            self._bulk_lock = asyncio.Lock()
        async with self._bulk_lock:
            out: list[Decision] = []
            spent = 0.0
            for i in range(0, len(texts), self.bulk_chunk):
                part, cpu = await anyio.to_thread.run_sync(_timed, router, texts[i : i + self.bulk_chunk])
                out.extend(part)
                spent += cpu
                self.batches += 1
                if self.bulk_cpu_budget_s is not None and spent > self.bulk_cpu_budget_s and len(out) < len(texts):
                    raise BudgetExceeded(f"the batch used {spent:.1f} s of CPU after {len(out)} of {len(texts)} texts, over its budget of "
                                         f"{self.bulk_cpu_budget_s:g} s (HOTLINE_BATCH_CPU_BUDGET_S): nothing was stored; send smaller batches")
            return out

    def _take(self) -> list[_Job]:
        jobs, n = [], 0
        while self._pending and (not jobs or n + len(self._pending[0].texts) <= self.max_texts):
            job = self._pending.pop(0)
            if job.future.done():  # the client went away
                continue
            jobs.append(job)
            n += len(job.texts)
        return jobs

    async def _drain(self) -> None:
        while self._pending:
            jobs = self._take()
            groups: dict[int, list[_Job]] = {}
            for job in jobs:  # during a reload, two routers may be in use at once
                groups.setdefault(id(job.router), []).append(job)
            for group in groups.values():
                texts = [t for job in group for t in job.texts]
                router = group[0].router
                try:
                    if router.fast and self.inline_when_fast and len(texts) <= self.inline_max_texts:  # ~0.3 ms a text: cheaper than the thread hop
                        decisions = route_texts(router, texts)
                    elif router.fast:
                        decisions = await anyio.to_thread.run_sync(route_texts, router, texts)
                    else:  # a slow model: timed, for the latency budget's predictions
                        decisions = await self._timed_batch(router, texts)
                except Exception as exc:  # a bug outside the model: fail these requests, keep serving
                    logger.exception("routing a batch of %d texts failed", len(texts))
                    for job in group:
                        if not job.future.done():
                            job.future.set_exception(exc)
                    continue
                self.batches += 1
                i = 0
                for job in group:
                    part, i = decisions[i : i + len(job.texts)], i + len(job.texts)
                    if not job.future.done():
                        job.future.set_result(part)
