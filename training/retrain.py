"""Retrain: merge a base training set with new labelled tickets, train a challenger, compare it with the champion.

The base is the shipped corpus (``data/corpus/train.jsonl``) or an earlier training set (the
``training_set.jsonl`` a previous retrain wrote); new tickets are exports from a ticket system
(CSV/JSONL/XLSX) or exported supervisor reviews (JSONL with ``text``, ``department``, ``channel``).

Deduplication is by :func:`data.cleaning.dedup_key` (text without spaces and punctuation):

- within the base, and within the new tickets, the policy of :mod:`data.loading` (shared with
  ``train`` and ``evaluate``): exact duplicates are dropped and counted, a same-text row with
  another label is dropped and reported by file and line (the first row's label is kept);
- a new ticket whose text is in the base replaces the base row; when the labels differ this is a
  *conflict* and the new label wins (a supervisor's or the latest dispatcher's decision);
- rows whose text is in the test set are dropped, so the comparison is not scored on training rows.

The challenger is trained with :func:`training.train.train` on the merged rows (written to
``<out>/training_set.jsonl``, raw texts, never copied into the registry) and compared with the
champion on the test set by :func:`training.compare.compare_models`; ``comparison.json`` and
``comparison.md`` go into the challenger folder.

>>> cfg = RetrainConfig(base_data=["data/corpus/train.jsonl"], new_data=["exports/2026-05.xlsx"],
...                     test_data=["exports/held_out.csv"], out="runs/challenger",
...                     text_column="诉求内容", label_column="处置单位")          # doctest: +SKIP
>>> result = retrain(cfg)                                                          # doctest: +SKIP
>>> result.merge.conflicts_new_over_base                                           # doctest: +SKIP
3
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from data.cleaning import BoilerplateStripper, dedup_key
from data.loading import DataError, LoadResult, load_many
from data.schema import CallRecord
from model.artifacts import TrainedModel, load_model
from model.registry import current_model_dir
from training.compare import EvalSet, compare_models, load_test_set, write_comparison
from training.train import TrainConfig, train

logger = logging.getLogger(__name__)

TRAINING_SET = "training_set.jsonl"


@dataclass
class RetrainConfig:
    """Everything a retrain depends on; saved in ``comparison.json`` under ``retrain_config``.

    Column names of the base and test files default to those of the new tickets
    (``text_column`` etc.); set ``base_*``/``test_*`` when they differ.
    """

    base_data: list[str]
    new_data: list[str]
    test_data: list[str]
    out: str
    text_column: str = "text"
    label_column: str = "department"
    channel_column: str | None = None
    base_text_column: str | None = None
    base_label_column: str | None = None
    base_channel_column: str | None = None
    test_text_column: str | None = None
    test_label_column: str | None = None
    test_channel_column: str | None = None
    champion: str | None = None  # a model folder; default: the registry's CURRENT (rules only if none)
    registry: str | None = "models"
    strict: bool = True
    strip_boilerplate: bool = False
    taxonomy: str | None = None
    channel_map: str | None = None
    seed: int = 13
    val_folds: int = 5
    target_110_recall: float = 0.99
    model: str = "linear"  # or "transformer": fine-tunes base_model (training/finetune.py), same merge, comparison and gate
    base_model: str | None = None  # transformer: a local Hugging Face folder (default models/base/e5-small-zh)
    transformer: dict = field(default_factory=dict)  # transformer: TransformerTextClassifier parameters (--param KEY=VALUE)

    def __post_init__(self) -> None:
        for name in ("base_data", "new_data", "test_data"):
            value = getattr(self, name)
            setattr(self, name, [str(value)] if isinstance(value, (str, Path)) else [str(v) for v in value])
        self.out = str(self.out)
        for prefix in ("base_", "test_"):
            for col in ("text_column", "label_column", "channel_column"):
                if getattr(self, prefix + col) is None:
                    setattr(self, prefix + col, getattr(self, col))
        if not self.base_data or not self.new_data:
            raise ValueError("retraining needs --base-data and --new-data")
        if not self.test_data:
            raise ValueError("retraining needs a fixed --test-data file to compare champion and challenger on")
        if self.model not in ("linear", "transformer"):
            raise ValueError(f"--model must be 'linear' or 'transformer', got {self.model!r}")
        self.transformer = dict(self.transformer or {})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class MergeStats:
    """What merging did, row by row. Every dropped row is counted under exactly one reason."""

    base_rows: int = 0
    new_rows: int = 0
    base_bad_rows_skipped: int = 0
    new_bad_rows_skipped: int = 0
    duplicates_in_base: int = 0  # dropped: same text as an earlier base row
    conflicts_in_base: int = 0  # of those, with a different label (first kept)
    duplicates_in_new: int = 0
    conflicts_in_new: int = 0
    new_same_as_base: int = 0  # base row replaced by a new row with the same text and label
    conflicts_new_over_base: int = 0  # base row replaced by a new row with the same text, another label
    dropped_test_overlap: int = 0  # rows whose text is in the test set
    training_rows: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (
            f"{self.training_rows} training rows from {self.base_rows} base + {self.new_rows} new; "
            f"{self.duplicates_in_base + self.duplicates_in_new + self.new_same_as_base} duplicates dropped, "
            f"{self.conflicts_new_over_base} base rows relabelled by new rows (new label wins), "
            f"{self.conflicts_in_base + self.conflicts_in_new} same-text conflicts within a side (first kept), "
            f"{self.dropped_test_overlap} dropped as test-set texts, "
            f"{self.base_bad_rows_skipped + self.new_bad_rows_skipped} bad rows skipped"
        )


@dataclass
class RetrainResult:
    model: TrainedModel
    comparison: dict
    merge: MergeStats
    out: Path
    champion: TrainedModel | None = None
    training_set: Path | None = None
    test: EvalSet | None = field(default=None, repr=False)
    inputs: dict = field(default_factory=dict)  # "base"/"new"/"test": data.loading's input_report of each side


def merge_records(base: list[CallRecord], new: list[CallRecord], exclude_keys: frozenset[str] | set[str] = frozenset()) -> tuple[list[tuple[CallRecord, str]], MergeStats]:
    """Merge labelled rows; new rows win over base rows with the same :func:`dedup_key`.

    Returns
    -------
    (rows, stats): ``rows`` is a list of (record, origin) with origin ``"base"`` or ``"new"``, base
    rows first (in file order), then new rows; ``stats`` counts what was dropped and why.

    >>> b = [CallRecord("小区停电了", "utilities"), CallRecord("车被堵了", "convenience")]
    >>> n = [CallRecord("车被堵了！", "police_public_order"), CallRecord("有人打架", "police_public_order")]
    >>> rows, stats = merge_records(b, n)
    >>> [(r.department, origin) for r, origin in rows]
    [('utilities', 'base'), ('police_public_order', 'new'), ('police_public_order', 'new')]
    >>> stats.conflicts_new_over_base, stats.training_rows
    (1, 3)
    """
    stats = MergeStats(base_rows=len(base), new_rows=len(new))
    merged: dict[str, tuple[CallRecord, str]] = {}
    for r in base:
        key = dedup_key(r.text)
        if key in merged:
            stats.duplicates_in_base += 1
            stats.conflicts_in_base += merged[key][0].department != r.department
            continue
        merged[key] = (r, "base")
    seen_new: dict[str, CallRecord] = {}
    for r in new:
        key = dedup_key(r.text)
        if key in seen_new:
            stats.duplicates_in_new += 1
            stats.conflicts_in_new += seen_new[key].department != r.department
            continue
        seen_new[key] = r
        if key in merged:
            if merged[key][0].department == r.department:
                stats.new_same_as_base += 1
            else:
                stats.conflicts_new_over_base += 1
            del merged[key]  # re-inserted below, so new rows stay after base rows
        merged[key] = (r, "new")
    rows = []
    for key, row in merged.items():
        if key in exclude_keys:
            stats.dropped_test_overlap += 1
            continue
        rows.append(row)
    stats.training_rows = len(rows)
    return rows, stats


def _load_side(files: list[str], text_column: str, label_column: str, channel_column: str | None, strict: bool, strip: bool) -> LoadResult:
    """Load one side (base or new) without a taxonomy; repeats within the side follow data.loading's policy
    (the merge then decides between the sides)."""
    return load_many(
        files, text_column=text_column, label_column=label_column, channel_column=channel_column, strict=strict,
        cleaner=BoilerplateStripper() if strip else None,
    )


def write_training_set(path: Path, rows: list[tuple[CallRecord, str]]) -> Path:
    """Write merged rows as JSONL (text, department, channel, origin, source) for :func:`training.train.train`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r, origin in rows:
            row = {"text": r.text, "department": r.department, "channel": r.channel or "", "origin": origin, "source": f"{r.source}:{r.line}"}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def resolve_champion(champion: str | Path | None, registry: str | Path | None) -> TrainedModel | None:
    """The model to beat: ``champion`` if given, else the registry's CURRENT, else None (rules only)."""
    if champion is not None:
        return load_model(champion)
    current = current_model_dir(registry) if registry else None
    return load_model(current) if current is not None else None


def _check_out(out: Path, registry: str | None, champion: TrainedModel | None) -> None:
    targets = [Path(registry).resolve()] if registry else []
    if champion is not None and champion.path is not None:
        targets.append(champion.path.resolve())
    resolved = out.resolve()
    for t in targets:
        if resolved == t or t in resolved.parents:
            raise ValueError(f"--out {out} is inside {t}; write the challenger elsewhere and use `hotline promote` to register it")


def retrain(cfg: RetrainConfig, progress: bool = True, on_stage: Callable[[str], None] | None = None) -> RetrainResult:
    """Merge, train the challenger into ``cfg.out``, compare it with the champion, write the comparison.

    ``on_stage`` is told each stage as it begins ("loading data", "training", "comparing"): a
    background job (training/jobs.py) records it. Raises DataError (bad input), ModelLoadError
    (champion unusable), BaseModelNotFound (transformer without its base) or ValueError (bad config).
    """
    stage = on_stage or (lambda _: None)
    stage("loading data")
    out = Path(cfg.out)
    champion = resolve_champion(cfg.champion, cfg.registry)
    _check_out(out, cfg.registry, champion)
    test = load_test_set(cfg.test_data, cfg.test_text_column, cfg.test_label_column, cfg.test_channel_column, cfg.strict, cfg.strip_boilerplate)
    base = _load_side(cfg.base_data, cfg.base_text_column, cfg.base_label_column, cfg.base_channel_column, cfg.strict, cfg.strip_boilerplate)
    new = _load_side(cfg.new_data, cfg.text_column, cfg.label_column, cfg.channel_column, cfg.strict, cfg.strip_boilerplate)
    rows, stats = merge_records(base.records, new.records, exclude_keys={dedup_key(r.text) for r in test.records})
    stats.base_bad_rows_skipped, stats.new_bad_rows_skipped = len(base.errors), len(new.errors)
    # repeats within a side were dropped while loading (with their lines); count them as the merge would
    for side, res in (("base", base), ("new", new)):
        repeats = len(res.duplicates) + len(res.conflicts)
        setattr(stats, f"{side}_rows", getattr(stats, f"{side}_rows") + repeats)  # rows read, as before loading dropped them
        setattr(stats, f"duplicates_in_{side}", getattr(stats, f"duplicates_in_{side}") + repeats)
        setattr(stats, f"conflicts_in_{side}", getattr(stats, f"conflicts_in_{side}") + len(res.conflicts))
    inputs = {"base": base.input_report(), "new": new.input_report(), "test": test.input}
    logger.info("merge: %s", stats.summary())
    if not any(origin == "new" for _, origin in rows):
        raise DataError("no new tickets left after deduplication: every new row repeats a base or test row")
    training_set = write_training_set(out / TRAINING_SET, rows)
    train_cfg = TrainConfig(
        data=[str(training_set)], out=str(out), text_column="text", label_column="department", channel_column="channel",
        taxonomy=cfg.taxonomy, channel_map=cfg.channel_map, strict=True, strip_boilerplate=cfg.strip_boilerplate,
        seed=cfg.seed, val_folds=cfg.val_folds, target_110_recall=cfg.target_110_recall,
        model=cfg.model, base_model=cfg.base_model, transformer=dict(cfg.transformer),
    )
    stage("training")
    model = train(train_cfg, progress=progress)
    stage("comparing")
    comparison = compare_models(model, champion, test)
    comparison["merge"] = stats.to_dict()
    comparison["input"] = inputs
    comparison["retrain_config"] = cfg.to_dict()
    write_comparison(out, comparison)
    return RetrainResult(model=model, comparison=comparison, merge=stats, out=out, champion=champion, training_set=training_set,
                         test=test, inputs=inputs)
