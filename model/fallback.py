"""The linear model a transformer folder carries, as the server's latency fallback.

When a transformer serves, a call whose wait for it would break the latency budget
(``HOTLINE_LATENCY_BUDGET_MS``, :mod:`serve.budget`) is answered by a linear model instead. That
linear model is the folder's own ``linear.joblib`` (the log-pool ensemble's, fit on every training
row), not the registry's latest linear model: it has the transformer's labels and taxonomy by
construction, was trained on the same rows, is already in memory (the ensemble uses it), and travels
with the folder through promote and rollback, so the fallback always belongs to the model served.
Its thresholds were chosen at training time on the held-out split from a linear model fit without
it (config.json ``latency_fallback``, training/finetune.py), so its P(110) and review thresholds are
its own, not the transformer's.

>>> latency_fallback(None) is None
True
"""
from __future__ import annotations

import logging

from model.artifacts import TrainedModel

logger = logging.getLogger(__name__)

LATENCY_FALLBACK_KIND = "linear (latency fallback)"  # Decision.model_kind of a call the fallback answered


def latency_fallback(model: TrainedModel | None) -> TrainedModel | None:
    """The fallback of ``model`` (the folder's linear model with its own thresholds), or None: no model,
    a fast model (linear: nothing to fall back from), a transformer without a linear model
    (``ensemble_linear=False``), or a folder trained before its thresholds were recorded (retrain it)."""
    if model is None or model.classifier.fast_inference:
        return None
    ens = getattr(model.classifier, "ensemble_", None)
    spec = (model.config or {}).get("latency_fallback")
    if ens is None or not spec:
        logger.warning("%s has no latency fallback (%s): every call waits for the transformer", model.version,
                       "no linear model in the folder" if ens is None else "trained before issue 20 recorded its thresholds: retrain it")
        return None
    linear = ens.linear
    if [str(c) for c in linear.classes_] != model.classes:
        logger.warning("%s: the linear model's labels are not the transformer's; no latency fallback", model.version)
        return None
    return TrainedModel(classifier=linear, taxonomy=model.taxonomy, thresholds=dict(spec["thresholds"]), version=model.version,
                        metrics={"validation": spec.get("validation")}, config={"model_class": "linear", "latency_fallback_of": model.version},
                        path=model.path)
