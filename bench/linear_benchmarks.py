"""Benchmarks for the linear router (issue: routing models). Prints its command and one table.

    python -m bench.linear_benchmarks [--skip-real] [--folds 5]

Rows:
- corpus test split: the shipped model recipe trained on data/corpus/train.jsonl, scored on test.jsonl
  through the router (danger override included); and the rules alone.
- real data (../shared/datasets, read only here, never shipped): k-fold cross-validation, the same folds
  for our linear model and the reference baseline (char 1–3-gram TF-IDF + LinearSVC).
- speed: route() latency per single text in-process, and training time on 5,000 texts.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from data.cleaning import normalize_text
from bench import print_table
from data.corpus import TEST_PATH, TRAIN_PATH, read_jsonl
from data.loading import load_records
from data.taxonomy import Taxonomy
from model.linear import LinearTextClassifier
from model.router import Router
from training.evaluate import evaluate_records
from training.speed import single_latencies
from training.train import TrainConfig, train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def real_cv(path: Path, label: str, channel_column: str | None, folds: int) -> list[tuple]:
    res = load_records(path, text_column="text", label_column=label, channel_column=channel_column, strict=False)
    texts = [r.text for r in res.records]
    y = np.array([r.department for r in res.records])
    tax = Taxonomy.from_labels(y, [r.channel for r in res.records] if channel_column else None)
    channel_of = {d.code: d.channel for d in tax.departments} if channel_column else None
    ours, base = [], []
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=13).split(texts, y):
        a, b = [texts[i] for i in tr], [texts[i] for i in te]
        m = LinearTextClassifier(channel_of=channel_of).fit(a, y[tr])
        ours.append((accuracy_score(y[te], m.predict(b)), f1_score(y[te], m.predict(b), average="macro")))
        bl = make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True), LinearSVC()).fit(a, y[tr])
        pb = bl.predict(b)
        base.append((accuracy_score(y[te], pb), f1_score(y[te], pb, average="macro")))
    name = f"{path.parent.name}/{path.name} ({len(texts)} rows, {len(set(y))} labels, {folds}-fold CV)"
    o, bb = np.mean(ours, axis=0), np.mean(base, axis=0)
    return [
        (name, "linear (ours): department accuracy / macro-F1", f"{o[0]:.3f} / {o[1]:.3f}"),
        (name, "baseline char TF-IDF + LinearSVC", f"{bb[0]:.3f} / {bb[1]:.3f}"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-real", action="store_true", help="skip ../shared/datasets")
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    print("command: python -m bench.linear_benchmarks " + " ".join(sys.argv[1:]))
    rows: list[tuple] = []
    out = Path("bench/results/linear-corpus")
    t0 = time.perf_counter()
    model = train(TrainConfig(data=[str(TRAIN_PATH)], out=str(out)), progress=False)
    train_s = time.perf_counter() - t0
    test = load_records(TEST_PATH, taxonomy=model.taxonomy).records
    m = evaluate_records(model, test)["metrics"]
    r = evaluate_records(None, test)["metrics"]
    name = f"corpus test split ({len(test)} rows)"
    rows += [
        (name, "router: 110 recall / channel accuracy / department accuracy",
         f"{m['channel']['110_recall']:.3f} / {m['channel']['accuracy']:.3f} / {m['department']['accuracy']:.3f}"),
        (name, "router: 110 precision / macro-F1 / ECE / review rate",
         f"{m['channel']['110_precision']:.3f} / {m['department']['macro_f1']:.3f} / {m['ece']:.3f} / {m['review']['rate']:.3f}"),
        (name, "rules only: 110 recall / 110 precision / department accuracy",
         f"{r['channel']['110_recall']:.3f} / {r['channel']['110_precision']:.3f} / {r['department']['accuracy']:.3f}"),
    ]
    # Speed: one text at a time, as a call-taker's request would arrive.
    router = Router(model)
    texts = [x.text for x in test]
    lat = sorted(single_latencies(router, texts, len(texts), warmup=20))
    rows.append(("speed (2 cores)", "route() single text: p50 / p95 / p99 ms", f"{lat[len(lat) // 2]:.2f} / {lat[int(len(lat) * .95)]:.2f} / {lat[int(len(lat) * .99)]:.2f}"))
    rows.append(("speed (2 cores)", f"train on corpus train split ({len(model.classes)} labels, {model.metrics['train_rows']} texts), s", f"{train_s:.1f}"))
    # 5,000 texts: the corpus train split plus texts from its test split re-used for timing only.
    pool = read_jsonl(TRAIN_PATH) + read_jsonl(TEST_PATH)
    five = [normalize_text(x["text"]) for x in pool][:5000]
    five_y = [x["department"] for x in pool][:5000]
    s = time.perf_counter()
    LinearTextClassifier(channel_of={d.code: d.channel for d in model.taxonomy.departments}).fit(five, five_y)
    fit_s = time.perf_counter() - s
    rows.append(("speed (2 cores)", f"one fit on {len(five)} texts (timing only), s", f"{fit_s:.1f}"))
    if not args.skip_real:
        hk, td = SHARED / "haikou12345" / "dev.csv", SHARED / "taidi2020c" / "dev_titles.csv"
        if hk.exists():
            rows += real_cv(hk, "department", "handled_by_police", args.folds)
        if td.exists():
            rows += real_cv(td, "label", None, args.folds)
    print_table(rows)


if __name__ == "__main__":
    main()
