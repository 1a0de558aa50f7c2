"""Evaluate a router on labelled tickets and write a report folder.

Report folder contents: ``metrics.json``, ``report.md`` (with the most frequent department confusions),
``misrouted_110.jsonl`` (masked texts of 110 calls routed to 12345), ``confusion_department.png``
(department names and counts, see :mod:`training.confusion`), ``confusion_channel.png``,
``reliability.png`` and ``coverage.png``; ``labels.json`` only when no CJK font could draw the names.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from data.masking import mask_pii
from data.schema import CallRecord
from model.artifacts import TrainedModel
from model.router import Decision, Router
from training.metrics import routing_metrics, summary_line

logger = logging.getLogger(__name__)


def route_all(router: Router, texts: Sequence[str], batch_size: int = 256, progress: bool = False) -> list[Decision]:
    out: list[Decision] = []
    for i in tqdm(range(0, len(texts), batch_size), desc="routing", disable=not progress, unit="batch"):
        out.extend(router.route_batch(texts[i : i + batch_size]))
    return out


def evaluate_records(model: TrainedModel | Router | None, records: list[CallRecord], progress: bool = False) -> dict:
    """Route ``records`` and score the decisions. ``model=None`` evaluates the rules alone.

    Returns
    -------
    dict with ``metrics`` (see :func:`training.metrics.routing_metrics`) and ``decisions`` (list of Decision).
    """
    router = model if isinstance(model, Router) else Router(model)
    texts = [r.text for r in records]
    decisions = route_all(router, texts, progress=progress)
    taxonomy = router.taxonomy
    truth = [r.department for r in records]
    true_channels = [r.channel or (taxonomy.channel_of(r.department) if r.department in taxonomy else "12345") for r in records]
    metrics = routing_metrics(
        truth,
        [d.department for d in decisions],
        [d.channel for d in decisions],
        [d.confidence for d in decisions],
        taxonomy,
        needs_review=[d.needs_review for d in decisions],
        true_channels=true_channels,
        reached_110=[d.action == "consult" for d in decisions],
    )
    sources = {}
    for d in decisions:
        sources[d.source] = sources.get(d.source, 0) + 1
    metrics["sources"] = sources
    metrics["model_version"] = router.model_version
    return {"metrics": metrics, "decisions": decisions}


def department_names(records: list[CallRecord], decisions: list[Decision], taxonomy=None) -> dict[str, str]:
    """Department code -> display name: from ``taxonomy`` when given, else from the decisions; a city's
    own labels (which are names) map to themselves."""
    names = {d.department: d.department_name for d in decisions if d.department and d.department_name}
    if taxonomy is not None:
        for code in {r.department for r in records} | set(names):
            if code in taxonomy:
                names[code] = taxonomy[code].name or code
    return names


def write_report(out_dir: str | Path, metrics: dict, records: list[CallRecord], decisions: list[Decision], title: str,
                 taxonomy=None) -> list[str]:
    """Write metrics, the masked list of missed 110 calls, plots and a Markdown summary.

    Returns notes for the person running it (e.g. no CJK font: the plot uses D1…Dn); they are in
    ``report.md`` too.
    """
    from data.loading import describe_input
    from training.confusion import confusion_counts, confusion_table, top_confusions

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    y = [r.department for r in records]
    p = [d.department for d in decisions]
    labels = sorted(set(y) | set(p))
    names = department_names(records, decisions, taxonomy)
    matrix = confusion_counts(y, p, labels)
    metrics["top_confusions"] = top_confusions(matrix, labels, names)
    (out / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")
    with open(out / "misrouted_110.jsonl", "w", encoding="utf-8") as f:
        for i in metrics["misrouted_110"]:
            r, d = records[i], decisions[i]
            f.write(
                json.dumps(
                    {"line": r.line, "text": mask_pii(r.text), "true_department": r.department, "routed_channel": d.channel,
                     "routed_department": d.department, "confidence": d.confidence, "source": d.source},
                    ensure_ascii=False,
                )
                + "\n"
            )
    notes = _plots(out, metrics, records, decisions, matrix, labels, names)
    from training.model_card import metrics_table

    per = metrics["department"]["per_class"]
    lines = [
        f"# {title}",
        "",
        summary_line(metrics),
        "",
        *[f"- {line}" for line in describe_input(metrics.get("input") or {})],
        *[f"- note: {n}" for n in notes],
        "",
        metrics_table(metrics),
        "",
        f"Decision sources: {metrics.get('sources')}",
        "",
        "| department | name | precision | recall | F1 | support |",
        "| --- | --- | --- | --- | --- | --- |",
        *[f"| {k} | {names.get(k, k)} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |" for k, v in per.items()],
        "",
        "## Most frequent department confusions (`confusion_department.png`)",
        "",
        *confusion_table(metrics["top_confusions"]),
        "",
        "## Accuracy against coverage (least confident sent to review)",
        "| coverage | confidence ≥ | accuracy |",
        "| --- | --- | --- |",
        *[f"| {c['coverage']:.2f} | {c['threshold']:.3f} | {c['accuracy']:.3f} |" for c in metrics["coverage"]],
        "",
        f"110 calls routed to 12345: {len(metrics['misrouted_110'])} (masked list in `misrouted_110.jsonl`).",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return notes


def _plots(out: Path, metrics: dict, records: list[CallRecord], decisions: list[Decision], matrix, labels: list[str],
           names: dict[str, str]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import ConfusionMatrixDisplay

    from serve.config import get_settings
    from training.confusion import FONT_HINT, cjk_font, display_names, draw_department_confusion

    notes = []
    font = cjk_font(get_settings().report_font)
    ticks, short = draw_department_confusion(out / "confusion_department.png", matrix, labels, names, font)
    if short:
        legend = dict(zip(ticks, display_names(labels, names)))
        (out / "labels.json").write_text(json.dumps(legend, ensure_ascii=False, indent=2), encoding="utf-8")
        notes.append(f"no CJK font found, so confusion_department.png labels departments D1…D{len(labels)} (names in labels.json); {FONT_HINT}")
    y = [r.department for r in records]
    p = [d.department for d in decisions]

    yc = [r.channel or "12345" for r in records]
    pc = [d.channel for d in decisions]
    fig, ax = plt.subplots(figsize=(4, 4))
    ConfusionMatrixDisplay.from_predictions(yc, pc, labels=["110", "12345"], ax=ax, colorbar=False)
    ax.set_title("Channel confusion")
    fig.tight_layout()
    fig.savefig(out / "confusion_channel.png", dpi=90)
    plt.close(fig)

    conf = np.array([d.confidence for d in decisions])
    correct = np.array([a == b for a, b in zip(y, p)])
    fig, ax = plt.subplots(figsize=(5, 5))
    if len(set(correct)) > 1:
        frac, mean = calibration_curve(correct, np.clip(conf, 0, 1), n_bins=10, strategy="uniform")
        ax.plot(mean, frac, "o-", label="router")
    ax.plot([0, 1], [0, 1], "k--", label="perfect")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability (ECE {metrics['ece']:.3f})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=90)
    plt.close(fig)

    cov = metrics["coverage"]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([c["coverage"] for c in cov], [c["accuracy"] for c in cov], "o-")
    ax.set_xlabel("coverage (share not sent to review)")
    ax.set_ylabel("department accuracy")
    ax.invert_xaxis()
    ax.set_title("Accuracy against coverage")
    fig.tight_layout()
    fig.savefig(out / "coverage.png", dpi=90)
    plt.close(fig)
    return notes


def rule_report(records: list[CallRecord], engine=None) -> list[dict]:
    """Judge the rules as a set on labelled records (snorkel-style analysis).

    For each rule: coverage (share of records it fires on), precision of its department and of its
    channel, and conflicts (records where another firing rule names another department).
    Sorted by id order of the rules file.
    """
    from model.rules import RuleEngine

    engine = engine or RuleEngine.from_file()
    fired = [engine.matches(r.text) for r in records]
    rows = []
    for rule in engine.rules:
        hits = [(rec, ms) for rec, ms in zip(records, fired) if any(m.rule_id == rule.id for m in ms)]
        n = len(hits)
        chan = engine.channel_of(rule.department)
        rows.append(
            {
                "rule": rule.id,
                "kind": rule.kind,
                "department": rule.department,
                "fires": n,
                "coverage": round(n / len(records), 4) if records else 0.0,
                "department_precision": round(sum(rec.department == rule.department for rec, _ in hits) / n, 4) if n else None,
                "channel_precision": round(sum((rec.channel or "12345") == ("110" if rule.kind == "danger" else chan) for rec, _ in hits) / n, 4) if n else None,
                "conflicts": sum(any(m.department != rule.department for m in ms) for _, ms in hits),
            }
        )
    return rows


def write_rule_report(out_dir: str | Path, rows: list[dict]) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rules.json").write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [
        "# Rules judged on labelled data",
        "",
        "| rule | kind | department | fires | coverage | department precision | channel precision | conflicts |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *[
            f"| {r['rule']} | {r['kind']} | {r['department']} | {r['fires']} | {fmt(r['coverage'])} | {fmt(r['department_precision'])} | {fmt(r['channel_precision'])} | {r['conflicts']} |"
            for r in rows
        ],
        "",
    ]
    (out / "rules.md").write_text("\n".join(lines), encoding="utf-8")
    return out / "rules.md"
