"""Does a hostile back-office batch stall live routing? (issue 17). Prints its command and one table.

    python -m bench.stall [--seconds 20] [--model DIR]

Starts a real ``hotline serve`` (one worker, the given model folder, default: a linear model trained
here on the corpus), then for ``--seconds``: one client posts ``POST /v1/route/batch`` with 256 texts of
2,000 digits back to back, while another routes a knife attack (``POST /v1/route``) every 50 ms. The
same single routes are timed first with no batch running. Also times hostile texts in-process
(``Router.route``): long digit runs, a negated danger word repeated, separators only.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from data.corpus import TRAIN_PATH
from model.artifacts import load_model
from model.router import Router
from tests.serve.conftest import free_port
from training.train import TrainConfig, train

KNIFE = "小区门口有人拿刀砍人，地上有血"
HOSTILE = {"2,000 digits": "1" * 2000, "a negated danger word ×400": "没有打架，" * 400, "2,000 commas": "，" * 2000,
           "1,000 commas + negated keywords": "，" * 1000 + "没有人受伤" * 100, "a plate-like run": "琼A" + "1" * 1998}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def singles(url: str, seconds: float, stop: threading.Event | None = None) -> list[float]:
    lat = []
    with httpx.Client(timeout=60) as c:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not (stop and stop.is_set()):
            t0 = time.perf_counter()
            r = c.post(url + "/v1/route", json={"text": KNIFE})
            lat.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200 and r.json()["action"] == "110_first", r.text
            time.sleep(0.05)
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--model", type=Path, default=None)
    args = ap.parse_args()
    print("command: python -m bench.stall " + " ".join(sys.argv[1:]))
    tmp = Path(tempfile.mkdtemp(prefix="stall-"))
    model_dir = args.model or tmp / "model"
    if args.model is None:
        train(TrainConfig(data=[str(TRAIN_PATH)], out=str(model_dir)), progress=False)
    rows = []
    router = Router(load_model(model_dir))
    router.route(KNIFE)
    for name, text in HOSTILE.items():
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            router.route(text)
            times.append((time.perf_counter() - t0) * 1000)
        rows.append(("in-process Router.route", name, f"{statistics.median(times):.1f} ms"))
    port = free_port()
    env = {**os.environ, "HOTLINE_MODEL_DIR": str(model_dir), "HOTLINE_DATABASE_URL": f"sqlite:///{tmp / 'h.db'}", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "serve.cli", "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        idle = singles(url, args.seconds / 4)
        stop, batch_s, codes = threading.Event(), [], []

        def bulk():
            with httpx.Client(timeout=300) as c:
                while not stop.is_set():
                    t0 = time.perf_counter()
                    r = c.post(url + "/v1/route/batch", json={"items": [{"text": "1" * 2000}] * 256})
                    batch_s.append(time.perf_counter() - t0)
                    codes.append(r.status_code)

        t = threading.Thread(target=bulk)
        t.start()
        time.sleep(0.5)
        busy = singles(url, args.seconds, stop)
        stop.set()
        t.join()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    rows += [
        ("hotline serve, 1 worker", "single route, no batch running: p50 / p99 ms", f"{pct(idle, .5):.1f} / {pct(idle, .99):.1f} (n={len(idle)})"),
        ("hotline serve, 1 worker", "single route while 256 × 2,000-digit batches run back to back: p50 / p99 ms", f"{pct(busy, .5):.1f} / {pct(busy, .99):.1f} (n={len(busy)})"),
        ("hotline serve, 1 worker", "one 256 × 2,000-digit batch: median s (HTTP status)", f"{statistics.median(batch_s):.2f} ({', '.join(sorted({str(c) for c in codes}))}; n={len(batch_s)})"),
    ]
    print("\n| where | measure | value |\n|---|---|---|")
    for a, b, c in rows:
        print(f"| {a} | {b} | {c} |")


if __name__ == "__main__":
    main()
