"""Store routed calls off the request path, so that routing never waits on the database.

One writer thread takes write jobs from a bounded queue, in order. A route request hands its job over
and waits at most ``wait_s`` (half a second by default) for the ids: a healthy database answers in
milliseconds, so the answer carries ``queued_for_review`` exactly as before; a slow, down or hung
database only delays the *write*, never the answer.

- **Transient failures** (connection refused or timed out, a hung server cut off by the driver's
  timeouts, a locked SQLite file) keep the job at the head of the queue and retry with backoff, so a
  database that is down for a while loses nothing that was accepted; jobs behind it wait.
- **Permanent failures** (a row the database refuses) retry each item of the job on its own, so one
  bad item never loses its siblings' records; an item refused alone is dropped, logged (no text) and
  counted in ``hotline_db_errors``.
- A full queue (``max_pending`` items, the database down for long) refuses new jobs: the call is still
  answered, and the refusal is counted and logged.

>>> w = WriteBehind(lambda items: [len(t) for t in items])
>>> w.start()
>>> import asyncio; asyncio.run(w.submit(["ab", "c"]))
[2, 1]
>>> w.stop()
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from typing import Callable, Sequence

from sqlalchemy.exc import DBAPIError, OperationalError, TimeoutError as PoolTimeout

logger = logging.getLogger(__name__)
BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)


class QueueFull(RuntimeError):
    """The write queue holds ``max_pending`` items already."""


def transient(exc: BaseException) -> bool:
    """True for a failure that says nothing about the rows: the database is down, slow or locked."""
    if isinstance(exc, (OperationalError, PoolTimeout, TimeoutError, ConnectionError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class WriteBehind:
    """A writer thread in front of ``store`` (a function: list of items -> list of results).

    Parameters
    ----------
    store : callable
        Writes one job's items in one transaction and returns one result per item (review ids).
    wait_s : float
        Longest a request waits for its write before answering without the ids.
    max_pending : int
        Most items waiting to be written.
    on_error : callable, optional
        Called with the number of items dropped or refused (the metrics' counter).
    """

    def __init__(self, store: Callable[[list], list], wait_s: float = 0.5, max_pending: int = 50_000,
                 on_error: Callable[[int], None] | None = None):
        self.store = store
        self.wait_s = wait_s
        self.max_pending = max_pending
        self.on_error = on_error or (lambda n: None)
        self._queue: queue.Queue = queue.Queue()
        self._pending = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last: concurrent.futures.Future | None = None  # the newest job's: jobs are written in order

    @property
    def pending(self) -> int:
        """Items accepted and not yet written (or dropped)."""
        return self._pending

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="hotline-writer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued (for at most ``timeout`` seconds), then stop the thread."""
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def enqueue(self, items: Sequence) -> concurrent.futures.Future:
        """Hand a job over; its future gets the results. Raises :class:`QueueFull`."""
        with self._lock:
            if self._pending + len(items) > self.max_pending:
                raise QueueFull(f"{self._pending} items are waiting to be written (HOTLINE_DB_MAX_PENDING={self.max_pending})")
            self._pending += len(items)
            fut: concurrent.futures.Future = concurrent.futures.Future()
            self._last = fut
            self._queue.put((list(items), fut))
        return fut

    def settle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every job accepted so far to be written (or dropped);
        True when none is left. For a reader that must see a write its client was told is on its way
        (feedback on a call whose routing was answered before it was stored)."""
        last = self._last
        return last is None or not concurrent.futures.wait([last], timeout).not_done

    async def submit(self, items: Sequence) -> list | None:
        """Enqueue ``items`` and wait up to ``wait_s`` for their results; None when the write is still
        pending (it will happen). Raises :class:`QueueFull`, or the permanent error of a job of one item."""
        fut = self.enqueue(items)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), self.wait_s)
        except asyncio.TimeoutError:
            return None

    # -- the writer thread -------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                if self._stop.is_set():
                    return
                continue
            items, fut = job
            try:
                result = self._write(items)
            except BaseException as exc:  # noqa: BLE001 - reported to the waiting request, never kills the thread
                self._done(items)
                if not fut.done():
                    fut.set_exception(exc)
                continue
            self._done(items)
            if not fut.done():
                fut.set_result(result)

    def _done(self, items: list) -> None:
        with self._lock:
            self._pending -= len(items)

    def _write(self, items: list) -> list:
        """Write one job: retry transient failures with backoff (until stopped); on a permanent one,
        write the items one by one and drop only those refused alone."""
        attempt = 0
        while True:
            try:
                return self.store(items)
            except Exception as exc:
                if transient(exc) and not self._stop.is_set():
                    delay = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
                    if attempt == 0:
                        logger.error("database unavailable (%s); %d items wait and are retried", type(exc).__name__, len(items))
                    attempt += 1
                    time.sleep(delay)
                    continue
                if len(items) == 1:
                    self.on_error(1)
                    logger.error("the database refused a routed call (%s); it was answered but not stored", type(exc).__name__)
                    raise
                out = []
                for it in items:
                    try:
                        out.extend(self._write([it]))
                    except Exception:
                        out.append(None)
                return out
