"""How far could the channel threshold alone take a trained router on the corpus test split?

    python -m bench.channel_ceiling --model bench/results/transformer-corpus [--model DIR ...]

A diagnostic, not a result: it sweeps the 110 threshold over the **test** split itself (an oracle
no product choice may use) and prints, per model folder, the router as trained (its stored
threshold) and the best channel accuracy any threshold reaches while 110 recall stays ≥ 0.99. When
even that oracle stays below a target, no threshold rule, however well estimated, can meet it with
that model: the errors are in the ranking of P(110), not in where the line is drawn. The danger
override sends its calls to 110 at every threshold, as in the router. Prints its command and one
table.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from data.corpus import TEST_PATH
from data.loading import load_records
from model.artifacts import load_model
from model.router import Router
from model.thresholds import channel_110_probability


def sweep(p110: np.ndarray, forced: np.ndarray, is110: np.ndarray, min_recall: float = 0.99) -> dict:
    """Best channel accuracy over thresholds on ``p110`` (shape (n,)) with 110 recall ≥ ``min_recall``.

    ``forced`` (bool, (n,)): rows routed to 110 at any threshold (the danger override); ``is110``
    (bool, (n,)): true channel. Returns ``{"threshold", "accuracy", "recall", "missed", "false_110"}``
    of the best threshold (ties: the higher threshold); thresholds tried are the observed P(110)s.
    """
    best: dict = {}
    for t in np.unique(np.concatenate([p110, [0.0, 1.01]])):
        pred = forced | (p110 >= t)
        recall = float(pred[is110].mean()) if is110.any() else 1.0
        if recall < min_recall:
            continue
        acc = float((pred == is110).mean())
        if not best or acc >= best["accuracy"]:
            best = {"threshold": float(t), "accuracy": acc, "recall": recall,
                    "missed": int((~pred & is110).sum()), "false_110": int((pred & ~is110).sum())}
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", required=True, help="trained model folder; repeatable")
    ap.add_argument("--min-recall", type=float, default=0.99)
    args = ap.parse_args()
    print("command: python -m bench.channel_ceiling " + " ".join(sys.argv[1:]), flush=True)
    print(f"\ncorpus test split; oracle = the best threshold chosen on the test split itself with 110 recall ≥ {args.min_recall}")
    print("| model | stored threshold | channel accuracy | 110 recall | missed / false 110 | oracle threshold | oracle channel accuracy | oracle missed / false 110 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for path in args.model:
        model = load_model(path)
        router = Router(model)
        test = load_records(TEST_PATH, taxonomy=model.taxonomy).records
        decisions = router.route_batch([r.text for r in test])  # the router as trained
        is110 = np.array([r.channel == "110" for r in test])
        forced = np.array([d.source == "override" for d in decisions])
        texts = [r.text for r in test]
        p110 = channel_110_probability(model.classifier.predict_proba(texts), [str(c) for c in model.classifier.classes_], model.taxonomy)
        pred = np.array([d.channel == "110" for d in decisions])
        best = sweep(p110, forced, is110, args.min_recall)
        print(f"| {model.version} ({path}) | {router.channel_110:.3f} | {(pred == is110).mean():.3f} | {pred[is110].mean():.3f} | "
              f"{int((~pred & is110).sum())} / {int((pred & ~is110).sum())} | {best['threshold']:.3f} | {best['accuracy']:.3f} | "
              f"{best['missed']} / {best['false_110']} |")


if __name__ == "__main__":
    main()
