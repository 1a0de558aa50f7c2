"""Calibration: the log-linear pool of two models fitted by log-likelihood, and temperature scaling."""
from __future__ import annotations

import numpy as np

from model.calibration import apply_log_pool, fit_log_pool


def _two_models(rng, n=400, k=5):
    """A sharp, often right model and a flat, less often right one of the same labels (n, k each)."""
    y = rng.integers(0, k, n)

    def model(right_rate, sharpness, noise):
        guess = np.where(rng.random(n) < right_rate, y, rng.integers(0, k, n))
        z = rng.normal(0, noise, (n, k))
        z[np.arange(n), guess] += sharpness
        p = np.exp(z)
        return p / p.sum(1, keepdims=True)

    return y, model(0.8, 6.0, 1.0), model(0.7, 1.0, 0.1)  # P(guess) ≈ 0.99 and ≈ 0.4


def _nll(p, y):
    return float(-np.log(p[np.arange(len(y)), y]).mean())


def test_the_log_pool_fits_each_models_confidence():
    """Unlike one mixture weight, the pool's exponents also fix confidence: with an uninformative
    partner, an over-confident model is softened (exponent < 1) and a flat one sharpened (> 1), and
    the log-likelihood improves on fresh rows of the same kind too."""
    y, sharp, flat = _two_models(np.random.default_rng(0))
    uniform = np.full_like(sharp, 1 / sharp.shape[1])
    a_sharp, _ = fit_log_pool(sharp, uniform, y)
    a_flat, _ = fit_log_pool(flat, uniform, y)
    assert a_sharp < 1 < a_flat
    y2, sharp2, flat2 = _two_models(np.random.default_rng(1))
    assert _nll(apply_log_pool(sharp2, uniform, a_sharp, 0.0), y2) < _nll(sharp2, y2)
    assert _nll(apply_log_pool(flat2, uniform, a_flat, 0.0), y2) < _nll(flat2, y2)
    a, b = fit_log_pool(sharp, flat, y)
    assert a > 0 and b > 0  # both models count
    assert _nll(apply_log_pool(sharp, flat, a, b), y) <= min(_nll(apply_log_pool(sharp, flat, a + d, b + e), y)  # a minimum
                                                             for d in (-0.05, 0, 0.05) for e in (-0.05, 0, 0.05)) + 1e-4
    np.testing.assert_allclose(apply_log_pool(sharp2, flat2, a, b).sum(1), 1.0)


def test_a_model_that_knows_nothing_gets_no_exponent():
    rng = np.random.default_rng(2)
    y, sharp, _ = _two_models(rng)
    uniform = np.full_like(sharp, 1 / sharp.shape[1])
    a, b = fit_log_pool(sharp, uniform, y)
    assert b == 0.0 and a > 0
    assert fit_log_pool(sharp[:0], uniform[:0], y[:0]) == (1.0, 0.0)  # no rows: the first model alone


def test_one_fit_temperature_for_both_models():
    """The transformer's temperatures come from model.calibration.fit_temperature too (its logits as
    probabilities, bounded to [0.25, 10]): over-confident logits are softened, timid right ones sharpened."""
    from scipy.special import softmax

    from model.calibration import fit_temperature

    z = np.array([[5.0, 0.0]] * 6 + [[0.0, 5.0]] * 4)
    y = np.array([0, 0, 0, 1, 0, 0, 1, 1, 1, 0])
    assert fit_temperature(softmax(z, axis=1), y, (0.25, 10.0)) > 1.5
    timid = softmax(np.array([[1.0, 0.0], [0.0, 1.0]] * 20), axis=1)
    assert 0.25 <= fit_temperature(timid, np.array([0, 1] * 20), (0.25, 10.0)) < 1
