"""One record type for a labelled (or unlabelled) call summary."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class CallRecord:
    """A call summary as loaded from a file.

    Attributes
    ----------
    text : str
        The summary, cleaned (width and whitespace normalised).
    department : str or None
        Department label; ``None`` for unlabelled input (prediction).
    channel : str or None
        ``"110"`` or ``"12345"`` when known.
    id : str or None
        Row identifier from the file, if it had one.
    source : str or None
        How the row was made or where it came from (file name, corpus source tag).
    line : int or None
        Line (CSV/JSONL), sheet row (Excel) or 1-based index (datasets) in the source, for error messages.
    extra : dict
        The row's other fields, kept so that ``hotline predict`` can echo them back.
    """

    text: str
    department: str | None = None
    channel: str | None = None
    id: str | None = None
    source: str | None = None
    line: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RowError:
    """What is wrong with one input row: file, line and a message a person can act on."""

    file: str
    line: int | None
    message: str
    kind: str = "invalid"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"
