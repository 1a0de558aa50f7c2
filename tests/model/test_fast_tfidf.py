"""The request path's TF-IDF (model/fast_tfidf.py) equals scikit-learn's transform, and the word
segmentation (model/segment.py) is jieba's."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

from model.fast_tfidf import FastTfidf
from model.linear import jieba_tokens
from model.segment import BACKEND, words

CORPUS = Path(__file__).resolve().parents[2] / "data" / "corpus" / "train.jsonl"
TRAIN = ["小区门口有人打架", "家里停水了三天", "My car 被堵了 ABC", "楼上  漏水\t严重", "😀 表情 😀", "a"]
HARD = [
    "", " ", "a", "门", "门口有人打架", "MY CAR 被堵了 abc", "楼上 \t\n 漏水", "😀😀 表情", "全新的字：龘靐齉",
    "１２３４５全角", "line\nbreak  and   spaces", "x" * 500,
]


@pytest.mark.parametrize("kwargs", [
    dict(analyzer="char", ngram_range=(1, 3), sublinear_tf=True),
    dict(analyzer="char", ngram_range=(2, 3), sublinear_tf=False),
    dict(analyzer="char", ngram_range=(1, 1), lowercase=False),
    dict(analyzer="char_wb", ngram_range=(1, 3)),  # not packable: falls back to the analyzer
    dict(analyzer="char", ngram_range=(1, 4)),     # 4-grams do not fit 63 bits: falls back
])
def test_char_features_equal_sklearn(kwargs):
    vec = TfidfVectorizer(**kwargs).fit(TRAIN)
    got = FastTfidf([vec]).transform(HARD)
    np.testing.assert_allclose(got.toarray(), vec.transform(HARD).toarray(), atol=1e-12)


@pytest.mark.parametrize("word_sublinear", [True, False])
def test_a_union_of_char_and_word_features_equals_sklearn(word_sublinear):
    union = FeatureUnion([
        ("char", TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)),
        ("word", TfidfVectorizer(tokenizer=jieba_tokens, token_pattern=None, ngram_range=(1, 2), sublinear_tf=word_sublinear)),
    ]).fit(TRAIN)
    fast = FastTfidf([v for _, v in union.transformer_list])
    texts = HARD + TRAIN
    np.testing.assert_allclose(fast.transform(texts).toarray(), union.transform(texts).toarray(), atol=1e-12)
    assert fast.transform([]).shape == (0, fast.n_features)


def test_segmentation_is_jiebas_on_the_corpus():
    """The fast backend cuts like jieba: same words on nearly every summary (digit runs with hyphens differ)."""
    import jieba

    texts = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines()[:400]]
    ref = [[w for w in jieba.lcut(t) if w.strip() and any(ch.isalnum() for ch in w)] for t in texts]
    same = sum(words(t) == r for t, r in zip(texts, ref)) / len(texts)
    assert same >= (0.97 if BACKEND == "rjieba" else 1.0), (BACKEND, same)
    assert words("有人拿刀砍人，快来！") == ["有人", "拿", "刀", "砍", "人", "快", "来"]  # as jieba.lcut, punctuation dropped
