"""Linear text classifier: jieba words + character n-grams, TF-IDF, LinearSVC, calibrated probabilities.

Trains in seconds on thousands of texts and explains itself through its most influential terms.

>>> clf = LinearTextClassifier().fit(["有人打架", "车被堵了", ...], ["police_public_order", "convenience", ...])  # doctest: +SKIP
>>> clf.predict_proba(["小区门口有人打架"]).shape                                                          # doctest: +SKIP
(1, 2)
"""
from __future__ import annotations

import logging
from typing import NamedTuple, Sequence

import numpy as np
from scipy.sparse import csr_matrix
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

from model.calibration import apply_temperature, channel_mask, move_110_mass
from model.fast_tfidf import FastTfidf
from model.segment import words

logger = logging.getLogger(__name__)


class FeatureRow(NamedTuple):
    """One text's non-zero features: column numbers and TF-IDF weights, shape (n_nonzero,) each."""

    indices: np.ndarray
    data: np.ndarray


def jieba_tokens(text: str) -> list[str]:
    """Words of ``text`` (jieba's dictionary, :func:`model.segment.words`), whitespace and punctuation
    dropped. The word vectorizer's tokenizer; saved models refer to it by this name."""
    return words(text)


def _sigmoid_params(fitted) -> tuple[np.ndarray, np.ndarray] | None:
    """(a, b), each shape (n_classes,), when every one-vs-rest calibrator of ``fitted`` (a
    ``_CalibratedClassifier``) is a sigmoid, else None; computed once and kept on ``fitted``."""
    if not hasattr(fitted, "_hotline_ab"):
        cals = fitted.calibrators
        ok = all(hasattr(c, "a_") and hasattr(c, "b_") for c in cals)
        fitted._hotline_ab = (np.array([c.a_ for c in cals], dtype=np.float64), np.array([c.b_ for c in cals], dtype=np.float64)) if ok else None
    return fitted._hotline_ab


def _calibrate(calibrator, scores: np.ndarray) -> np.ndarray:
    """A fitted calibrator's output for decision scores (n,); the sigmoid case without input checks."""
    if hasattr(calibrator, "a_") and hasattr(calibrator, "b_"):  # sklearn's _SigmoidCalibration
        return expit(-(calibrator.a_ * scores + calibrator.b_))
    return calibrator.predict(scores)


class LinearTextClassifier(ClassifierMixin, BaseEstimator):
    """TF-IDF over character n-grams and jieba words, a LinearSVC, and probability calibration.

    Parameters
    ----------
    char_ngram_range : tuple (min_n, max_n), default (1, 3)
    word_ngram_range : tuple (min_n, max_n), default (1, 1)
        Set ``(0, 0)`` to switch word features off (no jieba).
        Word unigrams: bigrams gave no gain in 5-fold CV on real Haikou and Taidi tickets.
    C : float, default 0.5
        Inverse regularisation strength of the LinearSVC.
    class_weight : "balanced" or None, default "balanced"
        Weight rare departments up.
    calibration : {"sigmoid", "isotonic"}, default "sigmoid"
        Method of :class:`~sklearn.calibration.CalibratedClassifierCV` (fitted on internal CV folds).
    cv : int, default 3
        Internal folds for calibration; lowered to the smallest class count when data are tiny.
    min_df : int, default 1
    channel_of : dict department -> channel, optional
        When given (and both channels occur), a second, binary 110-vs-12345 SVM is trained on the same
        features; P(110) becomes the mean of its calibrated probability and the sum over the 110
        departments, and department probabilities are rescaled within each channel to match. On the
        shipped corpus this raises channel accuracy at 99% 110 recall (see the model card).
    channel_weight : float, default 0.5
        Weight of the binary model in P(110).
    random_state : int, default 0

    Attributes
    ----------
    classes_ : ndarray of str, shape (n_classes,)
        Labels, in the column order of :meth:`predict_proba`.
    features_ : FeatureUnion
    calibrated_ : CalibratedClassifierCV or None
    svm_ : LinearSVC
        The SVM fitted on all data (its ``coef_`` explains predictions).
    temperature_ : float
        Temperature applied to the final probabilities (1.0 after ``fit``; training sets it from
        out-of-fold predictions with :func:`model.calibration.fit_temperature`).
    """

    model_class = "linear"
    fast_inference = True  # well under a millisecond a text: a server may route on its event loop

    def __init__(
        self,
        char_ngram_range: tuple[int, int] = (1, 3),
        word_ngram_range: tuple[int, int] = (1, 1),
        C: float = 0.5,
        class_weight: str | None = "balanced",
        calibration: str = "sigmoid",
        cv: int = 3,
        min_df: int = 1,
        channel_of: dict | None = None,
        channel_weight: float = 0.5,
        random_state: int = 0,
    ):
        self.char_ngram_range = char_ngram_range
        self.word_ngram_range = word_ngram_range
        self.C = C
        self.class_weight = class_weight
        self.calibration = calibration
        self.cv = cv
        self.min_df = min_df
        self.channel_of = channel_of
        self.channel_weight = channel_weight
        self.random_state = random_state

    def _make_features(self) -> FeatureUnion:
        parts = [
            (
                "char",
                TfidfVectorizer(
                    analyzer="char", ngram_range=tuple(self.char_ngram_range), sublinear_tf=True, min_df=self.min_df, lowercase=True
                ),
            )
        ]
        if tuple(self.word_ngram_range) != (0, 0):
            parts.append(
                (
                    "word",
                    TfidfVectorizer(
                        tokenizer=jieba_tokens,
                        token_pattern=None,
                        lowercase=True,
                        ngram_range=tuple(self.word_ngram_range),
                        sublinear_tf=True,
                        min_df=self.min_df,
                    ),
                )
            )
        return FeatureUnion(parts)

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> "LinearTextClassifier":
        """Fit on ``texts`` (n_samples,) and ``labels`` (n_samples,). Returns self."""
        if self.calibration not in ("sigmoid", "isotonic"):
            raise ValueError(f"calibration must be 'sigmoid' or 'isotonic', got {self.calibration!r}")
        texts, labels = list(texts), np.asarray([str(y) for y in labels])
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        classes, counts = np.unique(labels, return_counts=True)
        if len(classes) < 2:
            raise ValueError("need at least two different labels to train a classifier")
        self.features_ = self._make_features()
        X = self.features_.fit_transform(texts)
        self.calibrated_, self.svm_ = self._fit_svm(X, labels, counts.min())
        self.classes_ = np.asarray(self.svm_.classes_)
        self.temperature_ = 1.0
        self.channel_calibrated_ = None
        if self.channel_of:
            missing = sorted(set(labels) - set(self.channel_of))
            if missing:
                raise ValueError(f"channel_of has no channel for {missing[:5]}")
            channels = np.asarray([str(self.channel_of[y]) for y in labels])
            ch, ch_counts = np.unique(channels, return_counts=True)
            if len(ch) == 2 and ch_counts.min() >= 2:
                self.channel_calibrated_, _ = self._fit_svm(X, channels, ch_counts.min())
        return self

    def _fit_svm(self, X, labels: np.ndarray, min_count: int):
        """(calibrated classifier or None, fitted LinearSVC) for ``labels``."""
        svm = LinearSVC(C=self.C, class_weight=self.class_weight, random_state=self.random_state)
        folds = int(min(self.cv, min_count))
        if folds >= 2:
            cal = CalibratedClassifierCV(svm, method=self.calibration, cv=folds, ensemble=False).fit(X, labels)
            return cal, cal.calibrated_classifiers_[0].estimator
        logger.warning("a label has fewer than 2 examples: probabilities are uncalibrated (softmax of SVM scores)")
        return None, svm.fit(X, labels)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities, shape (n_texts, n_classes), columns in ``classes_`` order.

        Computes the same numbers as the fitted scikit-learn objects (``features_.transform`` and the
        calibrators), without their per-call validation overhead: a single text takes well under a
        millisecond, which is what a call-taker's request needs.
        """
        return self.predict_proba_features(self.transform(texts))

    def predict_proba_with_features(self, texts: Sequence[str]) -> tuple[np.ndarray, list[FeatureRow]]:
        """:meth:`predict_proba` and the texts' feature rows, which :meth:`explain` takes as ``features``
        (the router computes them once per batch, for the scores and the reasons)."""
        rows = self.transform_rows(texts)
        return self.predict_proba_features(rows), rows

    def predict_proba_features(self, X: csr_matrix | list[FeatureRow]) -> np.ndarray:
        """:meth:`predict_proba` from features already computed: :meth:`transform`'s matrix (n_texts,
        n_features) or :meth:`transform_rows`' list (cheaper for a few texts)."""
        check_is_fitted(self, "classes_")
        proba = self._calibrated_proba(self.calibrated_, self.svm_, X)
        if getattr(self, "channel_calibrated_", None) is not None:
            proba = self._blend_channel(proba, X)
        return apply_temperature(proba, getattr(self, "temperature_", 1.0))

    def transform(self, texts: Sequence[str]) -> csr_matrix:
        """TF-IDF features, shape (n_texts, n_features); equal to ``features_.transform(texts)``,
        computed by :class:`model.fast_tfidf.FastTfidf` (≈ 0.1 ms per summary)."""
        return self._fast_tfidf().transform(list(texts))

    def transform_rows(self, texts: Sequence[str]) -> list[FeatureRow]:
        """The rows of :meth:`transform` as :class:`FeatureRow` s, without building a sparse matrix
        (the request path: a few texts at a time)."""
        return [FeatureRow(i, w) for i, w in self._fast_tfidf().rows(list(texts))]

    def _fast_tfidf(self) -> FastTfidf:
        """The fitted vectorizers' fast path, built once per loaded model (not pickled)."""
        check_is_fitted(self, "features_")
        if getattr(self, "_fast", None) is None:
            self._fast = FastTfidf([vec for _, vec in self.features_.transformer_list])
        return self._fast

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for derived in ("_fast", "_names_cache", "_analyzer_cache", "_last_single", "_is110"):
            state.pop(derived, None)
        return state

    @staticmethod
    def _calibrated_proba(calibrated, svm, X) -> np.ndarray:
        """Probabilities from decision scores, as CalibratedClassifierCV(ensemble=False) computes them
        (one-vs-rest calibrators, then normalised), or a softmax when uncalibrated."""
        if isinstance(X, list):  # FeatureRows: gather the few weights each text touches
            coef = svm.coef_
            scores = np.stack([coef[:, r.indices] @ r.data for r in X]) if X else np.zeros((0, coef.shape[0]))
            scores += svm.intercept_
        else:
            scores = X @ svm.coef_.T + svm.intercept_
        if calibrated is None:
            if scores.shape[1] == 1:
                scores = np.hstack([-scores, scores])
            e = np.exp(scores - scores.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        calibrators = calibrated.calibrated_classifiers_[0].calibrators
        if len(calibrators) == 1:  # binary: one calibrator for the positive class
            pos = _calibrate(calibrators[0], scores[:, 0])
            return np.column_stack([1.0 - pos, pos])
        ab = _sigmoid_params(calibrated.calibrated_classifiers_[0])
        if ab is not None:  # every calibrator a sigmoid: all classes in one expression
            proba = expit(-(ab[0] * scores + ab[1]))
        else:
            proba = np.column_stack([_calibrate(c, scores[:, k]) for k, c in enumerate(calibrators)])
        total = proba.sum(axis=1, keepdims=True)
        uniform = np.full_like(proba, 1.0 / proba.shape[1])
        return np.where(total > 0, proba / np.where(total > 0, total, 1.0), uniform)

    def _blend_channel(self, proba: np.ndarray, X) -> np.ndarray:
        """Rescale department probabilities so that their 110 share equals the blended P(110)."""
        is110 = getattr(self, "_is110", None)
        if is110 is None:
            is110 = self._is110 = channel_mask(self.classes_, self.channel_of)
        cal = self.channel_calibrated_
        svm = cal.calibrated_classifiers_[0].estimator
        p_bin = self._calibrated_proba(cal, svm, X)[:, list(cal.classes_).index("110")]
        p110 = self.channel_weight * p_bin + (1 - self.channel_weight) * proba[:, is110].sum(axis=1)
        return move_110_mass(proba, is110, p110)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Most probable label per text, shape (n_texts,)."""
        return self.classes_[self.predict_proba(texts).argmax(axis=1)]

    def explain(self, text: str, label: str, top_k: int = 5, features: csr_matrix | FeatureRow | None = None) -> list[tuple[str, float]]:
        """Terms of ``text`` that pushed it most towards ``label``: [(term, contribution), …], largest first.

        ``features``: the text's features when already computed: a row of :meth:`transform` (shape
        (1, n_features)) or one item of :meth:`transform_rows`.
        """
        check_is_fitted(self, "classes_")
        X = self.transform([text]) if features is None else features
        idx = list(self.classes_).index(label)
        coef = self.svm_.coef_
        row = coef[0] if coef.shape[0] == 1 else coef[idx]
        if coef.shape[0] == 1 and idx == 0:
            row = -row
        names = self._feature_names()
        weights = X.data * row[X.indices]
        positive = np.flatnonzero(weights > 0)
        order = positive[np.argsort(-weights[positive])][: top_k * 6]  # enough candidates after dropping contained terms
        cols = X.indices[order].tolist()
        contrib = [(names[c], w) for c, w in zip(cols, weights[order].tolist())]
        # Prefer longer terms: drop a term contained in one already chosen.
        out: list[tuple[str, float]] = []
        for term, w in contrib:
            if any(term in t for t, _ in out):
                continue
            out.append((term, round(w, 4)))
            if len(out) == top_k:
                break
        return out

    def _feature_names(self) -> list[str]:
        if not hasattr(self, "_names_cache"):
            names = []
            for _, vec in self.features_.transformer_list:
                names.extend(t.replace(" ", "") for t in vec.get_feature_names_out())
            self._names_cache = names
        return self._names_cache
