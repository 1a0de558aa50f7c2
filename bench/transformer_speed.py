"""Inference speed and memory of a transformer model folder, per backend, through the router.

    python -m bench.transformer_speed --model bench/results/transformer-corpus [--n 200] [--param eval_batch_size=16] [--isa native --isa avx2]

Each backend (torch float32, torch with bfloat16 weights, ONNX float32, ONNX int8) runs in its own process so that peak memory
(ru_maxrss: load + warm-up + the runs) is its own. route() latency is measured one text at a time
over the corpus test texts (p50 / p95 / p99, ms); throughput with route_batch in batches of 32 and 64.
``--isa avx2`` runs the children as on an AVX2-only CPU: torch's kernels capped with
``ATEN_CPU_CAPABILITY=avx2`` and oneDNN's with ``ONEDNN_MAX_CPU_ISA=AVX2`` (onnxruntime has no such
switch: its ONNX rows use what the CPU has, and the table says which ISA torch used).
The 2 cores are shared with other work, so each backend runs ``--rounds`` times, interleaved, and the
table keeps each backend's least disturbed round (lowest p50). Prints its command and one table.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time

from bench.child import print_table, run_child

ISA_ENV = {"native": {}, "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}


def measure(model_dir: str, backend: str, n: int, params: dict | None = None) -> dict:
    from data.corpus import TEST_PATH, read_jsonl
    from model.artifacts import load_model
    from model.router import Router
    from training.speed import single_latencies

    t = time.perf_counter()
    model = load_model(model_dir)
    model.classifier.use_backend(backend)
    for net in [model.classifier, *model.classifier._members()]:  # inference params, e.g. a folder saved with older defaults
        net.set_params(**(params or {}))
    router = Router(model)
    load_s = time.perf_counter() - t
    texts = [r["text"] for r in read_jsonl(TEST_PATH)]
    texts = (texts * (1 + n // max(1, len(texts))))[:n]
    lat = single_latencies(router, texts, n, warmup=10)
    import torch

    out = {"backend": model.classifier.backend_, "load_s": round(load_s, 2), "p50_ms": round(statistics.median(lat), 1),
           "p95_ms": round(sorted(lat)[int(0.95 * len(lat)) - 1], 1), "p99_ms": round(sorted(lat)[int(0.99 * len(lat)) - 1], 1),
           "torch_isa": torch.backends.cpu.get_cpu_capability(), "onednn_max_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "native")}
    for bs in (32, 64):
        t = time.perf_counter()
        for i in range(0, len(texts), bs):
            router.route_batch(texts[i : i + bs])
        out[f"batch{bs}_per_s"] = round(len(texts) / (time.perf_counter() - t), 1)
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)
    out["model_errors"] = router.model_errors
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="bench/results/transformer-corpus")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--backend", action="append", help="torch, torch-bf16, onnx, onnx-int8 (repeatable; default all)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--isa", action="append", choices=sorted(ISA_ENV), help="native (default) and/or avx2 (repeatable): see the module docstring")
    ap.add_argument("--param", action="append", default=[], help="KEY=VALUE (JSON value): an inference parameter set after loading, e.g. eval_batch_size=16")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        params = {k: json.loads(v) for k, _, v in (p.partition("=") for p in args.param)}
        print(json.dumps(measure(args.model, args.child, args.n, params)))
        return
    print("command: python -m bench.transformer_speed " + " ".join(sys.argv[1:]), flush=True)
    best: dict[str, dict] = {}
    for _ in range(args.rounds):
        for isa in args.isa or ["native"]:
            for backend in args.backend or ["torch", "torch-bf16", "onnx", "onnx-int8"]:
                r = run_child("bench.transformer_speed", "--model", args.model, "--n", str(args.n), "--child", backend,
                              *[a for p in args.param for a in ("--param", p)], env=ISA_ENV[isa])
                key = f"{backend} ({isa})"
                r["isa"] = isa
                if "error" in r:
                    best.setdefault(key, {"backend": backend, **r})
                elif "p50_ms" not in best.get(key, {}) or r["p50_ms"] < best[key]["p50_ms"]:
                    best[key] = r
    print(f"\n{args.model}: route() over {args.n} corpus test texts, one at a time, then route_batch; best of {args.rounds} rounds"
          + (f"; set after loading: {', '.join(args.param)}" if args.param else ""))
    print_table(["backend", "ISA (torch kernels)", "load s", "p50 ms", "p95 ms", "p99 ms", "texts/s batch 32", "texts/s batch 64", "peak RSS MiB"],
                list(best.values()),
                lambda r: [r["backend"], f"{r['isa']} ({r['torch_isa']})", r["load_s"], r["p50_ms"], r["p95_ms"], r["p99_ms"], r["batch32_per_s"],
                           r["batch64_per_s"], f"{r['peak_rss_mib']:.0f}"], "backend")

if __name__ == "__main__":
    main()
