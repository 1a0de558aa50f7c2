"""The blind hard set (data/hardset/): a test file, well-formed and never part of training."""
from __future__ import annotations

import json
from collections import Counter

from data.cleaning import dedup_key
from data.corpus import TEST_PATH, TRAIN_PATH
from data.taxonomy import default_taxonomy

import pytest

from data.corpus import HARDSET_DIR


@pytest.mark.parametrize("name, at_least", [("near_the_line.jsonl", 300), ("near_the_line_v2.jsonl", 300), ("near_the_line_v3.jsonl", 300),
                                            ("near_the_line_v4.jsonl", 190), ("near_the_line_v5.jsonl", 160),
                                            ("near_the_line_v6.jsonl", 120), ("near_the_line_v7.jsonl", 240), ("near_the_line_v8.jsonl", 200), ("near_the_line_v9.jsonl", 200), ("near_the_line_v10.jsonl", 200), ("near_the_line_v11.jsonl", 120),
                                            ("near_the_line_v12.jsonl", 240), ("near_the_line_v13.jsonl", 180),
                                            ("near_the_line_v14.jsonl", 200), ("near_the_line_v15.jsonl", 200),
                                            ("near_the_line_v16.jsonl", 200), ("near_the_line_v17.jsonl", 200),
                                            ("near_the_line_v18.jsonl", 200), ("near_the_line_v19.jsonl", 200)])
def test_the_hard_set_is_well_formed_and_apart_from_the_corpus(name, at_least):
    rows = [json.loads(line) for line in (HARDSET_DIR / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    tax = default_taxonomy()
    assert len(rows) >= at_least and len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert set(r) - {"pair"} == {"id", "text", "channel", "department", "emergency", "family", "slice"}, r["id"]
        assert tax.channel_of(r["department"]) == r["channel"], r["id"]
        assert not (r["emergency"] and r["channel"] != "110"), r["id"]
    corpus = {dedup_key(json.loads(l)["text"]) for p in (TRAIN_PATH, TEST_PATH) for l in p.read_text(encoding="utf-8").splitlines() if l.strip()}
    assert not corpus & {dedup_key(r["text"]) for r in rows}
    pairs = Counter(r["pair"] for r in rows if "pair" in r)
    if pairs:  # sets of twins (v12-v19): each pair one emergency and its calm twin, in the same slice
        assert set(pairs.values()) == {2} and sum(pairs.values()) == len(rows)
        for p in pairs:
            twins = [r for r in rows if r.get("pair") == p]
            assert sorted(r["emergency"] for r in twins) == [False, True] and twins[0]["slice"] == twins[1]["slice"], p
    elif name != "near_the_line_v11.jsonl":  # two-matter calls: 70 are 110 by design (either matter makes it 110)
        assert abs(sum(r["channel"] == "110" for r in rows) - sum(r["channel"] == "12345" for r in rows)) <= 0.03 * len(rows)  # about balanced
