"""The shipped corpus of authored call summaries (``data/corpus/``): build, split, check.

``train.jsonl`` and ``test.jsonl`` hold one JSON object per line with ``id``, ``text``, ``channel``,
``department``, ``source``, ``style`` and ``hard``. The test split is fixed: no training command reads
it (training commands take ``train.jsonl``; ``hotline evaluate`` takes ``test.jsonl``).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np

from data.cleaning import dedup_key, neutral_roles, normalize_text
from data.splitting import max_overlap, near_duplicate_groups
from data.taxonomy import Taxonomy, default_taxonomy

CORPUS_DIR = Path(__file__).parent / "corpus"
TRAIN_PATH = CORPUS_DIR / "train.jsonl"
TEST_PATH = CORPUS_DIR / "test.jsonl"
HARDSET_DIR = Path(__file__).parent / "hardset"  # blind test files: new training rows may not be their near-duplicates
FIELDS = ("id", "text", "channel", "department", "source", "style", "hard")
STYLES = ("third_person", "first_person", "short", "long")
NEAR_DUPLICATE_JACCARD = 0.5
def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({k: r[k] for k in FIELDS}, ensure_ascii=False) + "\n")


def build_corpus(
    inputs: list[str | Path],
    out_dir: str | Path = CORPUS_DIR,
    test_size: float = 0.2,
    seed: int = 13,
    taxonomy: Taxonomy | None = None,
) -> dict:
    """Merge authored slices (JSONL with text, channel, department, style, hard and optionally
    source), drop exact duplicates, assign ids, and split so that near-duplicates (character 3-gram
    Jaccard ≥ 0.5) stay on one side. Returns the build statistics (also written to ``stats.json``)."""
    from sklearn.model_selection import StratifiedGroupKFold

    taxonomy = taxonomy or default_taxonomy()
    rows, seen, dropped = [], set(), 0
    for path in inputs:
        for r in _read_slice(path, taxonomy):
            key = dedup_key(r["text"])
            if key in seen:
                dropped += 1
                continue
            seen.add(key)
            rows.append(r)
    rng = np.random.default_rng(seed)
    rng.shuffle(rows)
    texts = [r["text"] for r in rows]
    groups = near_duplicate_groups(texts, NEAR_DUPLICATE_JACCARD)
    labels = [r["department"] for r in rows]
    splitter = StratifiedGroupKFold(n_splits=int(round(1 / test_size)), shuffle=True, random_state=seed)
    train_idx, test_idx = next(splitter.split(np.zeros(len(rows)), labels, groups))
    for i, r in enumerate(rows):
        r["id"] = f"hr-{i + 1:05d}"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = sorted((rows[i] for i in train_idx), key=lambda r: r["id"])
    test = sorted((rows[i] for i in test_idx), key=lambda r: r["id"])
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "test.jsonl", test)
    stats = corpus_stats(train, test)
    stats["exact_duplicates_dropped"] = dropped
    stats["near_duplicate_groups_with_more_than_one_row"] = int(sum(1 for c in Counter(groups).values() if c > 1))
    (out / "stats.json").write_text(json.dumps(stats, ensure_ascii=False, indent=2), encoding="utf-8")
    return stats


def _read_slice(path: str | Path, taxonomy: Taxonomy) -> list[dict]:
    """One authored slice as corpus rows (normalised, neutral role words, ``source`` filled in)."""
    slice_name, rows = Path(path).stem, []
    with open(path, encoding="utf-8") as f:
        lines = list(enumerate(f, start=1))
    for line_no, line in lines:
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{line_no}: not a JSON object ({exc.msg})") from None
        missing = [k for k in ("text", "channel", "department", "style", "hard") if not isinstance(r, dict) or k not in r]
        if missing:
            raise ValueError(f"{path}:{line_no}: missing {', '.join(missing)}")
        text = neutral_roles(normalize_text(r["text"]))
        dep = r["department"]
        if dep not in taxonomy:
            raise ValueError(f"{path}:{line_no}: unknown department {dep!r}")
        if taxonomy.channel_of(dep) != str(r["channel"]):
            raise ValueError(f"{path}:{line_no}: {text[:20]}… channel {r['channel']} does not match {dep}")
        if r["style"] not in STYLES:
            raise ValueError(f"{path}:{line_no}: unknown style {r['style']!r}")
        source = r.get("source") or f"authored-llm/{slice_name}/{r['style']}"
        rows.append({"text": text, "channel": str(r["channel"]), "department": dep, "source": source, "style": r["style"], "hard": bool(r["hard"])})
    return rows


def extend_train(
    inputs: list[str | Path],
    out_dir: str | Path = CORPUS_DIR,
    taxonomy: Taxonomy | None = None,
    hardset_dir: str | Path = HARDSET_DIR,
) -> dict:
    """Add authored slices to the training split only; the test split is not touched.

    A new row is dropped when its text is an exact duplicate of any row already in the corpus (or of an
    earlier new row), or when it is a near-duplicate of a *test* row or of a row of the blind hard sets
    in ``data/hardset/`` (character 3-gram Jaccard ≥ ``NEAR_DUPLICATE_JACCARD``): such a row would put
    a test text's twin into training. New rows get
    ids after the highest existing one. ``stats.json`` is rewritten with an ``extensions`` entry per
    call (slices, rows added, rows dropped and why).

    Returns
    -------
    dict: the ``extensions`` entry of this call.
    """
    taxonomy = taxonomy or default_taxonomy()
    out = Path(out_dir)
    train, test = read_jsonl(out / "train.jsonl"), read_jsonl(out / "test.jsonl")
    seen = {dedup_key(r["text"]) for r in train + test}
    new, exact = [], 0
    for path in inputs:
        for r in _read_slice(path, taxonomy):
            key = dedup_key(r["text"])
            if key in seen:
                exact += 1
                continue
            seen.add(key)
            new.append(r)
    near = max_overlap([r["text"] for r in new], [r["text"] for r in test]) if new else np.zeros(0)
    hard = [json.loads(line)["text"] for p in sorted(Path(hardset_dir).glob("*.jsonl")) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    near_hard = max_overlap([r["text"] for r in new], hard) if new and hard else np.zeros(len(new))
    kept = [r for r, o, h in zip(new, near, near_hard) if o < NEAR_DUPLICATE_JACCARD and h < NEAR_DUPLICATE_JACCARD]
    start = max(int(r["id"].split("-")[1]) for r in train + test)
    for i, r in enumerate(kept, start=start + 1):
        r["id"] = f"hr-{i:05d}"
    write_jsonl(out / "train.jsonl", train + kept)
    entry = {
        "slices": [Path(p).name for p in inputs],
        "rows_added": len(kept),
        "dropped_exact_duplicates": exact,
        "dropped_near_duplicates_of_test_rows": int(np.sum(near >= NEAR_DUPLICATE_JACCARD)),
        "dropped_near_duplicates_of_hardset_rows": int(np.sum((near_hard >= NEAR_DUPLICATE_JACCARD) & (near < NEAR_DUPLICATE_JACCARD))),
        "added_by_department": dict(sorted(Counter(r["department"] for r in kept).items())),
    }
    old = json.loads((out / "stats.json").read_text(encoding="utf-8")) if (out / "stats.json").exists() else {}
    stats = corpus_stats(train + kept, test)
    for k in ("exact_duplicates_dropped", "near_duplicate_groups_with_more_than_one_row"):
        if k in old:
            stats[k] = old[k]
    stats["extensions"] = old.get("extensions", []) + [entry]
    (out / "stats.json").write_text(json.dumps(stats, ensure_ascii=False, indent=2), encoding="utf-8")
    return entry


def corpus_stats(train: list[dict], test: list[dict]) -> dict:
    """Counts per label, style and hard share, and test→train character n-gram overlap."""
    allrows = train + test
    ov = max_overlap([r["text"] for r in test], [r["text"] for r in train])
    return {
        "rows": len(allrows),
        "train": len(train),
        "test": len(test),
        "channel": dict(Counter(r["channel"] for r in allrows)),
        "department": {k: {"train": v, "test": sum(1 for r in test if r["department"] == k)} for k, v in sorted(Counter(r["department"] for r in train).items())},
        "style": dict(Counter(r["style"] for r in allrows)),
        "hard_share": round(sum(r["hard"] for r in allrows) / len(allrows), 4),
        "test_train_overlap": {
            "measure": "max character 3-gram Jaccard of each test row with any train row",
            "max": round(float(ov.max()), 4),
            "mean": round(float(ov.mean()), 4),
            "p95": round(float(np.quantile(ov, 0.95)), 4),
            "share_at_least_0.3": round(float((ov >= 0.3).mean()), 4),
            "share_at_least_0.5": round(float((ov >= 0.5).mean()), 4),
        },
    }
