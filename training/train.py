"""Train a routing model from labelled tickets and save it as a self-describing folder.

Thresholds and the validation metrics come from out-of-fold predictions on the training data
(k-fold cross-validation), never from predictions on rows a model was fit on. A test file, when
given, is only scored after the final fit.

>>> cfg = TrainConfig(data=["data/corpus/train.jsonl"], out="models/my-model")  # doctest: +SKIP
>>> model = train(cfg)                                                          # doctest: +SKIP
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold
from tqdm.auto import tqdm

from data.cleaning import normalize_text
from data.loading import DataError
from data.schema import CallRecord
from data.taxonomy import Taxonomy
from model.artifacts import TrainedModel, new_version, save_model
from model.calibration import apply_temperature, fit_temperature
from model.linear import LinearTextClassifier
from model.router import Decision, Router
from model.thresholds import choose_thresholds, decide
from training.config import TrainConfig, data_hash, has_channel_information, load_rows, load_training_data, read_channel_map, report_operating_points
from training.evaluate import evaluate_records, route_all
from training.finetune import train_transformer
from training.metrics import routing_metrics, summary_line
from training.model_card import render_card
from training.speed import record_speed

__all__ = ["TrainConfig", "cross_validate", "data_hash", "fit_fold_model", "has_channel_information", "load_training_data", "make_classifier",
           "out_of_fold_proba", "read_channel_map", "train"]

logger = logging.getLogger(__name__)


def make_classifier(cfg: TrainConfig, taxonomy: Taxonomy | None = None) -> LinearTextClassifier:
    """The configured classifier; with a taxonomy that has both channels, a channel head is added."""
    channel_of = None
    if taxonomy is not None and cfg.channel_head and len({d.channel for d in taxonomy.departments}) == 2:
        channel_of = {d.code: d.channel for d in taxonomy.departments}
    return LinearTextClassifier(
        C=cfg.C, char_ngram_range=cfg.char_ngram_range, word_ngram_range=cfg.word_ngram_range, channel_of=channel_of, random_state=cfg.seed
    )


def out_of_fold_proba(clf, texts: list[str], labels: np.ndarray, folds: int, seed: int, progress: bool = True) -> tuple[np.ndarray, list[str]]:
    """Probabilities (n, n_classes) for every row from a model that never saw it; columns sorted labels."""
    classes = sorted(set(labels))
    counts = min(np.sum(labels == c) for c in classes)
    folds = int(max(2, min(folds, counts)))
    if counts < 2:
        raise DataError(f"each label needs at least 2 examples for validation; {[c for c in classes if np.sum(labels == c) < 2][:5]} have 1")
    proba = np.zeros((len(texts), len(classes)))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for tr, va in tqdm(list(splitter.split(texts, labels)), desc="validation folds", disable=not progress, unit="fold"):
        m = clone(clf).fit([texts[i] for i in tr], labels[tr])
        col = [classes.index(c) for c in m.classes_]
        proba[np.ix_(va, col)] = m.predict_proba([texts[i] for i in va])
    return proba, classes


def train(cfg: TrainConfig, progress: bool = True) -> TrainedModel:
    """Load data, choose thresholds on out-of-fold predictions, fit on all rows, save to ``cfg.out``."""
    if cfg.model == "transformer":  # fine-tuning has its own loop and a held-out validation split
        return train_transformer(cfg, progress)
    t0 = time.perf_counter()
    result, taxonomy, texts, labels = load_rows(cfg, 4, "train")
    records = result.records
    clf = make_classifier(cfg, taxonomy)
    oof, classes = out_of_fold_proba(clf, texts, labels, cfg.val_folds, cfg.seed, progress)
    temperature = fit_temperature(oof, np.array([classes.index(y) for y in labels]))
    oof = apply_temperature(oof, temperature)
    thresholds = choose_thresholds(oof, classes, labels, taxonomy, cfg.target_110_recall, cfg.target_auto_accuracy,
                                   review_budget=cfg.review_budget)
    chan, dep, conf, p110 = decide(oof, classes, taxonomy, thresholds["channel_110"])
    validation = routing_metrics(labels, dep, chan, conf, taxonomy, needs_review=conf < thresholds["review"],
                                 reached_110=p110 >= thresholds["channel_110"])  # consults reach 110 too
    validation.pop("misrouted_110", None)
    logger.info("validation (out-of-fold, model only): %s", summary_line(validation))
    points = report_operating_points(oof, classes, labels, taxonomy, thresholds)
    with tqdm(total=1, desc="final fit", disable=not progress) as bar:
        clf.fit(texts, labels)
        clf.temperature_ = temperature
        bar.update(1)
    seconds = round(time.perf_counter() - t0, 2)
    metrics = {
        "validation_out_of_fold": validation,
        "train_rows": len(records),
        "skipped_rows": len(result.errors),
        "input": result.input_report(),
        "train_seconds": seconds,
        "temperature": round(temperature, 4),
        "operating_points": points,
        "channel_information": has_channel_information(taxonomy),
    }
    model = TrainedModel(classifier=clf, taxonomy=taxonomy, thresholds=thresholds, version=new_version(cfg.model), metrics=metrics)
    if cfg.test_data:
        test, _ = load_training_data(cfg, files=cfg.test_data, taxonomy=taxonomy)
        metrics["test"] = evaluate_records(model, test.records)["metrics"]
        metrics["test"]["data"] = cfg.test_data
    extra = {"training_data_sha256": data_hash(records), "training_data": cfg.data, "label_counts": {c: int((labels == c).sum()) for c in classes}}
    save_model(model, cfg.out, render_card(model, cfg, extra), extra_config=extra)
    speed = record_speed(cfg.out, [r.text for r in test.records] if cfg.test_data else texts, cfg.speed_texts)
    if speed:
        model.metrics["speed"] = speed
        Path(cfg.out, "README.md").write_text(render_card(model, cfg, extra), encoding="utf-8")
    Path(cfg.out, "train_config.json").write_text(json.dumps(cfg.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    logger.info("saved %s to %s in %.1fs", model.version, cfg.out, seconds)
    return model


def fit_fold_model(cfg: TrainConfig, taxonomy: Taxonomy, texts: list[str], labels: np.ndarray, inner_folds: int, version: str) -> TrainedModel:
    """The linear model one cross-validation fold serves: fit on ``texts``/``labels`` (shape (n,)), its
    temperature and thresholds chosen on inner out-of-fold predictions of those rows only."""
    clf = make_classifier(cfg, taxonomy)
    oof, classes = out_of_fold_proba(clf, texts, labels, inner_folds, cfg.seed, progress=False)
    temperature = fit_temperature(oof, np.array([classes.index(y) for y in labels]))
    oof = apply_temperature(oof, temperature)
    thresholds = choose_thresholds(oof, classes, labels, taxonomy, cfg.target_110_recall, cfg.target_auto_accuracy,
                                   review_budget=cfg.review_budget)
    clf.fit(texts, labels)
    clf.temperature_ = temperature
    return TrainedModel(clf, taxonomy, thresholds, version=version)


def cross_validate(cfg, folds: int = 5, inner_folds: int = 3, progress: bool = True) -> tuple[list[CallRecord], list[Decision], dict]:
    """k-fold cross-validation of the configured linear model on ``cfg.data``.

    Each outer fold trains on the other folds (thresholds from inner out-of-fold predictions) and
    routes its own rows, so every decision comes from a model that never saw that row.

    Returns (records, decisions in record order, metrics).
    """
    from sklearn.metrics import f1_score

    result, taxonomy = load_training_data(cfg)
    records = result.records
    texts = [r.text for r in records]
    labels = np.asarray([r.department for r in records])
    decisions: list[Decision | None] = [None] * len(records)
    alone = np.empty(len(records), dtype=object)  # the classifier's own most probable department
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=cfg.seed)
    for k, (tr, te) in enumerate(tqdm(list(splitter.split(texts, labels)), desc="cross-validation", disable=not progress, unit="fold")):
        model = fit_fold_model(cfg, taxonomy, [texts[i] for i in tr], labels[tr], inner_folds, version=f"{new_version('linear')}-fold{k + 1}")
        clf, router = model.classifier, Router(model)
        te_texts = [normalize_text(texts[i]) for i in te]
        alone[te] = np.asarray(clf.classes_)[clf.predict_proba(te_texts).argmax(axis=1)]
        for i, d in zip(te, route_all(router, [texts[i] for i in te])):
            decisions[i] = d
    done = [d for d in decisions if d is not None]
    metrics = routing_metrics(
        labels, [d.department for d in done], [d.channel for d in done], [d.confidence for d in done], taxonomy,
        needs_review=[d.needs_review for d in done], true_channels=[r.channel for r in records],
        reached_110=[d.action == "consult" for d in done],
    )
    metrics["cross_validation_folds"] = folds
    metrics["input"] = result.input_report()
    metrics["classifier_alone"] = {
        "accuracy": round(float(np.mean(alone == labels)), 4),
        "macro_f1": round(float(f1_score(labels, alone.astype(str), labels=sorted(set(labels)), average="macro", zero_division=0)), 4),
    }
    return records, done, metrics
