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

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import joblib

from data.taxonomy import Taxonomy
from model.checksums import sha256_file
from model.protocols import RoutingClassifier

logger = logging.getLogger(__name__)
FORMAT_VERSION = 1


class ModelLoadError(RuntimeError):
    """The model folder cannot be used; ``str(exc)`` says why."""


@dataclass
class TrainedModel:
    """A classifier plus everything the router needs to use it."""

    classifier: RoutingClassifier
    taxonomy: Taxonomy
    thresholds: dict
    version: str
    metrics: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.classifier.classes_]


def new_version(kind: str) -> str:
    return f"{kind}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"


def save_model(model: TrainedModel, out: str | Path, card: str, extra_config: dict | None = None) -> Path:
    """Write ``model`` to folder ``out`` (created; existing files are overwritten)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    kind = model.classifier.model_class
    if kind == "transformer":  # save_pretrained files instead of joblib
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


def _load_classifier(path: Path, kind: str) -> RoutingClassifier:
    """The folder's classifier, by ``model_class`` (its files already checked against config.json)."""
    if kind == "transformer":
        from model.transformer import TransformerTextClassifier

        return TransformerTextClassifier.from_pretrained(path)
    return joblib.load(path / "model.joblib")


def load_model(path: str | Path) -> TrainedModel:
    """Load a model folder written by :func:`save_model`. Raises :class:`ModelLoadError`.

    One path for every model class: config.json read, every listed file present and matching its
    checksum, then the classifier (``model.joblib``, or the transformer's ``from_pretrained``), the
    taxonomy and the metrics; the classifier's labels must be config.json's."""
    path = Path(path)
    cfg_path = path / "config.json"
    if not cfg_path.exists():
        raise ModelLoadError(f"{path}: no config.json (not a model folder)")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{cfg_path}: unreadable ({exc})") from None
    kind = config.get("model_class")
    if kind not in ("linear", "transformer"):
        raise ModelLoadError(f"{path}: model class {kind!r} is not supported by this version")
    files = dict(config.get("files", {}))
    if kind == "linear":
        files.setdefault("model.joblib", None)
    for name, expected in files.items():
        f = path / name
        if not f.exists():
            raise ModelLoadError(f"{path}: {name} is missing")
        if expected and sha256_file(f) != expected:
            raise ModelLoadError(f"{f}: checksum mismatch (file corrupt or replaced)")
    try:
        classifier = _load_classifier(path, kind)
        taxonomy = Taxonomy.from_dict(json.loads((path / "taxonomy.json").read_text(encoding="utf-8")), source=str(path / "taxonomy.json"))
        metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8")) if (path / "metrics.json").exists() else {}
    except Exception as exc:  # missing packages, unpickling or parsing failures, an outdated folder: unusable here
        raise ModelLoadError(f"{path}: cannot load ({type(exc).__name__}: {exc})") from None
    if [str(c) for c in classifier.classes_] != config.get("labels"):
        raise ModelLoadError(f"{path}: labels in config.json do not match the classifier")
    return TrainedModel(classifier=classifier, taxonomy=taxonomy, thresholds=config.get("thresholds", {}), version=config.get("version", path.name),
                        metrics=metrics, config=config, path=path)
