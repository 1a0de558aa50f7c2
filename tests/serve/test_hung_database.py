"""Routing never waits on the database: a PostgreSQL that accepts connections and never answers, a
SQLite file that can't be created, and a write-behind queue that loses nothing it accepted."""
from __future__ import annotations

import asyncio
import concurrent.futures as cf
import socket
import threading
import time

import httpx
import pytest
from sqlalchemy.exc import DataError, OperationalError

from serve.writer import QueueFull, WriteBehind
from tests.factories import TINY


@pytest.fixture
def hung_postgres():
    """A TCP server on 127.0.0.1 that accepts every connection and never says a word."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                held.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"postgresql://postgres@127.0.0.1:{srv.getsockname()[1]}/test"
    stop.set()
    t.join(2)
    for c in held:
        c.close()
    srv.close()


def test_a_hung_postgresql_never_holds_a_call(start_server, tiny_model_dir, hung_postgres):
    pytest.importorskip("psycopg2", reason="the PostgreSQL driver is not installed")
    t0 = time.monotonic()
    srv = start_server(model_dir=tiny_model_dir, database_url=hung_postgres, db_timeout_s=1, db_write_wait_s=0.3)
    assert time.monotonic() - t0 < 10  # the server listens although the database never answered
    t0 = time.monotonic()
    r = srv.client.get("/ready")
    assert r.status_code == 503 and time.monotonic() - t0 < 5, r.text
    texts = [t for ts in TINY.values() for t in ts][:40]

    def route(i):
        t = time.monotonic()
        r = httpx.post(srv.url + "/v1/route", json={"text": texts[i], "call_id": f"hung-{i}"}, timeout=20)
        return r.status_code, time.monotonic() - t

    with cf.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(route, range(len(texts))))
    assert all(code == 200 for code, _ in answers)
    assert max(s for _, s in answers) < 3, answers  # the write waits, the answer does not
    assert srv.client.get("/health").status_code == 200
    assert srv.metric("hotline_db_write_pending") >= 1


def test_a_sqlite_file_that_cannot_be_created_does_not_stop_routing(start_server, tiny_model_dir):
    srv = start_server(model_dir=tiny_model_dir, database_url="sqlite:////proc/hotline-no-such/dir/h.db", db_write_wait_s=0.2)
    r = srv.client.post("/v1/route", json={"text": "小区门口有人拿刀砍人", "call_id": "no-db"})
    assert r.status_code == 200 and r.json()["action"] == "110_first"
    assert srv.client.get("/ready").status_code == 503


def _run(coro):
    return asyncio.run(coro)


def test_the_writer_retries_a_database_that_is_down_and_loses_nothing():
    written, fails = [], {"left": 3}

    def store(items):
        if fails["left"]:
            fails["left"] -= 1
            raise OperationalError("INSERT", {}, ConnectionRefusedError("down"))
        written.extend(items)
        return [len(x) for x in items]

    w = WriteBehind(store, wait_s=0.05)
    w.start()
    assert _run(w.submit(["a", "bb"])) is None  # still pending: the database is down
    assert _run(w.submit(["ccc"])) is None
    deadline = time.monotonic() + 10
    while w.pending:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    w.stop()
    assert written == ["a", "bb", "ccc"]  # in order, none lost


def test_one_refused_item_never_loses_its_siblings():
    errors, written = [], []

    def store(items):
        if any("\x00" in x for x in items):
            raise DataError("INSERT", {}, ValueError("NUL"))
        written.extend(items)
        return [1] * len(items)

    w = WriteBehind(store, wait_s=2, on_error=errors.append)
    w.start()
    assert _run(w.submit(["ok1", "bad\x00", "ok2"])) == [1, None, 1]
    with pytest.raises(DataError):
        _run(w.submit(["bad\x00"]))
    w.stop()
    assert written == ["ok1", "ok2"] and errors == [1, 1]


def test_a_full_queue_refuses_new_writes():
    gate = threading.Event()
    w = WriteBehind(lambda items: gate.wait(5) and [None] * len(items), wait_s=0.01, max_pending=3)
    w.start()
    assert _run(w.submit(["a", "b"])) is None
    with pytest.raises(QueueFull, match="HOTLINE_DB_MAX_PENDING"):
        w.enqueue(["c", "d"])
    gate.set()
    w.stop()
