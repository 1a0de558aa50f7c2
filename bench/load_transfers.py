"""Load benchmark of the transfer orders (issue 19): concurrent clients moving orders through their
life cycle against a real ``hotline serve``, beside a call-taker routing calls.

Starts ``hotline serve`` (uvicorn, auth on: a call-taker key for the home line 12345 and a
``partner@110`` key; SQLite file in a temporary folder, or ``--database-url`` for PostgreSQL, where
a fresh schema is made and dropped afterwards) with the linear model of :mod:`bench.load_api`.

Phases, each ``--seconds`` long (the baseline ``--baseline-seconds``):

- ``baseline``: the call-taker alone: one client in its own process posting ``/v1/route`` at a
  steady ``--route-rate`` per second (texts of ``data/corpus/test.jsonl`` in turn);
- ``closed``: the same call-taker, and ``--clients`` transfer clients each creating an order and
  advancing it as soon as each answer is in: sent → accepted → handled → written back → closed
  (``--return-share`` of them returned with a reason instead, then half closed, half resent and
  taken through the whole cycle). Orders go both ways in turn: 12345 → 110 created by the
  call-taker key and advanced by the partner, 110 → 12345 created by the partner and advanced by
  the platform's key; every fifth order the receiving side also lists its ``sent`` orders;
- ``paced``: the same with ``--think-ms`` between a client's requests (people at desks, not a
  script).

Prints the command, then one table: orders/s, steps/s, latency of the transfer requests
p50/p95/p99, errors (any non-2xx or transport error; each kind listed below the table), and the
call-taker's routing p50/p99 in that phase, and the server's CPU milliseconds per request (all its
processes, from /proc: less swayed by other jobs on the machine than latencies are). Afterwards the history of up to 100 closed orders is
read back and compared with the steps the clients saw acknowledged.

    python -m bench.load_transfers                          # 20 clients, 60 s per phase
    python -m bench.load_transfers --seconds 10 --scenarios closed --database-url postgresql://postgres@127.0.0.1:5432/test
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from bench.live_server import cpu_seconds, hotline_server

ROOT = Path(__file__).resolve().parents[1]
CORPUS_TEST = ROOT / "data" / "corpus" / "test.jsonl"
CT_KEY, PARTNER_KEY = "bench-ct-5d1a", "bench-110-9c2e"
HOME, PARTNER = "12345", "110"
STEP_ACTIONS = ("accept", "return", "handle", "write_back", "close", "resend")


def load_rows() -> tuple[list[dict], str]:
    """(rows with text and department, where from): the corpus test split, else the tiny test corpus."""
    if CORPUS_TEST.exists():
        rows = [json.loads(line) for line in CORPUS_TEST.read_text(encoding="utf-8").splitlines() if line.strip()]
        return rows, str(CORPUS_TEST.relative_to(ROOT))
    sys.path.insert(0, str(ROOT))
    from tests.factories import tiny_rows

    return tiny_rows(), "tests/factories.py"


# ------------------------------------------------------------------------------ the call-taker

def call_taker(url: str, texts: list[str], rate: float, start_at: float, seconds: float, conn) -> None:
    """In its own process: route one call every ``1/rate`` s from ``start_at`` (wall clock) for
    ``seconds``; sends back (latencies in ms, {error kind: count}) through ``conn``."""
    latencies, errors = [], {}
    headers = {"Authorization": f"Bearer {CT_KEY}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for text in texts[:5]:  # a warm connection before the clock starts
            client.post("/v1/route", json={"text": text})
        time.sleep(max(0.0, start_at - time.time()))
        t_end = time.perf_counter() + seconds
        next_at, i = time.perf_counter(), 0
        while next_at < t_end:
            time.sleep(max(0.0, next_at - time.perf_counter()))
            t0 = time.perf_counter()
            try:
                r = client.post("/v1/route", json={"text": texts[i % len(texts)]})
                why = None if r.status_code == 200 else f"route HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                why = f"route {type(exc).__name__}"
            if why is None:
                latencies.append((time.perf_counter() - t0) * 1000)
            else:
                errors[why] = errors.get(why, 0) + 1
            i += 1
            next_at = max(next_at + 1.0 / rate, time.perf_counter())  # steady rate; no catch-up burst after a slow answer
    conn.send((latencies, errors))
    conn.close()


# ------------------------------------------------------------------------------ the transfer clients

@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"create": [], "step": [], "list": []})
    errors: dict[str, int] = field(default_factory=dict)
    orders: int = 0
    steps: int = 0
    closed: dict[int, list[str]] = field(default_factory=dict)  # order id -> acknowledged actions, for the history check

    def error(self, why: str) -> None:
        self.errors[why] = self.errors.get(why, 0) + 1


async def _request(client: httpx.AsyncClient, tally: Tally, kind: str, name: str, key: str, method: str, path: str,
                   body: dict | None = None, ok: tuple[int, ...] = (200,)) -> dict | None:
    """One transfer request, timed; None (and an error counted by name and status) unless its status is in ``ok``."""
    t0 = time.perf_counter()
    try:
        r = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {key}"})
    except httpx.HTTPError as exc:
        tally.error(f"{name} {type(exc).__name__}")
        return None
    tally.latencies[kind].append((time.perf_counter() - t0) * 1000)
    if r.status_code not in ok:
        tally.error(f"{name} HTTP {r.status_code}" + (" (an order with this call_id existed)" if name == "create" and r.status_code == 200 else ""))
        return None
    return r.json()


def plan(rng: random.Random, return_share: float) -> list[tuple[str, str]]:
    """The steps of one order as (side, action): the whole cycle, or returned then closed or resent.

    >>> plan(random.Random(0), 0.0)
    [('receiver', 'accept'), ('receiver', 'handle'), ('receiver', 'write_back'), ('sender', 'close')]
    """
    cycle = [("receiver", "accept"), ("receiver", "handle"), ("receiver", "write_back"), ("sender", "close")]
    if rng.random() >= return_share:
        return cycle
    returned = [("receiver", "return")]
    return returned + ([("sender", "close")] if rng.random() < 0.5 else [("sender", "resend"), *cycle])


async def transfer_client(k: int, client: httpx.AsyncClient, rows: list[dict], run_id: str, deadline: float, think_s: float,
                          return_share: float, tally: Tally) -> None:
    rng = random.Random(k)
    keys = {HOME: CT_KEY, PARTNER: PARTNER_KEY}
    n = 0
    while time.perf_counter() < deadline:
        row = rows[(k * 997 + n) % len(rows)]
        n += 1
        sender, receiver = (HOME, PARTNER) if n % 2 else (PARTNER, HOME)
        body = {"call_id": f"LT{run_id}-{k}-{n}", "from_line": sender, "to_line": receiver, "department": row["department"],
                "urgency": "110_first" if receiver == PARTNER and rng.random() < 0.3 else "normal", "summary": row["text"][:2000],
                "decision": {"action": "route", "department": row["department"]}, "model_version": "bench", "operator": f"op-{k}"}
        order = await _request(client, tally, "create", "create", keys[sender], "POST", "/v1/transfers", body, ok=(201,))
        if order is None:
            continue
        tally.orders += 1
        done: list[str] = ["create"]
        for side, action in plan(rng, return_share):
            if think_s:
                await asyncio.sleep(think_s)
            if time.perf_counter() >= deadline:
                break
            detail = {"operator": f"op-{k}"}
            if action in ("return", "resend"):
                detail["reason"] = "不属于本线职责，请核实" if action == "return" else "已补充信息，重新派单"
            if action == "write_back":
                detail.update(result="已处置完毕，回访满意", handled_department=row["department"])
            key = keys[receiver if side == "receiver" else sender]
            if await _request(client, tally, "step", action, key, "POST", f"/v1/transfers/{order['id']}/{action}", detail) is None:
                break
            tally.steps += 1
            done.append(action)
        if done[-1] == "close":
            tally.closed[order["id"]] = done
        if n % 5 == 0 and time.perf_counter() < deadline:
            await _request(client, tally, "list", "list", keys[receiver], "GET", "/v1/transfers", None)
            if think_s:
                await asyncio.sleep(think_s)


async def transfer_load(url: str, rows: list[dict], clients: int, seconds: float, think_s: float, return_share: float, run_id: str) -> Tally:
    tally = Tally()
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        await asyncio.gather(*(transfer_client(k, client, rows, run_id, deadline, think_s, return_share, tally) for k in range(clients)))
    return tally


def check_histories(url: str, closed: dict[int, list[str]], sample: int = 100) -> tuple[int, int]:
    """(orders whose stored history is exactly the acknowledged steps, orders checked)."""
    ids = sorted(closed)[:: max(1, len(closed) // sample)][:sample]
    good = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {CT_KEY}"}, timeout=30) as client:
        for oid in ids:
            history = [e["action"] for e in client.get(f"/v1/transfers/{oid}").json()["history"]]
            good += history == closed[oid]
    return good, len(ids)


# ------------------------------------------------------------------------------ phases

def run_phase(url: str, pid: int, rows: list[dict], texts: list[str], args, name: str, run_id: str) -> dict:
    """One phase: the call-taker process and, unless ``baseline``, the transfer clients, started together;
    the server's CPU seconds over the phase beside them."""
    seconds = args.baseline_seconds if name == "baseline" else args.seconds
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    start_at = time.time() + 3.0  # the child's imports and warm-up happen before this
    proc = ctx.Process(target=call_taker, args=(url, texts, args.route_rate, start_at, seconds, send), daemon=True)
    proc.start()
    tally = None
    t_wall = seconds
    time.sleep(max(0.0, start_at - time.time()))
    cpu0 = cpu_seconds(pid)
    if name != "baseline":
        t0 = time.perf_counter()
        think = args.think_ms / 1000 if name == "paced" else 0.0
        tally = asyncio.run(transfer_load(url, rows, args.clients, seconds, think, args.return_share, f"{run_id}{name[0]}"))
        t_wall = time.perf_counter() - t0
    route_lat, route_errors = recv.recv()
    cpu = cpu_seconds(pid) - cpu0
    proc.join(timeout=30)
    return {"name": name, "seconds": t_wall, "tally": tally, "route": route_lat, "route_errors": route_errors, "cpu": cpu}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@contextmanager
def database(url: str | None, workdir: Path):
    """The database URL to serve with: a SQLite file in ``workdir``; for PostgreSQL a fresh schema
    (dropped afterwards), so shared databases are left as they were."""
    if not url:
        yield f"sqlite:///{workdir / 'transfers.db'}", "SQLite file"
        return
    if not url.startswith("postgresql"):
        yield url, url.split(":", 1)[0]
        return
    from sqlalchemy import text

    from serve.db import make_engine

    schema = f"hotline_bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}", f"PostgreSQL (schema {schema}, dropped afterwards)"
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="Length of each transfer phase")
    ap.add_argument("--baseline-seconds", type=float, default=40.0, help="Length of the call-taker-alone phase")
    ap.add_argument("--clients", type=int, default=20, help="Concurrent transfer clients")
    ap.add_argument("--route-rate", type=float, default=10.0, help="The call-taker's routes per second")
    ap.add_argument("--think-ms", type=float, default=1000.0, help="Pause before each request of a transfer client in the paced phase")
    ap.add_argument("--return-share", type=float, default=0.1, help="Share of orders the receiver returns")
    ap.add_argument("--scenarios", default="closed,paced", help="Transfer phases after the baseline: closed, paced")
    ap.add_argument("--workers", type=int, default=1, help="hotline serve --workers")
    ap.add_argument("--database-url", default=None, help="Serve with this database (PostgreSQL: a fresh schema in it); default a SQLite file")
    ap.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                    help="Extra server setting, e.g. DB_TIMEOUT_S=5 (HOTLINE_ prefix added); repeatable")
    ap.add_argument("--model", type=Path, help="Model folder (default: the linear model on the shipped corpus, as bench.load_api)")
    args = ap.parse_args(argv)
    print("command: " + " ".join(shlex.quote(a) for a in [Path(sys.executable).name, "-m", "bench.load_transfers",
                                                             *(argv if argv is not None else sys.argv[1:])]), flush=True)
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="hotline-transfers-"))
    if args.model:
        model_dir, what = args.model, str(args.model)
    else:
        from bench.load_api import build_model

        model_dir, what = build_model(work)
    rows, rows_from = load_rows()
    texts = [r["text"] for r in rows]
    run_id = uuid.uuid4().hex[:6]
    results = []
    try:
        with database(args.database_url, work) as (db_url, db_what):
            env = {"HOTLINE_MODEL_DIR": str(model_dir), "HOTLINE_DATABASE_URL": db_url, "HOTLINE_REGISTRY_DIR": str(work / "models"),
                   "HOTLINE_API_KEYS": f"{CT_KEY}:call_taker,{PARTNER_KEY}:partner@{PARTNER}", "HOTLINE_HOME_LINE": HOME,
                   **{"HOTLINE_" + k.upper(): v for k, v in (x.split("=", 1) for x in args.setting)}}
            with hotline_server(work / "server", env, workers=args.workers) as (url, pid):
                asyncio.run(transfer_load(url, rows, min(args.clients, 4), 2.0, 0.0, args.return_share, f"{run_id}w"))  # warm-up
                for name in ["baseline", *[s.strip() for s in args.scenarios.split(",") if s.strip()]]:
                    results.append(run_phase(url, pid, rows, texts, args, name, run_id))
                closed = {k: v for r in results if r["tally"] for k, v in r["tally"].closed.items()}
                good, checked = check_histories(url, closed)
                model_version = httpx.get(url + "/health").json().get("model_version")
    finally:
        shutil.rmtree(work, ignore_errors=True)  # its database, server log and registry

    print(f"server: hotline serve --workers {args.workers} (uvicorn, auth on{''.join(', ' + x for x in args.setting)}), {db_what}; model {model_version} ({what}); "
          f"{os.cpu_count()} cores shared with the clients (load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after)")
    print(f"load: {args.clients} transfer clients (httpx async, one process), orders both ways 12345 ⇄ 110, {args.return_share:.0%} returned; "
          f"a call-taker in its own process routing {args.route_rate:g} calls/s; texts from {rows_from}")
    print()
    print("| phase | s | orders/s | steps/s | transfer requests | p50 ms | p95 ms | p99 ms | errors | routes | route p50 ms | route p99 ms | route errors | server CPU ms/request |")
    print("|" + " --- |" * 14)
    for r in results:
        t, label = r["tally"], r["name"] if r["name"] != "paced" else f"paced ({args.think_ms:g} ms think)"
        n_requests = len(r["route"]) + (sum(len(v) for v in t.latencies.values()) if t else 0)
        route = (f"{len(r['route'])} | {pct(r['route'], 50):.2f} | {pct(r['route'], 99):.2f} | {sum(r['route_errors'].values())} | "
                 f"{1000 * r['cpu'] / max(1, n_requests):.2f}")
        if t is None:
            print(f"| {label} | {r['seconds']:.0f} | – | – | – | – | – | – | – | {route} |")
            continue
        lat = [x for v in t.latencies.values() for x in v]
        print(f"| {label} | {r['seconds']:.0f} | {t.orders / r['seconds']:.1f} | {t.steps / r['seconds']:.1f} | {len(lat)} | {pct(lat, 50):.1f} | "
              f"{pct(lat, 95):.1f} | {pct(lat, 99):.1f} | {sum(t.errors.values())} | {route} |")
    print()
    for r in results:
        t = r["tally"]
        if t is not None:
            p99 = ", ".join(f"{k} {pct(v, 99):.1f} ms ({len(v)})" for k, v in t.latencies.items())
            print(f"{r['name']}: p99 by request: {p99}; {len(t.closed)} orders closed")
        for kind, n in sorted({**(t.errors if t else {}), **r["route_errors"]}.items()):
            print(f"{r['name']}: error {kind}: {n}")
    print(f"history check: {good} of {checked} closed orders read back have exactly the steps their clients saw acknowledged")
    errors = sum(sum(r["tally"].errors.values()) for r in results if r["tally"]) + sum(sum(r["route_errors"].values()) for r in results)
    return 1 if errors or good != checked else 0


if __name__ == "__main__":
    sys.exit(main())
