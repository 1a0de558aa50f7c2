"""The fine-tuned transformer classifier, split as setfit and transformers split theirs.

- :mod:`~model.transformer.classifier`: :class:`TransformerTextClassifier` (fit, predict, save/load, bf16 check)
- :mod:`~model.transformer.inference`: running the network on the backend in use, ONNX export
- :mod:`~model.transformer.trainer`: :class:`TrainingArguments` and the :class:`Trainer` loop
- :mod:`~model.transformer.ensemble`: :class:`LogPoolEnsemble` with the linear model
- :mod:`~model.transformer.backends`: backend choice, int8 quantization, agreement checks
- :mod:`~model.transformer.network`: the torch module, base folder, padding and length buckets

>>> clf = TransformerTextClassifier(base_model="models/base/e5-small-zh", epochs=3)  # doctest: +SKIP
>>> clf.fit(["小区门口有人打架", "家里停水了", ...], ["police_public_order", "utilities", ...])  # doctest: +SKIP
"""
from model.transformer.backends import BACKENDS, LAYER_ROLES, fast_bf16_cpu, probability_agreement, quantize_int8, weight_matmuls
from model.transformer.classifier import FORMAT, OutdatedModelFolder, TransformerTextClassifier
from model.transformer.ensemble import LogPoolEnsemble
from model.transformer.network import (DEFAULT_BASE_MODEL, MEMBERS_DIR, META_FILE, ONNX_FILE, ONNX_INT8_FILE, BaseModelNotFound,
                                       length_buckets, resolve_base_model)
from model.transformer.trainer import Trainer, TrainingArguments

__all__ = [
    "BACKENDS", "DEFAULT_BASE_MODEL", "FORMAT", "LAYER_ROLES", "MEMBERS_DIR", "META_FILE", "ONNX_FILE", "ONNX_INT8_FILE",
    "BaseModelNotFound", "LogPoolEnsemble", "OutdatedModelFolder", "Trainer", "TrainingArguments", "TransformerTextClassifier",
    "fast_bf16_cpu", "length_buckets", "probability_agreement", "quantize_int8", "resolve_base_model", "weight_matmuls",
]
