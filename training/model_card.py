"""Render a model card (README.md of a model folder) from what training measured."""
from __future__ import annotations

from typing import Any

from model import segment
from training.speed import speed_lines


def channel_threshold_line(t: dict) -> str:
    """The card's line for the 110 threshold: what it is, the recall target, what it gave on validation."""
    return (f"- bring 110 in when P(110) ≥ **{t['channel_110']:.4f}**: a transfer from 0.5 when a 110 department is also the most probable one, a three-way consult otherwise "
            f"(target 110 recall {t['target_110_recall']} expected on new calls, the model alone; "
            f"validation 110 recall {_fmt(t.get('validation_110_recall'))}, precision {_fmt(t.get('validation_110_precision'))})")


def operating_points_section(metrics: dict) -> list[str]:
    """The card's trade-off tables, and a loud note when the data had no channel information."""
    from model.thresholds import operating_points_table

    out = []
    if metrics.get("channel_information") is False:
        out += ["**No channel information**: every department of this model is on one line, so the model never suggests",
                "the other; only danger evidence (110 先行 / 三方通话) reaches 110. Retrain with `--channel-column` or",
                "`--channel-map` to say which departments are police.", ""]
    if metrics.get("operating_points"):
        out += ["### Operating points (validation predictions, model only): choose with `--target-110-recall`, "
                "`--review-budget` or `HOTLINE_REVIEW_BUDGET`", operating_points_table(metrics["operating_points"]), ""]
    return out


def _fmt(v: Any) -> str:
    return "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def metrics_table(m: dict) -> str:
    c, d = m["channel"], m["department"]
    rows = [
        ("110 recall", c.get("110_recall")),
        ("110 precision", c.get("110_precision")),
        ("channel accuracy", c.get("accuracy")),
        ("department accuracy", d.get("accuracy")),
        ("department macro-F1", d.get("macro_f1")),
        ("expected calibration error", m.get("ece")),
        ("review rate", (m.get("review") or {}).get("rate")),
        ("accuracy of decisions not sent to review", (m.get("review") or {}).get("accuracy_accepted")),
        ("rows", m.get("n")),
    ]
    return "| metric | value |\n| --- | --- |\n" + "\n".join(f"| {k} | {_fmt(v)} |" for k, v in rows)


def render_card(model, cfg, extra: dict) -> str:
    """Markdown model card: what the model is, what it was trained on, how well it does, its limits."""
    t = model.thresholds
    val = model.metrics["validation_out_of_fold"]
    lines = [
        f"# hotline-router model `{model.version}`",
        "",
        f"A {cfg.model} classifier (jieba words, cut by `{segment.BACKEND}`, + character {cfg.char_ngram_range[0]}–{cfg.char_ngram_range[1]}-grams, TF-IDF, "
        "LinearSVC, sigmoid calibration) that suggests the department, and through the taxonomy the channel (110 or 12345), "
        "for a Chinese hotline call summary. It is used through `model.router.Router`, which adds the danger override and the "
        "fallback rules.",
        "",
        "## Training data",
        f"- files: {', '.join(f'`{d}`' for d in cfg.data)} (columns `{cfg.text_column}` → `{cfg.label_column}`)",
        f"- rows used: {model.metrics['train_rows']}; rows skipped as invalid: {model.metrics['skipped_rows']}",
        f"- sha256 of (text, label) rows: `{extra['training_data_sha256'][:16]}…`",
        f"- taxonomy: `{model.taxonomy.name}` with {len(model.taxonomy.codes)} departments",
        "",
        "| department | channel | training rows |",
        "| --- | --- | --- |",
        *[f"| {c} ({model.taxonomy[c].name}) | {model.taxonomy.channel_of(c)} | {n} |" for c, n in extra["label_counts"].items()],
        "",
        "## Thresholds (chosen on out-of-fold validation predictions)",
        channel_threshold_line(t),
        f"- send to review when confidence < **{t['review']:.4f}** (target accuracy of the rest {t['target_auto_accuracy']}"
        + (f", at most {t['review_budget']:.0%} of calls" if t.get("review_budget") is not None else "")
        + f"; validation review rate {_fmt(t.get('validation_review_rate'))})",
        "",
        *operating_points_section(model.metrics),
        f"## Validation: {cfg.val_folds}-fold cross-validation on the training data (out-of-fold, model only, no rules)",
        metrics_table(val),
        "",
    ]
    if "test" in model.metrics:
        lines += [
            f"## Test: {', '.join(model.metrics['test']['data'])} (never used for training or thresholds; router with override)",
            metrics_table(model.metrics["test"]),
            "",
        ]
    lines += speed_lines(model.metrics.get("speed"))
    lines += [
        "## Limits",
        "- Trained on what the files above contain; a city's own phrasing, places and departments need its own tickets.",
        "- Probabilities are calibrated on the training distribution; re-check thresholds on new data before relying on them.",
        "- The danger override (rules) forces 110 on danger words; the model alone is not trusted with emergencies.",
        f"- Training took {model.metrics['train_seconds']} s.",
        "",
    ]
    return "\n".join(lines)
