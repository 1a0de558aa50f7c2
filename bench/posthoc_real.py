"""Post-hoc choices on saved probabilities of ``bench/transformer_real.py`` (no refitting).

    python -m bench.posthoc_real --dataset haikou --config 12-layer-long
    python -m bench.posthoc_real --dataset haikou --ladder frozen-emb,unfrozen-3ep,weighted-3ep,12-layer-6ep-ls
    python -m bench.posthoc_real --dataset taidi --ladder 12-layer-4ep-ls-llrd,12-layer-4ep-ls-llrd+12-layer-4ep-ls-refit
    python -m bench.posthoc_real --dataset taidi --config 12-layer-4ep-ls-x3 --networks

Reads ``bench/results/proba_<dataset>_<config>.npz`` (validation and test probabilities of the
transformer and of the linear model, true labels, training label counts). Every choice is made on the
validation rows only and then scored once on the test rows:

- ensemble weight ``w``: ``w·P_transformer + (1 − w)·P_linear`` (as transformer_real.py does);
- prior correction ``tau`` (after the weight, or jointly with it): divide probabilities by (training label frequency)^tau and renormalise,
  which moves borderline texts towards rare departments (tau = 0: no change). On imbalanced tickets
  this trades a little accuracy for macro-F1.

The criterion on validation is accuracy + macro-F1 (the issue's two numbers, weighted alike).
Prints one table. With ``--ladder A,B,…``: one row per saved config instead (the transformer alone and
its ensemble with the weight chosen on validation, by log-likelihood as the product does and by accuracy +
macro-F1 as it did before), each against the linear model, in the order given; ``A+B`` is the mean of
two saved networks' probabilities (runs of the same --seed). With ``--networks`` (a seed-ensemble run,
``n_networks > 1``): one row per "first k networks" and per network alone, each combined with the
linear model both ways the product can (mixture weight, log-pool exponents; both by validation
log-likelihood).

Found on Haikou (12-layer-long, 2026-11-24): validation picks tau = 0 for the ensemble (no gain),
and tau = 0.5 for the linear model alone (test: −0.2 accuracy, +2.3 macro-F1). So the product does
not apply a prior correction to the transformer ensemble.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from model.calibration import apply_log_pool, apply_prior_correction, fit_blend_weight, fit_log_pool, fit_prior_correction, label_prior

RESULTS = Path("bench/results")
WEIGHTS = np.linspace(0, 1, 21)
TAUS = np.linspace(0, 1, 11)


def scores(y, proba, classes) -> tuple[float, float]:
    pred = classes[proba.argmax(1)]
    return float(accuracy_score(y, pred)), float(f1_score(y, pred, average="macro", zero_division=0))


def choose(val_y, classes, candidates) -> tuple:
    """The (setting, probabilities-function) of ``candidates`` best on validation (accuracy + macro-F1)."""
    best, best_s = None, -1.0
    for setting, make in candidates:
        s = sum(scores(val_y, make("val"), classes))
        if s > best_s + 1e-9:
            best, best_s = (setting, make), s
    return best


def load_saved(dataset: str, name: str) -> dict:
    """The saved probabilities of config ``name``; ``A+B``: the mean of A's and B's transformer
    probabilities (a two-network ensemble; both runs must share their validation rows, i.e. the same
    --seed), with A's linear model."""
    runs = [np.load(RESULTS / f"proba_{dataset}_{n}.npz") for n in name.split("+")]
    d = dict(runs[0])
    for r in runs[1:]:
        if not (np.array_equal(r["val_y"], d["val_y"]) and np.array_equal(r["test_y"], d["test_y"])):
            raise SystemExit(f"{name}: the runs have different validation rows (another --seed?); they cannot be averaged")
    for key in ("val_transformer", "test_transformer"):
        d[key] = np.mean([r[key] for r in runs], axis=0)
    return d


def ladder(dataset: str, configs: list[str]) -> None:
    """One row per config (``A+B``: the mean of two saved networks): transformer alone, ensemble (weight
    chosen on validation), versus linear."""
    print("| config | transformer accuracy / macro-F1 | ensemble, weight by log-likelihood (the product's) | vs linear (points) "
          "| ensemble, weight by accuracy + macro-F1 |")
    print("| --- | --- | --- | --- | --- |")
    for name in configs:
        d = load_saved(dataset, name)
        classes = d["classes"]
        w_nll = fit_blend_weight(d["val_transformer"], d["val_linear"], np.searchsorted(classes, d["val_y"]))
        w_f1 = max(WEIGHTS, key=lambda w: (sum(scores(d["val_y"], w * d["val_transformer"] + (1 - w) * d["val_linear"], classes)), -w))
        t_acc, t_f1 = scores(d["test_y"], d["test_transformer"], classes)
        l_acc, l_f1 = scores(d["test_y"], d["test_linear"], classes)
        (e_acc, e_f1), (f_acc, f_f1) = (scores(d["test_y"], w * d["test_transformer"] + (1 - w) * d["test_linear"], classes) for w in (w_nll, w_f1))
        print(f"| {name} | {t_acc:.3f} / {t_f1:.3f} | {e_acc:.3f} / {e_f1:.3f} (w={w_nll:.2f}) | {100 * (e_acc - l_acc):+.1f} / {100 * (e_f1 - l_f1):+.1f} "
              f"| {f_acc:.3f} / {f_f1:.3f} (w={w_f1:.2f}) |")
    print(f"linear alone: {l_acc:.3f} / {l_f1:.3f} on {len(d['test_y'])} test rows")


def networks(dataset: str, name: str) -> None:
    """A seed-ensemble run's networks: the mean of the first k and each one alone, with the linear
    model as a mixture and as a log-pool (both fitted on validation by log-likelihood)."""
    d = load_saved(dataset, name)
    classes = d["classes"]
    n = sum(k.startswith("val_network") for k in d)
    if not n:
        raise SystemExit(f"{name}: no per-network probabilities saved (not an n_networks > 1 run)")
    y_val = np.searchsorted(classes, d["val_y"])
    l_acc, l_f1 = scores(d["test_y"], d["test_linear"], classes)
    sets = [(f"first {k}", [f"network{i}" for i in range(k)]) for k in range(1, n + 1)]
    sets += [(f"network {i + 1} alone", [f"network{i}"]) for i in range(1, n)]
    print(f"\n{dataset} / {name}: {n} networks; linear alone {l_acc:.3f} / {l_f1:.3f} on {len(d['test_y'])} test rows")
    print("| networks | transformer alone | + linear, mixture | vs linear | + linear, log-pool | vs linear |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, keys in sets:
        pv, pt = (np.mean([d[f"{split}_{k}"] for k in keys], axis=0) for split in ("val", "test"))
        w = fit_blend_weight(pv, d["val_linear"], y_val)
        a, b = fit_log_pool(pv, d["val_linear"], y_val)
        t = scores(d["test_y"], pt, classes)
        m = scores(d["test_y"], w * pt + (1 - w) * d["test_linear"], classes)
        p = scores(d["test_y"], apply_log_pool(pt, d["test_linear"], a, b), classes)
        print(f"| {label} | {t[0]:.3f} / {t[1]:.3f} | {m[0]:.3f} / {m[1]:.3f} (w {w:.2f}) | {100 * (m[0] - l_acc):+.1f} / {100 * (m[1] - l_f1):+.1f} "
              f"| {p[0]:.3f} / {p[1]:.3f} ({a:.2f}, {b:.2f}) | {100 * (p[0] - l_acc):+.1f} / {100 * (p[1] - l_f1):+.1f} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="haikou")
    ap.add_argument("--config", default="12-layer-long")
    ap.add_argument("--ladder", help="comma-separated saved configs: one summary row each")
    ap.add_argument("--networks", action="store_true", help="a seed-ensemble run: the first k networks and each alone, mixture and log-pool")
    args = ap.parse_args(argv)
    print("command: python -m bench.posthoc_real " + " ".join(sys.argv[1:] if argv is None else argv))
    if args.networks:
        return networks(args.dataset, args.config)
    if args.ladder:
        return ladder(args.dataset, args.ladder.split(","))
    d = load_saved(args.dataset, args.config)
    classes = d["classes"]
    prior = label_prior(d["train_y"], classes)
    P = {"val": (d["val_transformer"], d["val_linear"]), "test": (d["test_transformer"], d["test_linear"])}
    ys = {"val": d["val_y"], "test": d["test_y"]}

    def ens(w, tau=0.0, only=None):
        def make(split):
            t, lin = P[split]
            p = t if only == "transformer" else lin if only == "linear" else w * t + (1 - w) * lin
            return apply_prior_correction(p, prior, tau)
        return make

    rows = []
    lin = ens(0.0, only="linear")
    rows.append(("linear", "-", lin))
    rows.append(("transformer", "-", ens(1.0, only="transformer")))
    (w,), make = choose(ys["val"], classes, [((w,), ens(w)) for w in WEIGHTS])
    rows.append(("ensemble", f"w={w:.2f}", make))
    (tau,), make = choose(ys["val"], classes, [((t,), ens(0.0, t, only="linear")) for t in TAUS])
    rows.append(("linear + prior correction", f"tau={tau:.1f}", make))
    (tau2,), make = choose(ys["val"], classes, [((t,), ens(w, t)) for t in TAUS])
    rows.append(("ensemble + prior correction", f"w={w:.2f}, then tau={tau2:.1f}", make))
    # As TransformerTextClassifier(ensemble_linear=True, prior_correction=True) does, with its own functions:
    # the weight by log-likelihood, then tau by accuracy + macro-F1.
    w_p = fit_blend_weight(d["val_transformer"], d["val_linear"], np.searchsorted(classes, ys["val"]))
    tau_p = fit_prior_correction(ens(w_p)("val"), np.searchsorted(classes, ys["val"]), prior)
    rows.append(("the product's: ensemble (log-likelihood weight) + prior correction", f"w={w_p:.2f}, then tau={tau_p:.1f}", ens(w_p, tau_p)))
    (w3, tau3), make = choose(ys["val"], classes, [((w, t), ens(w, t)) for w in WEIGHTS for t in TAUS])
    rows.append(("ensemble + prior correction, chosen jointly", f"w={w3:.2f}, tau={tau3:.1f}", make))

    base_acc, base_f1 = scores(ys["test"], lin("test"), classes)
    print(f"\n{args.dataset} / {args.config}: {len(ys['val'])} validation rows (choices), {len(ys['test'])} test rows (scores), {len(classes)} labels")
    print("| probabilities | chosen on validation | test accuracy | test macro-F1 | vs linear (points) |")
    print("| --- | --- | --- | --- | --- |")
    for name, setting, make in rows:
        acc, f1 = scores(ys["test"], make("test"), classes)
        print(f"| {name} | {setting} | {acc:.3f} | {f1:.3f} | {100 * (acc - base_acc):+.1f} / {100 * (f1 - base_f1):+.1f} |")


if __name__ == "__main__":
    main()
