"""What a training run depends on, and loading its data: shared by the linear (training/train.py) and
the transformer (training/finetune.py) trainers, so that neither imports the other's module."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from data.cleaning import BoilerplateStripper, load_boilerplate_patterns
from data.loading import DataError, LoadResult, load_many
from data.schema import CallRecord
from data.taxonomy import Taxonomy, default_taxonomy, load_taxonomy, normalise_channel
from model.thresholds import operating_points, operating_points_table

logger = logging.getLogger("training.train")


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved beside the model as ``train_config.json``."""

    data: list[str]
    out: str
    text_column: str = "text"
    label_column: str = "department"
    channel_column: str | None = None
    model: str = "linear"
    taxonomy: str | None = None  # a file, "default", "infer", or None (auto: default if every label is a default code)
    channel_map: str | None = None  # YAML/JSON mapping department -> channel, for a city's own labels
    strict: bool = True
    strip_boilerplate: bool = False
    boilerplate_file: str | None = None
    seed: int = 13
    val_folds: int = 5
    target_110_recall: float = 0.99
    target_auto_accuracy: float = 0.95
    # At most this share of calls goes to supervisor review (the review threshold is the lower of the
    # accuracy target's and the budget's). On the Haikou tickets the accuracy target alone sent 64-69%
    # of calls to review. None: the accuracy target alone.
    review_budget: float | None = 0.15
    C: float = 0.5
    char_ngram_range: tuple[int, int] = (1, 3)
    word_ngram_range: tuple[int, int] = (1, 1)
    channel_head: bool = True  # a binary 110-vs-12345 head blended into P(110)
    test_data: list[str] = field(default_factory=list)
    base_model: str | None = None  # transformer: a local Hugging Face folder (default models/base/e5-small-zh)
    transformer: dict = field(default_factory=dict)  # transformer: extra TransformerTextClassifier params
    export_onnx: bool = True  # transformer: write model.onnx and model.int8.onnx beside the weights
    # transformer: model.int8.onnx is kept only if its department labels agree with PyTorch's on at least this
    # share of the check texts (the test data, else the validation split); otherwise it is removed and the
    # router serves float32 ONNX. Measured: 12-layer corpus model 99.48% (removed), 4- and 6-layer 100%.
    # The same bound decides whether backend "auto" may serve the weights cast to bfloat16 (torch-bf16).
    int8_min_agreement: float = 0.995
    # Texts routed one at a time (and in batches of 32) at the end of training to record the saved
    # model's speed on this machine (metrics.json "speed", training/speed.py); 0 skips.
    speed_texts: int = 200

    def __post_init__(self) -> None:
        if isinstance(self.data, (str, Path)):
            self.data = [str(self.data)]
        self.data = [str(d) for d in self.data]
        self.test_data = [str(d) for d in self.test_data]
        if self.model not in ("linear", "transformer"):
            raise ValueError(f"model must be 'linear' or 'transformer', got {self.model!r}")
        if not 0 < self.target_110_recall <= 1:
            raise ValueError("target_110_recall must be in (0, 1]")
        if self.review_budget is not None and not 0 <= self.review_budget <= 1:
            raise ValueError("review_budget is a share of calls in [0, 1]")
        if not 0 <= self.int8_min_agreement <= 1:
            raise ValueError("int8_min_agreement must be in [0, 1]")
        self.char_ngram_range = tuple(self.char_ngram_range)
        self.word_ngram_range = tuple(self.word_ngram_range)

    def to_dict(self) -> dict:
        return asdict(self)


def has_channel_information(taxonomy: Taxonomy) -> bool:
    """True when the taxonomy has departments on both lines (else every suggestion is one line)."""
    return len({d.channel for d in taxonomy.departments}) == 2


def report_operating_points(proba: np.ndarray, classes: list[str], labels, taxonomy: Taxonomy, thresholds: dict) -> dict:
    """Log the trade-off table (validation predictions, model only) and return it for metrics and card."""
    points = operating_points(proba, classes, labels, taxonomy, chosen=thresholds)
    logger.info("operating points on validation predictions (model only; choose with --target-110-recall, "
                "--review-budget or HOTLINE_REVIEW_BUDGET):\n%s", operating_points_table(points))
    if not has_channel_information(taxonomy):
        logger.warning("NO CHANNEL INFORMATION in the training data: every department is %s, so the model never "
                       "suggests the other line; only danger evidence (110 先行 / 三方通话) reaches 110.",
                       taxonomy.departments[0].channel)
    return points


def read_channel_map(path: str | None) -> dict[str, str]:
    """Department -> channel map from YAML/JSON ({dept: 110}) or CSV (department,channel)."""
    if not path:
        return {}
    p = Path(path)
    if p.suffix == ".csv":
        import csv

        with open(p, encoding="utf-8-sig", newline="") as f:
            return {row[0].strip(): normalise_channel(row[1]) for row in csv.reader(f) if len(row) >= 2 and row[0].strip() and row[0] != "department"}
    import yaml

    raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    return {str(k): normalise_channel(v) for k, v in raw.items()}


def load_training_data(cfg: TrainConfig, files: list[str] | None = None, taxonomy: Taxonomy | None = None) -> tuple[LoadResult, Taxonomy]:
    """Load (and validate) the configured files; resolve the taxonomy. Raises DataError."""
    cleaner = BoilerplateStripper(load_boilerplate_patterns(cfg.boilerplate_file)) if cfg.strip_boilerplate else None
    files = files or cfg.data
    common = dict(
        text_column=cfg.text_column,
        label_column=cfg.label_column,
        channel_column=cfg.channel_column,
        strict=cfg.strict,
        cleaner=cleaner,
    )
    if taxonomy is None and cfg.taxonomy not in (None, "infer"):
        taxonomy = default_taxonomy() if cfg.taxonomy == "default" else load_taxonomy(cfg.taxonomy)
    if taxonomy is not None:
        return load_many(files, taxonomy=taxonomy, **common), taxonomy
    result = load_many(files, taxonomy=None, **common)
    labels = [r.department for r in result.records]
    default = default_taxonomy()
    if cfg.taxonomy is None and labels and all(l in default for l in labels):
        taxonomy = default
        for r in result.records:
            r.channel = default.channel_of(r.department)
    else:
        taxonomy = Taxonomy.from_labels(labels, [r.channel for r in result.records], read_channel_map(cfg.channel_map), name="inferred")
        for r in result.records:
            r.channel = taxonomy.channel_of(r.department)
    return result, taxonomy


def data_hash(records: list[CallRecord]) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(f"{r.text}\t{r.department}\n".encode("utf-8"))
    return h.hexdigest()


def load_rows(cfg: TrainConfig, min_rows: int, need: str) -> tuple[LoadResult, Taxonomy, list[str], np.ndarray]:
    """:func:`load_training_data`, then the texts and labels (n,); fewer than ``min_rows`` usable rows is
    a :class:`DataError` ("need more labelled tickets to ``need``")."""
    result, taxonomy = load_training_data(cfg)
    if len(result.records) < min_rows:
        raise DataError(f"only {len(result.records)} usable rows; need more labelled tickets to {need}")
    return result, taxonomy, [r.text for r in result.records], np.asarray([r.department for r in result.records])
