"""Fine-tune the transformer classifier (``hotline train --model transformer``) and save it like any model.

Unlike the linear model, the transformer is too slow for k-fold validation on these CPUs. Its
classifier keeps a stratified held-out split (``val_fraction``, default 10%) that it never fits on;
early stopping, temperature scaling and the router's thresholds are all chosen on that split, and the
reported validation metrics come from it (``method`` says so). The final network is the best epoch's.

>>> cfg = TrainConfig(data=["data/corpus/train.jsonl"], out="models/tf", model="transformer",
...                   base_model="models/base/e5-small-zh", transformer={"epochs": 4})  # doctest: +SKIP
>>> model = train_transformer(cfg)                                                     # doctest: +SKIP
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from data.loading import DataError
from data.taxonomy import Taxonomy
from model.artifacts import TrainedModel, new_version, save_model
from model.thresholds import choose_thresholds, decide
from model.transformer import MEMBERS_DIR, ONNX_INT8_FILE, TransformerTextClassifier, probability_agreement
from training.metrics import routing_metrics, summary_line
from training.model_card import _fmt, channel_threshold_line, metrics_table, operating_points_section
from training.config import TrainConfig, data_hash, has_channel_information, load_rows, load_training_data, report_operating_points
from training.evaluate import evaluate_records
from training.speed import record_speed, speed_lines

logger = logging.getLogger(__name__)


def make_transformer(cfg: TrainConfig, taxonomy: Taxonomy, progress: bool = False) -> TransformerTextClassifier:
    """The configured classifier; a channel head when the taxonomy has both channels."""
    channel_map = {d.code: d.channel for d in taxonomy.departments}
    params = {"random_state": cfg.seed, "progress": progress, **cfg.transformer}
    if len(set(channel_map.values())) < 2:
        channel_map = None
    return TransformerTextClassifier(base_model=cfg.base_model, channel_map=channel_map, **params)


def backend_agreement(clf: TransformerTextClassifier, folder: str | Path, texts: list[str], backend: str = "onnx-int8",
                      reference: np.ndarray | None = None) -> dict:
    """Compare torch with an exported ONNX backend on ``texts`` (see :func:`probability_agreement`);
    ``reference``: torch's probabilities of ``texts`` if the caller has them. ``clf`` is left on the
    torch backend."""
    ref = clf.predict_proba(texts) if reference is None else reference
    got = TransformerTextClassifier.from_pretrained(folder, backend=backend).predict_proba(texts)
    return {"backend": backend, **probability_agreement(ref, got)}


def fallback_thresholds(clf: TransformerTextClassifier, taxonomy: Taxonomy, cfg: TrainConfig) -> dict | None:
    """The linear model of the folder (``linear.joblib``) as the server's latency fallback
    (``HOTLINE_LATENCY_BUDGET_MS``, model/fallback.py): its own thresholds, chosen like the
    transformer's on the held-out split from a linear model fit without it, and what they gave there.
    None without the linear ensemble (``ensemble_linear=False``) or validation rows."""
    ens = clf.ensemble_
    proba = None if ens is None else ens.validation_proba_
    if proba is None:
        logger.warning("no linear model to fall back on when the transformer is too slow (ensemble_linear off or no validation rows)")
        return None
    classes, val_y = [str(c) for c in clf.classes_], clf.validation_labels_
    t = choose_thresholds(proba, classes, val_y, taxonomy, cfg.target_110_recall, cfg.target_auto_accuracy, review_budget=cfg.review_budget)
    chan, dep, conf, p110 = decide(proba, classes, taxonomy, t["channel_110"])
    m = routing_metrics(val_y, dep, chan, conf, taxonomy, needs_review=conf < t["review"], reached_110=p110 >= t["channel_110"])
    validation = {"accuracy": m["department"]["accuracy"], "macro_f1": m["department"]["macro_f1"], "110_recall": m["channel"].get("110_recall")}
    return {"classifier": "linear.joblib", "thresholds": t, "validation": validation}


def train_transformer(cfg: TrainConfig, progress: bool = True) -> TrainedModel:
    """Load data, fine-tune, choose thresholds on the held-out split, export ONNX, save to ``cfg.out``."""
    t0 = time.perf_counter()
    result, taxonomy, texts, labels = load_rows(cfg, 8, "fine-tune")
    records = result.records
    clf = make_transformer(cfg, taxonomy, progress).fit(texts, labels)
    classes = [str(c) for c in clf.classes_]
    val_y = clf.validation_labels_
    if len(val_y) == 0:
        raise DataError("no validation rows: raise transformer val_fraction (thresholds are chosen on held-out rows)")
    thresholds = choose_thresholds(clf.validation_proba_, classes, val_y, taxonomy, cfg.target_110_recall, cfg.target_auto_accuracy,
                                   review_budget=cfg.review_budget)
    chan, dep, conf, p110 = decide(clf.validation_proba_, classes, taxonomy, thresholds["channel_110"])
    validation = routing_metrics(val_y, dep, chan, conf, taxonomy, needs_review=conf < thresholds["review"],
                                 reached_110=p110 >= thresholds["channel_110"])  # consults reach 110 too
    validation.pop("misrouted_110", None)
    validation["method"] = f"held-out split of {len(val_y)} training rows ({clf.val_fraction:.0%}, stratified), not k-fold"
    logger.info("validation (held-out, model only): %s", summary_line(validation))
    points = report_operating_points(clf.validation_proba_, classes, val_y, taxonomy, thresholds)
    seconds = round(time.perf_counter() - t0, 2)
    metrics = {
        # Same key as the linear model so every consumer reads it; ``method`` says it is a held-out split.
        "validation_out_of_fold": validation,
        "operating_points": points,
        "channel_information": has_channel_information(taxonomy),
        "train_rows": len(records),
        "skipped_rows": len(result.errors),
        "input": result.input_report(),
        "train_seconds": seconds,
        "temperature": clf.temperature_,
        "channel_temperature": clf.channel_temperature_,
        "history": clf.history_,
        "n_params": clf.n_params_,
    }
    if clf.members_:  # the seed ensemble's other networks
        metrics["members"] = [{"random_state": m.random_state, "temperature": m.temperature_, "history": m.history_} for m in clf.members_]
    model = TrainedModel(classifier=clf, taxonomy=taxonomy, thresholds=thresholds, version=new_version(cfg.model), metrics=metrics)
    out = Path(cfg.out)
    test_records = []
    if cfg.test_data:
        test, _ = load_training_data(cfg, files=cfg.test_data, taxonomy=taxonomy)
        test_records = test.records
        metrics["test"] = evaluate_records(model, test_records)["metrics"]
        metrics["test"]["data"] = cfg.test_data
    check_texts = [r.text for r in test_records] or [texts[i] for i in clf.validation_index_]
    # Before saving: the verdict goes into transformer.json, where backend "auto" reads it.
    reference = clf.predict_proba(check_texts)  # float32, once for the bf16 and int8 checks
    metrics["bf16"] = clf.check_bf16(check_texts, cfg.int8_min_agreement, reference=reference)
    logger.info("bf16 weights vs float32: %s", metrics["bf16"])
    extra = {
        "training_data_sha256": data_hash(records),
        "training_data": cfg.data,
        "base_model": str(cfg.base_model or "models/base/e5-small-zh"),
        "label_counts": {c: int((labels == c).sum()) for c in classes},
        "latency_fallback": fallback_thresholds(clf, taxonomy, cfg),
    }
    if cfg.export_onnx:
        try:
            clf.export_onnx(out)
        except ImportError as exc:
            logger.warning("ONNX export skipped (%s): install the transformer extra", exc)
    save_model(model, out, render_transformer_card(model, cfg, extra), extra_config=extra)
    if (out / ONNX_INT8_FILE).exists():
        metrics["onnx"] = backend_agreement(clf, out, check_texts, reference=reference)
        logger.info("int8 ONNX vs torch: %s", metrics["onnx"])
        metrics["onnx"]["min_agreement"] = cfg.int8_min_agreement
        metrics["onnx"]["served"] = metrics["onnx"]["label_agreement"] >= cfg.int8_min_agreement
        if not metrics["onnx"]["served"]:
            # Too far from the trained model to serve: remove it (and its checksum) so that the router's
            # fastest backend is float32 ONNX, which is the same arithmetic as PyTorch.
            logger.warning("int8 ONNX agrees on %.2f%% < %.2f%% of labels: removed; float32 ONNX serves",
                           100 * metrics["onnx"]["label_agreement"], 100 * cfg.int8_min_agreement)
            for f in [out / ONNX_INT8_FILE, *out.glob(f"{MEMBERS_DIR}/*/{ONNX_INT8_FILE}")]:
                f.unlink()
            save_model(model, out, render_transformer_card(model, cfg, extra), extra_config=extra)  # the checksums without it
        else:
            # metrics.json and README.md are not checksummed: update them in place.
            (out / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")
            (out / "README.md").write_text(render_transformer_card(model, cfg, extra), encoding="utf-8")
    speed = record_speed(out, check_texts, cfg.speed_texts)  # on the backend "auto" serves here
    if speed:
        metrics["speed"] = speed
        (out / "README.md").write_text(render_transformer_card(model, cfg, extra), encoding="utf-8")
    Path(out, "train_config.json").write_text(json.dumps(cfg.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    logger.info("saved %s to %s in %.1fs", model.version, out, seconds)
    return model


def _best_epoch(clf: TransformerTextClassifier) -> str:
    scored = [h for h in clf.history_ if "val_accuracy" in h]
    if not scored:
        return "the last epoch"
    return f"epoch {max(scored, key=lambda h: h['val_accuracy'] + h['val_macro_f1'])['epoch']}"


def render_transformer_card(model: TrainedModel, cfg: TrainConfig, extra: dict) -> str:
    """Markdown model card of a fine-tuned transformer (README.md of the folder)."""
    clf: TransformerTextClassifier = model.classifier
    t, m = model.thresholds, model.metrics
    base = Path(extra["base_model"])
    note = ""
    info = base / "hotline_base.json"
    if info.exists():
        note = json.loads(info.read_text(encoding="utf-8")).get("note", "")
    layers = f"first {clf.num_layers} layers of " if clf.num_layers else ""
    lines = [
        f"# hotline-router model `{model.version}`",
        "",
        f"A fine-tuned transformer: the {layers}encoder `{base}` with mean pooling, a department head and "
        f"{'a channel head (110 / 12345) blended into P(110)' if clf.channels_ else 'no channel head'}; both heads calibrated by "
        f"temperature scaling (T = {clf.temperature_:.3f}, channel T = {clf.channel_temperature_:.3f}). It suggests the department, "
        "and through the taxonomy the channel, for a Chinese hotline call summary; `model.router.Router` adds the danger override and rules.",
        "",
    ]
    if note:
        lines += [f"**Base weights:** {note}", ""]
    if clf.members_:
        lines += [f"**Seed ensemble:** {1 + len(clf.members_)} networks trained on the same rows from seeds "
                  f"{', '.join(str(s) for s in [clf.random_state] + [m.random_state for m in clf.members_])}, each calibrated on the same "
                  f"validation split (T = {', '.join(f'{x.temperature_:.3f}' for x in [clf, *clf.members_])}); the transformer's probabilities "
                  f"are their mean. The epoch table below is the first network's; the others' are in `metrics.json` (`members`).", ""]
    if clf.ensemble_ is not None:
        a, b = clf.ensemble_.exponents
        lines += [f"**Ensemble:** probabilities are softmax({a:.2f} × log P(transformer) + {b:.2f} × log P(linear)), a log-linear pool with "
                  "the linear model (`linear.joblib`, exponents chosen on the validation split by log-likelihood); the linear model's "
                  "terms explain decisions.", ""]
    lines += [
        "## Training",
        f"- files: {', '.join(f'`{d}`' for d in cfg.data)} (columns `{cfg.text_column}` → `{cfg.label_column}`); rows {m['train_rows']}, skipped {m['skipped_rows']}",
        f"- sha256 of (text, label) rows: `{extra['training_data_sha256'][:16]}…`",
        f"- parameters: {', '.join(f'{k}={v}' for k, v in clf.get_params().items() if k not in ('channel_map', 'progress'))}",
        f"- epochs run: {len(clf.history_)}; served weights: {_best_epoch(clf)} (chosen by validation accuracy + macro-F1); "
        f"{m['n_params']:,} parameters; {m['train_seconds']} s, trained in {getattr(clf, 'precision_', None) or 'fp32'}",
        "",
        "| epoch | train loss | val accuracy | val macro-F1 | seconds |",
        "| --- | --- | --- | --- | --- |",
        *[f"| {h['epoch']} | {h['train_loss']} | {_fmt(h.get('val_accuracy'))} | {_fmt(h.get('val_macro_f1'))} | {h['seconds']} |" for h in clf.history_],
        "",
        "## Thresholds (chosen on the held-out validation split)",
        channel_threshold_line(t),
        f"- send to review when confidence < **{t['review']:.4f}** (validation review rate {_fmt(t.get('validation_review_rate'))})",
        "",
        *operating_points_section(m),
        f"## Validation: {m['validation_out_of_fold']['method']} (model only, no rules)",
        metrics_table(m["validation_out_of_fold"]),
        "",
    ]
    if "test" in m:
        lines += [f"## Test: {', '.join(m['test']['data'])} (never used for training or thresholds; router with override)", metrics_table(m["test"]), ""]
    backends = []
    if "onnx" in m:
        o = m["onnx"]
        backends.append(
            f"`model.int8.onnx` (dynamic int8 weights) agrees with the PyTorch model on {o['label_agreement']:.2%} of {o['texts']} texts; "
            f"largest probability difference {o['max_probability_difference']}. "
            + ("" if o.get("served", True) else f"That is below the {o['min_agreement']:.1%} this training asked for, so it was removed. "))
    if m.get("bf16"):
        b = m["bf16"]
        backends.append(
            f"The weights cast to bfloat16 (backend `torch-bf16`, chosen on CPUs with AMX) agree with float32 on "
            f"{b['label_agreement']:.2%} of {b['texts']} texts; largest probability difference {b['max_probability_difference']}"
            + ("." if b["served"] else f", below the {b['min_agreement']:.1%} this training asked for, so `auto` does not choose them."))
    if backends:
        lines += ["## Inference backends", *[f"- {x}" for x in backends], "", "The router loads the fastest backend present.", ""]
    lines += speed_lines(m.get("speed"))
    fb = extra.get("latency_fallback")
    if fb:
        v = fb["validation"]
        lines += ["## Latency fallback",
                  f"- When the transformer's queue would break the server's latency budget (`HOTLINE_LATENCY_BUDGET_MS`), the linear model "
                  f"`{fb['classifier']}` answers that call alone, with its own thresholds (P(110) ≥ {fb['thresholds']['channel_110']:.4f}, "
                  f"review below {fb['thresholds']['review']:.4f}; on the validation split, fit without it: accuracy {_fmt(v['accuracy'])}, "
                  f"macro-F1 {_fmt(v['macro_f1'])}, 110 recall {_fmt(v['110_recall'])}).", ""]
    lines += [
        "## Limits",
        "- The base encoder's weights went through 4-bit rounding (see above) unless another base was given.",
        "- Validation is one held-out split, smaller and noisier than the linear model's cross-validation.",
        "- The danger override (rules) forces 110 on danger words; the model alone is not trusted with emergencies.",
        "",
    ]
    return "\n".join(lines)
