"""Write rows (dicts) as the file's suffix says: ``.jsonl``, ``.csv`` (UTF-8 with BOM, so Excel reads
Chinese) or ``.xlsx``; anything else is refused with one line. Spreadsheet cells are safe from formula
injection (:func:`spreadsheet_safe`); lists and dicts become JSON text in a spreadsheet cell.

>>> spreadsheet_safe("=1+1"), spreadsheet_safe("家里停水了")
("'=1+1", '家里停水了')
"""
from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

FORMATS = (".jsonl", ".csv", ".xlsx")
_FORMULA_START = tuple("=+-@\t\r＝＋－＠")


def spreadsheet_safe(value: Any) -> Any:
    """A cell that a spreadsheet will not run as a formula: text starting (after any spaces) with
    ``= + - @``, their full-width forms, a tab or a carriage return gets a leading apostrophe, as OWASP
    advises for CSV injection. Other values are returned as they are."""
    if isinstance(value, str) and value.lstrip(" \u3000").startswith(_FORMULA_START):
        return "'" + value
    return value


def check_format(path: str | Path) -> str:
    """The suffix of ``path`` when it is one of :data:`FORMATS`; else ``ValueError`` naming them."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: the output format follows the suffix; use {', '.join(FORMATS)}")
    return suffix


def _cell(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, (list, dict, tuple)):
        return json.dumps(v, ensure_ascii=False, default=str)
    return "" if v is None else spreadsheet_safe(v)


def write_table(rows: Iterable[dict[str, Any]], path: str | Path, columns: Sequence[str] | None = None) -> Path:
    """Write ``rows`` to ``path`` in the format its suffix names; ``columns`` (default: the keys of
    the first row, then any new key in order of appearance) fix the spreadsheet columns."""
    path = Path(path)
    suffix = check_format(path)
    rows = list(rows)
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".jsonl":
        with open(path, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({k: r.get(k) for k in columns}, ensure_ascii=False, default=str) + "\n")
    elif suffix == ".csv":
        with open(path, "w", encoding="utf-8-sig", newline="") as f:
            w = csv.writer(f)
            w.writerow(columns)
            w.writerows([_cell(r.get(k)) for k in columns] for r in rows)
    else:
        from openpyxl import Workbook

        wb = Workbook(write_only=True)
        ws = wb.create_sheet("routed")
        ws.append(list(columns))
        for r in rows:
            ws.append([_cell(r.get(k)) for k in columns])
        wb.save(path)
    return path
