"""Add the linear model to a trained transformer folder, in memory, and score the router on the corpus test split.

    python -m bench.transformer_ensemble --model bench/results/transformer-corpus [--method log-pool --method mixture]

Reproduces the classifier's own held-out split (same seed, same stratification), fits the linear model
on the other rows, chooses the ensemble weight (or the log-pool's exponents, one row per ``--method``) and
the router's thresholds on the held-out rows with ``TransformerTextClassifier._fit_linear`` (the code
path of ``ensemble_linear=True``), then routes the test split. Nothing is written. Prints its command
and one table.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from data.corpus import TEST_PATH, TRAIN_PATH
from data.loading import load_records
from model.artifacts import load_model
from model.thresholds import choose_thresholds
from training.evaluate import evaluate_records


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="bench/results/transformer-corpus")
    ap.add_argument("--method", action="append", choices=["log-pool", "mixture"], help="repeatable; default: both")
    args = ap.parse_args()
    print("command: python -m bench.transformer_ensemble " + " ".join(sys.argv[1:]), flush=True)
    model = load_model(args.model)
    clf = model.classifier
    train = load_records(TRAIN_PATH, taxonomy=model.taxonomy).records
    test = load_records(TEST_PATH, taxonomy=model.taxonomy).records
    texts = [r.text for r in train]
    labels = np.asarray([r.department for r in train])
    _, counts = np.unique(labels, return_counts=True)
    tr, va = clf._split(np.searchsorted(clf.classes_, labels), counts)
    # Thresholds as training chooses them (the default targets, the model alone).

    def thresholds(proba):
        return choose_thresholds(proba, list(clf.classes_), labels[va], model.taxonomy)

    # The transformer alone first (a folder may hold the ensemble already).
    clf.linear_, clf.ensemble_weight_, clf.ensemble_exponents_, clf.prior_tau_ = None, 1.0, None, 0.0
    network_val = clf.predict_proba([texts[i] for i in va])
    model.thresholds = thresholds(network_val)
    results = [("transformer", evaluate_records(model, test)["metrics"])]
    for method in args.method or ["log-pool", "mixture"]:
        clf.ensemble_method, clf.validation_proba_ = method, network_val.copy()
        clf.linear_, clf.ensemble_weight_, clf.ensemble_exponents_ = None, 1.0, None
        clf._fit_linear(texts, labels, tr, va)
        model.thresholds = thresholds(clf.validation_proba_)
        chosen = f"exponents {clf.ensemble_exponents_[0]:.2f}, {clf.ensemble_exponents_[1]:.2f}" if clf.ensemble_exponents_ else f"weight {clf.ensemble_weight_:.2f}"
        results.append((f"transformer + linear, {method} ({chosen})", evaluate_records(model, test)["metrics"]))
    print(f"\ncorpus test split ({len(test)} rows), backend {clf.backend_}; ensembles and thresholds chosen on {len(va)} held-out training rows")
    print("| router with | 110 recall | channel accuracy | department accuracy | macro-F1 | review rate |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, m in results:
        c, d = m["channel"], m["department"]
        print(f"| {name} | {c['110_recall']:.3f} | {c['accuracy']:.3f} | {d['accuracy']:.3f} | {d['macro_f1']:.3f} | {m['review']['rate']:.3f} |")


if __name__ == "__main__":
    main()
