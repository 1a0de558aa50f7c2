"""Benchmark: the retraining loop on real Haikou 12345 work orders (not a test; minutes of CPU).

Splits ``../shared/datasets/haikou12345/dev.csv`` (deterministic seed, stratified by department):
20% held out as the fixed test set first, the rest in two halves. A champion is trained on half A
and registered; ``hotline retrain`` merges half A with half B as "new tickets", trains a challenger
and compares both on the held-out part; ``hotline promote`` applies the policy (if it refuses, a
second promote shows an explicit ``--tolerance``) and ``hotline rollback`` is checked to restore
the champion. Every step runs the real ``hotline`` command in a
temporary folder (deleted afterwards: the rows hold real addresses).

Prints its command, the ``hotline`` commands it ran, and one table. Never prints ticket texts.

    .venv/bin/python bench/retrain_haikou.py [--data PATH] [--seed 13] [--test-size 0.2] [--tolerance -0.02] [--keep DIR]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "haikou12345" / "dev.csv"
COLUMNS = ("text", "department", "handled_by_police")


def read_rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return [{k: row[k] for k in COLUMNS} for row in csv.DictReader(f)]


def write_rows(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return path


def split(rows: list[dict], seed: int, test_size: float) -> tuple[list[dict], list[dict], list[dict]]:
    """(half A, half B, test): test split off first, then the rest halved; stratified by department."""
    from sklearn.model_selection import train_test_split

    labels = [r["department"] for r in rows]
    rest, test = train_test_split(rows, test_size=test_size, random_state=seed, stratify=labels)
    a, b = train_test_split(rest, test_size=0.5, random_state=seed, stratify=[r["department"] for r in rest])
    return a, b, test


def run(commands: list[str], work: Path, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    """Run ``hotline *args`` in ``work``; the command line is recorded, its output is not printed."""
    commands.append("hotline " + " ".join(shlex.quote(a) for a in args))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOTLINE_REGISTRY_DIR": str(work / "models")}
    r = subprocess.run([sys.executable, "-m", "serve.cli", *args], cwd=work, env=env, capture_output=True, text=True)
    if r.returncode not in ok:
        # stderr holds file:line reasons and labels, never texts
        sys.exit(f"`{commands[-1]}` failed with exit {r.returncode}:\n{r.stderr[-2000:]}")
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--test-size", type=float, default=0.2)
    ap.add_argument("--tolerance", type=float, default=-0.02, help="Margin for the second promote when the default policy refuses")
    ap.add_argument("--keep", type=Path, default=None, help="Keep the work folder here (it holds real ticket texts)")
    args = ap.parse_args()
    print("$ " + " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]))
    if not args.data.exists():
        sys.exit(f"{args.data}: not found (the Haikou development set lives in ../shared/datasets)")

    a, b, test = split(read_rows(args.data), args.seed, args.test_size)
    work = Path(tempfile.mkdtemp(prefix="retrain-haikou-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    commands: list[str] = []
    try:
        write_rows(work / "half_a.csv", a)
        write_rows(work / "half_b.csv", b)
        write_rows(work / "test.csv", test)
        common = ["--channel-column", "handled_by_police", "--lenient"]
        run(commands, work, "train", "--data", "half_a.csv", *common, "--out", "champion", "--no-verbose")
        run(commands, work, "promote", "champion", "--force")  # first model: nothing to compare with
        run(commands, work, "retrain", "--base-data", "half_a.csv", "--new-data", "half_b.csv", "--test-data", "test.csv", *common,
            "--out", "challenger", "--no-verbose")
        pointer = lambda name: (work / "models" / name).read_text(encoding="utf-8").strip()  # noqa: E731
        champion_name = pointer("CURRENT")
        steps = [("promote (default policy)", run(commands, work, "promote", "challenger", ok=(0, 2)))]
        if steps[0][1].returncode == 2:  # refused: show an analyst's explicit tolerance, then the rollback
            tolerance = ["--min-110-recall-delta", str(args.tolerance), "--min-macro-f1-delta", str(args.tolerance)]
            steps.append((f"promote (tolerating {args.tolerance})", run(commands, work, "promote", "challenger", *tolerance, ok=(0, 2))))
        promoted = pointer("CURRENT") != champion_name
        if promoted:
            steps.append(("rollback", run(commands, work, "rollback")))
        restored = pointer("CURRENT") == champion_name

        comparison = json.loads((work / "challenger" / "comparison.json").read_text(encoding="utf-8"))
        train_metrics = {k: json.loads((work / k / "metrics.json").read_text(encoding="utf-8")) for k in ("champion", "challenger")}
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    print("\n".join("  " + c for c in commands))
    merge = comparison["merge"]
    print(
        f"\nsplit (seed {args.seed}): half A {len(a)}, half B {len(b)}, held-out test {len(test)} rows "
        f"({comparison['test']['rows']} usable); challenger data: {merge['training_rows']} rows after "
        f"{merge['duplicates_in_base'] + merge['duplicates_in_new'] + merge['new_same_as_base']} duplicates and "
        f"{merge['base_bad_rows_skipped'] + merge['new_bad_rows_skipped']} bad rows dropped, "
        f"{merge['conflicts_new_over_base']} base labels overridden by new rows\n"
    )
    fmt = lambda v: "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    print("| model | trained on | train rows | train s | accuracy | macro-F1 | 110 recall | 110 missed | 110 precision | review rate | test rows |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for role, data in (("champion", "half A"), ("challenger", "half A + half B")):
        m, t = comparison[role]["metrics"], train_metrics[role]
        print(
            f"| {role} | {data} | {t['train_rows']} | {t['train_seconds']:.1f} | {fmt(m['accuracy'])} | {fmt(m['macro_f1'])} | "
            f"{fmt(m['110_recall'])} | {m['missed_110']} of {m['n_110']} | {fmt(m['110_precision'])} | {fmt(m['review_rate'])} | {m['n']} |"
        )
    print()
    for name, r in steps:
        first = (r.stdout.strip() or r.stderr.strip()).splitlines()[0]
        print(f"{name}: exit {r.returncode}: {first}")
    if promoted:
        print(f"after rollback CURRENT is the champion again: {restored}")


if __name__ == "__main__":
    main()
