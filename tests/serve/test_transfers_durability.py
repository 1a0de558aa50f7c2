"""No acknowledged transfer step is lost when the server dies: `hotline serve` runs as a real process,
client threads create orders and advance them from both sides as fast as they can, the process is
killed with SIGKILL mid-burst, and every step the server acknowledged must be in the history
afterwards, each order's history contiguous and matching its state. SQLite, and PostgreSQL when
HOTLINE_TEST_POSTGRES_URL is set."""
from __future__ import annotations

import os
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
from sqlalchemy import select, text

from serve.db import Database
from serve.transfers.tables import TransferEvent, TransferOrder
from tests.serve.conftest import start_hotline_serve

ROOT = Path(__file__).resolve().parents[2]
CT, P110 = "ct-trdur-5a1c", "p110-trdur-9e3d"
THREADS = 6
ACKED_BEFORE_KILL = 150
PLAN = [("accept", P110, None), ("handle", P110, None), ("write_back", P110, {"result": "已处置", "handled_department": "utilities"}), ("close", CT, None)]


def test_sigkill_during_transitions_loses_no_acknowledged_step(tmp_path, tiny_model_dir, database_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(PYTHONPATH=str(ROOT), HOTLINE_DATABASE_URL=database_url, HOTLINE_MODEL_DIR=str(tiny_model_dir),
               HOTLINE_REGISTRY_DIR=str(tmp_path / "models"), HOTLINE_API_KEYS=f"{CT}:call_taker,{P110}:partner@110")
    proc, url = start_hotline_serve(tmp_path, env, poll=0.1)
    lock, stop = threading.Lock(), threading.Event()
    acked: dict[int, list[str]] = defaultdict(list)  # order id -> acknowledged actions, in order
    state = {"n": 0, "in_flight": 0, "errors": 0, "bad": []}

    def send(client, path, body, key):
        with lock:
            state["in_flight"] += 1
        try:
            return client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
        except httpx.HTTPError:
            with lock:
                state["errors"] += 1
            return None
        finally:
            with lock:
                state["in_flight"] -= 1

    def worker(n: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            i = 0
            while not stop.is_set():
                i += 1
                r = send(client, "/v1/transfers", {"call_id": f"dur-{n}-{i}", "from_line": "12345", "to_line": "110", "department": "utilities",
                                                   "summary": "家里停水了，联系电话13812345678"}, CT)
                if r is None:
                    return
                if r.status_code != 201:
                    with lock:
                        state["bad"].append(r.text)
                    return
                oid = r.json()["id"]
                with lock:
                    acked[oid].append("create")
                    state["n"] += 1
                for action, key, body in PLAN:
                    r = send(client, f"/v1/transfers/{oid}/{action}", body, key)
                    if r is None:
                        return
                    if r.status_code != 200:
                        with lock:
                            state["bad"].append(r.text)
                        return
                    with lock:
                        acked[oid].append(action)
                        state["n"] += 1

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(THREADS)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while state["n"] < ACKED_BEFORE_KILL and time.monotonic() < deadline:
            time.sleep(0.01)
        with lock:
            in_flight = state["in_flight"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        stop.set()
        for t in threads:
            t.join(timeout=15)
    assert proc.returncode == -signal.SIGKILL
    assert in_flight >= 1 and state["errors"] >= 1  # killed while requests were being served
    assert state["n"] >= ACKED_BEFORE_KILL and state["bad"] == []  # no step refused while the server lived

    db = Database(database_url, create=False)
    try:
        with db.session() as s:
            if db.dialect == "sqlite":
                assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            orders = {o.id: o for o in s.scalars(select(TransferOrder))}
            history: dict[int, list[TransferEvent]] = defaultdict(list)
            for e in s.scalars(select(TransferEvent).order_by(TransferEvent.order_id, TransferEvent.seq)):
                history[e.order_id].append(e)
    finally:
        db.dispose()
    for oid, actions in acked.items():  # every acknowledged step is there, in its order
        stored = [e.action for e in history[oid]]
        assert stored[:len(actions)] == actions, (oid, stored, actions)
        assert len(stored) <= len(actions) + 1  # at most the one step in flight when the server died
    for oid, o in orders.items():  # nothing half-written: the order row and its history agree
        events = history[oid]
        assert [e.seq for e in events] == list(range(1, len(events) + 1)) and o.seq == len(events), oid
        assert events[-1].to_state == o.state and "13812345678" not in o.summary_masked
