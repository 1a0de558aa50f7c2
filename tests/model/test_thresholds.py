"""The router's thresholds: the 110 threshold reaches the recall target, counting the danger override."""
from __future__ import annotations

import numpy as np

from data.taxonomy import default_taxonomy
from model.thresholds import choose_thresholds, danger_mask, decide

TAX = default_taxonomy()
CLASSES = ["police_criminal", "utilities"]  # one 110 and one 12345 department


def proba(p110):
    p = np.asarray(p110, dtype=float)
    return np.column_stack([p, 1 - p])


def test_model_alone_threshold_catches_the_target_share_of_110_rows():
    # 10 true 110 rows with P(110) 0.05..0.95 and 10 12345 rows at 0.02..0.4
    p110 = np.r_[np.linspace(0.05, 0.95, 10), np.linspace(0.02, 0.4, 10)]
    y = ["police_criminal"] * 10 + ["utilities"] * 10
    t = choose_thresholds(proba(p110), CLASSES, y, TAX, target_110_recall=0.9)
    assert t["channel_110"] == round(np.linspace(0.05, 0.95, 10)[1], 6)  # one miss of ten allowed
    assert t["validation_110_recall"] == 0.9 and t["override_counted"] is False


def test_rows_the_override_forces_do_not_pull_the_threshold_down():
    """The two least confident 110 rows are danger calls: the override catches them, so the model's
    threshold can rise, fewer 12345 calls go to 110, and the router still reaches the recall."""
    p110 = np.r_[np.linspace(0.05, 0.95, 10), np.linspace(0.02, 0.4, 10)]
    y = ["police_criminal"] * 10 + ["utilities"] * 10
    forced = np.zeros(20, dtype=bool)
    forced[[0, 1]] = True
    alone = choose_thresholds(proba(p110), CLASSES, y, TAX, target_110_recall=1.0)
    counted = choose_thresholds(proba(p110), CLASSES, y, TAX, target_110_recall=1.0, forced_110=forced)
    assert alone["channel_110"] == 0.05 and counted["channel_110"] == round(np.linspace(0.05, 0.95, 10)[2], 6)
    assert counted["validation_110_recall"] == 1.0 and counted["validation_110_forced_by_override"] == 2
    sent = lambda t: int((decide(proba(p110), CLASSES, TAX, t["channel_110"])[0][10:] == "110").sum())
    assert sent(counted) < sent(alone)
    # Never above 0.5, even when the override catches every 110 row.
    assert choose_thresholds(proba(p110), CLASSES, y, TAX, forced_110=[True] * 10 + [False] * 10)["channel_110"] == 0.5


def test_danger_mask_is_the_routers_override():
    texts = ["三楼厨房着火了，有浓烟", "家里停水了，什么时候来水", "车子剐蹭了一下，没有人受伤", "有人拿刀砍人"]
    assert danger_mask(texts).tolist() == [True, False, False, True]
