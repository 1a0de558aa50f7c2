"""Temperature scaling of class probabilities, fitted on held-out (out-of-fold) predictions.

``p_T = softmax(log p / T)``: T < 1 sharpens under-confident probabilities, T > 1 softens
over-confident ones; the ranking of classes never changes.

>>> import numpy as np
>>> apply_temperature(np.array([[0.6, 0.4]]), 0.5).round(3)
array([[0.692, 0.308]])
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Rescale probabilities (n, n_classes) by ``temperature``; rows still sum to 1."""
    if temperature == 1.0:
        return proba
    logits = np.log(np.clip(proba, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(proba: np.ndarray, y_index: np.ndarray, bounds: tuple[float, float] = (0.05, 5.0)) -> float:
    """Temperature minimising the negative log-likelihood of the true classes.

    Parameters
    ----------
    proba : ndarray (n, n_classes)
        Held-out probabilities.
    y_index : ndarray of int (n,)
        Column of the true class in ``proba``.
    """
    rows = np.arange(len(y_index))

    def nll(t: float) -> float:
        return float(-np.log(np.clip(apply_temperature(proba, t)[rows, y_index], 1e-12, 1.0)).mean())

    return float(minimize_scalar(nll, bounds=bounds, method="bounded").x)


def fit_blend_weight(proba_a: np.ndarray, proba_b: np.ndarray, y_index: np.ndarray, grid: int = 21) -> float:
    """Weight ``w`` in [0, 1] (on a grid of ``grid`` points) of ``w·proba_a + (1 − w)·proba_b`` that
    minimises the negative log-likelihood of the true classes; ties go to the smaller ``w``.

    The log-likelihood is a proper scoring rule and changes smoothly with ``w``: on a validation split
    of a few hundred tickets over 35 departments, accuracy + macro-F1 jumps by points when one text
    changes (macro-F1 of a department with one validation text is 0 or 1) and picked weights that did
    worse on held-back tickets (bench/posthoc_real.py).

    >>> a = np.array([[0.9, 0.1], [0.2, 0.8]]); b = np.array([[0.5, 0.5], [0.5, 0.5]])
    >>> fit_blend_weight(a, b, np.array([0, 1]))   # a is right and confident: all weight on a
    1.0
    >>> fit_blend_weight(a, b, np.array([1, 0]))   # a is confidently wrong: all weight on b
    0.0
    """
    rows = np.arange(len(y_index))
    if not len(rows):
        return 1.0
    weights = np.linspace(0.0, 1.0, grid)
    nll = [float(-np.log(np.clip((w * proba_a + (1 - w) * proba_b)[rows, y_index], 1e-12, 1.0)).mean()) for w in weights]
    return round(float(weights[int(np.argmin(nll))]), 3)


def apply_log_pool(proba_a: np.ndarray, proba_b: np.ndarray, a: float, b: float) -> np.ndarray:
    """Log-linear pool of two models' probabilities (n, n_classes): ``softmax(a·log p_a + b·log p_b)``.

    A weighted geometric mean with free exponents (a "product of experts"): unlike the mixture
    ``w·p_a + (1 − w)·p_b`` it also rescales the pair's confidence (a + b plays the part of an inverse
    temperature), so a weight is not spent on making up for one model's calibration.

    >>> apply_log_pool(np.array([[0.8, 0.2]]), np.array([[0.5, 0.5]]), 1.0, 0.0).round(3)
    array([[0.8, 0.2]])
    >>> apply_log_pool(np.array([[0.8, 0.2]]), np.array([[0.2, 0.8]]), 1.0, 1.0).round(3)
    array([[0.5, 0.5]])
    """
    z = a * np.log(np.clip(proba_a, 1e-12, 1.0)) + b * np.log(np.clip(proba_b, 1e-12, 1.0))
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_log_pool(proba_a: np.ndarray, proba_b: np.ndarray, y_index: np.ndarray, max_exponent: float = 4.0) -> tuple[float, float]:
    """Exponents (a, b) in [0, ``max_exponent``]² of :func:`apply_log_pool` that minimise the negative
    log-likelihood of the true classes ``y_index`` (n,): a grid of step 0.1, then one of step 0.02
    around its best point; rounded to 0.02. Log-likelihood is a proper scoring rule and smooth in a and
    b (see :func:`fit_blend_weight`); ties go to the smaller exponents.

    Found on the Taidi titles (bench/README.md, stop 13): the mixture's log-likelihood weight leant
    towards the sharper transformer (0.65 to 0.75) because it also had to fix the pair's confidence;
    the pool's validation log-likelihood was lower (0.310 vs 0.332) and test accuracy higher on each of
    three networks.

    >>> a = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]]); b = np.array([[0.5, 0.5]] * 3)
    >>> fit_log_pool(a, b, np.array([0, 1, 0]))[1]   # b knows nothing: it gets no exponent
    0.0
    """
    rows = np.arange(len(y_index))
    if not len(rows):
        return 1.0, 0.0
    la, lb = np.log(np.clip(proba_a, 1e-12, 1.0)), np.log(np.clip(proba_b, 1e-12, 1.0))

    def nll(a: float, b: float) -> float:
        z = a * la + b * lb
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[rows, y_index] - np.log(np.exp(z).sum(axis=1))).mean())

    def search(grid_a: np.ndarray, grid_b: np.ndarray) -> tuple[float, float, float]:
        best = (np.inf, 1.0, 0.0)
        for a in grid_a:
            for b in grid_b:
                if a == b == 0:
                    continue
                v = nll(a, b)
                if v < best[0] - 1e-12:
                    best = (v, float(a), float(b))
        return best

    coarse = np.round(np.arange(0.0, max_exponent + 1e-9, 0.1), 6)
    _, a0, b0 = search(coarse, coarse)
    fine = np.round(np.arange(-0.1, 0.1 + 1e-9, 0.02), 6)
    _, a, b = search(np.clip(a0 + fine, 0, max_exponent), np.clip(b0 + fine, 0, max_exponent))
    return round(a, 2), round(b, 2)


def apply_prior_correction(proba: np.ndarray, prior: np.ndarray, tau: float) -> np.ndarray:
    """Divide probabilities (n, n_classes) by the training label frequencies ``prior`` (n_classes,)
    to the power ``tau`` and renormalise: borderline texts move towards rare labels (tau = 0: no change).

    >>> apply_prior_correction(np.array([[0.6, 0.4]]), np.array([0.8, 0.2]), 0.5).round(3)
    array([[0.429, 0.571]])
    """
    if tau == 0:
        return proba
    p = proba / np.asarray(prior, dtype=float) ** tau
    return p / p.sum(axis=1, keepdims=True)


def label_prior(train_labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Label frequencies (n_classes,) of ``train_labels`` with one added to every count (no zeros)."""
    counts = np.array([(np.asarray(train_labels) == c).sum() for c in classes], dtype=float) + 1
    return counts / counts.sum()


def fit_prior_correction(proba: np.ndarray, y_index: np.ndarray, prior: np.ndarray, taus: np.ndarray | None = None) -> float:
    """The ``tau`` of :func:`apply_prior_correction` (grid 0, 0.1, …, 1) with the highest validation
    accuracy + macro-F1; ties go to the smaller ``tau``.

    Unlike the blend weight, this is a decision rule for the rare departments that macro-F1 counts,
    so it is chosen on the two numbers it is meant to move, not on the log-likelihood (which prior
    correction only worsens). On a few hundred validation texts the choice is noisy: measured on
    Haikou (bench/posthoc_real.py), the 2026-11-24 run chose 0 and the 2026-12-01 run chose 0.1.
    """
    from sklearn.metrics import accuracy_score, f1_score

    if not len(y_index):
        return 0.0
    taus = np.round(np.linspace(0.0, 1.0, 11), 3) if taus is None else taus
    best, best_score = 0.0, -np.inf
    for tau in taus:
        pred = apply_prior_correction(proba, prior, float(tau)).argmax(axis=1)
        score = accuracy_score(y_index, pred) + f1_score(y_index, pred, average="macro", zero_division=0)
        if score > best_score + 1e-9:
            best, best_score = float(tau), score
    return best
