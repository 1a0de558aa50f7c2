"""Add the linear model to a trained transformer folder, in memory, and score the router on the corpus test split.

    python -m bench.transformer_ensemble --model bench/results/transformer-corpus

Reproduces the classifier's own held-out split (same seed, same stratification), fits the linear model
on the other rows, chooses the log-pool's exponents and the router's thresholds on the held-out rows
with :meth:`model.transformer.LogPoolEnsemble.fit` (the code path of ``ensemble_linear=True``), then
routes the test split with and without it. Nothing is written. Prints its command and one table.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from data.corpus import TEST_PATH, TRAIN_PATH
from data.loading import load_records
from model.artifacts import load_model
from model.thresholds import choose_thresholds
from model.transformer import LogPoolEnsemble, Trainer, TrainingArguments
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
    tr, va = Trainer(TrainingArguments.from_params(clf.get_params())).split(np.searchsorted(clf.classes_, labels))
    # Thresholds as training chooses them (the default targets, the model alone).

    def thresholds(proba):
        return choose_thresholds(proba, list(clf.classes_), labels[va], model.taxonomy)

    # The transformer alone first (a folder may hold the ensemble already).
    clf.ensemble_ = None
    network_val = clf.predict_proba([texts[i] for i in va])
    model.thresholds = thresholds(network_val)
    results = [("transformer", evaluate_records(model, test)["metrics"])]
    clf.ensemble_ = LogPoolEnsemble.fit(network_val, texts, labels, tr, va, clf.classes_, clf.channel_map, clf.random_state)
    model.thresholds = thresholds(clf.ensemble_.combine(network_val, clf.ensemble_.transform_rows([texts[i] for i in va])))
    a, b = clf.ensemble_.exponents
    results.append((f"transformer + linear, log-pool (exponents {a:.2f}, {b:.2f})", evaluate_records(model, test)["metrics"]))
    print(f"\ncorpus test split ({len(test)} rows), backend {clf.backend_}; ensembles and thresholds chosen on {len(va)} held-out training rows")
    print("| router with | 110 recall | channel accuracy | department accuracy | macro-F1 | review rate |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, m in results:
        c, d = m["channel"], m["department"]
        print(f"| {name} | {c['110_recall']:.3f} | {c['accuracy']:.3f} | {d['accuracy']:.3f} | {d['macro_f1']:.3f} | {m['review']['rate']:.3f} |")


if __name__ == "__main__":
    main()
