"""The transformer's ensemble with the linear model: a log-linear pool of the two models' probabilities.

Served probabilities are ``softmax(a·log p_network + b·log p_linear)``, the exponents chosen on the
network's validation split by log-likelihood with the linear model fit without those rows
(:func:`model.calibration.fit_log_pool`); the linear model is then refit on every row and its terms
explain decisions. Measured (bench/README.md, stop 13): +0.3 to +0.9 points of Taidi accuracy over a
mixture ``w·p + (1 − w)·q`` on each of three networks, which was therefore removed.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from model.calibration import apply_log_pool, fit_log_pool

logger = logging.getLogger(__name__)


class LogPoolEnsemble:
    """The linear model and the pool's exponents ``(a, b)``; (1, 0) serves the network alone."""

    def __init__(self, linear, exponents: tuple[float, float] = (1.0, 0.0)):
        self.linear = linear
        self.exponents = (float(exponents[0]), float(exponents[1]))
        self.validation_proba_ = None  # set by :meth:`fit`; not saved

    @property
    def network_weight(self) -> float:
        """The network's share a / (a + b) of the exponents (for reports); 0: the linear model alone."""
        a, b = self.exponents
        return round(a / (a + b), 3) if a + b else 1.0

    @classmethod
    def fit(cls, network_val_proba: np.ndarray, texts: list[str], labels: np.ndarray, tr: np.ndarray, va: np.ndarray,
            classes: np.ndarray, channel_of: dict | None, random_state: int) -> "LogPoolEnsemble":
        """Exponents chosen on rows ``va`` from the network's calibrated probabilities of them
        (``network_val_proba``, (len(va), n_classes)) and a linear model fit on rows ``tr``; then the
        linear model refit on every row. Without validation rows, or when the smaller fit missed a
        label, the network alone serves (exponents (1, 0)). ``validation_proba_`` keeps that smaller
        linear model's probabilities of rows ``va`` (None without them): the server's latency fallback
        chooses its thresholds on them (training/finetune.py)."""
        from model.linear import LinearTextClassifier

        def make():
            return LinearTextClassifier(channel_of=channel_of or None, random_state=random_state)

        exponents, p_lin = (1.0, 0.0), None
        if len(va):
            lin = make().fit([texts[i] for i in tr], labels[tr])
            if list(lin.classes_) == list(classes):
                p_lin = lin.predict_proba([texts[i] for i in va])
                exponents = fit_log_pool(network_val_proba, p_lin, np.searchsorted(classes, labels[va]))
            else:
                logger.warning("ensemble exponents not chosen: the linear model saw fewer labels without the validation rows")
        ens = cls(make().fit(texts, labels), exponents)
        ens.validation_proba_ = p_lin
        logger.info("log-pool with the linear model: exponents %s (network weight %.2f)", ens.exponents, ens.network_weight)
        return ens

    def combine_held_out(self, network_val_proba: np.ndarray) -> np.ndarray:
        """The pool of the validation rows (n_val, n_classes) as a new call would get it: the network's
        held-out probabilities with those of the linear model fit *without* those rows (the one the
        exponents were chosen with). The refit linear model has seen them, and its in-sample
        probabilities made held-out thresholds look far safer than they were (bench/README.md, stop 19:
        Haikou test 110 recall 0.963 / 0.945 against a 0.99 target). Without that model, unchanged."""
        a, b = self.exponents
        if self.validation_proba_ is None or b == 0:
            return network_val_proba
        return apply_log_pool(network_val_proba, self.validation_proba_, a, b)

    def needs_network(self) -> bool:
        """False when the linear model alone serves (exponent 0 for the network): it need not run."""
        return self.exponents[0] > 0

    def transform_rows(self, texts: Sequence[str]) -> list:
        """The linear model's feature rows of ``texts`` (for :meth:`combine` and :meth:`explain`)."""
        return self.linear.transform_rows(texts)

    def combine(self, network_proba: np.ndarray, rows: list) -> np.ndarray:
        """The served probabilities (n, n_classes) from the network's and the linear model's rows."""
        a, b = self.exponents
        if b == 0:
            return network_proba
        return apply_log_pool(network_proba, self.linear.predict_proba_features(rows), a, b)

    def explain(self, text: str, label: str, top_k: int = 5, features=None) -> list[tuple[str, float]]:
        return self.linear.explain(text, label, top_k=top_k, features=features)

    def save(self, path: Path) -> None:
        import joblib

        joblib.dump(self.linear, path, compress=3)

    @classmethod
    def load(cls, path: Path, exponents) -> "LogPoolEnsemble":
        import joblib

        return cls(joblib.load(path), tuple(exponents))
