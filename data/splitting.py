"""Deterministic, stratified train/test splits that keep identical and near-identical texts together.

>>> train_idx, test_idx = split_indices(texts, labels, test_size=0.2, seed=13)  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.model_selection import StratifiedGroupKFold

from data.cleaning import dedup_key


def char_ngram_matrix(texts: Sequence[str], n: int = 3) -> csr_matrix:
    """Binary matrix (n_texts, n_ngrams) of the character n-grams of each text's dedup key."""
    vec = CountVectorizer(analyzer="char", ngram_range=(n, n), binary=True, lowercase=False)
    keys = [dedup_key(t) or t for t in texts]
    return vec.fit_transform(keys).astype(np.float32).tocsr()


def jaccard_pairs(texts: Sequence[str], threshold: float, n: int = 3) -> list[tuple[int, int, float]]:
    """Pairs (i, j, jaccard) with i < j whose character n-gram Jaccard similarity is ≥ ``threshold``."""
    X = char_ngram_matrix(texts, n)
    sizes = np.asarray(X.sum(axis=1)).ravel()
    inter = (X @ X.T).tocoo()
    out = []
    for i, j, v in zip(inter.row, inter.col, inter.data):
        if i < j:
            union = sizes[i] + sizes[j] - v
            jac = v / union if union else 1.0
            if jac >= threshold:
                out.append((int(i), int(j), float(jac)))
    return out


def near_duplicate_groups(texts: Sequence[str], threshold: float = 0.5, n: int = 3) -> np.ndarray:
    """Group id per text (shape (n_texts,)): texts linked by Jaccard ≥ ``threshold`` share a group."""
    parent = list(range(len(texts)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j, _ in jaccard_pairs(texts, threshold, n):
        parent[find(i)] = find(j)
    return np.array([find(i) for i in range(len(texts))])


def max_overlap(test_texts: Sequence[str], train_texts: Sequence[str], n: int = 3) -> np.ndarray:
    """For each test text, the highest character n-gram Jaccard with any train text (shape (n_test,))."""
    vec = CountVectorizer(analyzer="char", ngram_range=(n, n), binary=True, lowercase=False)
    vec.fit([dedup_key(t) or t for t in list(train_texts) + list(test_texts)])
    A = vec.transform([dedup_key(t) or t for t in test_texts]).astype(np.float32).tocsr()
    B = vec.transform([dedup_key(t) or t for t in train_texts]).astype(np.float32).tocsr()
    sa, sb = np.asarray(A.sum(1)).ravel(), np.asarray(B.sum(1)).ravel()
    inter = (A @ B.T).toarray()
    union = sa[:, None] + sb[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        jac = np.where(union > 0, inter / union, 0.0)
    return jac.max(axis=1) if jac.size else np.zeros(len(test_texts))


def split_indices(
    texts: Sequence[str],
    labels: Sequence[str],
    test_size: float = 0.2,
    seed: int = 13,
    near_duplicate_threshold: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split by label; identical texts (and near-duplicates, if a threshold is given)
    never fall on both sides. Deterministic for a given ``seed``.

    Returns
    -------
    train_idx, test_idx : ndarray of int
    """
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be between 0 and 1, got {test_size}")
    keys = [dedup_key(t) for t in texts]
    if near_duplicate_threshold is not None:
        groups = near_duplicate_groups(texts, near_duplicate_threshold)
    else:
        _, groups = np.unique(keys, return_inverse=True)
    n_splits = max(2, int(round(1 / test_size)))
    labels = np.asarray(labels)
    # Labels too rare to stratify go to train only.
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train_idx, test_idx = next(splitter.split(np.zeros(len(labels)), labels, groups))
    return np.sort(train_idx), np.sort(test_idx)
