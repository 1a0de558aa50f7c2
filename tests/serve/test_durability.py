"""Nothing acknowledged is lost and nothing is half-written when the server dies mid-write.

`hotline serve` runs as a real process; client threads route calls (each queued for review),
send contradicting feedback and decide reviews as fast as they can; the process is killed with
SIGKILL while requests are in flight. Then the database is opened again and every acknowledged
request's rows must be there, and every row set a request writes together must be complete.
Runs on an SQLite file and, when HOTLINE_TEST_POSTGRES_URL is set, on PostgreSQL.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import select, text

from serve.db import Database, Feedback, ReviewItem, RoutedCall
from tests.factories import TINY
from tests.serve.conftest import start_hotline_serve

ROOT = Path(__file__).resolve().parents[2]
CT, SV = "ct-dur-4f1a", "sv-dur-8b2c"
TEXTS = [t for texts in TINY.values() for t in texts]
THREADS = 6
ACKED_BEFORE_KILL = 120  # acknowledged writes before the kill (the kill then lands mid-stream)


class Load:
    """Client threads writing through the API; remembers what the server acknowledged."""

    def __init__(self, url: str):
        self.url = url
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.routes: dict[str, str] = {}  # call_id -> suggested department (200, queued_for_review)
        self.feedback: list[dict] = []  # 201 bodies + what was sent
        self.decisions: dict[int, dict] = {}  # review id -> 200 body
        self.open_reviews: list[int] = []
        self.in_flight = 0
        self.errors = 0

    @property
    def acked(self) -> int:
        return len(self.routes) + len(self.feedback) + len(self.decisions)

    def _send(self, client: httpx.Client, method: str, path: str, body: dict, key: str) -> httpx.Response | None:
        with self.lock:
            self.in_flight += 1
        try:
            return client.request(method, path, json=body, headers={"Authorization": f"Bearer {key}"})
        except httpx.HTTPError:
            with self.lock:
                self.errors += 1
            return None
        finally:
            with self.lock:
                self.in_flight -= 1

    def worker(self, n: int) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            i = 0
            while not self.stop.is_set():
                i += 1
                call_id = f"dur-{n}-{i}"
                r = self._send(client, "POST", "/v1/route", {"text": TEXTS[(n * 7 + i) % len(TEXTS)], "call_id": call_id}, CT)
                if r is None:
                    return
                if r.status_code == 200 and r.json()["queued_for_review"]:
                    with self.lock:
                        self.routes[call_id] = r.json()["department"]
                if i % 2 == 0 and r.status_code == 200:
                    other = "utilities" if r.json()["department"] != "utilities" else "police_criminal"
                    body = {"call_id": call_id, "final_channel": "110" if other.startswith("police") else "12345", "final_department": other}
                    f = self._send(client, "POST", "/v1/feedback", body, CT)
                    if f is None:
                        return
                    if f.status_code == 201:
                        with self.lock:
                            self.feedback.append({**body, **f.json()})
                            self.open_reviews.append(f.json()["review_id"])
                with self.lock:
                    rid = self.open_reviews.pop() if self.open_reviews and i % 3 == 0 else None
                if rid is not None:
                    d = self._send(client, "POST", f"/v1/reviews/{rid}", {"decision": "correct", "department": "convenience"} if i % 2 else {"decision": "confirm"}, SV)
                    if d is None:
                        return
                    if d.status_code == 200:
                        with self.lock:
                            self.decisions[rid] = d.json()


def _serve(tmp_path: Path, database_url: str, model_dir: Path) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(PYTHONPATH=str(ROOT), HOTLINE_DATABASE_URL=database_url, HOTLINE_MODEL_DIR=str(model_dir), HOTLINE_REGISTRY_DIR=str(tmp_path / "models"),
               HOTLINE_REVIEW_THRESHOLD="1.01", HOTLINE_API_KEYS=f"{CT}:call_taker,{SV}:supervisor")
    return start_hotline_serve(tmp_path, env, poll=0.1)


def test_sigkill_under_load_loses_no_acknowledged_write(tmp_path, tiny_model_dir, database_url):
    proc, url = _serve(tmp_path, database_url, tiny_model_dir)
    load = Load(url)
    threads = [threading.Thread(target=load.worker, args=(n,), daemon=True) for n in range(THREADS)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while (load.acked < ACKED_BEFORE_KILL or not load.decisions) and time.monotonic() < deadline:
            time.sleep(0.01)
        with load.lock:
            in_flight = load.in_flight
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        load.stop.set()
        for t in threads:
            t.join(timeout=15)
    assert proc.returncode == -signal.SIGKILL
    assert in_flight >= 1 and load.errors >= 1  # killed while requests were being served
    assert len(load.routes) >= 30 and load.feedback and load.decisions

    db = Database(database_url, create=False)
    try:
        with db.session() as s:
            if db.dialect == "sqlite":
                assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            calls = {c.call_id: c for c in s.scalars(select(RoutedCall))}
            reviews = list(s.scalars(select(ReviewItem)))
            feedback = list(s.scalars(select(Feedback)))
    finally:
        db.dispose()
    by_id = {r.id: r for r in reviews}
    queued = Counter((r.call_id, r.trigger) for r in reviews)
    routed_queued = Counter(r.call_id for r in reviews if r.trigger != "feedback")  # needs_review, or override by a danger rule

    # Every acknowledged request's rows are there.
    for call_id, department in load.routes.items():
        assert call_id in calls and calls[call_id].department == department, call_id
        assert routed_queued[call_id] == 1, call_id
    stored_fb = {f.id: f for f in feedback}
    for fb in load.feedback:
        row = stored_fb.get(fb["id"])
        assert row is not None and (row.call_id, row.final_department, row.agrees) == (fb["call_id"], fb["final_department"], False)
        item = by_id[fb["review_id"]]
        assert (item.trigger, item.call_id, item.feedback_department) == ("feedback", fb["call_id"], fb["final_department"])
    for rid, out in load.decisions.items():
        item = by_id[rid]
        assert (item.status, item.decision, item.decided_department) == ("decided", out["decision"], out["decided_department"])
        assert item.decided_by.startswith("supervisor key#") and item.decided_at is not None

    # Nothing half-written: what one request writes together is all there or all absent.
    for c in calls.values():
        assert routed_queued[c.call_id] == 1, f"routed call {c.call_id} without its review item"
    contradicting = Counter(f.call_id for f in feedback if not f.agrees)
    assert contradicting == Counter({k[0]: n for k, n in queued.items() if k[1] == "feedback"})
    for r in reviews:
        assert r.call_id in calls and r.text_masked and r.model_version
        decision_fields = (r.decision, r.decided_channel, r.decided_department, r.decided_by, r.decided_at)
        if r.status == "pending":
            assert decision_fields == (None,) * 5, r.id
        else:
            assert r.status == "decided" and None not in decision_fields, r.id
    assert len(calls) >= len(load.routes) and len(feedback) >= len(load.feedback)
