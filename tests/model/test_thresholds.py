"""The router's thresholds: the 110 threshold reaches the recall target with the model alone."""
from __future__ import annotations

import numpy as np
import pytest

from data.taxonomy import default_taxonomy
from model.thresholds import choose_thresholds, decide, operating_points, operating_points_table, review_threshold_for_budget, unclear_line

TAX = default_taxonomy()
CLASSES = ["police_criminal", "utilities"]  # one 110 and one 12345 department


def proba(p110):
    p = np.asarray(p110, dtype=float)
    return np.column_stack([p, 1 - p])


def test_model_alone_threshold_catches_the_target_share_of_110_rows():
    # 19 true 110 rows with P(110) 0.05..0.95 and 10 12345 rows at 0.02..0.4: j = floor(0.1 · 20) = 2
    p110 = np.r_[np.linspace(0.05, 0.95, 19), np.linspace(0.02, 0.4, 10)]
    y = ["police_criminal"] * 19 + ["utilities"] * 10
    t = choose_thresholds(proba(p110), CLASSES, y, TAX, target_110_recall=0.9)
    assert t["channel_110"] == round(np.linspace(0.05, 0.95, 19)[1], 6)  # one miss of 19 on validation
    assert t["validation_110_recall"] == round(18 / 19, 4)


@pytest.mark.parametrize("n", [20, 50, 108, 300])
def test_expected_110_recall_on_new_calls_meets_the_target(n):
    """With validation P(110) of 110 calls drawn uniform on [0, 0.5], a new 110 call is missed with probability
    2·t: averaged over many validation draws it stays within the target, whatever the validation size. The
    earlier rule (miss floor((1 − target)·n) on validation) fell short by about 1 / (n + 1)."""
    from model.thresholds import recall_threshold

    rng = np.random.default_rng(n)
    target = 0.95
    miss = np.mean([2 * recall_threshold(rng.uniform(0, 0.5, n), target) for _ in range(4000)])
    assert miss <= 1 - target + 0.002
    old_rule = np.mean([2 * np.sort(rng.uniform(0, 0.5, n))[int(np.floor((1 - target) * n))] for _ in range(4000)])
    assert old_rule > 1 - target + 0.002  # the shortfall this rule fixes


def test_decide_suggests_the_most_probable_department_where_the_line_is_unclear():
    classes = ["police_criminal", "police_public_order", "utilities", "convenience"]
    pr = np.array([[0.6, 0.2, 0.1, 0.1],    # P(110) 0.8: a 110 department
                   [0.2, 0.15, 0.5, 0.15],  # P(110) 0.35, between the threshold and 0.5: the most probable overall
                   [0.3, 0.15, 0.25, 0.3],  # P(110) 0.45: the most probable is a 110 department, then 110
                   [0.1, 0.05, 0.5, 0.35]]) # P(110) 0.15, below the threshold: a 12345 department
    chan, dep, conf, p = decide(pr, classes, TAX, 0.3)
    assert list(dep) == ["police_criminal", "utilities", "police_criminal", "utilities"]
    assert list(chan) == ["110", "12345", "110", "12345"] and list(conf) == [0.6, 0.5, 0.3, 0.5]


def test_a_review_budget_caps_the_share_of_calls_sent_to_review():
    rng = np.random.default_rng(0)
    n = 400
    y = np.array(["police_criminal", "utilities"] * (n // 2))
    p = rng.uniform(0.3, 0.7, n)  # an uncertain model: the accuracy target alone reviews most calls
    pr = np.column_stack([p, 1 - p])
    by_accuracy = choose_thresholds(pr, ["police_criminal", "utilities"], y, default_taxonomy(), target_auto_accuracy=0.95)
    assert by_accuracy["validation_review_rate"] > 0.5
    capped = choose_thresholds(pr, ["police_criminal", "utilities"], y, default_taxonomy(), target_auto_accuracy=0.95, review_budget=0.15)
    assert capped["validation_review_rate"] <= 0.16 and capped["review"] < by_accuracy["review"]
    assert capped["review_by_accuracy"] == by_accuracy["review"] and len(capped["confidence_quantiles"]) == 101
    # A server can set another budget from the stored quantiles.
    t = review_threshold_for_budget(capped["confidence_quantiles"], 0.3)
    _, _, conf, _ = decide(pr, ["police_criminal", "utilities"], default_taxonomy(), capped["channel_110"])
    assert abs(float(np.mean(conf < t)) - 0.3) < 0.02
    with pytest.raises(ValueError):
        review_threshold_for_budget(capped["confidence_quantiles"], 1.5)


def test_operating_points_show_the_trade_off_and_the_chosen_row():
    rng = np.random.default_rng(1)
    y = np.array(["police_criminal"] * 100 + ["utilities"] * 300)
    p = np.clip(np.where(y == "police_criminal", rng.normal(0.7, 0.2, 400), rng.normal(0.3, 0.2, 400)), 0.01, 0.99)
    pr = np.column_stack([p, 1 - p])
    chosen = choose_thresholds(pr, ["police_criminal", "utilities"], y, default_taxonomy(), review_budget=0.15)
    points = operating_points(pr, ["police_criminal", "utilities"], y, default_taxonomy(), chosen=chosen)
    rows = points["channel"]
    assert [r["channel_110"] for r in rows] == sorted(r["channel_110"] for r in rows)
    assert all(a["recall_110"] >= b["recall_110"] and a["sent_to_110_12345"] >= b["sent_to_110_12345"] for a, b in zip(rows, rows[1:]))
    assert round(chosen["channel_110"], 4) in [r["channel_110"] for r in rows]
    table = operating_points_table(points)
    assert "(chosen)" in table and "review budget" in table and "| 15% |" in table


def test_p110_split_over_110_departments_with_a_12345_department_on_top_is_an_unclear_line():
    # P(110) 0.58, split 0.30 / 0.28 over two 110 departments, while a 12345 department alone has 0.34.
    classes = ["police_criminal", "police_public_order", "civil_affairs", "convenience"]
    pr = np.array([[0.30, 0.28, 0.34, 0.08],   # split: the 12345 department, a consult
                   [0.40, 0.18, 0.34, 0.08]])  # the same P(110), a 110 department on top: a clear 110 call
    chan, dep, conf, p = decide(pr, classes, TAX, 0.2)
    assert list(dep) == ["civil_affairs", "police_criminal"] and list(chan) == ["12345", "110"]
    assert list(unclear_line(p, chan, 0.2)) == [True, False]
    assert not unclear_line(0.1, "12345", 0.2) and unclear_line(0.3, "110", 0.2)  # below the threshold / below 0.5


class _FixedProba:
    """A classifier stub answering fixed probabilities (columns in ``classes_`` order) for every text."""

    fast_inference = True
    model_class = "linear"  # model.protocols.RoutingClassifier

    def __init__(self, classes, row):
        self.classes_ = np.array(classes)
        self.row = np.asarray(row, dtype=float)

    def predict_proba_with_features(self, texts):
        return np.tile(self.row, (len(texts), 1)), None

    def explain(self, text, department, top_k=5, **kw):
        return []


def test_the_router_consults_110_on_a_split_line_and_suggests_the_12345_department():
    from model.artifacts import TrainedModel
    from model.router import Router

    classes = ["police_criminal", "police_public_order", "civil_affairs", "convenience"]
    model = TrainedModel(_FixedProba(classes, [0.30, 0.28, 0.34, 0.08]), TAX, {"channel_110": 0.2, "review": 0.5}, version="stub")
    d = Router(model).route("想问一下户口本上的名字写错了怎么改")  # no danger evidence
    assert (d.action, d.channel, d.department) == ("consult", "12345", "civil_affairs")
    assert any("三方通话" in r and "分散" in r for r in d.reasons), d.reasons
    model = TrainedModel(_FixedProba(classes, [0.40, 0.18, 0.34, 0.08]), TAX, {"channel_110": 0.2, "review": 0.3}, version="stub")
    d = Router(model).route("想问一下户口本上的名字写错了怎么改")
    assert (d.action, d.channel, d.department) == ("route", "110", "police_criminal")
