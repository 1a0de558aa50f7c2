"""Add the linear model to a trained transformer folder, in memory, and score the router on the corpus test split.

    python -m bench.transformer_ensemble --model bench/results/transformer-corpus

Reproduces the classifier's own held-out split (same seed, same stratification), fits the linear model
on the other rows, chooses the ensemble weight and the router's thresholds on the held-out rows with
``TransformerTextClassifier._fit_linear`` (the code path of ``ensemble_linear=True``), then routes the
test split. Nothing is written. Prints its command and one table.
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
    clf.linear_, clf.ensemble_weight_ = None, 1.0  # the transformer alone first (a folder may hold the ensemble already)
    clf.validation_proba_ = clf.predict_proba([texts[i] for i in va])
    alone = evaluate_records(model, test)["metrics"]
    clf._fit_linear(texts, labels, tr, va)
    model.thresholds = choose_thresholds(clf.validation_proba_, list(clf.classes_), labels[va], model.taxonomy)
    both = evaluate_records(model, test)["metrics"]
    print(f"\ncorpus test split ({len(test)} rows), backend {clf.backend_}; ensemble weight {clf.ensemble_weight_:.2f} × transformer "
          f"(chosen on {len(va)} held-out training rows)")
    print("| router with | 110 recall | channel accuracy | department accuracy | macro-F1 | review rate |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, m in (("transformer", alone), ("transformer + linear ensemble", both)):
        c, d = m["channel"], m["department"]
        print(f"| {name} | {c['110_recall']:.3f} | {c['accuracy']:.3f} | {d['accuracy']:.3f} | {d['macro_f1']:.3f} | {m['review']['rate']:.3f} |")


if __name__ == "__main__":
    main()
