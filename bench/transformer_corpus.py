"""The fine-tuned transformer on the shipped corpus, through the router (danger override included).

    python -m bench.transformer_corpus [--base models/base/e5-small-zh] [--param epochs=8 ...]

Trains with ``hotline train --model transformer``'s code path (train split; thresholds on its
held-out 10%), exports ONNX/int8 and checks it against PyTorch on the test split, then scores the
router on data/corpus/test.jsonl and on the blind hard sets (data/hardset/); the linear recipe is scored
the same way for comparison. The model
folder is left in bench/results/transformer-corpus for bench.transformer_speed. Prints its command
and one table.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from bench import print_table
from bench.real_decisions import hardset_rows
from data.corpus import HARDSET_DIR, TEST_PATH, TRAIN_PATH
from data.loading import load_records
from model.artifacts import load_model
from model.router import Router
from training.evaluate import evaluate_records
from training.train import TrainConfig, train

OUT = Path("bench/results/transformer-corpus")
DEFAULT: dict = {}  # the classifier's own defaults (what `hotline train --model transformer` uses); --param overrides


def row(name: str, m: dict) -> str:
    c, d = m["channel"], m["department"]
    return (f"| {name} | {c['110_recall']:.3f} | {c['accuracy']:.3f} | {d['accuracy']:.3f} | {d['macro_f1']:.3f} | "
            f"{(m.get('review') or {}).get('rate', float('nan')):.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="models/base/e5-small-zh")
    ap.add_argument("--param", action="append", default=[], help="KEY=VALUE (JSON value) overriding the transformer params")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--train", default=str(TRAIN_PATH), help="training split (default: the shipped corpus's)")
    args = ap.parse_args()
    print("command: python -m bench.transformer_corpus " + " ".join(sys.argv[1:]), flush=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("model.transformer").setLevel(logging.DEBUG)
    params = dict(DEFAULT)
    for p in args.param:
        k, _, v = p.partition("=")
        params[k] = json.loads(v)
    t0 = time.perf_counter()
    model = train(TrainConfig(data=[args.train], out=args.out, model="transformer", base_model=args.base, transformer=params,
                              test_data=[str(TEST_PATH)]), progress=False)
    fit_s = time.perf_counter() - t0
    linear = train(TrainConfig(data=[args.train], out=args.out + "-linear"), progress=False)
    test = load_records(TEST_PATH, taxonomy=linear.taxonomy).records
    lm = evaluate_records(linear, test)["metrics"]
    rm = evaluate_records(None, test)["metrics"]
    tm = model.metrics["test"]
    print(f"\ncorpus test split ({len(test)} rows); transformer params {params}; {len(model.classifier.history_)} epochs; "
          f"train + export {fit_s:.0f} s on {model.metrics['train_rows']} rows")
    print("| router with | 110 recall | channel accuracy | department accuracy | macro-F1 | review rate |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(row("transformer (torch)", tm))
    for backend in ("torch-bf16", "onnx-int8"):  # the same folder in the arithmetic a router may serve it in
        served = load_model(args.out)
        try:
            served.classifier.use_backend(backend)
        except FileNotFoundError:  # int8 removed by its check, or no onnxruntime
            continue
        print(row(f"transformer ({backend})", evaluate_records(served, test)["metrics"]))
    print(row("linear", lm))
    print(row("rules only", rm))
    if "onnx" in model.metrics:
        o = model.metrics["onnx"]
        print(f"int8 ONNX vs PyTorch on the test split: label agreement {o['label_agreement']:.4f}, "
              f"max probability difference {o['max_probability_difference']}")
    if model.metrics.get("bf16"):
        b = model.metrics["bf16"]
        print(f"bf16 weights vs float32 on the test split: label agreement {b['label_agreement']:.4f}, "
              f"max probability difference {b['max_probability_difference']}, served by auto on AMX: {b['served']}")
    hard = [(f"{name}, {where}", what, value) for name, m in (("transformer", load_model(args.out)), ("linear", linear))
            for path in sorted(HARDSET_DIR.glob("*.jsonl")) for where, what, value in hardset_rows(Router(m), path)
            if not what.startswith(("channel errors", "actions"))]
    print_table(hard)


if __name__ == "__main__":
    main()
