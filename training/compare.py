"""Champion against challenger on one fixed test set: the numbers promotion is decided on.

Both models route the same test rows, scored against the same truth: the channel comes from the
test file's channel column when it has one, else from the challenger's taxonomy (the champion's
for departments only it knows), so a change of taxonomy cannot move the goalposts. A missing
champion is the rules-only router, which is what the service runs with an empty registry.

``comparison.json`` (written into the challenger folder)::

    {"test": {"files": [...], "sha256": [...], "rows": 928, "text_column": "text", ...},
     "champion":   {"name": "linear-20261120-174455", "version": ..., "weights_sha256": ..., "metrics": {...}},
     "challenger": {...same...},
     "labels": {"same": true, "only_champion": [], "only_challenger": [], "shared": 9, "comparable": true,
                "test_rows_compared": 928, "test_rows_left_out": 0},  # the department lists of the two models
     "deltas": {"110_recall": 0.012, "macro_f1": 0.034, ...},   # challenger − champion
     "merge": {...}}                                            # from training.retrain, when retrained

>>> comparison = compare_models(challenger, champion, load_test_set(["test.csv"]))  # doctest: +SKIP
>>> comparison["deltas"]["110_recall"]                                             # doctest: +SKIP
0.0
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from data.loading import load_many
from data.schema import CallRecord
from model.artifacts import TrainedModel
from model.checksums import sha256_file
from model.registry import files_fingerprint
from model.router import Router
from training.evaluate import evaluate_records

logger = logging.getLogger(__name__)

COMPARISON_JSON = "comparison.json"
COMPARISON_MD = "comparison.md"
# (key in a headline dict, label in tables); 110 recall first, as everywhere.
HEADLINE = (
    ("110_recall", "110 recall"),
    ("110_precision", "110 precision"),
    ("missed_110", "110 calls missed"),
    ("channel_accuracy", "channel accuracy"),
    ("accuracy", "department accuracy"),
    ("macro_f1", "department macro-F1"),
    ("ece", "calibration error (ECE)"),
    ("review_rate", "review rate"),
    ("n", "test rows"),
)


@dataclass
class EvalSet:
    """A fixed labelled test set and how it was read (enough to read it again and check it is unchanged).

    Attributes
    ----------
    records : list of CallRecord, length n
        Labelled rows; ``channel`` set where the file has a channel column.
    files : list of str
    sha256 : list of str
        Checksum of each file, in ``files`` order.
    """

    records: list[CallRecord]
    files: list[str]
    sha256: list[str]
    text_column: str = "text"
    label_column: str = "department"
    channel_column: str | None = None
    skipped_rows: int = 0
    strip_boilerplate: bool = False
    extra: dict = field(default_factory=dict)
    input: dict = field(default_factory=dict)  # duplicates and label conflicts dropped (data.loading)

    def spec(self) -> dict:
        """What ``comparison.json`` stores about the test set (no texts)."""
        return {
            "files": self.files, "sha256": self.sha256, "rows": len(self.records), "skipped_rows": self.skipped_rows,
            "text_column": self.text_column, "label_column": self.label_column, "channel_column": self.channel_column,
            "strip_boilerplate": self.strip_boilerplate, "input": self.input,
        }


def load_test_set(
    files: list[str],
    text_column: str = "text",
    label_column: str = "department",
    channel_column: str | None = None,
    strict: bool = True,
    strip_boilerplate: bool = False,
) -> EvalSet:
    """Read a labelled test set (CSV/JSONL/XLSX) without a taxonomy, so any model can be scored on it.

    Repeated texts follow :mod:`data.loading`'s policy (exact duplicates dropped and counted, label
    conflicts dropped and reported, first label kept). Raises DataError.
    """
    from data.cleaning import BoilerplateStripper

    cleaner: Callable[[str], str] | None = BoilerplateStripper() if strip_boilerplate else None
    files = [str(Path(f).resolve()) for f in files]  # absolute: promote may read them again from elsewhere
    res = load_many(files, text_column=text_column, label_column=label_column, channel_column=channel_column, strict=strict, cleaner=cleaner)
    return EvalSet(
        records=res.records, files=files, sha256=[sha256_file(Path(f)) for f in files], text_column=text_column,
        label_column=label_column, channel_column=channel_column, skipped_rows=len(res.errors), strip_boilerplate=strip_boilerplate,
        input=res.input_report(),
    )


def load_test_set_from_spec(spec: dict) -> EvalSet:
    """Read the test set a ``comparison.json`` names again; DataError if a file is gone or has changed."""
    from data.loading import DataError

    for f, sha in zip(spec["files"], spec["sha256"]):
        if not Path(f).exists():
            raise DataError(f"{f}: the comparison's test file is gone")
        if sha256_file(Path(f)) != sha:
            raise DataError(f"{f}: the comparison's test file has changed since it was compared")
    return load_test_set(
        spec["files"], spec["text_column"], spec["label_column"], spec.get("channel_column"),
        strict=not spec.get("skipped_rows"), strip_boilerplate=spec.get("strip_boilerplate", False),
    )


def model_identity(model: TrainedModel | None) -> dict:
    """Name, version and weights checksum of a model (``{"name": "rules-only"}`` for None)."""
    if model is None:
        return {"name": "rules-only", "version": None, "path": None, "weights_sha256": None}
    sha = files_fingerprint(model.config.get("files"))
    return {"name": model.path.name if model.path else model.version, "version": model.version, "path": str(model.path) if model.path else None, "weights_sha256": sha}


def headline(metrics: dict) -> dict:
    """The numbers promotion looks at, from :func:`training.metrics.routing_metrics` output."""
    c, d = metrics["channel"], metrics["department"]
    return {
        "110_recall": c.get("110_recall"),
        "110_precision": c.get("110_precision"),
        "missed_110": c.get("missed_110"),
        "n_110": c.get("n_110"),
        "channel_accuracy": c.get("accuracy"),
        "accuracy": d.get("accuracy"),
        "macro_f1": d.get("macro_f1"),
        "ece": metrics.get("ece"),
        "review_rate": (metrics.get("review") or {}).get("rate"),
        "n": metrics.get("n"),
    }


def _truth_channels(records: list[CallRecord], taxonomies: list) -> list[CallRecord]:
    out = []
    for r in records:
        channel = r.channel
        if channel is None:
            known = [t for t in taxonomies if t is not None and r.department in t]
            channel = known[0].channel_of(r.department) if known else "12345"
        out.append(replace(r, channel=channel))
    return out


def evaluate_one(model: TrainedModel | None, records: list[CallRecord]) -> dict:
    """Route ``records`` with ``model`` (None: rules only) and return identity, headline and per-department F1."""
    result = evaluate_records(model if model is not None else Router(None), records)
    m = result["metrics"]
    return {
        **model_identity(model),
        "metrics": headline(m),
        "per_department_f1": {k: v["f1"] for k, v in m["department"]["per_class"].items()},
        "sources": m.get("sources", {}),
    }


def label_sets(challenger: TrainedModel, champion: TrainedModel | None) -> tuple[set[str], set[str]]:
    """The departments each model routes to (its taxonomy's codes; rules only: the rules' taxonomy)."""
    champ_tax = champion.taxonomy if champion is not None else Router(None).taxonomy
    return set(challenger.taxonomy.codes), set(champ_tax.codes)


def describe_labels(labels: dict, limit: int = 8) -> str:
    """One phrase for a comparison's ``labels`` entry: what differs and what was compared."""
    def some(codes: list[str]) -> str:
        return ", ".join(codes[:limit]) + (f", … {len(codes) - limit} more" if len(codes) > limit else "")

    parts = []
    if labels["only_champion"]:
        parts.append(f"{len(labels['only_champion'])} only the champion has ({some(labels['only_champion'])})")
    if labels["only_challenger"]:
        parts.append(f"{len(labels['only_challenger'])} only the challenger has ({some(labels['only_challenger'])})")
    diff = "; ".join(parts)
    if not labels["comparable"]:
        return f"{diff}; no test row is of a department both have, so the numbers cannot be compared"
    return (f"{diff}; compared on the {labels['test_rows_compared']} test rows of the {labels['shared']} shared departments "
            f"({labels['test_rows_left_out']} rows of other departments left out)")


def compare_models(challenger: TrainedModel, champion: TrainedModel | None, test: EvalSet) -> dict:
    """Score both models on ``test``; returns the comparison dict (see the module docstring).

    ``deltas`` are challenger minus champion for every headline number (None where either is None).
    When the models route to different department lists, both are scored only on the test rows of
    the departments they share (a model cannot be judged on a department it does not have), and
    ``labels`` says what differs; with no such row the deltas are None and ``labels.comparable`` False.
    """
    from data.loading import DataError

    records = _truth_channels(test.records, [challenger.taxonomy, champion.taxonomy if champion is not None else None])
    if not records:
        raise DataError(f"{', '.join(test.files)}: no usable test rows")
    chal_codes, champ_codes = label_sets(challenger, champion)
    shared = chal_codes & champ_codes
    labels = {"same": chal_codes == champ_codes, "only_champion": sorted(champ_codes - chal_codes),
              "only_challenger": sorted(chal_codes - champ_codes), "shared": len(shared), "comparable": True,
              "test_rows_compared": len(records), "test_rows_left_out": 0}
    if not labels["same"]:
        kept = [r for r in records if r.department in shared]
        labels.update(test_rows_compared=len(kept), test_rows_left_out=len(records) - len(kept), comparable=bool(kept))
        records = kept or records
        logger.info("the champion and the challenger route to different departments: %s", describe_labels(labels))
    chal = evaluate_one(challenger, records)
    champ = evaluate_one(champion, records)
    deltas = {}
    for key, _ in HEADLINE:
        a, b = chal["metrics"].get(key), champ["metrics"].get(key)
        deltas[key] = None if a is None or b is None or not labels["comparable"] else round(a - b, 4)
    logger.info("compared %s (challenger) with %s (champion) on %d test rows", chal["name"], champ["name"], len(records))
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "test": test.spec(),
        "labels": labels,
        "champion": champ,
        "challenger": chal,
        "deltas": deltas,
    }


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _fmt_delta(v) -> str:
    if v is None:
        return "n/a"
    return f"{v:+.3f}" if isinstance(v, float) else f"{v:+d}"


def _label(side: dict) -> str:
    return side.get("version") or side["name"]


def comparison_table(comparison: dict) -> str:
    """Markdown table: metric | champion | challenger | change (challenger − champion)."""
    champ, chal, d = comparison["champion"], comparison["challenger"], comparison["deltas"]
    rows = [f"| metric | champion `{_label(champ)}` | challenger `{_label(chal)}` | change |", "| --- | --- | --- | --- |"]
    for key, label in HEADLINE:
        rows.append(f"| {label} | {_fmt(champ['metrics'].get(key))} | {_fmt(chal['metrics'].get(key))} | {_fmt_delta(d.get(key))} |")
    return "\n".join(rows)


def render_markdown(comparison: dict) -> str:
    """``comparison.md``: the test set, the table, the merge counts, per-department F1 of both models."""
    t = comparison["test"]
    lines = [
        f"# Champion `{_label(comparison['champion'])}` against challenger `{_label(comparison['challenger'])}`",
        "",
        f"Test set: {', '.join(f'`{f}`' for f in t['files'])} ({t['rows']} rows, {t['skipped_rows']} skipped; "
        f"columns `{t['text_column']}` → `{t['label_column']}`, channel `{t.get('channel_column') or 'from the taxonomy'}`). "
        "Both models routed the same rows through the full router (rules and danger override included).",
        "",
        comparison_table(comparison),
        "",
    ]
    labels = comparison.get("labels")
    if labels and not labels["same"]:
        lines += ["## The department lists differ", "", f"Departments: {describe_labels(labels, limit=1000)}. "
                  "`hotline promote` refuses such a challenger unless given --allow-label-change.", ""]
    merge = comparison.get("merge")
    if merge:
        from data.loading import describe_input

        lines += ["## Training data of the challenger", "", *[f"- {k.replace('_', ' ')}: {v}" for k, v in merge.items()]]
        for side, report in (comparison.get("input") or {}).items():
            lines += [f"- {line}" for line in describe_input(report or {}, name=f"{side} data")]
        lines.append("")
    champ, chal = comparison["champion"]["per_department_f1"], comparison["challenger"]["per_department_f1"]
    lines += ["## F1 per department", "", "| department | champion | challenger |", "| --- | --- | --- |"]
    for dep in sorted(set(champ) | set(chal)):
        lines.append(f"| {dep} | {_fmt(champ.get(dep))} | {_fmt(chal.get(dep))} |")
    lines.append("")
    return "\n".join(lines)


def write_comparison(out_dir: str | Path, comparison: dict) -> Path:
    """Write ``comparison.json`` and ``comparison.md`` into ``out_dir``; returns the JSON path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / COMPARISON_JSON
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(comparison, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(path)
    (out / COMPARISON_MD).write_text(render_markdown(comparison), encoding="utf-8")
    return path


def read_comparison(model_dir: str | Path) -> dict | None:
    """The ``comparison.json`` of a model folder, or None when there is none."""
    path = Path(model_dir) / COMPARISON_JSON
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
