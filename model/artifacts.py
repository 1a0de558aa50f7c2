"""A trained model is a self-describing folder; this module writes and reads it.

Layout (one folder per model version)::

    config.json        model class, params, labels, version, thresholds, training-data hash, file hashes
    model.joblib       the fitted classifier (linear) — or save_pretrained files (transformer)
    label_maps.json    id2label / label2id
    taxonomy.json      the taxonomy the model was trained with
    metrics.json       validation (out-of-fold) and test metrics
    README.md          model card

``load_model(path)`` rebuilds a :class:`TrainedModel`; a missing or corrupt folder raises
:class:`ModelLoadError` with the reason (the service then runs on rules and says so).
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import joblib

from data.taxonomy import Taxonomy

logger = logging.getLogger(__name__)
FORMAT_VERSION = 1


class ModelLoadError(RuntimeError):
    """The model folder cannot be used; ``str(exc)`` says why."""


@dataclass
class TrainedModel:
    """A classifier plus everything the router needs to use it."""

    classifier: Any
    taxonomy: Taxonomy
    thresholds: dict
    version: str
    metrics: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.classifier.classes_]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def new_version(kind: str) -> str:
    return f"{kind}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"


def save_model(model: TrainedModel, out: str | Path, card: str, extra_config: dict | None = None) -> Path:
    """Write ``model`` to folder ``out`` (created; existing files are overwritten)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    kind = getattr(model.classifier, "model_class", "linear")
    if hasattr(model.classifier, "save_pretrained"):  # transformer: save_pretrained files instead of joblib
        files = model.classifier.save_pretrained(out)
    else:
        joblib.dump(model.classifier, out / "model.joblib", compress=3)
        files = ["model.joblib"]
    labels = model.classes
    (out / "label_maps.json").write_text(
        json.dumps({"id2label": dict(enumerate(labels)), "label2id": {l: i for i, l in enumerate(labels)}}, ensure_ascii=False, indent=2),
        encoding="utf-8",
    )
    model.taxonomy.save(out / "taxonomy.json")
    (out / "metrics.json").write_text(json.dumps(model.metrics, ensure_ascii=False, indent=2), encoding="utf-8")
    config = {
        "format_version": FORMAT_VERSION,
        "model_class": kind,
        "version": model.version,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "params": model.classifier.get_params(),
        "labels": labels,
        "thresholds": model.thresholds,
        "files": {name: sha256_file(out / name) for name in files},
        **(extra_config or {}),
    }
    (out / "config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    (out / "README.md").write_text(card, encoding="utf-8")
    model.config, model.path = config, out
    return out


def _load_transformer(path: Path, config: dict) -> TrainedModel:
    """A ``model_class: transformer`` folder: every listed file checked, then ``from_pretrained``."""
    for name, expected in config.get("files", {}).items():
        f = path / name
        if not f.exists():
            raise ModelLoadError(f"{path}: {name} is missing")
        if sha256_file(f) != expected:
            raise ModelLoadError(f"{f}: checksum mismatch (file corrupt or replaced)")
    try:
        from model.transformer import TransformerTextClassifier

        classifier = TransformerTextClassifier.from_pretrained(path)
        taxonomy = Taxonomy.from_dict(json.loads((path / "taxonomy.json").read_text(encoding="utf-8")), source=str(path / "taxonomy.json"))
        metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8")) if (path / "metrics.json").exists() else {}
    except Exception as exc:  # missing packages, unreadable weights: the folder is unusable here
        raise ModelLoadError(f"{path}: cannot load ({type(exc).__name__}: {exc})") from None
    if [str(c) for c in classifier.classes_] != config.get("labels"):
        raise ModelLoadError(f"{path}: labels in config.json do not match the classifier")
    return TrainedModel(classifier=classifier, taxonomy=taxonomy, thresholds=config.get("thresholds", {}), version=config.get("version", path.name),
                        metrics=metrics, config=config, path=path)


def load_model(path: str | Path) -> TrainedModel:
    """Load a model folder written by :func:`save_model`. Raises :class:`ModelLoadError`."""
    path = Path(path)
    cfg_path = path / "config.json"
    if not cfg_path.exists():
        raise ModelLoadError(f"{path}: no config.json (not a model folder)")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{cfg_path}: unreadable ({exc})") from None
    kind = config.get("model_class")
    if kind == "transformer":
        return _load_transformer(path, config)
    if kind != "linear":
        raise ModelLoadError(f"{path}: model class {kind!r} is not supported by this version")
    weights = path / "model.joblib"
    if not weights.exists():
        raise ModelLoadError(f"{path}: model.joblib is missing")
    expected = config.get("files", {}).get("model.joblib")
    if expected and sha256_file(weights) != expected:
        raise ModelLoadError(f"{weights}: checksum mismatch (file corrupt or replaced)")
    try:
        classifier = joblib.load(weights)
        taxonomy = Taxonomy.from_dict(json.loads((path / "taxonomy.json").read_text(encoding="utf-8")), source=str(path / "taxonomy.json"))
        metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8")) if (path / "metrics.json").exists() else {}
    except Exception as exc:  # any unpickling/parsing failure means the folder is unusable
        raise ModelLoadError(f"{path}: cannot load ({type(exc).__name__}: {exc})") from None
    if [str(c) for c in classifier.classes_] != config.get("labels"):
        raise ModelLoadError(f"{path}: labels in config.json do not match the classifier")
    return TrainedModel(
        classifier=classifier,
        taxonomy=taxonomy,
        thresholds=config.get("thresholds", {}),
        version=config.get("version", path.name),
        metrics=metrics,
        config=config,
        path=path,
    )
