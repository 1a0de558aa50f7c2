"""The shipped corpus keeps its own contract (data/corpus/README.md)."""
from collections import Counter

import pytest

from data.cleaning import dedup_key
from data.corpus import FIELDS, NEAR_DUPLICATE_JACCARD, STYLES, TEST_PATH, TRAIN_PATH, read_jsonl
from data.splitting import max_overlap
from data.taxonomy import default_taxonomy


@pytest.fixture(scope="module")
def splits():
    return read_jsonl(TRAIN_PATH), read_jsonl(TEST_PATH)


def test_schema_and_labels(splits):
    tax = default_taxonomy()
    for row in splits[0] + splits[1]:
        assert set(row) == set(FIELDS), row["id"]
        assert row["text"].strip() and row["department"] in tax, row["id"]
        assert row["channel"] == tax.channel_of(row["department"]), row["id"]
        assert row["style"] in STYLES and isinstance(row["hard"], bool) and row["source"].startswith("authored-llm/")


def test_counts(splits):
    rows = splits[0] + splits[1]
    assert len(rows) >= 4000
    per_dept = Counter(r["department"] for r in rows)
    assert set(per_dept) == set(default_taxonomy().codes)
    assert min(per_dept.values()) >= 120, per_dept.most_common()[-3:]
    share_110 = sum(r["channel"] == "110" for r in rows) / len(rows)
    assert 0.35 <= share_110 <= 0.47
    assert sum(r["hard"] for r in rows) / len(rows) >= 0.30
    assert 0.17 <= len(splits[1]) / len(rows) <= 0.23


def test_ids_and_texts_unique_and_no_leak_across_splits(splits):
    train, test = splits
    ids = [r["id"] for r in train + test]
    assert len(ids) == len(set(ids))
    train_keys = Counter(dedup_key(r["text"]) for r in train)
    test_keys = Counter(dedup_key(r["text"]) for r in test)
    assert max(train_keys.values()) == 1 and max(test_keys.values()) == 1
    assert not set(train_keys) & set(test_keys)


def test_no_near_duplicates_across_splits(splits):
    train, test = splits
    overlap = max_overlap([r["text"] for r in test], [r["text"] for r in train])
    assert overlap.max() < NEAR_DUPLICATE_JACCARD
