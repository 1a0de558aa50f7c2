"""Background retrain jobs: a long fine-tune that holds no terminal and no HTTP request.

``hotline retrain … --background`` and ``POST /v1/admin/retrain`` create a job and start a detached
process (``hotline jobs run ID``, its own session) that runs :func:`training.retrain.retrain`, the
promotion check (:func:`training.promote.judge`) and, when asked and accepted, the promotion.

A job is one JSON record in the registry's ``jobs/`` folder, beside the models it produces::

    models/jobs/retrain-20261206-031500-3f2a.json   state, stage, progress, pid, request, result, error
    models/jobs/retrain-20261206-031500-3f2a.log    the process's stdout and stderr (logs, tqdm bars)

Files, not a database table: the analyst's ``hotline`` command has no database (only the API has
one), a job belongs to the machine whose process runs it (the pid check means nothing elsewhere),
and the registry folder is what every process that promotes or serves models already shares
(replicas that follow a reload read it). Records are replaced atomically and written under a
lock file, so a reader sees a whole record and a finished job is never marked failed by a reader.

States: ``queued`` → ``running`` → ``done`` | ``failed`` | ``cancelled``. A job whose process is
gone (killed, machine restarted) while its record says queued or running is failed on the next
read, saying so: the check compares the pid *and* its start time (Linux ``/proc``), so a reused
pid does not count as the job. Progress comes from the training's own tqdm bars (the newest open
bar: its description, step, total, rate, hence the ETA), read every ``interval`` seconds
(:mod:`training.job_watch` has these checks).

>>> store = JobStore("models")                                                  # doctest: +SKIP
>>> job = start_retrain(store, RetrainConfig(...), policy=PromotionPolicy())     # doctest: +SKIP
>>> store.status(job["id"])["stage"]                                             # doctest: +SKIP
'training'
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from training.job_watch import process_alive, process_start, read_log_tail, tqdm_progress
from training.promote import PromotionPolicy
from training.retrain import RetrainConfig

logger = logging.getLogger(__name__)

JOBS_DIR = "jobs"
ACTIVE = ("queued", "running")
FINAL = ("done", "failed", "cancelled")
_ID = re.compile(r"^[a-z]+-\d{8}-\d{6}-[0-9a-f]{4}$")


class JobError(ValueError):
    """No such job, or it cannot do what was asked; ``str(exc)`` says which and why."""


class JobBusy(JobError):
    """Another job of this registry is still running (one at a time: each takes every core)."""


class JobCancelled(BaseException):
    """Raised in the worker by SIGTERM (``hotline jobs cancel``); a BaseException so that no
    ``except Exception`` on the way swallows it."""


def new_job_id(kind: str) -> str:
    """``kind-YYYYMMDD-HHMMSS-xxxx`` (UTC, 4 random hex digits)."""
    return f"{kind}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------- store
class JobStore:
    """The job records of one registry (``<registry>/jobs/``)."""

    def __init__(self, registry: str | Path):
        self.registry = Path(registry).resolve()
        self.dir = self.registry / JOBS_DIR

    def path(self, job_id: str) -> Path:
        if not _ID.match(job_id or ""):
            raise JobError(f"no job {job_id!r}: job ids look like retrain-20261206-031500-3f2a (`hotline jobs list`)")
        return self.dir / f"{job_id}.json"

    def log_path(self, job_id: str) -> Path:
        return self.path(job_id).with_suffix(".log")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _read(self, job_id: str) -> dict:
        p = self.path(job_id)
        if not p.exists():
            raise JobError(f"no job {job_id} in {self.dir} (`hotline jobs list` shows the jobs)")
        return json.loads(p.read_text(encoding="utf-8"))

    def _write(self, record: dict) -> None:
        record["updated"] = _now()
        p = self.path(record["id"])
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8")
        tmp.replace(p)

    def update(self, job_id: str, **fields) -> dict:
        """Set ``fields`` on the record (read, change, write, under the lock); returns the record."""
        with self._locked():
            record = self._read(job_id)
            record.update(fields)
            self._write(record)
        return record

    def create(self, job_id: str, kind: str, request: dict) -> dict:
        """A new ``queued`` record (``job_id`` from :func:`new_job_id`); :class:`JobBusy` if a job of
        this registry is still active."""
        self.path(job_id)  # a well-formed id
        with self._locked():
            for other in self._ids():
                rec = self._checked(self._read(other))
                if rec["state"] in ACTIVE:
                    raise JobBusy(f"job {other} is still {rec['state']} (pid {rec.get('pid')}); wait for it "
                                  f"(`hotline jobs status {other}`) or cancel it (`hotline jobs cancel {other}`)")
            record = {"id": job_id, "kind": kind, "state": "queued", "stage": "queued",
                      "created": _now(), "started": None, "finished": None, "host": socket.gethostname(), "pid": None,
                      "pid_start": None, "progress": None, "result": None, "error": None, "request": request}
            self._write(record)
        return record

    def _ids(self) -> list[str]:
        return sorted(p.stem for p in self.dir.glob("*.json") if _ID.match(p.stem)) if self.dir.is_dir() else []

    def _checked(self, record: dict) -> dict:
        """``record``, failed (and saved so) if it is active but its process is gone. Under the lock."""
        if record["state"] not in ACTIVE or record.get("host") != socket.gethostname():
            return record  # another machine's job: its pid means nothing here
        if record.get("pid") is None:
            created = datetime.fromisoformat(record["created"])
            if (datetime.now(timezone.utc) - created).total_seconds() < 60:
                return record  # being started
        elif process_alive(record["pid"], record.get("pid_start")):
            return record
        record.update(state="failed", finished=_now(),
                      error=f"the job's process (pid {record.get('pid')}) ended without finishing, during {record.get('stage')} "
                            "(killed, or the machine restarted); its challenger folder is incomplete")
        self._write(record)
        return record

    def status(self, job_id: str) -> dict:
        """The record, its process checked (see the module docstring), with ``log_tail`` and ``log``."""
        with self._locked():
            record = self._checked(self._read(job_id))
        return {**record, "log": str(self.log_path(job_id)), "log_tail": read_log_tail(self.log_path(job_id))}

    def list(self) -> list[dict]:
        """Every job, oldest first, checked like :meth:`status` (without log tails)."""
        with self._locked():
            return [self._checked(self._read(i)) for i in self._ids()]

    def cancel(self, job_id: str, wait_s: float = 5.0) -> dict:
        """Stop an active job: SIGTERM to its process group, SIGKILL after ``wait_s`` seconds if it is
        still there; the record ends ``cancelled``. A finished job is a :class:`JobError`."""
        record = self.status(job_id)
        if record["state"] not in ACTIVE:
            raise JobError(f"job {job_id} is already {record['state']}; nothing to cancel")
        if record.get("host") != socket.gethostname():
            raise JobError(f"job {job_id} runs on {record.get('host')}; cancel it there")
        pid, start = record.get("pid"), record.get("pid_start")
        self.update(job_id, cancel_requested=_now())
        if pid and process_alive(pid, start):
            _signal(pid, signal.SIGTERM)
            deadline = time.monotonic() + wait_s
            while process_alive(pid, start) and time.monotonic() < deadline:
                time.sleep(0.1)
            if process_alive(pid, start):
                _signal(pid, signal.SIGKILL)
        with self._locked():
            record = self._read(job_id)
            if record["state"] in ACTIVE:  # the worker did not get to write it (killed, or never started)
                record.update(state="cancelled", finished=_now(), error="cancelled before it finished")
                self._write(record)
        return record


def _signal(pid: int, sig: int) -> None:
    """``sig`` to the job's process group (it leads one: started with a new session), else the process."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


# ------------------------------------------------------------------------------- start and run
def retrain_request(cfg: RetrainConfig, policy: PromotionPolicy, promote: bool) -> dict:
    """What a retrain job runs, checked now so that bad input fails at once, not in the background:
    every data file exists, the transformer's base model is there. Paths are made absolute."""
    from data.loading import DataError

    for name in ("base_data", "new_data", "test_data"):
        files = [str(Path(f).resolve()) for f in getattr(cfg, name)]
        for f in files:
            if not Path(f).is_file():
                raise DataError(f"{f}: no such file (--{name.replace('_', '-')})")
        setattr(cfg, name, files)
    cfg.out = str(Path(cfg.out).resolve())
    if cfg.registry and (Path(cfg.out) == Path(cfg.registry).resolve() or Path(cfg.registry).resolve() in Path(cfg.out).parents):
        raise ValueError(f"--out {cfg.out} is inside the registry {cfg.registry}; write the challenger elsewhere and use `hotline promote` to register it")
    for name in ("champion", "registry", "taxonomy", "channel_map", "base_model"):
        value = getattr(cfg, name)
        if value and (name != "taxonomy" or value not in ("default", "infer")):
            setattr(cfg, name, str(Path(value).resolve()))
    if cfg.model == "transformer":
        from model.transformer import TransformerTextClassifier, resolve_base_model

        cfg.base_model = str(resolve_base_model(cfg.base_model).resolve())
        unknown = sorted(set(cfg.transformer) - set(TransformerTextClassifier._get_param_names()))
        if unknown:
            raise ValueError(f"unknown transformer parameter(s): {', '.join(unknown)} (see TransformerTextClassifier's parameters)")
    elif cfg.transformer or cfg.base_model:
        raise ValueError("--param and --base-model are for --model transformer")
    return {"retrain": cfg.to_dict(), "policy": asdict(policy), "promote": bool(promote)}


def start_retrain(store: JobStore, cfg: RetrainConfig, policy: PromotionPolicy, promote: bool = False, progress_interval: float = 1.0,
                  challengers_dir: str | Path | None = None) -> dict:
    """Create a retrain job and start its detached process; returns the record (with its pid).
    ``challengers_dir``: write the challenger to ``challengers_dir/<job id>`` instead of ``cfg.out``."""
    job_id = new_job_id("retrain")
    if challengers_dir is not None:
        cfg.out = str(Path(challengers_dir) / job_id)
    store.create(job_id, "retrain", {**retrain_request(cfg, policy, promote), "progress_interval": progress_interval})
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_MININTERVAL": str(max(0.5, progress_interval))}
    try:
        with open(store.log_path(job_id), "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "serve.cli", "jobs", "run", job_id, "--registry", str(store.registry)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True, env=env)
    except OSError as exc:
        store.update(job_id, state="failed", finished=_now(), error=f"could not start the job's process: {exc}")
        raise
    # A long-lived parent (the API) reaps its finished child, else it would linger as a zombie.
    threading.Thread(target=proc.wait, name=f"reap-{job_id}", daemon=True).start()
    with store._locked():  # the worker may already have written "running": keep what it wrote
        record = store._read(job_id)
        if record.get("pid") is None:
            record.update(pid=proc.pid, pid_start=process_start(proc.pid))
            store._write(record)
    logger.info("started job %s (pid %s)", job_id, proc.pid)
    return record


class ProgressMonitor(threading.Thread):
    """Copies :func:`tqdm_progress` into the job record every ``interval`` seconds, with the stage it
    was taken in (``progress.stage``). Once a fine-tune's "epoch k/K" bar has been recorded only
    another epoch bar replaces it: the short bars that follow an epoch (validation, saving the
    encoder, loading weights) would otherwise hide the epoch and the training's ETA, and after
    training the record keeps the last epoch bar."""

    def __init__(self, store: JobStore, job_id: str, interval: float = 1.0):
        super().__init__(name=f"progress-{job_id}", daemon=True)
        self.store, self.job_id, self.interval = store, job_id, interval
        self._halt = threading.Event()

    def run(self) -> None:
        last, seen_epoch = None, False
        while not self._halt.wait(self.interval):
            try:
                snap = tqdm_progress()
            except Exception:  # a reading must never end the monitor: the job would show no progress
                logger.debug("could not read the progress bars", exc_info=True)
                continue
            if snap is None or (seen_epoch and "epochs" not in snap):
                continue
            seen_epoch = seen_epoch or "epochs" in snap
            if snap != last and not self._halt.is_set():
                with self.store._locked():
                    record = self.store._read(self.job_id)
                    record["progress"] = {**snap, "stage": record.get("stage")}
                    self.store._write(record)
                last = snap

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def run_job(store: JobStore, job_id: str) -> dict:
    """The worker (``hotline jobs run ID``): run the job's retrain, record the outcome; returns the record."""
    from training.retrain import retrain

    record = store.update(job_id, state="running", stage="starting", started=_now(), pid=os.getpid(), pid_start=process_start(os.getpid()))

    def cancelled(signum, frame):
        raise JobCancelled()

    signal.signal(signal.SIGTERM, cancelled)
    req = record["request"]
    monitor = ProgressMonitor(store, job_id, float(req.get("progress_interval", 1.0)))
    monitor.start()
    try:
        cfg = RetrainConfig(**req["retrain"])
        stage = lambda s: store.update(job_id, stage=s)  # noqa: E731
        result = retrain(cfg, progress=True, on_stage=stage)
        monitor.stop()
        outcome = finish_retrain(result, PromotionPolicy(**req["policy"]), cfg.registry, req.get("promote", False), on_stage=stage)
        return store.update(job_id, state="done", stage="done", finished=_now(), result=outcome)
    except JobCancelled:
        logger.warning("cancelled (SIGTERM)")
        return store.update(job_id, state="cancelled", finished=_now(), error="cancelled (SIGTERM) during " + store._read(job_id)["stage"])
    except Exception as exc:  # the record must say why; the log has the traceback
        logger.exception("the job failed")
        first = (str(exc) or type(exc).__name__).partition("\n")[0]
        return store.update(job_id, state="failed", finished=_now(), error=f"{type(exc).__name__}: {first}")
    finally:
        monitor.stop()


def finish_retrain(result, policy: PromotionPolicy, registry: str | None, promote: bool, on_stage=None) -> dict:
    """The end of a retrain, foreground or background: the comparison, the promotion check and, with
    ``promote``, the promotion when the check accepts. Returns what the job record keeps."""
    from training.compare import comparison_table, describe_labels
    from training.promote import judge, promote_challenger

    verdict = judge(result.comparison, policy)
    labels = result.comparison.get("labels") or {}
    outcome = {
        "out": str(result.out), "version": result.model.version, "model": getattr(result.model.classifier, "model_class", None),
        "merge": result.merge.summary(), "champion": result.comparison["champion"]["name"], "challenger": result.comparison["challenger"]["name"],
        "deltas": result.comparison["deltas"], "comparison_table": comparison_table(result.comparison),
        "comparison": str(Path(result.out) / "comparison.md"), "labels_differ": None if labels.get("same", True) else describe_labels(labels),
        "verdict": {"accepted": verdict.accepted, "reason": verdict.reason_line()}, "promoted": None, "promote_error": None,
    }
    if promote and verdict.accepted and registry:
        if on_stage:
            on_stage("promoting")
        try:
            done = promote_challenger(result.out, registry, policy)
            outcome["promoted"] = done.registered.name
        except ValueError as exc:  # PromotionRefused (the champion changed meanwhile) or a registry problem
            outcome["promote_error"] = str(exc)
    return outcome
