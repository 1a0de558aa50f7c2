"""``hotline jobs``: follow, list and cancel background jobs (``hotline retrain … --background``,
``POST /v1/admin/retrain``); ``hotline jobs run`` is the detached worker itself."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from serve.cli._common import _registry_dir, _setup_logging, _user_errors, app

jobs_app = typer.Typer(help="Background jobs (retrain --background): status, list, cancel. Records and logs live in the registry's jobs/ folder.",
                       no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
REGISTRY_HELP = "Model registry whose jobs/ folder holds the jobs (default HOTLINE_REGISTRY_DIR, models)"


def _duration(seconds) -> str:
    if seconds is None:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


def progress_line(job: dict) -> str:
    """One line: id, state, stage, the newest progress bar with its ETA, pid."""
    parts = [job["id"], job["state"]]
    if job["state"] in ("queued", "running"):
        parts.append(f"stage {job.get('stage')}")
        p = job.get("progress") or {}
        if p and p.get("stage") == job.get("stage"):
            bar = f"{p.get('bar') or 'step'} {p.get('step')}/{p.get('total') or '?'}"
            if p.get("eta_s") is not None:
                bar += f", ETA {_duration(p['eta_s'])}"
            if p.get("eta_training_s") is not None:
                bar += f" (training at most {_duration(p['eta_training_s'])} more)"
            parts.append(bar)
        parts.append(f"pid {job.get('pid')}")
    elif job["state"] == "done":
        r = job.get("result") or {}
        verdict = r.get("verdict") or {}
        parts.append(f"{r.get('model')} challenger {r.get('version')}: " + ("accepted" if verdict.get("accepted") else "refused")
                     + (f", promoted {r['promoted']}" if r.get("promoted") else ""))
    else:
        parts.append(job.get("error") or "")
    return " · ".join(str(x) for x in parts if x)


def _print_status(job: dict) -> None:
    typer.echo(progress_line(job))
    r = job.get("result")
    if job["state"] == "done" and r:
        typer.echo(f"data: {r['merge']}")
        if r.get("labels_differ"):
            typer.echo(f"warning: the champion and the challenger route to different departments: {r['labels_differ']}")
        typer.echo(r["comparison_table"])
        typer.echo(f"promotion check: {r['verdict']['reason']}")
        if r.get("promoted"):
            typer.echo(f"promoted {r['promoted']}; a running API serves it after its next reload (POST /v1/admin/reload)")
        elif r.get("promote_error"):
            typer.echo(f"not promoted: {r['promote_error']}")
        else:
            typer.echo(f"comparison: {r['comparison']}; promote with `hotline promote {r['out']}`")
    if job.get("log_tail"):
        typer.echo(f"log ({job['log']}), last lines:")
        for line in job["log_tail"]:
            typer.echo(f"  {line}")


@jobs_app.command("status")
def status(
    job: str = typer.Argument(..., help="Job id (see `hotline jobs list`)"),
    registry: Optional[Path] = typer.Option(None, help=REGISTRY_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the job record as JSON"),
    follow: bool = typer.Option(False, "--follow", help="Print a progress line every few seconds until the job ends"),
    every: float = typer.Option(5.0, help="With --follow: seconds between lines"),
) -> None:
    """State, stage, progress (epoch, step, ETA), the log's last lines and, once done, the comparison
    and the promotion decision. A job whose process died shows as failed. Exit status 1 if the job
    failed or was cancelled."""
    from training.jobs import FINAL, JobStore

    store = JobStore(_registry_dir(registry))
    with _user_errors():
        record = store.status(job)
        while follow and record["state"] not in FINAL:
            typer.echo(progress_line(record))
            time.sleep(every)
            record = store.status(job)
    if as_json:
        typer.echo(json.dumps(record, ensure_ascii=False, indent=2))
    else:
        _print_status(record)
    if record["state"] in ("failed", "cancelled"):
        raise typer.Exit(1)


@jobs_app.command("list")
def list_jobs(
    registry: Optional[Path] = typer.Option(None, help=REGISTRY_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of lines"),
) -> None:
    """Every job of the registry, oldest first, one line each."""
    from training.jobs import JobStore

    jobs = JobStore(_registry_dir(registry)).list()
    if as_json:
        typer.echo(json.dumps(jobs, ensure_ascii=False, indent=2))
        return
    if not jobs:
        typer.echo("no jobs (start one with `hotline retrain … --background`)")
    for j in jobs:
        typer.echo(f"{j['created']}  {progress_line(j)}")


@jobs_app.command("cancel")
def cancel(
    job: str = typer.Argument(..., help="Job id (see `hotline jobs list`)"),
    registry: Optional[Path] = typer.Option(None, help=REGISTRY_HELP),
    wait: float = typer.Option(5.0, help="Seconds to wait after SIGTERM before SIGKILL"),
) -> None:
    """Stop a queued or running job (SIGTERM to its process group, SIGKILL if it is still there after --wait)."""
    from training.jobs import JobStore

    with _user_errors():
        record = JobStore(_registry_dir(registry)).cancel(job, wait_s=wait)
    typer.echo(progress_line(record))


@jobs_app.command("run", hidden=True)
def run(
    job: str = typer.Argument(..., help="Job id"),
    registry: Path = typer.Option(..., help="Model registry of the job"),
) -> None:
    """The detached worker of a job (started by `retrain --background` or the API; not for people)."""
    import logging

    _setup_logging(False)  # others' chatter (the ONNX exporter's INFO lines) stays out of the job's log
    for name in ("data", "model", "training", "serve"):
        logging.getLogger(name).setLevel(logging.INFO)
    from training.jobs import JobStore, run_job

    with _user_errors():
        record = run_job(JobStore(registry), job)
    if record["state"] != "done":
        raise typer.Exit(1)
