"""The model registry: a folder of model versions and a ``CURRENT`` pointer file naming the one served.

::

    models/
      CURRENT              "linear-20261124-010203"  (the folder the API and CLI load)
      PREVIOUS             the folder served before (``hotline rollback`` goes back to it, once)
      history.jsonl        one line per promotion or rollback: time, action, current, previous, note
      linear-20261124-010203/   a model folder (see model.artifacts)
      linear-20261120-174455/

Pointer files are replaced atomically (write a temporary file, fsync, ``os.replace``), so a process
reloading the model sees the old name or the new one, never half of one; a promoted folder is
copied under a temporary name and renamed into place before any pointer names it. Promotions and
rollbacks in several processes are serialised with a lock file.

>>> promote("runs/challenger", "models")      # doctest: +SKIP
PosixPath('models/linear-20261124-010203')
>>> rollback("models")                        # doctest: +SKIP
Rollback(was='linear-20261124-010203', now='linear-20261120-174455', changed=True, since=None)
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, NamedTuple

logger = logging.getLogger(__name__)

CURRENT = "CURRENT"
PREVIOUS = "PREVIOUS"
HISTORY = "history.jsonl"
LOCK = ".lock"
# Files a model folder may carry that hold raw training texts; never copied into the registry.
NOT_REGISTERED = ("training_set.jsonl",)


class RegistryError(ValueError):
    """The registry cannot do what was asked; ``str(exc)`` says why and what to do."""


def current_model_dir(registry: str | Path) -> Path | None:
    """Folder of the current model, or None when the registry has none."""
    name = read_pointer(registry, CURRENT)
    return Path(registry) / name if name else None


def previous_model_dir(registry: str | Path) -> Path | None:
    """Folder of the model served before the current one, or None."""
    name = read_pointer(registry, PREVIOUS)
    return Path(registry) / name if name else None


def read_pointer(registry: str | Path, pointer: str) -> str | None:
    """The folder name a pointer file (``CURRENT`` or ``PREVIOUS``) holds, or None if absent or empty."""
    path = Path(registry) / pointer
    if not path.exists():
        return None
    name = path.read_text(encoding="utf-8").strip() or None
    if name is not None and (name in (".", "..") or "/" in name or "\\" in name or "\x00" in name):
        raise RegistryError(f"{pointer} names {name!r}, which is not a folder of the registry: a pointer holds one folder name, never a path")
    return name


def _write_pointer(path: Path, value: str) -> None:
    """Replace the pointer file ``path`` atomically: a reader sees the old or the new value, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the serving process may run as another user
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(value + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _locked(registry: Path) -> Iterator[None]:
    """Hold the registry's lock file (one promotion or rollback at a time, across processes)."""
    registry.mkdir(parents=True, exist_ok=True)
    with open(registry / LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _copy_in(model_dir: Path, registry: Path, name: str) -> Path:
    """Copy ``model_dir`` to ``registry/name`` via a temporary folder and a rename (no half-copied version)."""
    staging = registry / f".incoming-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(model_dir, staging, ignore=shutil.ignore_patterns(*NOT_REGISTERED))
        os.rename(staging, registry / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return registry / name


def register(model_dir: str | Path, registry: str | Path, make_current: bool = True) -> Path:
    """Copy a model folder into the registry (under its version name) and optionally point CURRENT at it.

    A folder of the same version name is replaced. :func:`promote` is the variant that never replaces
    a registered folder and records the promotion in the history.
    """
    model_dir, registry = Path(model_dir), Path(registry)
    version = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))["version"]
    registry.mkdir(parents=True, exist_ok=True)
    dest = registry / version
    if dest.resolve() != model_dir.resolve():
        with _locked(registry):
            if dest.exists():
                shutil.rmtree(dest)
            _copy_in(model_dir, registry, version)
    if make_current:
        old = current_model_dir(registry)
        if old is not None and old.name != version:
            _write_pointer(registry / PREVIOUS, old.name)
        _write_pointer(registry / CURRENT, version)
    return dest


# ---------------------------------------------------------------------------------------------
# Listing, promotion, rollback
# ---------------------------------------------------------------------------------------------
@dataclass
class ModelVersion:
    """One registered model folder.

    Attributes
    ----------
    name : str
        Folder name in the registry (what ``CURRENT`` holds), e.g. ``"linear-20261124-010203"``.
    version : str
        The model's own version (``config.json``); equals ``name`` unless two models were trained
        in the same second, in which case the folder gets a ``-2`` suffix.
    weights_sha256 : str or None
        Checksum of the weights; two folders with the same checksum hold the same model.
    validation : dict
        Headline numbers (``110_recall``, ``accuracy``, ``macro_f1``) on the training data's
        validation predictions (out-of-fold for the linear model, a held-out split for the transformer).
    test : dict
        The same numbers on a test set: the fixed one of ``comparison.json`` when the model came from
        ``hotline retrain``, else the ``--test-data`` of ``hotline train`` (empty when neither).
    test_files : list of str
        The file names that test set was read from.
    """

    name: str
    version: str
    path: Path
    created: str | None = None
    weights_sha256: str | None = None
    train_rows: int | None = None
    current: bool = False
    previous: bool = False
    validation: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    test_files: list = field(default_factory=list)


def files_fingerprint(files: dict | None) -> str | None:
    """One checksum for the file checksums a ``config.json`` records (``{"model.joblib": sha, …}``).

    A single file (linear model) gives its own sha256; several (transformer) the sha256 of the
    sorted ``name:sha`` lines. None when nothing is recorded.
    """
    if not files:
        return None
    if len(files) == 1:
        return str(next(iter(files.values())))
    import hashlib

    return hashlib.sha256("".join(f"{k}:{v}\n" for k, v in sorted(files.items())).encode("utf-8")).hexdigest()


def weights_sha256(model_dir: str | Path) -> str | None:
    """The weights checksum of a model folder, from its ``config.json`` (None if unreadable)."""
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return files_fingerprint(config.get("files"))


def _split_headline(m: dict) -> dict:
    """110 recall, accuracy and macro-F1 of a :func:`training.metrics.routing_metrics` dict."""
    return {
        "110_recall": (m.get("channel") or {}).get("110_recall"),
        "accuracy": (m.get("department") or {}).get("accuracy"),
        "macro_f1": (m.get("department") or {}).get("macro_f1"),
    }


def _headline(model_dir: Path) -> tuple[dict, dict, list, int | None]:
    """(validation numbers, test numbers, test file names, training rows) of a model folder, kept apart:
    a validation figure and a test figure are not the same measurement."""
    try:
        m = json.loads((model_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        m = {}
    validation = _split_headline(m.get("validation_out_of_fold") or {}) if m.get("validation_out_of_fold") else {}
    test, files = {}, []
    if m.get("test"):
        test, files = _split_headline(m["test"]), [Path(f).name for f in m["test"].get("data") or []]
    comparison = model_dir / "comparison.json"
    if comparison.exists():
        try:
            c = json.loads(comparison.read_text(encoding="utf-8"))
            test = {k: c["challenger"]["metrics"].get(k) for k in ("110_recall", "accuracy", "macro_f1")}
            files = [Path(f).name for f in c["test"]["files"]]
        except (json.JSONDecodeError, KeyError):
            pass
    return validation, test, files, m.get("train_rows")


def list_versions(registry: str | Path) -> list[ModelVersion]:
    """Registered model folders, oldest first (by creation time), with CURRENT and PREVIOUS marked.

    Folders whose names start with ``.`` or ``_`` (staging, builds in progress) are skipped.
    """
    registry = Path(registry)
    if not registry.is_dir():
        return []
    current, previous = read_pointer(registry, CURRENT), read_pointer(registry, PREVIOUS)
    out = []
    for d in registry.iterdir():
        if not d.is_dir() or d.name.startswith((".", "_")) or not (d / "config.json").exists():
            continue
        try:
            config = json.loads((d / "config.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            config = {}
        validation, test, test_files, rows = _headline(d)
        out.append(
            ModelVersion(
                name=d.name, version=config.get("version", d.name), path=d, created=config.get("created"),
                weights_sha256=weights_sha256(d), train_rows=rows, current=d.name == current, previous=d.name == previous,
                validation=validation, test=test, test_files=test_files,
            )
        )
    return sorted(out, key=lambda v: (v.created or "", v.name))


def history(registry: str | Path) -> list[dict]:
    """Promotions and rollbacks, oldest first (the lines of ``history.jsonl``)."""
    path = Path(registry) / HISTORY
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _append_history(registry: Path, entry: dict) -> None:
    entry = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), **entry}
    with open(registry / HISTORY, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _free_name(registry: Path, version: str) -> str:
    name, k = version, 2
    while (registry / name).exists():
        name, k = f"{version}-{k}", k + 1
    return name


def promote(model_dir: str | Path, registry: str | Path, note: dict | None = None) -> Path:
    """Copy a model folder into the registry, point CURRENT at it and PREVIOUS at the model it replaces.

    A registered folder is never overwritten: a model already in the registry (same weights
    checksum) is reused, and a different model with the same version name gets a new folder name.
    ``training_set.jsonl`` (raw texts) is not copied. The step is written to ``history.jsonl``
    with ``note`` (e.g. the comparison deltas).

    Returns
    -------
    Path of the registered folder (what CURRENT now names).
    """
    model_dir, registry = Path(model_dir), Path(registry)
    if not (model_dir / "config.json").exists():
        raise RegistryError(f"{model_dir}: no config.json (not a model folder)")
    version = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))["version"]
    sha = weights_sha256(model_dir)
    with _locked(registry):
        same = [v for v in list_versions(registry) if sha and v.weights_sha256 == sha]
        if model_dir.resolve().parent == registry.resolve() and (registry / model_dir.name).is_dir():
            dest = registry / model_dir.name
        elif same:
            dest = same[0].path
            logger.info("%s is already registered as %s; reusing it", model_dir, dest.name)
        else:
            dest = _copy_in(model_dir, registry, _free_name(registry, version))
        old = read_pointer(registry, CURRENT)
        if old == dest.name:
            logger.info("%s is already the current model", dest.name)
            return dest
        if old is not None:
            _write_pointer(registry / PREVIOUS, old)
        _write_pointer(registry / CURRENT, dest.name)
        _append_history(registry, {"action": "promote", "current": dest.name, "previous": old, "version": version, **(note or {})})
    logger.info("promoted %s (previous: %s)", dest.name, old)
    return dest


class Rollback(NamedTuple):
    """What :func:`rollback` did: CURRENT was ``was`` and is now ``now``; ``changed`` is False when a plain
    rollback found the registry already rolled back (``since``: the time of that rollback)."""

    was: str
    now: str
    changed: bool = True
    since: str | None = None


def rollback(registry: str | Path, to: str | None = None) -> Rollback:
    """Point CURRENT back at PREVIOUS, or at the registered folder ``to``; PREVIOUS becomes the model
    rolled back from.

    A plain rollback (``to`` None) is idempotent: when the last step in ``history.jsonl`` was a
    rollback and CURRENT is still what it set, nothing changes (``changed`` False), so running the
    command twice does not silently undo itself. Going one further back, or back to the model rolled
    back from, takes ``to``.
    """
    registry = Path(registry)
    with _locked(registry):
        current = read_pointer(registry, CURRENT)
        if to is None and current is not None:
            steps = history(registry)
            last = steps[-1] if steps else None
            if last and last.get("action") == "rollback" and last.get("current") == current:
                logger.info("already rolled back to %s (from %s at %s); nothing changed", current, last.get("previous"), last.get("time"))
                return Rollback(last.get("previous") or "", current, changed=False, since=last.get("time"))
        target = to or read_pointer(registry, PREVIOUS)
        if target is None:
            raise RegistryError(f"{registry}: no previous model to roll back to (PREVIOUS is not set); `hotline models` lists the versions")
        if not (registry / target / "config.json").exists():
            raise RegistryError(f"{registry}: cannot roll back to {target!r}: no such model folder in the registry")
        if target == current:
            raise RegistryError(f"{registry}: {target!r} is already the current model")
        if current is not None:
            _write_pointer(registry / PREVIOUS, current)
        _write_pointer(registry / CURRENT, target)
        _append_history(registry, {"action": "rollback", "current": target, "previous": current})
    logger.info("rolled back from %s to %s", current, target)
    return Rollback(current or "", target)
