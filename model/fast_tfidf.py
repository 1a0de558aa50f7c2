"""The TF-IDF features of fitted ``TfidfVectorizer`` s, computed faster than ``transform`` for a
few texts at a time (a call-taker's request).

scikit-learn's character analyzer builds every n-gram as a Python string and looks each one up in a
dict: about 270 lookups for a 90-character summary. Here n-grams of up to 3 characters are packed
into one 64-bit integer (21 bits per code point), for all texts of a batch at once, and looked up in
a pandas ``Index`` (a hash table); counting, weighting and normalising are a few numpy calls per
batch. Word features (a tokenizer callable) keep the vectorizer's own analyzer: a summary has only
~40 words.

The numbers equal ``FeatureUnion.transform`` (tests compare them); only fitted vectorizers with
``analyzer="char"``, ``ngram_range`` max ≤ 3, ``lowercase``, no accent stripping and the default
l2 norm take the packed path, others fall back to their analyzer.

>>> from sklearn.feature_extraction.text import TfidfVectorizer
>>> vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True).fit(["有人打架", "家里停水了"])
>>> fast = FastTfidf([vec])
>>> bool(abs(fast.transform(["门口有人打架"]).toarray() - vec.transform(["门口有人打架"]).toarray()).max() < 1e-12)
True
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

_BITS = 21  # every Unicode code point fits in 21 bits, so three fit in one int64
_WHITE_SPACES = re.compile(r"\s\s+")  # as sklearn's _VectorizerMixin._white_spaces


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)


def _pack(cp: np.ndarray, n: int) -> np.ndarray:
    """Keys of the ``n``-grams of a code point array, shape (len(cp) - n + 1,)."""
    m = len(cp) - n + 1
    key = cp[:m].copy()
    for k in range(1, n):
        key <<= _BITS
        key |= cp[k : k + m]
    return key


class _PackedChars:
    """A char vectorizer's vocabulary as, per n, a hash index of packed keys and their column numbers."""

    def __init__(self, vec):
        self.min_n, self.max_n = vec.ngram_range
        self.lowercase = vec.lowercase
        # Every term packed at once: the vocabulary's code points in one array, then per length n a
        # (terms, n) gather (a loop over ~300,000 terms took seconds at every load and every fold).
        terms = list(vec.vocabulary_)
        term_cols = np.fromiter(vec.vocabulary_.values(), dtype=np.int64, count=len(terms))
        lengths = np.fromiter(map(len, terms), dtype=np.int64, count=len(terms))
        cp = _codepoints("".join(terms))
        starts = np.cumsum(lengths) - lengths
        self.cols, self.index = {}, {}
        for n in np.unique(lengths).tolist():
            which = np.flatnonzero(lengths == n)
            keys = np.zeros(len(which), dtype=np.int64)
            for k in range(n):
                keys = (keys << _BITS) | cp[starts[which] + k]
            self.cols[n] = term_cols[which]
            # A hash table over the keys: 4x faster than a binary search for ~1,000 n-grams a batch.
            self.index[n] = pd.Index(keys)
            self.index[n].get_indexer(keys[:1])  # build the table now, not on the first request

    @staticmethod
    def usable(vec) -> bool:
        return (
            vec.analyzer == "char" and vec.ngram_range[1] <= 3 and vec.strip_accents is None and vec.preprocessor is None
            and vec.input == "content" and getattr(vec, "norm", "l2") == "l2" and getattr(vec, "use_idf", True)
        )

    def columns_batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(text number, column number) of every in-vocabulary n-gram of every text, with repeats:
        two arrays of the same length. All texts are packed in one pass; n-grams that would span two
        texts are dropped."""
        prepared = [_WHITE_SPACES.sub(" ", t.lower() if self.lowercase else t) for t in texts]
        lengths = np.fromiter(map(len, prepared), dtype=np.int64, count=len(prepared))
        cp = _codepoints("".join(prepared))
        tid = np.repeat(np.arange(len(prepared), dtype=np.int64), lengths)
        rows, cols = [], []
        for n in range(self.min_n, self.max_n + 1):
            if n not in self.index or len(cp) < n:
                continue
            key = _pack(cp, n)
            t = tid[: len(key)]
            if n > 1:
                inside = t == tid[n - 1 :]
                key, t = key[inside], t[inside]
            pos = self.index[n].get_indexer(key)
            hit = pos >= 0
            rows.append(t[hit])
            cols.append(self.cols[n][pos[hit]])
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(rows), np.concatenate(cols)


class FastTfidf:
    """Horizontal stack of fitted TF-IDF vectorizers (a ``FeatureUnion``'s parts, in order).

    Parameters
    ----------
    vectorizers : sequence of fitted ``TfidfVectorizer``
    """

    def __init__(self, vectorizers: Sequence):
        self.parts = []
        offset = 0
        for vec in vectorizers:
            packed = _PackedChars(vec) if _PackedChars.usable(vec) else None
            analyze = None if packed else vec.build_analyzer()
            self.parts.append((vec, packed, analyze, offset))
            offset += len(vec.vocabulary_)
        self.n_features = offset
        # All parts at once: one idf vector, one sublinear flag per column, each part's first column.
        self._idf = np.concatenate([vec.idf_ for vec, *_ in self.parts]) if self.parts else np.zeros(0)
        self._sublinear = [bool(vec.sublinear_tf) for vec, *_ in self.parts]
        self._starts = np.asarray([off for *_, off in self.parts], dtype=np.int64)

    def rows(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per text, its non-zero features as (column numbers, weights), each shape (n_nonzero,), the
        columns ascending: the rows of :meth:`transform` without building a sparse matrix.

        The whole batch is counted, weighted and normalised in a few numpy calls: a (text, column)
        pair is one integer ``text * n_features + column``."""
        n_texts, n_features, n_parts = len(texts), self.n_features, len(self.parts)
        tids, cols = [], []
        for vec, packed, analyze, offset in self.parts:
            if packed is not None:
                t, c = packed.columns_batch(texts)
            else:
                vocab, t_list, c_list = vec.vocabulary_, [], []
                for i, text in enumerate(texts):
                    found = [j for j in map(vocab.get, analyze(text)) if j is not None]
                    c_list.extend(found)
                    t_list.extend([i] * len(found))
                t, c = np.asarray(t_list, dtype=np.int64), np.asarray(c_list, dtype=np.int64)
            tids.append(t)
            cols.append(c + offset)
        pair = np.concatenate(tids) * n_features + np.concatenate(cols) if tids else np.zeros(0, dtype=np.int64)
        pair, tf = np.unique(pair, return_counts=True)
        t = pair // n_features
        idx = pair - t * n_features
        part = np.searchsorted(self._starts, idx, side="right") - 1
        w = np.where(np.asarray(self._sublinear)[part], 1.0 + np.log(tf), tf) * self._idf[idx]
        group = t * n_parts + part  # l2 norm within each (text, part)
        norms = np.sqrt(np.bincount(group, weights=w * w, minlength=n_texts * n_parts))
        w /= norms[group]
        bounds = np.searchsorted(t, np.arange(n_texts + 1))
        return [(idx[a:b], w[a:b]) for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist())]

    def transform(self, texts: Sequence[str]) -> csr_matrix:
        """Features of ``texts``, shape (n_texts, n_features): TF-IDF per part, each part l2-normalised."""
        rows = self.rows(texts)
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(i) for i, _ in rows], out=indptr[1:])
        return csr_matrix(
            (np.concatenate([w for _, w in rows]) if rows else np.zeros(0), np.concatenate([i for i, _ in rows]) if rows else np.zeros(0, dtype=np.int64), indptr),
            shape=(len(rows), self.n_features),
        )
