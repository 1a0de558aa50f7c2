"""The latency budget: a slow model's queue is predicted from its recorded speed, and a live call that
would wait past the budget is answered by the linear fallback, marked and counted.

The slow model is a fake: the tiny linear model behind a sleep (a transformer's cost without torch),
its speed measured the way training records it (training/speed.py)."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from model.artifacts import TrainedModel, load_model
from model.fallback import LATENCY_FALLBACK_KIND, latency_fallback
from model.router import Router
from serve.batching import RouteBatcher
from serve.budget import BatchCost, over_budget, predicted_wait
from tests.factories import TINY
from training.speed import measure_router

TEXTS = [t for texts in TINY.values() for t in texts]
BUDGET = 0.2  # seconds; the fake model takes 50 ms + 4 ms a text per batch, so one batch fits and a backlog does not


class SlowClassifier:
    """A classifier that sleeps ``first_s + per_text_s · n`` per batch, then answers as ``inner``."""

    model_class = "transformer"
    fast_inference = False

    def __init__(self, inner, first_s: float = 0.05, per_text_s: float = 0.004):
        self.inner, self.first_s, self.per_text_s = inner, first_s, per_text_s
        self.classes_ = inner.classes_
        self.batches: list[int] = []

    def predict_proba_with_features(self, texts):
        self.batches.append(len(texts))
        time.sleep(self.first_s + self.per_text_s * len(texts))
        return self.inner.predict_proba_with_features(texts)

    def predict_proba(self, texts) -> np.ndarray:
        return self.predict_proba_with_features(texts)[0]

    def explain(self, text, label, top_k=5, features=None):
        return self.inner.explain(text, label, top_k=top_k, features=features)

    def get_params(self, deep=True) -> dict:
        return {}


@pytest.fixture(scope="module")
def linear(tiny_model_dir) -> TrainedModel:
    return load_model(tiny_model_dir)


def slow_router(linear: TrainedModel, with_fallback: bool = True, speed: bool = True) -> tuple[Router, SlowClassifier]:
    clf = SlowClassifier(linear.classifier)
    model = TrainedModel(clf, linear.taxonomy, linear.thresholds, version="transformer-fake")
    fallback = Router(TrainedModel(linear.classifier, linear.taxonomy, linear.thresholds, version="transformer-fake")) if with_fallback else None
    router = Router(model, fallback=fallback)
    if speed:  # what training would record in metrics.json on an idle machine (training/speed.py; measured in test_measure_router)
        one = (clf.first_s + clf.per_text_s) * 1000
        model.metrics["speed"] = {"single_p50_ms": one, "single_p99_ms": 1.2 * one, "batch": 32,
                                  "batch_texts_per_s": 32 / (clf.first_s + 32 * clf.per_text_s)}
    return router, clf


def flood(router: Router, batcher: RouteBatcher, n: int = 60, every_s: float = 0.005) -> list[tuple[float, list]]:
    """``n`` single-text calls arriving every ``every_s``; (seconds each waited, its decisions)."""

    async def one(i: int):
        await asyncio.sleep(i * every_s)
        t0 = time.perf_counter()
        out = await batcher.route(router, [TEXTS[i % len(TEXTS)]])
        return time.perf_counter() - t0, out

    async def go():
        await batcher.route(router, [TEXTS[0]])  # a server that has timed its model once (under this machine's load now)
        return await asyncio.gather(*(one(i) for i in range(n)))

    return asyncio.run(go())


def test_the_batch_cost_comes_from_the_recorded_speed_and_follows_timed_batches():
    cost = BatchCost.from_speed({"single_p50_ms": 20.0, "single_p99_ms": 30.0, "batch": 32, "batch_texts_per_s": 160.0})
    assert cost.predict(1) == pytest.approx(0.020) and cost.predict(32) == pytest.approx(0.200) and cost.tail == pytest.approx(1.5)
    assert predicted_wait(cost, inflight=(32, 10.0), queued=3, texts=1, max_texts=64, now=10.1) == pytest.approx(0.1 + cost.predict(4))
    assert predicted_wait(cost, inflight=None, queued=100, texts=1, max_texts=64, now=0) == pytest.approx(cost.predict(64) + cost.predict(37))
    for _ in range(40):  # the server is twice as slow as training measured
        cost.observe(4, 2 * (0.020 + 3 * cost.marginal_s))
    assert cost.factor == pytest.approx(2.0, rel=0.01)
    unknown = BatchCost.from_speed(None)
    assert predicted_wait(unknown, inflight=None, queued=50, texts=1, max_texts=64, now=0) is None
    assert not over_budget(unknown, 0.05, inflight=None, queued=50, texts=1, max_texts=64, now=0)
    unknown.observe(2, 0.1)  # the first timed batch: 50 ms a text
    assert unknown.predict(3) == pytest.approx(0.15)


def test_an_idle_server_answers_with_the_slow_model_within_budget(linear):
    router, clf = slow_router(linear)
    batcher = RouteBatcher(latency_budget_s=BUDGET)
    [(waited, [d])] = flood(router, batcher, n=1)
    assert d.model_kind == "transformer" and batcher.latency_fallbacks == 0 and clf.batches == [1, 1]
    assert waited < BUDGET


def test_a_flood_falls_back_to_the_linear_model_whose_answers_come_at_once(linear):
    router, clf = slow_router(linear)
    batcher = RouteBatcher(latency_budget_s=BUDGET)
    out = flood(router, batcher)
    kinds = [d.model_kind for _, [d] in out]
    assert kinds.count(LATENCY_FALLBACK_KIND) == batcher.latency_fallbacks > 0
    assert 1 < kinds.count("transformer") <= sum(clf.batches)  # the slow model answered what fitted (and was timed when idle)
    # The fallback's answers come at once; whether the slow model's own answers kept the budget is a
    # speed figure (bench/load_api.py --latency-budget-ms), not asserted here: it depends on the machine's load.
    assert max(w for w, [d] in out if d.model_kind == LATENCY_FALLBACK_KIND) < BUDGET, sorted(round(w * 1000, 1) for w, _ in out)
    fell = next(d for _, [d] in out if d.model_kind == LATENCY_FALLBACK_KIND)
    assert fell.model_version == "transformer-fake" and fell.source in ("model", "override")
    assert batcher.cost(router).observed == len(clf.batches)  # every slow batch was timed


def test_without_a_budget_or_a_fallback_every_call_waits_and_the_budget_breaks(linear):
    for batcher, with_fallback in ((RouteBatcher(latency_budget_s=None), True), (RouteBatcher(latency_budget_s=BUDGET), False)):
        router, clf = slow_router(linear, with_fallback=with_fallback)
        out = flood(router, batcher)
        assert {d.model_kind for _, [d] in out} == {"transformer"} and batcher.latency_fallbacks == 0
        assert max(w for w, _ in out) > BUDGET  # what the fallback prevents: the flood above is the same


def test_unknown_speed_is_learnt_from_the_first_timed_batch(linear):
    router, clf = slow_router(linear, speed=False)
    batcher = RouteBatcher(latency_budget_s=BUDGET)
    flood(router, batcher, n=1)
    assert batcher.cost(router).single_s >= 0.054  # timed: the sleep is a floor
    out = flood(router, batcher)
    assert any(d.model_kind == LATENCY_FALLBACK_KIND for _, [d] in out)
    assert max(w for w, [d] in out if d.model_kind == LATENCY_FALLBACK_KIND) < BUDGET  # learnt from one batch, no recorded tail


def test_measure_router_records_what_a_slow_router_costs(linear):
    router, clf = slow_router(linear, speed=False)
    speed = measure_router(router, TEXTS, n=6, batch=3)
    assert speed["texts"] == 6 and clf.batches == [1] * 9 + [3, 3]  # 3 warm-up routes, 6 timed, then two batches
    assert 54 <= speed["single_p50_ms"] <= speed["single_p99_ms"] and speed["batch_texts_per_s"] < 3 / 0.062


def test_a_pessimistic_recorded_speed_is_corrected_by_background_timing(linear):
    import serve.batching as batching

    router, clf = slow_router(linear)
    router.model.metrics["speed"] = {**router.model.metrics["speed"], "single_p50_ms": 1000.0, "single_p99_ms": 1200.0}  # a busy machine's
    batcher = RouteBatcher(latency_budget_s=BUDGET)

    async def calls(n: int):
        out = []
        for _ in range(n):  # one call-taker at a time: the model is idle between calls
            out += await batcher.route(router, [TEXTS[0]])
            await asyncio.sleep(0.12)  # the background timing finishes
        return out

    old, batching.PROBE_EVERY_S = batching.PROBE_EVERY_S, 0.0
    try:
        out = asyncio.run(calls(25))
    finally:
        batching.PROBE_EVERY_S = old
    assert out[0].model_kind == LATENCY_FALLBACK_KIND and out[-1].model_kind == "transformer"
    assert batcher.cost(router).observed >= 5


def test_only_a_slow_model_with_recorded_fallback_thresholds_gets_a_fallback(linear):
    assert latency_fallback(None) is None
    assert latency_fallback(linear) is None  # a linear model is the fast one already
