"""The model registry: a folder of model versions and a ``CURRENT`` pointer file naming the one served.

::

    models/
      CURRENT              "linear-20261124-010203"
      PREVIOUS             the version before (for rollback)
      linear-20261124-010203/   a model folder (see model.artifacts)
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

CURRENT = "CURRENT"
PREVIOUS = "PREVIOUS"


def current_model_dir(registry: str | Path) -> Path | None:
    """Folder of the current model, or None when the registry has none."""
    registry = Path(registry)
    pointer = registry / CURRENT
    if not pointer.exists():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    return registry / name if name else None


def _write_pointer(path: Path, value: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(value + "\n", encoding="utf-8")
    os.replace(tmp, path)  # atomic: a reader sees the old or the new pointer, never half of one


def register(model_dir: str | Path, registry: str | Path, make_current: bool = True) -> Path:
    """Copy a model folder into the registry (under its version name) and optionally point CURRENT at it."""
    import json

    model_dir, registry = Path(model_dir), Path(registry)
    version = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))["version"]
    registry.mkdir(parents=True, exist_ok=True)
    dest = registry / version
    if dest.resolve() != model_dir.resolve():
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(model_dir, dest)
    if make_current:
        old = current_model_dir(registry)
        if old is not None and old.name != version:
            _write_pointer(registry / PREVIOUS, old.name)
        _write_pointer(registry / CURRENT, version)
    return dest
