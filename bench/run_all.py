"""Run the benchmarks one after another and print each one's table (``make bench``).

    python -m bench.run_all [--list] [--only NAME ...] [--with-transformer]

By default the linear benchmarks run (minutes); ``--with-transformer`` adds the fine-tuning runs
(each 10-25 minutes on 2 CPU cores; they need ``make base-model``). A benchmark that needs
``../shared/datasets`` or the base encoder and finds it missing is skipped with the reason. The
benchmarks run in child processes, in this order, so a failure in one does not stop the others;
the exit status is 1 if any failed.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
BASE_Q4, BASE_ZH = Path("models/base/e5-small-q4"), Path("models/base/e5-small-zh")


@dataclass(frozen=True)
class Bench:
    name: str
    args: tuple[str, ...]
    needs: tuple[Path, ...] = field(default=())
    transformer: bool = False


BENCHES = (
    Bench("linear", ("bench.linear_benchmarks",)),
    Bench("retrain-haikou", ("bench.retrain_haikou",), (SHARED / "haikou12345" / "dev.csv",)),
    Bench("api-load", ("bench.load_api", "--duration", "20")),
    Bench("transfers-load", ("bench.load_transfers", "--seconds", "20", "--baseline-seconds", "20")),
    Bench("retrain-writebacks", ("bench.retrain_writebacks",), (SHARED / "haikou12345" / "dev.csv",)),
    Bench("transformer-corpus", ("bench.transformer_corpus", "--param", "num_layers=6"), (BASE_ZH,), True),
    Bench("transformer-speed", ("bench.transformer_speed",), (Path("bench/results/transformer-corpus/config.json"),), True),
    Bench("transformer-haikou", ("bench.transformer_real", "--dataset", "haikou", "--config", "6-layer-fast"),
          (SHARED / "haikou12345" / "dev.csv", BASE_Q4), True),
    Bench("transformer-router-haikou", ("bench.transformer_router", "--dataset", "haikou", "--seed", "13", "--seed", "7"),
          (SHARED / "haikou12345" / "dev.csv", BASE_Q4), True),
    Bench("transformer-taidi", ("bench.transformer_real", "--dataset", "taidi", "--config", "12-layer-long"),
          (SHARED / "taidi2020c" / "dev_titles.csv", BASE_Q4), True),
    Bench("transformer-router-taidi", ("bench.transformer_router", "--dataset", "taidi", "--seed", "13", "--seed", "7"),
          (SHARED / "taidi2020c" / "dev_titles.csv", BASE_Q4), True),
    Bench("threshold-estimators", ("bench.threshold_estimators",), (SHARED / "haikou12345" / "dev.csv",)),
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--list", action="store_true", help="print the benchmarks and exit")
    ap.add_argument("--only", action="append", choices=[b.name for b in BENCHES], help="run only these (repeatable)")
    ap.add_argument("--with-transformer", action="store_true", help="also the fine-tuning benchmarks (long)")
    args = ap.parse_args(argv)
    chosen = [b for b in BENCHES if (args.only and b.name in args.only) or (not args.only and (args.with_transformer or not b.transformer))]
    if args.list:
        for b in BENCHES:
            print(f"{b.name:20s} python -m {' '.join(b.args)}{'  (--with-transformer)' if b.transformer else ''}")
        return 0
    status = []
    for b in chosen:
        missing = [str(p) for p in b.needs if not p.exists()]
        if missing:
            status.append((b.name, "skipped", f"missing {', '.join(missing)}"))
            print(f"\n## {b.name}: skipped (missing {', '.join(missing)})", flush=True)
            continue
        print(f"\n## {b.name}: python -m {' '.join(b.args)}", flush=True)
        t = time.perf_counter()
        rc = subprocess.run([sys.executable, "-m", *b.args]).returncode
        status.append((b.name, "ok" if rc == 0 else f"failed (exit {rc})", f"{time.perf_counter() - t:.0f} s"))
    print("\n| benchmark | result | detail |\n| --- | --- | --- |")
    for name, result, detail in status:
        print(f"| {name} | {result} | {detail} |")
    return int(any(r.startswith("failed") for _, r, _ in status))


if __name__ == "__main__":
    sys.exit(main())
