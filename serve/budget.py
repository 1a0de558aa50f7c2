"""The latency budget: predict how long a call would wait for a slow model, and say when it would be too long.

A transformer routes live calls in batches (:class:`serve.batching.RouteBatcher`): a call arriving
while a batch runs waits for the rest of that batch, then for the next one, which holds every call
queued meanwhile. :class:`BatchCost` predicts a batch's seconds from the speed training recorded in
the model folder (``metrics.json`` ``"speed"``, training/speed.py) and corrects it with every batch
the server times; :func:`predicted_wait` adds up the batch in flight and the queue. When that wait,
at the 99th percentile, would pass the model's share of ``HOTLINE_LATENCY_BUDGET_MS``, the batcher
answers the call with the router's linear fallback (:mod:`model.fallback`) instead.

>>> cost = BatchCost.from_speed({"single_p50_ms": 20.0, "single_p99_ms": 30.0, "batch": 32, "batch_texts_per_s": 160.0})
>>> round(cost.predict(1), 3), round(cost.predict(32), 3), cost.tail
(0.02, 0.2, 1.5)
>>> round(predicted_wait(cost, inflight=None, queued=0, texts=1, max_texts=64, now=0.0) * cost.tail, 3)
0.03
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

MODEL_SHARE = 0.8  # of the budget, for the model's wait; the rest is for HTTP, the rules, the thread hop and the answer
DEFAULT_TAIL = 1.5  # p99 / p50 of one text when training recorded no speed
EWMA_UP, EWMA_DOWN = 0.5, 0.2  # weight of the latest timed batch in the correction factor: a slowdown is believed faster than a speed-up


@dataclass
class BatchCost:
    """Seconds a batch of ``n`` texts takes: ``factor · (single_s + (n − 1) · marginal_s)``.

    ``single_s``: one text alone (p50); ``marginal_s``: each further text of a batch; ``tail``: p99 / p50
    of one text (1 to 3); ``factor``: how much slower than recorded this server is now, an exponentially
    weighted mean of timed batches (:meth:`observe`; a slowdown weighs 0.5, a speed-up 0.2). Unknown speed (``single_s`` None) predicts
    nothing until the first batch is timed.
    """

    single_s: float | None = None
    marginal_s: float | None = None
    tail: float = DEFAULT_TAIL
    factor: float = 1.0
    observed: int = 0

    @classmethod
    def from_speed(cls, speed: dict | None) -> "BatchCost":
        """From a model folder's recorded speed (``metrics["speed"]``), or unknown when there is none."""
        try:
            p50, p99 = float(speed["single_p50_ms"]) / 1000, float(speed["single_p99_ms"]) / 1000
            batch, per_s = int(speed["batch"]), float(speed["batch_texts_per_s"])
        except (TypeError, KeyError, ValueError):
            return cls()
        if p50 <= 0 or per_s <= 0 or batch < 2:
            return cls()
        marginal = max(0.0, (batch / per_s - p50) / (batch - 1))  # cost(batch) = batch / throughput
        return cls(p50, marginal, min(3.0, max(1.0, p99 / p50)))

    def predict(self, n: int) -> float | None:
        """Predicted seconds of one batch of ``n`` texts (None while the speed is unknown)."""
        if self.single_s is None or n <= 0:
            return None if self.single_s is None else 0.0
        return self.factor * (self.single_s + (n - 1) * self.marginal_s)

    def observe(self, n: int, seconds: float) -> None:
        """A batch of ``n`` texts took ``seconds`` (wall time, thread hop included)."""
        if n <= 0 or seconds <= 0:
            return
        if self.single_s is None:  # nothing recorded: assume every text costs what this batch's did
            self.single_s = self.marginal_s = seconds / n
        else:
            ratio = seconds / (self.single_s + (n - 1) * self.marginal_s)
            w = EWMA_UP if ratio > self.factor else EWMA_DOWN
            self.factor = min(20.0, max(0.05, (1 - w) * self.factor + w * ratio))
        self.observed += 1


def predicted_wait(cost: BatchCost, inflight: tuple[int, float] | None, queued: int, texts: int, max_texts: int, now: float) -> float | None:
    """Seconds until ``texts`` more texts would be answered (p50): the rest of the batch in flight
    (``inflight``: its number of texts and start time, or None), then the queue (``queued`` texts
    already waiting) and these, in batches of at most ``max_texts``. None while the speed is unknown."""
    if cost.predict(1) is None:
        return None
    wait = 0.0
    if inflight is not None:
        wait += max(0.0, inflight[1] + cost.predict(inflight[0]) - now)
    total = queued + texts
    full, rest = divmod(total, max_texts)
    wait += full * cost.predict(max_texts) + (cost.predict(rest) if rest else 0.0)
    return wait


def over_budget(cost: BatchCost, budget_s: float, **state) -> bool:
    """True when the predicted wait (:func:`predicted_wait` with ``state``), at the 99th percentile
    (× ``cost.tail``), passes :data:`MODEL_SHARE` of ``budget_s``; False while the speed is unknown."""
    wait = predicted_wait(cost, **state)
    return wait is not None and wait * cost.tail > MODEL_SHARE * budget_s

