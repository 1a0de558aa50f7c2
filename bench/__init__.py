"""Benchmarks: each script prints the command it ran and one table (see bench/README.md)."""
from __future__ import annotations


def print_table(rows: list[tuple[str, str, str]]) -> None:
    """Print (data, measure, value) rows as one Markdown table, the first column padded."""
    w = max(len(r[0]) for r in rows)
    print(f"\n| {'data':{w}s} | measure | value |\n|{'-' * (w + 2)}|---|---|")
    for a, b, c in rows:
        print(f"| {a:{w}s} | {b} | {c} |")
