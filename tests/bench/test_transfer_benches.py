"""Smoke runs of the issue-19 benchmarks with tiny parameters, so they do not rot: each runs as the
user runs it (``python -m bench.…``, a real ``hotline serve``), on shipped data only (never
``../shared``), and must finish with its table, no errors and exit status 0."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}, "PYTHONPATH": str(ROOT), "TMPDIR": str(cwd)}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The Markdown table's body rows by their first cell."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in stdout.splitlines() if line.startswith("| ")]
    return {r[0]: r for r in rows[1:] if not set(r[0]) <= {"-", " "}}


def test_load_transfers_moves_orders_through_their_life_cycle_without_errors(tmp_path, tiny_model_dir):
    r = bench("bench.load_transfers", "--seconds", "3", "--baseline-seconds", "2", "--clients", "3", "--think-ms", "20",
              "--return-share", "0.3", "--route-rate", "5", "--model", str(tiny_model_dir), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    rows = table_rows(r.stdout)
    assert set(rows) == {"baseline", "closed", "paced (20 ms think)"}, r.stdout
    header = [c.strip() for c in next(line for line in r.stdout.splitlines() if line.startswith("| phase")).strip("|").split("|")]
    for phase in ("closed", "paced (20 ms think)"):
        cells = dict(zip(header, rows[phase]))
        assert float(cells["orders/s"]) > 0 and float(cells["steps/s"]) > float(cells["orders/s"])  # several steps per order
        assert cells["errors"] == "0" and cells["route errors"] == "0" and int(cells["routes"]) > 0
        assert 0 < float(cells["p50 ms"]) <= float(cells["p99 ms"])
    m = re.search(r"history check: (\d+) of (\d+) closed orders", r.stdout)
    assert m and m.group(1) == m.group(2) and int(m.group(2)) > 0, r.stdout
    assert "error " not in r.stdout
    assert not any(p.name.startswith("hotline-transfers-") for p in tmp_path.iterdir())  # its work folder is deleted


def test_retrain_writebacks_closes_the_loop_on_the_shipped_corpus(tmp_path):
    r = bench("bench.retrain_writebacks", "--data", str(ROOT / "data" / "corpus" / "train.jsonl"), "--limit", "160", "--no-control",
              cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    m = re.search(r"written back W (\d+) .*\nwrite-backs: (\d+) of (\d+) orders written back and closed", r.stdout)
    assert m and m.group(1) == m.group(2) == m.group(3), r.stdout
    assert f"{m.group(1)} from written-back transfers" in r.stdout and "{'write_back': " + m.group(1) + "}" in r.stdout
    rows = table_rows(r.stdout)
    assert set(rows) == {"champion", "challenger"}, r.stdout
    assert int(rows["challenger"][2]) > int(rows["champion"][2])  # the write-backs were added to the training rows
    assert all(0 <= float(rows[k][3]) <= 1 for k in rows)
    assert re.search(r"promote challenger \(default policy\): exit [02]: ", r.stdout)
    assert not any(p.name.startswith("retrain-writebacks-") for p in tmp_path.iterdir())  # the work folder (real texts) is deleted
