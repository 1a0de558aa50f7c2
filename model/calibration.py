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
