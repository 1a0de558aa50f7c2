"""Evaluate a router on labelled tickets and write a report folder.

Report folder contents: ``metrics.json``, ``report.md``, ``misrouted_110.jsonl`` (masked texts of 110
calls routed to 12345), ``confusion_department.png``, ``confusion_channel.png``, ``reliability.png``
and ``coverage.png``.
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


def write_report(out_dir: str | Path, metrics: dict, records: list[CallRecord], decisions: list[Decision], title: str) -> Path:
    """Write metrics, the masked list of missed 110 calls, plots and a Markdown summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
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
    _plots(out, metrics, records, decisions)
    from training.model_card import metrics_table

    per = metrics["department"]["per_class"]
    lines = [
        f"# {title}",
        "",
        summary_line(metrics),
        "",
        metrics_table(metrics),
        "",
        f"Decision sources: {metrics.get('sources')}",
        "",
        "| department | precision | recall | F1 | support |",
        "| --- | --- | --- | --- | --- |",
        *[f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |" for k, v in per.items()],
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
    return out


def _short_labels(labels: list[str]) -> tuple[list[str], dict[str, str]]:
    """Plot labels: the codes when they are ASCII, else D1…Dn (the legend goes into the report)."""
    if all(l.isascii() for l in labels):
        return labels, {}
    short = [f"D{i + 1}" for i in range(len(labels))]
    return short, dict(zip(short, labels))


def _plots(out: Path, metrics: dict, records: list[CallRecord], decisions: list[Decision]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import ConfusionMatrixDisplay

    y = [r.department for r in records]
    p = [d.department for d in decisions]
    labels = sorted(set(y) | set(p))
    short, legend = _short_labels(labels)
    if legend:
        (out / "labels.json").write_text(json.dumps(legend, ensure_ascii=False, indent=2), encoding="utf-8")
    size = max(6, 0.35 * len(labels) + 3)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(y, p, labels=labels, display_labels=short, ax=ax, xticks_rotation=90, colorbar=False, include_values=len(labels) <= 20)
    ax.set_title("Department confusion (rows: true)")
    fig.tight_layout()
    fig.savefig(out / "confusion_department.png", dpi=90)
    plt.close(fig)

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
