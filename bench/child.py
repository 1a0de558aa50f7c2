"""Run one measurement of a benchmark in its own process (so that its peak memory is its own).

The child is the same module started with ``--child …``; it prints one JSON object as its last line.
"""
from __future__ import annotations

import json
import subprocess
import sys


def run_child(module: str, *args: str, env: dict | None = None) -> dict:
    """``python -m module *args`` → the JSON object of its last stdout line, or ``{"error": last stderr line}``;
    ``env``: variables added to this process's environment for the child."""
    import os

    res = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                         env=None if env is None else {**os.environ, **env})
    if res.returncode != 0:
        lines = res.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {res.returncode}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def print_table(header: list[str], rows: list[dict], cells, key: str) -> None:
    """A Markdown table: ``cells(row)`` gives a row's cells; a row with an error shows it after ``row[key]``."""
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for r in rows:
        out = [str(r.get(key, "?")), f"error: {r['error']}"] + [""] * (len(header) - 2) if "error" in r else cells(r)
        print("| " + " | ".join(str(c) for c in out) + " |")
