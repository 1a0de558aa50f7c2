"""Time and memory of one transformer fine-tune on 5,000 call summaries (the issue's 15-minute target).

    python -m bench.transformer_fit_time [--config 6-layer-fast] [--rows 5000] [--base models/base/e5-small-q4]

Texts: every Haikou ticket (``../shared/datasets/haikou12345/dev.csv``, 4,638, median 51 characters),
then its first rows again up to ``--rows`` (timing only: the repeats add work, not information);
without the shared data, the shipped corpus (train + test) the same way. The base encoder is pruned
to these texts first, as ``hotline base-model prune`` would (included in the time). The config names
are those of ``bench/transformer_real.py``. Each config is fitted in its own process so that peak
memory (ru_maxrss) is its own. Prints its command and one table; ticket texts are never printed.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from bench.child import print_table, run_child


def fit_once(config: str, rows: int, base: str) -> dict:
    from bench.transformer_real import CONFIGS, DATASETS, load
    from data.corpus import TEST_PATH, TRAIN_PATH, read_jsonl
    from model.encoder.prune import prune_vocabulary
    from model.transformer import TransformerTextClassifier

    if DATASETS["haikou"][0].exists():
        texts, y, channel_map = load("haikou")
        y, source = list(y), "Haikou tickets"
    else:
        pool = read_jsonl(TRAIN_PATH) + read_jsonl(TEST_PATH)
        texts, y, channel_map, source = [r["text"] for r in pool], [r["department"] for r in pool], None, "corpus"
    n = len(texts)
    texts, y = (texts * (1 + rows // n))[:rows], (y * (1 + rows // n))[:rows]
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        prune_vocabulary(base, Path(tmp) / "base", texts)
        prune_s = time.perf_counter() - t
        clf = TransformerTextClassifier(base_model=str(Path(tmp) / "base"), channel_map=channel_map, random_state=13, **CONFIGS[config]).fit(texts, y)
    total = time.perf_counter() - t
    return {"config": config, "source": f"{source} ({n} distinct, {rows} in all)", "rows": rows, "epochs": len(clf.history_),
            "prune_s": round(prune_s, 1), "fit_s": round(clf.fit_seconds_, 1), "total_s": round(total, 1),
            "s_per_epoch": round(sum(h["seconds"] for h in clf.history_) / max(1, len(clf.history_)), 1),
            "precision": clf.precision_, "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", action="append", help="repeatable; default 6-layer-fast")
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--base", default="models/base/e5-small-q4", help="unpruned base folder (hotline base-model build)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(fit_once(args.child, args.rows, args.base)))
        return
    print("command: python -m bench.transformer_fit_time " + " ".join(sys.argv[1:]), flush=True)
    results = [{"config": c, **run_child("bench.transformer_fit_time", "--child", c, "--rows", str(args.rows), "--base", args.base)}
               for c in args.config or ["6-layer-fast"]]
    print(f"\nfine-tuning on {args.rows} texts, 2 CPU cores; a row per config")
    print_table(["config", "texts", "precision", "epochs", "s / epoch", "prune s", "fit s", "total min", "peak RSS MiB"], results,
                lambda r: [r["config"], r["source"], r["precision"], r["epochs"], r["s_per_epoch"], r["prune_s"], r["fit_s"],
                           f"{r['total_s'] / 60:.1f}", r["peak_rss_mib"]], "config")

if __name__ == "__main__":
    main()
