"""How well does a 110 threshold chosen on validation rows keep its recall on new tickets, by the number
of validation rows? A diagnostic for the transformer, whose thresholds come from its held-out 10%.

    python -m bench.threshold_estimators [--draws 1000] [--target 0.99]

On the Haikou tickets' fixed 80/20 split (bench.transformer_router's): the linear model's out-of-fold
P(110) of the 80% (the rows ``hotline train`` chooses its thresholds on) and its P(110) of the 20% test
tickets (fit on the 80%). Each estimator picks a threshold from (a) every out-of-fold row and (b)
``--draws`` random subsets of 10% of them (the size of the transformer's validation split), and the
threshold is scored on the test tickets: 110 recall (a ticket of a police department reaches 110) and
the share of 12345 tickets that reach 110 (as consults: the cost). Estimators:

- ``product``: ``model.thresholds.recall_threshold`` (split conformal: the j-th lowest 110 row's P(110),
  j = floor((1 − target)·(n + 1)), so that the expected recall on new tickets reaches the target);
- ``point (before)``: the product's rule until stop 20, the lowest threshold that still met the target on
  the validation rows (it may miss floor((1 − target)·n) of the n 110 rows);
- ``confidence``: the (k+1)-th lowest 110 row's P(110) with the largest k for which that order
  statistic lies below the target's quantile with 95% probability (binomial); with too few 110 rows
  for any k, the lowest one (catch them all).

The test tickets are never used to choose anything. Prints its command and one table; no ticket text.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import binom

from bench.real_decisions import HAIKOU_POLICE
from bench.transformer_router import LABEL_COLUMN, write_split
from data.cleaning import normalize_text
from model.calibration import apply_temperature, fit_temperature
from model.thresholds import channel_110_probability, choose_thresholds
from training.config import load_training_data
from training.train import TrainConfig, load_rows, make_classifier, out_of_fold_proba


def confidence_threshold(p110: np.ndarray, is110: np.ndarray, target: float, alpha: float = 0.05) -> float:
    """The (k+1)-th lowest P(110) of the 110 rows (``p110``, ``is110``: shape (n,)), k the largest count
    for which P(Binomial(n_110, 1 − target) ≥ k + 1) ≥ 1 − alpha (0 when none); capped at 0.5 as
    ``choose_thresholds`` caps it."""
    scores = np.sort(p110[is110])
    n, k = len(scores), 0
    while k + 1 < n and binom.sf(k + 1, n, 1 - target) >= 1 - alpha:  # P(X ≥ k + 2)
        k += 1
    return float(max(min(0.5, scores[k]), 1e-3))


def point_threshold(p110: np.ndarray, is110: np.ndarray, target: float) -> float:
    """The rule before stop 20: the (floor((1 − target)·n) + 1)-th lowest P(110) of the n 110 rows."""
    scores = np.sort(p110[is110])
    return float(max(min(0.5, scores[int(np.floor((1 - target) * len(scores) + 1e-9))]), 1e-3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--target", type=float, default=0.99)
    ap.add_argument("--seed", type=int, default=13, help="the linear model's inner folds and the subsets")
    args = ap.parse_args()
    print("command: python -m bench.threshold_estimators " + " ".join(sys.argv[1:]), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train_csv, test_csv, _ = write_split("haikou", tmp)
        (tmp / "channels.json").write_text(json.dumps(HAIKOU_POLICE, ensure_ascii=False), encoding="utf-8")
        cfg = TrainConfig(data=[str(train_csv)], out=str(tmp / "out"), strict=False, seed=args.seed,
                          label_column=LABEL_COLUMN["haikou"], channel_map=str(tmp / "channels.json"))
        _, taxonomy, texts, labels = load_rows(cfg, 4, "train")
        clf = make_classifier(cfg, taxonomy)
        oof, classes = out_of_fold_proba(clf, texts, labels, cfg.val_folds, cfg.seed, False)
        temperature = fit_temperature(oof, np.array([classes.index(y) for y in labels]))
        oof = apply_temperature(oof, temperature)
        clf.fit(texts, labels)
        test = load_training_data(cfg, files=[str(test_csv)], taxonomy=taxonomy)[0].records
    p_test = channel_110_probability(apply_temperature(clf.predict_proba([normalize_text(r.text) for r in test]), temperature),
                                     list(clf.classes_), taxonomy)
    y_test = np.array([taxonomy.channel_of(r.department) == "110" for r in test])
    p_val = channel_110_probability(oof, classes, taxonomy)
    y_val = np.array([taxonomy.channel_of(y) == "110" for y in labels])

    def product(idx: np.ndarray) -> float:
        return choose_thresholds(oof[idx], classes, labels[idx], taxonomy, args.target)["channel_110"]

    def point(idx: np.ndarray) -> float:
        return point_threshold(p_val[idx], y_val[idx], args.target)

    def confidence(idx: np.ndarray) -> float:
        return confidence_threshold(p_val[idx], y_val[idx], args.target)

    def score(t: float) -> tuple[float, float]:
        return float((p_test[y_test] >= t).mean()), float((p_test[~y_test] >= t).mean())

    rng = np.random.default_rng(args.seed)
    size = round(0.1 * len(labels))
    subsets = [rng.choice(len(labels), size, replace=False) for _ in range(args.draws)]
    print(f"\nHaikou fixed 80/20 split: {len(labels)} out-of-fold rows ({int(y_val.sum())} of 110), {len(test)} test tickets "
          f"({int(y_test.sum())} of 110); target 110 recall {args.target}; subsets of {size} rows × {args.draws}")
    print("| estimator | validation rows | threshold (median) | test 110 recall: mean | 5th percentile | share of draws below the target | "
          "12345 tickets reaching 110 (mean) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, estimate in (("product (conformal)", product), ("point (before)", point), ("confidence (95%)", confidence)):
        every = np.arange(len(labels))
        t = estimate(every)
        r, cost = score(t)
        print(f"| {name} | all {len(labels)} | {t:.4f} | {r:.3f} | - | {'yes' if r < args.target else 'no'} | {cost:.3f} |")
        ts = np.array([estimate(idx) for idx in subsets])
        rc = np.array([score(t) for t in ts])
        print(f"| {name} | {size} | {np.median(ts):.4f} | {rc[:, 0].mean():.3f} | {np.quantile(rc[:, 0], 0.05):.3f} | "
              f"{(rc[:, 0] < args.target).mean():.0%} | {rc[:, 1].mean():.3f} |")


if __name__ == "__main__":
    main()
