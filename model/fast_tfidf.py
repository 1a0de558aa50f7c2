"""The TF-IDF features of fitted ``TfidfVectorizer`` s, computed faster than ``transform`` for a
few texts at a time (a call-taker's request).

scikit-learn's character analyzer builds every n-gram as a Python string and looks each one up in a
dict: about 270 lookups for a 90-character summary. Here n-grams of up to 3 characters are packed
into one 64-bit integer (21 bits per code point) and looked up in a sorted array with
``numpy.searchsorted``, a handful of numpy calls per text. Word features (a tokenizer callable) keep
the vectorizer's own analyzer: a summary has only ~40 words.

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
    """A char vectorizer's vocabulary as, per n, sorted keys and their column numbers."""

    def __init__(self, vec):
        self.min_n, self.max_n = vec.ngram_range
        self.lowercase = vec.lowercase
        by_n: dict[int, list[tuple[int, int]]] = {}
        for term, col in vec.vocabulary_.items():
            key = int(_pack(_codepoints(term), len(term))[0])
            by_n.setdefault(len(term), []).append((key, col))
        self.keys, self.cols = {}, {}
        for n, pairs in by_n.items():
            pairs.sort()
            self.keys[n] = np.fromiter((k for k, _ in pairs), dtype=np.int64, count=len(pairs))
            self.cols[n] = np.fromiter((c for _, c in pairs), dtype=np.int64, count=len(pairs))

    @staticmethod
    def usable(vec) -> bool:
        return (
            vec.analyzer == "char" and vec.ngram_range[1] <= 3 and vec.strip_accents is None and vec.preprocessor is None
            and vec.input == "content" and getattr(vec, "norm", "l2") == "l2" and getattr(vec, "use_idf", True)
        )

    def columns(self, text: str) -> np.ndarray:
        """Column numbers of the in-vocabulary n-grams of ``text`` (with repeats)."""
        if self.lowercase:
            text = text.lower()
        cp = _codepoints(_WHITE_SPACES.sub(" ", text))
        found = []
        for n in range(self.min_n, min(self.max_n, len(cp)) + 1):
            keys = self.keys.get(n)
            if keys is None:
                continue
            key = _pack(cp, n)
            pos = np.searchsorted(keys, key)
            pos[pos == len(keys)] = 0
            hit = keys[pos] == key
            found.append(self.cols[n][pos[hit]])
        return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


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

    def _columns(self, vec, packed, analyze, text: str) -> np.ndarray:
        if packed is not None:
            return packed.columns(text)
        vocab = vec.vocabulary_
        cols = [j for j in (vocab.get(t) for t in analyze(text)) if j is not None]
        return np.asarray(cols, dtype=np.int64)

    def transform(self, texts: Sequence[str]) -> csr_matrix:
        """Features of ``texts``, shape (n_texts, n_features): TF-IDF per part, each part l2-normalised."""
        indptr, indices, data = [0], [], []
        for text in texts:
            n = 0
            for vec, packed, analyze, offset in self.parts:
                cols = self._columns(vec, packed, analyze, text)
                if not len(cols):
                    continue
                idx, tf = np.unique(cols, return_counts=True)
                w = (1.0 + np.log(tf)) if vec.sublinear_tf else tf.astype(np.float64)
                w = w * vec.idf_[idx]
                w /= np.sqrt(w @ w)
                indices.append(idx + offset)
                data.append(w)
                n += len(idx)
            indptr.append(indptr[-1] + n)
        return csr_matrix(
            (np.concatenate(data) if data else np.zeros(0), np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64), indptr),
            shape=(len(texts), self.n_features),
        )
