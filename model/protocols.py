"""What the router and the model folder need from a classifier, as a :class:`typing.Protocol`.

Both :class:`model.linear.LinearTextClassifier` and :class:`model.transformer.TransformerTextClassifier`
satisfy it (``isinstance(clf, RoutingClassifier)`` checks the members, tests/model/test_classifiers.py
the behaviour), so the router calls these methods instead of asking ``hasattr`` which model it holds.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np


@runtime_checkable
class RoutingClassifier(Protocol):
    """A fitted text classifier the router can serve.

    ``model_class`` names the folder format ("linear", "transformer"); ``fast_inference`` is True when a
    text costs about a millisecond of CPU or less (a server may then route on its event loop).
    """

    model_class: str
    fast_inference: bool
    classes_: np.ndarray

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities (n_texts, n_classes) in ``classes_`` order."""

    def predict_proba_with_features(self, texts: Sequence[str]) -> tuple[np.ndarray, Any]:
        """:meth:`predict_proba` and per-text features that :meth:`explain` accepts (or None)."""

    def explain(self, text: str, label: str, top_k: int = 5, features: Any = None) -> list[tuple[str, float]]:
        """The terms of ``text`` that weigh most for ``label`` (may be empty)."""

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's parameters (saved in config.json)."""
