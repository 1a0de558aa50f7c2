"""Metrics for routing decisions. 110 recall comes first: missing an emergency is the costliest error.

All functions take plain sequences of labels; none of them look at how a decision was made.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from data.taxonomy import Taxonomy


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> float:
    """ECE: mean |accuracy − confidence| over equal-width confidence bins, weighted by bin size."""
    conf = np.asarray(confidence, dtype=float)
    corr = np.asarray(correct, dtype=float)
    if len(conf) == 0:
        return 0.0
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            ece += sel.mean() * abs(corr[sel].mean() - conf[sel].mean())
    return float(ece)


def coverage_curve(confidence: Sequence[float], correct: Sequence[bool], points: int = 11) -> list[dict]:
    """Accuracy of the decisions kept when the least confident are sent to review.

    Returns a list of {coverage, threshold, accuracy} for coverage 1.0, 0.9, … (``points`` values).
    """
    conf = np.asarray(confidence, dtype=float)
    corr = np.asarray(correct, dtype=bool)
    order = np.argsort(-conf)
    out = []
    for cov in np.linspace(1.0, 0.5, points):
        k = max(1, int(round(cov * len(conf))))
        kept = order[:k]
        out.append({"coverage": round(float(cov), 3), "threshold": round(float(conf[kept].min()), 4), "accuracy": round(float(corr[kept].mean()), 4)})
    return out


def routing_metrics(
    true_departments: Sequence[str],
    pred_departments: Sequence[str],
    pred_channels: Sequence[str],
    confidence: Sequence[float],
    taxonomy: Taxonomy,
    needs_review: Sequence[bool] | None = None,
    true_channels: Sequence[str] | None = None,
    reached_110: Sequence[bool] | None = None,
) -> dict:
    """Channel and department metrics for one set of decisions.

    Parameters
    ----------
    true_departments, pred_departments, pred_channels : sequences of str, length n
    confidence : sequence of float, length n
        Probability the router gave its department.
    true_channels : sequence of str, optional
        Defaults to the taxonomy's channel of each true department.
    reached_110 : sequence of bool, optional
        Calls that reach 110: transferred there, or 110 brought into a three-way consult (三方通话,
        where 110 hears the caller and acts first on danger). Defaults to ``pred_channels == "110"``.

    110 recall is the share of 110 calls that reach 110 (``110_recall``); ``110_recall_transferred``
    counts transfers only. The two differ by the consults on 110 calls.

    Returns
    -------
    dict: ``channel`` (110_recall, 110_precision, accuracy, f1_110), ``department`` (accuracy,
    macro_f1, per_class), ``ece``, ``coverage``, ``review`` and ``misrouted_110`` (row indices).
    """
    y = np.asarray([str(v) for v in true_departments])
    p = np.asarray([str(v) for v in pred_departments])
    pc = np.asarray([str(v) for v in pred_channels])
    yc = np.asarray(true_channels if true_channels is not None else [taxonomy.channel_of(d) if d in taxonomy else "12345" for d in y])
    conf = np.asarray(confidence, dtype=float)
    n = len(y)
    is110 = yc == "110"
    pred110 = pc == "110"
    reached = pred110 if reached_110 is None else (np.asarray(reached_110, dtype=bool) | pred110)
    chan = {
        "110_recall": round(float(reached[is110].mean()), 4) if is110.any() else None,
        "110_recall_transferred": round(float(pred110[is110].mean()), 4) if is110.any() else None,
        "110_precision": round(float(is110[pred110].mean()), 4) if pred110.any() else None,
        "accuracy": round(float((pc == yc).mean()), 4) if n else None,
        "n_110": int(is110.sum()),
        "n_12345": int((~is110).sum()),
        "missed_110": int((is110 & ~reached).sum()),
        "false_110": int((~is110 & pred110).sum()),
    }
    if is110.any() and (~is110).any():
        chan["f1_110"] = round(float(f1_score(is110, pred110)), 4)
    labels = sorted(set(y) | set(p))
    prec, rec, f1, sup = precision_recall_fscore_support(y, p, labels=labels, zero_division=0)
    per_class = {
        l: {"precision": round(float(a), 4), "recall": round(float(b), 4), "f1": round(float(c), 4), "support": int(s)}
        for l, a, b, c, s in zip(labels, prec, rec, f1, sup)
    }
    present = sorted(set(y))
    dept = {
        "accuracy": round(float(accuracy_score(y, p)), 4) if n else None,
        "macro_f1": round(float(f1_score(y, p, labels=present, average="macro", zero_division=0)), 4) if n else None,
        "per_class": per_class,
    }
    correct = p == y
    out = {
        "n": int(n),
        "channel": chan,
        "department": dept,
        "ece": round(expected_calibration_error(conf, correct), 4),
        "coverage": coverage_curve(conf, correct) if n else [],
        "misrouted_110": [int(i) for i in np.where(is110 & ~reached)[0]],
    }
    if needs_review is not None:
        nr = np.asarray(needs_review, dtype=bool)
        out["review"] = {
            "rate": round(float(nr.mean()), 4) if n else None,
            "accuracy_accepted": round(float(correct[~nr].mean()), 4) if (~nr).any() else None,
            "accuracy_reviewed": round(float(correct[nr].mean()), 4) if nr.any() else None,
        }
    return out


def summary_line(m: dict) -> str:
    """One line for logs and tables: 110 recall first."""
    c, d = m["channel"], m["department"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    return (
        f"110 recall {fmt(c['110_recall'])} (transferred {fmt(c.get('110_recall_transferred'))}) · 110 precision {fmt(c['110_precision'])} · channel acc {fmt(c['accuracy'])} · "
        f"department acc {fmt(d['accuracy'])} · macro-F1 {fmt(d['macro_f1'])} · ECE {m['ece']:.3f} (n={m['n']})"
    )


__all__ = ["routing_metrics", "expected_calibration_error", "coverage_curve", "summary_line"]
