"""Where the batcher routes: fast routers small batches on the event loop, everything else in a
worker thread (so a back-office batch or the transformer does not hold up live calls)."""
from __future__ import annotations

import asyncio
import threading

from model.router import Router
from serve.batching import RouteBatcher


class SpyRouter(Router):
    def __init__(self, fast: bool):
        super().__init__(None)
        self._fast = fast
        self.threads: list[str] = []

    @property
    def fast(self) -> bool:
        return self._fast

    def route_batch(self, texts):
        self.threads.append(threading.current_thread().name)
        return super().route_batch(texts)


def _route(router: Router, batches: list[list[str]], batcher: RouteBatcher) -> list:
    async def go():
        return await asyncio.gather(*(batcher.route(router, b) for b in batches))

    return asyncio.run(go())


def test_a_fast_router_routes_small_batches_on_the_event_loop_and_large_ones_in_a_thread():
    fast = SpyRouter(fast=True)
    out = _route(fast, [["有人拿刀砍人"], ["家里停水了"]], RouteBatcher(inline_max_texts=4))
    assert [d[0].channel for d in out] == ["110", "12345"]
    assert fast.threads == ["MainThread"]  # the two requests formed one batch, routed inline
    big = SpyRouter(fast=True)
    out = _route(big, [["家里停水了"] * 5], RouteBatcher(inline_max_texts=4))
    assert len(out[0]) == 5 and big.threads and big.threads[0] != "MainThread"


def test_a_slow_router_always_routes_in_a_worker_thread():
    slow = SpyRouter(fast=False)
    _route(slow, [["有人拿刀砍人"]], RouteBatcher())
    assert slow.threads and slow.threads[0] != "MainThread"


def test_a_bulk_request_is_routed_in_chunks_in_a_thread_and_never_joins_live_calls():
    spy = SpyRouter(fast=True)
    out = _route(spy, [["有人拿刀砍人"], ["家里停水了"] * 40], RouteBatcher(live_max_texts=4, bulk_chunk=16))
    assert out[0][0].channel == "110" and len(out[1]) == 40
    assert spy.threads.count("MainThread") == 1  # the live call, alone
    assert len([t for t in spy.threads if t != "MainThread"]) == 3  # 40 texts in chunks of 16


def test_a_bulk_request_over_its_cpu_budget_fails_and_says_what_to_do():
    import pytest

    from serve.batching import BudgetExceeded

    class Slow(SpyRouter):
        def route_batch(self, texts):
            t0 = __import__("time").thread_time()
            while __import__("time").thread_time() - t0 < 0.02:  # 20 ms of CPU a chunk
                pass
            return super().route_batch(texts)

    with pytest.raises(BudgetExceeded, match="over its budget") as e:
        _route(Slow(fast=True), [["家里停水了"] * 40], RouteBatcher(bulk_chunk=8, bulk_cpu_budget_s=0.03))
    assert "nothing was stored" in str(e.value)
