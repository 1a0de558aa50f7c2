"""Choose the router's thresholds on validation predictions (never on the data a model was fit on).

Two thresholds, both stored with the model:

- ``channel_110``: route to 110 when P(110) = Σ P(department) over 110 departments is at least this.
  Chosen so that the expected 110 recall on new calls reaches the target (default 0.99;
  :func:`recall_threshold`), never above 0.5: missing an emergency costs more than a transfer. The model alone must
  reach it (counting the danger override's catches was measured and rejected: bench/README.md).
- ``review``: a decision whose confidence is below this goes to supervisor review. Chosen as the
  smallest value at which the accepted decisions reach the target accuracy on validation data, but
  never above the value that would send more than ``review_budget`` of the calls to review (a queue
  that holds two calls in three is no queue). ``confidence_quantiles`` (101 values) let a server set
  another budget without retraining (:func:`review_threshold_for_budget`).

:func:`operating_points` tabulates what other choices would give, so that a city picks its own.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from data.taxonomy import Taxonomy


def is_110(classes: Sequence[str], taxonomy: Taxonomy) -> np.ndarray:
    """Per class: is it a 110 department of ``taxonomy`` (bool, shape (n_classes,))."""
    return np.array([taxonomy.channel_of(c) == "110" if c in taxonomy else False for c in classes], dtype=bool)


def channel_110_probability(proba: np.ndarray, classes: Sequence[str], taxonomy: Taxonomy, is110: np.ndarray | None = None) -> np.ndarray:
    """P(110) per row, shape (n,), from department probabilities ``proba`` (n, n_classes).
    ``is110``: :func:`is_110` of ``classes`` when already computed."""
    mask = is_110(classes, taxonomy) if is110 is None else is110
    return proba[:, mask].sum(axis=1) if mask.any() else np.zeros(len(proba))


def decide(proba: np.ndarray, classes: Sequence[str], taxonomy: Taxonomy, channel_110: float, is110: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Apply the channel threshold. Returns (channel, department, department confidence, P(110)),
    each of shape (n,). ``is110``: :func:`is_110` of ``classes`` when already computed.

    - P(110) at or above ``channel_110``: the most probable department overall, and its channel.
      Where P(110) ≥ 0.5 and that department is a 110 one, the line is clear (a transfer). Where
      P(110) < 0.5 (110 only for the recall target's sake), or P(110) ≥ 0.5 spread over several 110
      departments while the single most probable department is a 12345 one, the line is unclear and
      the router asks for a three-way consult (:func:`unclear_line`). Suggesting the most probable 110
      department there instead cost the Haikou tickets accuracy (bench/README.md, stops 16 and 18);
    - below ``channel_110``: the most probable 12345 department.
    """
    classes = np.asarray(classes)
    is110 = is_110(classes, taxonomy) if is110 is None else is110
    p110 = channel_110_probability(proba, classes, taxonomy, is110)
    masked = proba.copy()
    if is110.any() and (~is110).any():
        masked[np.ix_(p110 < channel_110, is110)] = -1.0
    dep_idx = masked.argmax(axis=1)
    chan = np.where(is110[dep_idx], "110", "12345")
    return chan, classes[dep_idx], proba[np.arange(len(proba)), dep_idx], p110


def unclear_line(p110: np.ndarray | float, channel: np.ndarray | str, channel_110: float) -> np.ndarray | bool:
    """Where :func:`decide`'s answer is a three-way consult: P(110) reaches ``channel_110`` but either
    stays below 0.5, or the suggested department (the most probable overall) is a 12345 one."""
    p110 = np.asarray(p110)
    return (p110 >= channel_110) & ((p110 < 0.5) | (np.asarray(channel) != "110"))


def recall_threshold(p110_of_110_rows: np.ndarray, target: float) -> float:
    """The 110 threshold from the P(110) of the validation rows that are 110 calls, shape (n,): their j-th
    lowest, j = floor((1 − target)·(n + 1)), at least 1; capped at 0.5, at least 0.001.

    A new 110 call exchangeable with the n validation ones falls below their j-th lowest with probability
    j / (n + 1) ≤ 1 − target, so the expected 110 recall on new calls is at least the target (split
    conformal). The earlier rule (miss floor((1 − target)·n) of the n) fell short by about 1 / (n + 1): on
    369 validation tickets, the transformer's held-out 10% of Haikou's, its mean recall on the test tickets
    was 0.980 (bench/README.md, ``python -m bench.threshold_estimators``). With fewer than
    1 / (1 − target) − 1 rows no threshold guarantees the target; every validation 110 call is caught.

    >>> scores = np.arange(1, 101) / 200  # 0.005 … 0.5
    >>> recall_threshold(scores, 0.99), recall_threshold(scores, 0.9)  # j = floor(0.01 · 101) = 1; floor(0.1 · 101) = 10
    (0.005, 0.05)
    """
    scores = np.sort(np.asarray(p110_of_110_rows, dtype=float))
    if not len(scores):
        return 0.5
    j = max(1, int(np.floor((1 - target) * (len(scores) + 1) + 1e-9)))
    return float(max(min(0.5, scores[min(j, len(scores)) - 1]), 1e-3))


def choose_thresholds(
    proba: np.ndarray,
    classes: Sequence[str],
    y_true: Sequence[str],
    taxonomy: Taxonomy,
    target_110_recall: float = 0.99,
    target_auto_accuracy: float = 0.95,
    review_budget: float | None = None,
) -> dict:
    """Pick ``channel_110`` and ``review`` from validation predictions.

    Parameters
    ----------
    proba : ndarray (n_val, n_classes)
        Out-of-sample probabilities, columns in ``classes`` order.
    y_true : sequence of str, length n_val
        True departments.
    review_budget : float in (0, 1], optional
        At most this share of the validation rows may fall below the review threshold. None: no cap.

    Returns
    -------
    dict with ``channel_110``, ``review`` and what they achieved on the validation rows.
    """
    y_true = np.asarray(y_true)
    p110 = channel_110_probability(proba, classes, taxonomy)
    true110 = np.array([taxonomy.channel_of(y) == "110" for y in y_true])
    out: dict = {"target_110_recall": target_110_recall, "target_auto_accuracy": target_auto_accuracy, "n_validation": int(len(y_true))}
    if true110.any() and (~true110).any():
        t = recall_threshold(p110[true110], target_110_recall)
        pred110 = p110 >= t
        out["channel_110"] = round(t, 6)
        out["validation_110_recall"] = round(float(pred110[true110].mean()), 4)
        out["validation_110_precision"] = round(float(true110[pred110].mean()) if pred110.any() else 0.0, 4)
    else:
        out["channel_110"] = 0.5
    chan, dep, conf, _ = decide(proba, classes, taxonomy, out["channel_110"])  # the model's own decisions (review threshold)
    correct = dep == y_true
    order = np.argsort(-conf)
    cum_acc = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    ok = np.where(cum_acc >= target_auto_accuracy)[0]
    review = float(conf[order][ok.max()]) if len(ok) else 1.0
    out["review_by_accuracy"] = round(review, 6)
    out["confidence_quantiles"] = [round(float(q), 6) for q in np.quantile(conf, np.linspace(0, 1, 101))]
    if review_budget is not None:
        out["review_budget"] = review_budget
        review = min(review, review_threshold_for_budget(out["confidence_quantiles"], review_budget))
    out["review"] = round(review, 6)
    accepted = conf >= review
    out["validation_review_rate"] = round(float(1 - accepted.mean()), 4)
    out["validation_accuracy_accepted"] = round(float(correct[accepted].mean()) if accepted.any() else 0.0, 4)
    return out


def review_threshold_for_budget(quantiles: Sequence[float], budget: float) -> float:
    """The review threshold that sends about ``budget`` (a share in [0, 1]) of the calls to review,
    from the validation confidence quantiles (101 values, 0th to 100th percentile)."""
    if not 0 <= budget <= 1:
        raise ValueError(f"a review budget is a share of calls in [0, 1], got {budget}")
    q = np.asarray(quantiles, dtype=float)
    return float(np.interp(budget * 100, np.arange(len(q)) * (100 / (len(q) - 1)), q))


def operating_points(
    proba: np.ndarray, classes: Sequence[str], y_true: Sequence[str], taxonomy: Taxonomy,
    channel_110: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5), review_budgets: Sequence[float] = (0.05, 0.1, 0.15, 0.2, 0.3),
    chosen: dict | None = None,
) -> dict:
    """What other thresholds would give on validation predictions (out-of-fold, model only).

    Returns
    -------
    dict with ``channel`` (one row per 110 threshold: ``channel_110``, ``recall_110`` (110 calls that
    reach 110: transferred, or in a three-way consult), ``sent_to_110_12345`` (12345 calls that
    reach 110: count), ``share_12345_sent_to_110``, ``consult_share`` (calls whose line is unclear: :func:`unclear_line`)) and ``review``
    (one row per review budget: ``budget``, ``threshold``, ``review_rate``, ``accuracy_accepted``). The
    thresholds in ``chosen`` (as from :func:`choose_thresholds`) are added as rows of their own.
    """
    y_true = np.asarray(y_true)
    p110 = channel_110_probability(proba, classes, taxonomy)
    true110 = np.array([taxonomy.channel_of(y) == "110" if y in taxonomy else False for y in y_true])
    ts = sorted(set(channel_110) | ({chosen["channel_110"]} if chosen and "channel_110" in chosen else set()))
    chan_rows = []
    for t in ts:
        pred = p110 >= t
        chan_rows.append({
            "channel_110": round(float(t), 4),
            "recall_110": round(float(pred[true110].mean()), 4) if true110.any() else None,
            "sent_to_110_12345": int((pred & ~true110).sum()),
            "share_12345_sent_to_110": round(float(pred[~true110].mean()), 4) if (~true110).any() else None,
            "consult_share": round(float(np.mean(unclear_line(p110, decide(proba, classes, taxonomy, t)[0], t))), 4),
        })
    t110 = chosen["channel_110"] if chosen and "channel_110" in chosen else 0.5
    _, dep, conf, _ = decide(proba, classes, taxonomy, t110)
    correct = dep == y_true
    quantiles = np.quantile(conf, np.linspace(0, 1, 101))
    budgets = sorted(set(review_budgets))
    rows = [(b, review_threshold_for_budget(quantiles, b)) for b in budgets]
    if chosen and "review" in chosen:
        rows.append((None, chosen["review"]))
    review_rows = []
    for b, thr in rows:
        acc = conf >= thr
        review_rows.append({
            "budget": b, "threshold": round(float(thr), 4), "review_rate": round(float(1 - acc.mean()), 4),
            "accuracy_accepted": round(float(correct[acc].mean()), 4) if acc.any() else None,
        })
    return {"channel": chan_rows, "review": review_rows, "chosen_channel_110": t110}


def operating_points_table(points: dict) -> str:
    """The trade-off as two Markdown tables (printed by training and written into the model card)."""
    lines = ["| P(110) threshold | 110 recall (transfer or consult) | 12345 calls reaching 110 | share of 12345 reaching 110 | three-way consults (all calls) |",
             "| --- | --- | --- | --- | --- |"]
    for r in points["channel"]:
        mark = " (chosen)" if r["channel_110"] == round(points["chosen_channel_110"], 4) else ""
        lines.append(f"| {r['channel_110']:.4f}{mark} | {_pct(r['recall_110'])} | {r['sent_to_110_12345']} | {_pct(r['share_12345_sent_to_110'])} | {_pct(r['consult_share'])} |")
    lines += ["", "| review budget | confidence threshold | review rate | accuracy of what is not reviewed |", "| --- | --- | --- | --- |"]
    for r in points["review"]:
        name = "chosen" if r["budget"] is None else f"{r['budget']:.0%}"
        lines.append(f"| {name} | {r['threshold']:.4f} | {_pct(r['review_rate'])} | {_pct(r['accuracy_accepted'])} |")
    return "\n".join(lines)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"

