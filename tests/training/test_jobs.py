"""Background retrain jobs through the `hotline` command as real processes (training/jobs.py): a tiny
transformer retrained to completion with its progress, comparison and promotion decision in the job
record; a job killed with SIGKILL shows as failed, not running forever; cancel stops one."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.factories import tiny_rows, write_jsonl
from tests.training.test_retrain_promote import HELD_OUT, NEW
from training.job_watch import process_alive, read_log_tail, tqdm_progress
from training.jobs import FINAL, JobStore

pytest.importorskip("torch")
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[2]
TINY_PARAMS = ["--param", "lr_encoder=2e-3", "--param", "lr_head=5e-3", "--param", "batch_size=8", "--param", "val_fraction=0.25",
               "--param", "early_stopping_patience=100"]


def hotline(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOTLINE_REGISTRY_DIR": str(cwd / "models"), "HOTLINE_JOB_PROGRESS_S": "0.02", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "serve.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    from tests.factories import make_unigram_base

    d = tmp_path_factory.mktemp("jobs")
    write_jsonl(d / "base.jsonl", tiny_rows())
    write_jsonl(d / "new.jsonl", NEW)
    write_jsonl(d / "test.jsonl", [{"text": t, "department": k} for k, ts in HELD_OUT.items() for t in ts])
    make_unigram_base(d / "tiny-e5")
    return d


def start_job(work: Path, out: str, epochs: int, *extra: str) -> str:
    r = hotline("retrain", "--base-data", "base.jsonl", "--new-data", "new.jsonl", "--test-data", "test.jsonl", "--out", out,
                "--model", "transformer", "--base-model", "tiny-e5", "--param", f"epochs={epochs}", *TINY_PARAMS, "--background", *extra, cwd=work)
    assert r.returncode == 0, r.stderr
    m = re.search(r"started job (retrain-\S+) \(pid (\d+)\)", r.stdout)
    assert m, r.stdout
    return m.group(1)


def wait_for(store: JobStore, job_id: str, until, timeout: float = 240.0) -> list[dict]:
    """Poll the job's status until ``until(record)``; returns every record seen."""
    seen, deadline = [], time.monotonic() + timeout
    while True:
        rec = store.status(job_id)
        seen.append(rec)
        if until(rec):
            return seen
        assert time.monotonic() < deadline, f"job did not get there in {timeout:.0f} s: {rec}"
        time.sleep(0.2)


def test_a_background_transformer_retrain_runs_to_its_comparison_and_promotion_decision(work):
    job_id = start_job(work, "chal-bg", 3, "--promote")
    store = JobStore(work / "models")
    seen = wait_for(store, job_id, lambda r: r["state"] in FINAL)
    done = seen[-1]
    assert done["state"] == "done", done
    assert {r["state"] for r in seen} <= {"queued", "running", "done"}
    # progress came from the fine-tune's tqdm bars: "epoch k/3", steps of an epoch, an ETA
    # (other libraries' bars, e.g. tokenizing or saving the encoder, are progress too)
    # The tiny fine-tune lasts ~0.2 s: sampled every 0.02 s, and the record keeps its last epoch bar
    # (the bars after it do not replace it), so the final record shows one whatever this poll caught.
    assert re.fullmatch(r"epoch [1-3]/3", done["progress"]["bar"]), done["progress"]
    bars = [r["progress"] for r in seen if r.get("progress") and r["progress"]["bar"].startswith("epoch")]
    assert bars and all(re.fullmatch(r"epoch [1-3]/3", p["bar"]) and p["epochs"] == 3 and 0 <= p["step"] <= p["total"] for p in bars)
    # an ETA wherever a bar had a rate (a bar read the instant it opened has none yet: how often that
    # happens depends on the machine's load; the ETA's arithmetic is test_progress_is_read_…'s)
    assert all(p.get("eta_training_s") is not None for p in bars if p.get("rate"))
    assert all(p["stage"] == "training" for p in bars) and done["stage"] == "done"

    result = done["result"]
    comparison = json.loads((work / "chal-bg" / "comparison.json").read_text(encoding="utf-8"))
    assert result["model"] == "transformer" and result["version"] == comparison["challenger"]["version"]
    assert result["deltas"] == comparison["deltas"] and "| 110 recall |" in result["comparison_table"]
    verdict = result["verdict"]
    assert verdict["reason"].startswith("accepted" if verdict["accepted"] else "refused")
    current = (work / "models" / "CURRENT").read_text().strip() if (work / "models" / "CURRENT").exists() else None
    assert (result["promoted"] is not None) == verdict["accepted"] and current == result["promoted"]

    r = hotline("jobs", "status", job_id, cwd=work)
    assert r.returncode == 0, r.stderr
    assert f"{job_id} · done · transformer challenger {result['version']}" in r.stdout
    assert result["comparison_table"] in r.stdout and f"promotion check: {verdict['reason']}" in r.stdout
    assert "saved transformer-" in r.stdout  # the log's last lines
    assert job_id in hotline("jobs", "list", cwd=work).stdout


def test_a_killed_job_shows_as_failed_and_a_running_one_can_be_cancelled(work):
    store = JobStore(work / "models")
    job_id = start_job(work, "chal-killed", 500)
    # Training, not yet done (the bars' progress is test_progress_is_read_…'s; on a loaded machine the first
    # bar may not have been read yet when training starts).
    rec = wait_for(store, job_id, lambda r: r["stage"] == "training" or r["state"] not in ("queued", "running"))[-1]
    assert rec["state"] == "running" and process_alive(rec["pid"], rec["pid_start"])
    r = hotline("retrain", "--base-data", "base.jsonl", "--new-data", "new.jsonl", "--test-data", "test.jsonl", "--out", "x", "--background", cwd=work)
    assert r.returncode == 2 and f"job {job_id} is still running" in r.stderr  # one job at a time

    os.kill(rec["pid"], signal.SIGKILL)
    rec = wait_for(store, job_id, lambda r: r["state"] != "running", timeout=30)[-1]
    assert rec["state"] == "failed" and f"pid {rec['pid']}) ended without finishing, during training" in rec["error"]
    r = hotline("jobs", "status", job_id, cwd=work)
    assert r.returncode == 1 and "failed" in r.stdout
    assert json.loads((store.dir / f"{job_id}.json").read_text())["state"] == "failed", "the verdict is saved, not only shown"

    second = start_job(work, "chal-cancelled", 500)  # the dead job no longer blocks a new one
    wait_for(store, second, lambda r: r["state"] == "running")
    r = hotline("jobs", "cancel", second, cwd=work)
    assert r.returncode == 0 and "cancelled" in r.stdout, r.stdout + r.stderr
    rec = store.status(second)
    assert rec["state"] == "cancelled" and not process_alive(rec["pid"], rec["pid_start"])
    assert hotline("jobs", "cancel", second, cwd=work).returncode == 2  # nothing left to cancel
    assert hotline("jobs", "status", "retrain-20990101-000000-abcd", cwd=work).returncode == 2


def test_the_record_keeps_the_last_epoch_bar_when_shorter_bars_follow(tmp_path):
    """A fine-tune's epoch bar is followed by short ones (validation, saving, loading weights): the job
    record keeps the epoch bar and its ETA; bars before the first epoch are progress as usual."""
    from tqdm.auto import tqdm

    from training.jobs import ProgressMonitor

    store = JobStore(tmp_path / "models")
    store.create("retrain-20261207-000000-abcd", "retrain", {})
    monitor = ProgressMonitor(store, "retrain-20261207-000000-abcd", interval=0.01)
    monitor.start()

    def recorded_bar(want: str) -> str | None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            p = store.status("retrain-20261207-000000-abcd").get("progress")
            if p and p["bar"] == want:
                return want
            time.sleep(0.01)
        return (store.status("retrain-20261207-000000-abcd").get("progress") or {}).get("bar")

    try:
        with open(os.devnull, "w") as sink:
            with tqdm(total=3, desc="validation folds", file=sink):
                assert recorded_bar("validation folds") == "validation folds"
            with tqdm(total=10, desc="epoch 1/2", file=sink) as bar:
                bar.update(4)
                assert recorded_bar("epoch 1/2") == "epoch 1/2"
            with tqdm(total=1, desc="Loading weights", file=sink):
                time.sleep(0.2)  # 20 sampling intervals
                assert store.status("retrain-20261207-000000-abcd")["progress"]["bar"] == "epoch 1/2"
            with tqdm(total=10, desc="epoch 2/2", file=sink):
                assert recorded_bar("epoch 2/2") == "epoch 2/2"
    finally:
        monitor.stop()


def test_progress_is_read_from_open_tqdm_bars_and_the_log_tail_as_a_terminal_shows_it(tmp_path):
    from tqdm.auto import tqdm

    assert tqdm_progress() is None
    with open(os.devnull, "w") as sink, tqdm(total=10, desc="epoch 2/4", file=sink) as bar:
        bar.update(5)
        time.sleep(0.05)
        p = tqdm_progress()
    assert p["bar"] == "epoch 2/4" and p["step"] == 5 and p["total"] == 10 and (p["epoch"], p["epochs"]) == (2, 4)
    # the rest of this epoch (5 steps) plus two more epochs of 10 steps, at the measured rate
    assert p["eta_training_s"] == pytest.approx(p["eta_s"] + 20 / p["rate"], rel=0.05, abs=0.2)
    with tqdm(total=3, desc="off", disable=True):
        assert tqdm_progress() is None  # a disabled bar is not progress
    with open(os.devnull, "w") as sink, tqdm(total=3, desc="half-built", file=sink) as bar:
        start = bar.start_t
        del bar.start_t  # as another thread's bar is seen in the middle of its __init__
        try:
            assert tqdm_progress() is None
        finally:
            bar.start_t = start
    log = tmp_path / "job.log"
    log.write_text("INFO a: start\nepoch 1/2:  10%|#   | 1/10\repoch 1/2: 100%|####| 10/10\nINFO b: 来电人电话13812345678\n", encoding="utf-8")
    assert read_log_tail(log) == ["INFO a: start", "epoch 1/2: 100%|####| 10/10", read_log_tail(log)[-1]]
    assert "13812345678" not in read_log_tail(log)[-1]


def test_build_default_transformer_without_its_base_is_one_line_and_starts_nothing(tmp_path):
    r = hotline("build-default", "--model", "transformer", "--base-model", "nowhere", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error: base model nowhere not found") and "hotline base-model build" in r.stderr
    assert not (tmp_path / "challengers").exists() and not (tmp_path / "models").exists()
