"""Load benchmark of the HTTP API: concurrent clients against a real ``hotline serve`` on loopback.

Starts ``hotline serve`` (uvicorn, SQLite in a temporary folder, auth on) with the linear model
trained on the shipped corpus (``data/corpus/train.jsonl``; cached under the temp folder; the tiny
test corpus when the shipped one is absent), waits for /ready, warms up, then runs each scenario
for ``--duration`` seconds: ``--clients`` concurrent clients, one connection each, post single
``/v1/route`` requests (final routes, no ``call_id``: low-confidence answers are written to the
review queue as in production), texts taken in turn from ``data/corpus/test.jsonl``. The clients
are ``wrk`` (C, ``apt-get install wrk``; light enough not to steal the server's CPU) when it is on
PATH, else httpx async in this process (``--client`` chooses).

Scenarios: ``closed`` (each client sends its next request as soon as it has an answer: the
server's capacity) and ``paced`` (each client waits ``--think-ms`` between requests: call-takers
whose page sends a debounced request while they type).

Prints the command, then one table: requests, rps, client-side latency p50/p90/p99/max, errors, and
the calls the linear fallback answered because a transformer's queue would have broken the latency
budget (``hotline_latency_fallback_total`` of the worker that answered /metrics; ``--latency-budget-ms``
sets ``HOTLINE_LATENCY_BUDGET_MS``, default the server's).

    python -m bench.load_api                        # 20 clients, 60 s per scenario
    python -m bench.load_api --duration 10 --workers 1,2 --scenarios closed --client httpx
    python -m bench.load_api --model DIR --workers 1 --clients 8 --latency-budget-ms 50   # a transformer folder under its budget
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.live_server import hotline_server

ROOT = Path(__file__).resolve().parents[1]
CORPUS_TRAIN = ROOT / "data" / "corpus" / "train.jsonl"
CORPUS_TEST = ROOT / "data" / "corpus" / "test.jsonl"
KEY = "bench-key-7f3e"


def build_model(workdir: Path) -> tuple[Path, str]:
    """The linear model trained on the shipped corpus (cached by the corpus checksum), else on the tiny corpus."""
    from training.train import TrainConfig, train

    if CORPUS_TRAIN.exists():
        data, what = CORPUS_TRAIN, "shipped corpus"
    else:
        sys.path.insert(0, str(ROOT))
        from tests.factories import tiny_rows, write_jsonl

        data, what = write_jsonl(workdir / "tiny.jsonl", tiny_rows()), "tiny test corpus"
    digest = hashlib.sha256(data.read_bytes()).hexdigest()[:10]
    out = Path(tempfile.gettempdir()) / "hotline-bench" / f"linear-{digest}"
    if not (out / "config.json").exists():
        train(TrainConfig(data=[str(data)], out=str(out), val_folds=3 if what.startswith("tiny") else 5), progress=False)
    return out, what


def texts_for_load() -> list[str]:
    if CORPUS_TEST.exists():
        return [json.loads(line)["text"] for line in CORPUS_TEST.read_text(encoding="utf-8").splitlines() if line.strip()]
    sys.path.insert(0, str(ROOT))
    from tests.factories import tiny_rows

    return [r["text"] for r in tiny_rows()]


async def run_load(url: str, texts: list[str], clients: int, duration: float, think_ms: float) -> dict:
    """Run ``clients`` concurrent clients for ``duration`` seconds; latencies in ms and error count."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    headers = {"Authorization": f"Bearer {KEY}"}
    deadline = time.perf_counter() + duration

    async def one(k: int, client: httpx.AsyncClient) -> None:
        i = k * 997
        while time.perf_counter() < deadline:
            text = texts[i % len(texts)]
            i += 1
            t0 = time.perf_counter()
            try:
                r = await client.post("/v1/route", json={"text": text}, headers=headers)
                ok = r.status_code == 200
                why = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                ok, why = False, type(exc).__name__
            elapsed = (time.perf_counter() - t0) * 1000
            if ok:
                latencies.append(elapsed)
            else:
                errors[why] = errors.get(why, 0) + 1
            if think_ms:
                await asyncio.sleep(think_ms / 1000)

    t_start = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=clients, max_keepalive_connections=clients)) as client:
        await asyncio.gather(*(one(k, client) for k in range(clients)))
    wall = time.perf_counter() - t_start
    lat = np.asarray(latencies) if latencies else np.asarray([float("nan")])
    return {
        "requests": len(latencies) + sum(errors.values()),
        "rps": (len(latencies) + sum(errors.values())) / wall,
        "p50": float(np.percentile(lat, 50)),
        "p90": float(np.percentile(lat, 90)),
        "p99": float(np.percentile(lat, 99)),
        "max": float(lat.max()),
        "errors": sum(errors.values()),
        "error_kinds": errors,
    }


WRK_SCRIPT = """
counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
request = function()
  counter = counter + 1
  return wrk.format(nil, "/v1/route", nil, bodies[(counter %% #bodies) + 1])
end
%(delay)s
"""
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(value: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s)", value.strip())
    return float(m.group(1)) * _UNIT[m.group(2)] if m else float("nan")


def run_wrk(url: str, texts: list[str], clients: int, duration: float, think_ms: float, workdir: Path) -> dict:
    """The same load with wrk (one thread per core, ``clients`` connections); parses its report."""
    bodies = [json.dumps({"text": t}) for t in texts]
    lua = "bodies = {" + ",".join(json.dumps(b) for b in bodies) + "}\n"
    lua += WRK_SCRIPT % {"key": KEY, "delay": f"function delay() return {think_ms:g} end" if think_ms else ""}
    script = workdir / "route.lua"
    script.write_text(lua, encoding="utf-8")
    threads = max(1, min(clients, os.cpu_count() or 1))
    cmd = ["wrk", f"-t{threads}", f"-c{clients}", f"-d{int(duration)}s", "--latency", "--timeout", "30s", "-s", str(script), url + "/"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    pct = dict(re.findall(r"^\s+(\d+)%\s+(\S+)$", out, flags=re.M))
    done = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    sock = sum(map(int, m.groups())) if (m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)) else 0
    return {
        "requests": done,
        "rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),
        "p50": _ms(pct.get("50", "nan")),
        "p90": _ms(pct.get("90", "nan")),
        "p99": _ms(pct.get("99", "nan")),
        "max": _ms(re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out).group(1)),
        "errors": non2xx + sock,
        "error_kinds": {"non-2xx": non2xx, "socket": sock},
    }


def latency_fallbacks(url: str) -> float:
    """``hotline_latency_fallback_total`` of the worker that answers (0 when absent)."""
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("hotline_latency_fallback_total "):
            return float(line.split()[1])
    return 0.0


def serve_and_load(args, workers: int, model_dir: Path, texts: list[str], scenarios: list[str], client: str, work: Path, rows: list) -> dict:
    """Start ``hotline serve --workers N``, warm it up, run the scenarios, stop it. Returns /health."""
    run = work / f"workers{workers}"
    settings = dict(HOTLINE_MODEL_DIR=str(model_dir), HOTLINE_DATABASE_URL=f"sqlite:///{run / 'bench.db'}",
                    HOTLINE_REGISTRY_DIR=str(run / "models"), HOTLINE_API_KEYS=f"{KEY}:call_taker")
    if args.latency_budget_ms is not None:
        settings["HOTLINE_LATENCY_BUDGET_MS"] = str(args.latency_budget_ms)
    with hotline_server(run, settings, workers=workers) as (url, _pid):
        asyncio.run(run_load(url, texts, args.clients, 5.0, 0.0))  # warm-up: every worker, every code path
        for name in scenarios:
            think = args.think_ms if name == "paced" else 0.0
            before = latency_fallbacks(url)
            if client == "wrk":
                res = run_wrk(url, texts, args.clients, args.duration, think, run)
            else:
                res = asyncio.run(run_load(url, texts, args.clients, args.duration, think))
            res["fallbacks"] = latency_fallbacks(url) - before
            rows.append((workers, name if not think else f"paced ({think:g} ms think)", res))
        return httpx.get(url + "/health").json()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="Model folder (default: train the linear model on the shipped corpus)")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--duration", type=float, default=60.0, help="Seconds per scenario")
    ap.add_argument("--workers", default="1", help="hotline serve --workers; comma-separated to compare (1,2)")
    ap.add_argument("--client", choices=["auto", "wrk", "httpx"], default="auto", help="Load generator (auto: wrk when installed)")
    ap.add_argument("--think-ms", type=float, default=300.0, help="Pause between a client's requests in the paced scenario")
    ap.add_argument("--scenarios", default="closed,paced", help="Comma-separated: closed, paced")
    ap.add_argument("--latency-budget-ms", type=float, help="HOTLINE_LATENCY_BUDGET_MS for the server (default: its own, 50)")
    args = ap.parse_args(argv)
    print("command: " + " ".join(shlex.quote(a) for a in [Path(sys.executable).name, "-m", "bench.load_api", *(argv if argv is not None else sys.argv[1:])]), flush=True)

    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="hotline-load-"))
    if args.model:
        model_dir, what = args.model, str(args.model)
    else:
        model_dir, what = build_model(work)
    texts = texts_for_load()

    client = ("wrk" if shutil.which("wrk") else "httpx") if args.client == "auto" else args.client
    scenarios = [x.strip() for x in args.scenarios.split(",") if x.strip()]
    rows, health = [], {}
    for workers in [int(w) for w in str(args.workers).split(",")]:
        health = serve_and_load(args, workers, model_dir, texts, scenarios, client, work, rows)

    print(f"server: hotline serve --workers N (uvicorn, SQLite, auth on) on 127.0.0.1; model {health['model_version'] or 'none (rules only)'} ({what}); health {health['status']}")
    print(f"load: {args.clients} clients ({client}, same machine, {os.cpu_count()} cores shared with the server; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after), {args.duration:g} s per scenario, "
          f"POST /v1/route, {len(texts)} texts from {CORPUS_TEST.relative_to(ROOT) if CORPUS_TEST.exists() else 'tests/factories.py'}")
    print()
    print(f"| {'workers':>7} | {'scenario':<24} | {'requests':>8} | {'rps':>7} | {'p50 ms':>7} | {'p90 ms':>7} | {'p99 ms':>7} | {'max ms':>7} | {'errors':>6} | latency fallbacks |")
    print(f"|{'-' * 9}|{'-' * 26}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 8}|{'-' * 19}|")
    for workers, name, r in rows:
        share = f"{r['fallbacks']:.0f} ({r['fallbacks'] / r['requests']:.0%})" if r["requests"] and workers == 1 else f"{r['fallbacks']:.0f} (one worker's)"
        print(f"| {workers:>7} | {name:<24} | {r['requests']:>8} | {r['rps']:>7.1f} | {r['p50']:>7.2f} | {r['p90']:>7.2f} | {r['p99']:>7.2f} | {r['max']:>7.1f} | {r['errors']:>6} | {share:>17} |")
    for workers, name, r in rows:
        if r["errors"]:
            print(f"errors in {name}: {r['error_kinds']}")


if __name__ == "__main__":
    main()
