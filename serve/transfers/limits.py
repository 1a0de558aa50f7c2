"""Time limits of transfer orders (跟踪督办): minutes per urgency, and per department where it differs.

The limits come from one file, ``HOTLINE_TRANSFER_LIMITS_PATH`` (YAML, or JSON by its ``.json``
suffix), read and checked when the settings are built, so a bad file stops the server at start-up
with one line naming the file and the entry. Without a file the defaults hold (110 先行 30 minutes,
normal 1440 minutes)::

    110_first: 30          # minutes, for every department not listed below
    normal: 1440
    departments:           # the department as the order names it (served taxonomy code)
      公安局交通警察支队: {normal: 120}
      police_traffic: {110_first: 15, normal: 120}

An order's deadline is fixed when it is sent (created_at + its limit; a resend starts it again);
a changed file applies to orders sent after the restart.

>>> limits = TransferLimits.model_validate({"normal": 600, "departments": {"公安局交通警察支队": {"normal": 120}}})
>>> limits.minutes("normal", "公安局交通警察支队"), limits.minutes("normal", "utilities"), limits.minutes("110_first", "公安局交通警察支队")
(120.0, 600.0, 30.0)
>>> parse_limits({"departments": {"公安局交通警察支队": {"normal": -5}}}, "limits.yaml")
Traceback (most recent call last):
...
serve.transfers.limits.LimitsError: limits.yaml: departments.公安局交通警察支队.normal: Input should be greater than 0
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

URGENCIES = ("110_first", "normal")
MAX_MINUTES = 366 * 24 * 60  # a limit longer than a year is a typo (hours or seconds given as minutes)
Minutes = Annotated[float, Field(gt=0, le=MAX_MINUTES, strict=True, description="Minutes until an order not yet written back is overdue")]
Department = Annotated[str, Field(min_length=1, max_length=128)]


class LimitsError(ValueError):
    """The limits file cannot be used; the message names the file and the bad entry."""


class DepartmentLimits(BaseModel):
    """One department's own limits; an urgency left out takes the general one."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    first: Minutes | None = Field(None, alias="110_first")
    normal: Minutes | None = None


class TransferLimits(BaseModel):
    """Minutes per urgency (``110_first``, ``normal``) with per-department exceptions."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)
    first: Minutes = Field(30.0, alias="110_first")
    normal: Minutes = 1440.0
    departments: dict[Department, DepartmentLimits] = Field(default_factory=dict)

    def minutes(self, urgency: str, department: str) -> float:
        """The limit in minutes of an order of ``urgency`` for ``department``."""
        own = self.departments.get(department)
        key = "first" if urgency == "110_first" else "normal"
        value = getattr(own, key) if own is not None else None
        return float(value if value is not None else getattr(self, key))


def parse_limits(data: Any, source: str) -> TransferLimits:
    """Check ``data`` (the parsed file); raise :class:`LimitsError` naming ``source`` and the entry."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise LimitsError(f"{source}: must be a mapping with 110_first, normal and departments, not {type(data).__name__}")
    try:
        return TransferLimits.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise LimitsError(f"{source}: {where}: {err['msg']}{more}") from None


def load_limits(path: Path | str | None) -> TransferLimits:
    """The limits in ``path`` (YAML, or JSON by suffix); the defaults when ``path`` is None."""
    if path is None:
        return TransferLimits()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LimitsError(f"{path}: cannot read the transfer limits file ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise LimitsError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'} ({' '.join(str(exc).split())})") from None
    return parse_limits(data, str(path))
