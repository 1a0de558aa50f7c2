"""The servable transformer (one network, the product's defaults) against the linear model, both through
the router, on real tickets (../shared/datasets, read only here): issue 20's one-network target.

    python -m bench.transformer_router --dataset haikou --seed 13 --seed 7 [--param KEY=VALUE ...]

The split is transformer_real's (stratified 80/20, seed 13), written to two temporary CSV files with the
dataset's own columns; both models are then trained the way ``hotline train [--model transformer]``
trains them (``training.train.train``: the linear model's thresholds on out-of-fold predictions, the
transformer's on its held-out 10%, the transformer pooled with its own linear half) and every test ticket
is routed with ``Router`` (rules, 110 先行, consults). The department a decision names is scored, as
bench.real_decisions scores it. ``--seed`` sets the transformer's seed (validation split, heads,
dropout, batches) and the linear model's inner folds; the 80/20 split never moves. The transformer is
scored in PyTorch (ONNX export is skipped: the served int8/float32 ONNX agrees with it on ≥ 99.5% of
labels, ``int8_min_agreement``). The base encoder is pruned to the split's training texts plus the
corpus, as in bench.transformer_real. Prints its command and one table; writes
bench/results/transformer_router_<dataset>.json. Ticket texts are never printed or kept.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from bench.real_decisions import HAIKOU_POLICE
from bench.transformer_real import DATASETS, RESULTS, scores, svc_baseline
from data.cleaning import normalize_text
from data.corpus import TRAIN_PATH, read_jsonl
from model.encoder.prune import prune_vocabulary
from training.config import load_training_data
from training.train import TrainConfig, train

LABEL_COLUMN = {"haikou": "department", "taidi": "label"}


def write_split(dataset: str, folder: Path) -> tuple[Path, Path, list[str]]:
    """The 80/20 split of ``dataset`` as train.csv / test.csv in ``folder`` (the source's columns and rows);
    returns both paths and the training texts (for pruning)."""
    path, label, _ = DATASETS[dataset]
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        rows = [r for r in reader if r["text"].strip() and r[label].strip()]
    y = np.array([r[label].strip() for r in rows])
    tr, te = train_test_split(np.arange(len(rows)), test_size=0.2, random_state=13, stratify=y)
    out = []
    for name, idx in (("train.csv", tr), ("test.csv", te)):
        p = folder / name
        with open(p, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=header)
            w.writeheader()
            w.writerows(rows[i] for i in idx)
        out.append(p)
    return out[0], out[1], [rows[i]["text"] for i in tr]


def router_row(name: str, model) -> tuple:
    """(name, department accuracy, macro-F1, 110 recall, channel accuracy) of the test split's decisions."""
    m = model.metrics["test"]
    d, c = m["department"], m["channel"]
    return (name, d["accuracy"], d["macro_f1"], c.get("110_recall"), c["accuracy"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="haikou")
    ap.add_argument("--seed", type=int, action="append", help="repeatable; default 13")
    ap.add_argument("--param", action="append", default=[], help="KEY=VALUE (JSON value) overriding a transformer default")
    ap.add_argument("--base", default="models/base/e5-small-q4", help="unpruned base folder (hotline base-model build)")
    args = ap.parse_args()
    print("command: python -m bench.transformer_router " + " ".join(sys.argv[1:]), flush=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    params = {k: json.loads(v) for k, _, v in (p.partition("=") for p in args.param)}
    seeds = args.seed or [13]
    result: dict = {"dataset": args.dataset, "split": "stratified 80/20, seed 13", "params": params, "seeds": {}}
    rows: list[tuple] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train_csv, test_csv, train_texts = write_split(args.dataset, tmp)
        common: dict = {"strict": False, "label_column": LABEL_COLUMN[args.dataset]}
        if args.dataset == "haikou":
            (tmp / "channels.json").write_text(json.dumps(HAIKOU_POLICE, ensure_ascii=False), encoding="utf-8")
            common["channel_map"] = str(tmp / "channels.json")
        corpus = [r["text"] for r in read_jsonl(TRAIN_PATH)] if Path(TRAIN_PATH).exists() else []
        pruned = RESULTS / f"base-{args.dataset}"
        prune_vocabulary(args.base, pruned, train_texts + corpus)
        for seed in seeds:
            cfg = TrainConfig(data=[str(train_csv)], test_data=[str(test_csv)], out=str(tmp / f"linear-{seed}"), seed=seed,
                              speed_texts=0, **common)
            linear = train(cfg, progress=False)
            lin = router_row(f"linear router, seed {seed}", linear)
            test = load_training_data(cfg, files=cfg.test_data, taxonomy=linear.taxonomy)[0].records
            t = time.perf_counter()
            tf = train(TrainConfig(**{**cfg.to_dict(), "out": str(tmp / f"transformer-{seed}"), "model": "transformer",
                                      "base_model": str(pruned), "transformer": params, "export_onnx": False}), progress=False)
            fit_s = round(time.perf_counter() - t)
            tfr = router_row(f"transformer (1 network) + its linear half, router, seed {seed}", tf)
            texts = [normalize_text(r.text) for r in test]
            truth = [r.department for r in test]
            clf = tf.classifier
            alone = scores(truth, np.asarray(clf.classes_)[clf.predict_proba(texts).argmax(1)])
            rows += [lin, tfr, (f"gain over the linear router, seed {seed} (points)", 100 * (tfr[1] - lin[1]), 100 * (tfr[2] - lin[2]), None, None)]
            result["seeds"][seed] = {"linear_router": lin[1:], "transformer_router": tfr[1:], "transformer_classifier": alone,
                                     "fit_seconds": fit_s, "epochs": len(clf.history_), "history": clf.history_,
                                     "test_rows": len(test), "train_rows": tf.metrics["train_rows"],
                                     "channel_110": {"linear": linear.thresholds.get("channel_110"),
                                                     "transformer": tf.thresholds.get("channel_110")},
                                     "validation_rows": {"linear": linear.thresholds.get("n_validation"),
                                                         "transformer": tf.thresholds.get("n_validation")}}
            print(f"seed {seed}: transformer fit {fit_s} s, {len(clf.history_)} epochs; classifier alone {alone[0]:.3f} / {alone[1]:.3f}; "
                  f"110 threshold linear {linear.thresholds.get('channel_110')} (on {linear.thresholds.get('n_validation')} rows), "
                  f"transformer {tf.thresholds.get('channel_110')} (on {tf.thresholds.get('n_validation')} rows)", flush=True)
    result["svc"] = svc_baseline(args.dataset)
    rows.append(("char TF-IDF + LinearSVC (the classifier alone, no router)", *result["svc"], None, None))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"transformer_router_{args.dataset}.json").write_text(json.dumps(result, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    print(f"\n{args.dataset}: {result['split']}; transformer params: the defaults" + (f" with {params}" if params else ""))
    print("| model (through the router) | department accuracy | macro-F1 | 110 recall | channel accuracy |")
    print("| --- | --- | --- | --- | --- |")
    for name, *vals in rows:
        cells = ["-" if v is None else (f"{v:+.1f}" if name.startswith("gain") else f"{v:.3f}") for v in vals]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
