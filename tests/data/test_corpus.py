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
    # 20% at the build; `hotline corpus extend` adds training rows only, so the fixed test split's share falls
    # with each batch (15% after the figures batch of stop 23): what must hold is its size.
    assert len(splits[1]) >= 900 and 0.12 <= len(splits[1]) / len(rows) <= 0.23


# A platform's wording, not a matter: 12345's tickets (诉求, 请相关部门, 来电人反映, 市民来电) and 110's
# records (要求民警, 民警到场). A batch that writes one line in one wording only turns the wording into a
# label (the first platform batch made 诉求 110's; data/corpus/README.md). Police words are the same:
# a 12345 ticket asks how to get back a car the 交警 impounded (交警 was 58 of 61 rows on 110 before the
# police-words batch).
PLATFORM_WORDING = ("诉求", "请相关部门", "来电人反映", "市民来电", "要求民警", "民警到场", "交警", "报警", "派出所")


@pytest.mark.parametrize("marker", PLATFORM_WORDING)
def test_a_platforms_wording_is_on_both_lines(splits, marker):
    channels = Counter(r["channel"] for r in splits[0] if marker in r["text"])
    assert sum(channels.values()) >= 40, channels
    assert max(channels.values()) / sum(channels.values()) <= 0.85, channels


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


def _slice(path, rows):
    import json

    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _row(text, department, channel, style="short", hard=False):
    return {"text": text, "channel": channel, "department": department, "style": style, "hard": hard}


SMALL = [("小区路灯坏了一个月没人修", "urban_construction", "12345"), ("楼下烧烤油烟太大熏得开不了窗", "urban_construction", "12345"),
         ("公交司机开车打电话很危险", "urban_construction", "12345"), ("幼儿园乱收兴趣班费用", "urban_construction", "12345"),
         ("两伙人在夜市门口拿着棍子打架", "police_public_order", "110"), ("电动车刚被人剪锁偷走了", "police_public_order", "110"),
         ("十字路口两车相撞有人受伤", "police_public_order", "110"), ("仓库冒出浓烟火苗窜上屋顶", "police_public_order", "110")]


def _small_corpus(path):
    """A corpus folder built by build_corpus from eight unrelated rows (two in the test split)."""
    from data.corpus import build_corpus

    build_corpus([_slice(path / "s1.jsonl", [_row(*r, style="third_person") for r in SMALL])], out_dir=path, test_size=0.25)


def test_extend_train_adds_to_train_only_and_drops_test_twins(tmp_path):
    import json

    from data.corpus import extend_train

    _small_corpus(tmp_path)
    train, test = read_jsonl(tmp_path / "train.jsonl"), read_jsonl(tmp_path / "test.jsonl")
    test_before = (tmp_path / "test.jsonl").read_bytes()
    twin = test[0]["text"] + "啊"  # a near-duplicate of a test row (3-gram Jaccard well above 0.5)
    new = _slice(tmp_path / "s9_short.jsonl", [
        _row("钥匙锁屋里了", "convenience", "12345"),
        _row("孩子被反锁在车里,太阳很晒", "police_rescue", "110", hard=True),
        _row(train[0]["text"], train[0]["department"], train[0]["channel"]),  # exact duplicate of a train row
        _row(twin, test[0]["department"], test[0]["channel"]),
        _row("钥匙锁屋里了", "convenience", "12345"),  # duplicate within the new slice
    ])
    (tmp_path / "hardset").mkdir()
    (tmp_path / "hardset" / "blind.jsonl").write_text(json.dumps({"text": "有人在桥上要跳河,快来"}, ensure_ascii=False) + "\n", encoding="utf-8")
    new = _slice(tmp_path / "s9_short.jsonl", [*read_jsonl(new), _row("有人在桥上要跳河,快来啊", "police_rescue", "110")])  # a hard-set twin
    entry = extend_train([new], out_dir=tmp_path, hardset_dir=tmp_path / "hardset")
    assert entry["rows_added"] == 2 and entry["dropped_near_duplicates_of_hardset_rows"] == 1
    assert entry["dropped_exact_duplicates"] == 2 and entry["dropped_near_duplicates_of_test_rows"] == 1
    assert (tmp_path / "test.jsonl").read_bytes() == test_before
    after = read_jsonl(tmp_path / "train.jsonl")
    assert after[: len(train)] == train
    added = after[len(train):]
    assert [r["text"] for r in added] == ["钥匙锁屋里了", "孩子被反锁在车里,太阳很晒"]
    assert added[0]["source"] == "authored-llm/s9_short/short"
    ids = [r["id"] for r in after + test]
    assert len(ids) == len(set(ids))
    assert added[0]["id"] == f"hr-{len(train) + len(test) + 1:05d}"
    stats = json.loads((tmp_path / "stats.json").read_text(encoding="utf-8"))
    assert stats["train"] == len(after) and stats["extensions"][-1] == entry


def test_extend_train_names_the_line_of_a_bad_label(tmp_path):
    from data.corpus import extend_train

    _small_corpus(tmp_path)
    before = (tmp_path / "train.jsonl").read_bytes()
    bad = _slice(tmp_path / "bad.jsonl", [_row("钥匙锁屋里了", "convenience", "12345"), _row("井盖没了", "convenience", "110")])
    with pytest.raises(ValueError, match=r"bad.jsonl:2: .*does not match convenience"):
        extend_train([bad], out_dir=tmp_path)
    unknown = _slice(tmp_path / "unknown.jsonl", [_row("钥匙锁屋里了", "locksmith", "12345")])
    with pytest.raises(ValueError, match=r"unknown.jsonl:1: unknown department 'locksmith'"):
        extend_train([unknown], out_dir=tmp_path)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "钥匙锁屋里了", "channel": "12345", "department": "convenience", "style": "short", "hard": false}\n\n{"text": "井盖没了"\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken.jsonl:3: not a JSON object"):
        extend_train([broken], out_dir=tmp_path)
    partial = _slice(tmp_path / "partial.jsonl", [{"text": "井盖没了", "channel": "110"}])
    with pytest.raises(ValueError, match=r"partial.jsonl:1: missing department, style, hard"):
        extend_train([partial], out_dir=tmp_path)
    assert (tmp_path / "train.jsonl").read_bytes() == before  # nothing written on error


# A question's wording around a present danger ("想问一下…孩子吃了七八颗药，现在叫不醒") is still 110. Most
# questions are 12345 matters, but a corpus where 咨询 is never 110 (1 of 172 rows before the wrapped batch,
# data/corpus/README.md) teaches the classifier that asking means 12345.
@pytest.mark.parametrize("marker", ["咨询", "想问", "问一下"])
def test_a_question_s_wording_also_wraps_emergencies(splits, marker):
    channels = Counter(r["channel"] for r in splits[0] if marker in r["text"])
    assert channels["110"] >= 25 and channels["110"] / sum(channels.values()) >= 0.05, channels
