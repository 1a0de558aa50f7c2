"""Load labelled or unlabelled tickets from CSV, JSONL, Excel and Hugging Face ``datasets`` objects.

Every loader returns records plus the errors found, each naming file, line and what was expected.
Strict mode raises :class:`DataError` on the first file with a bad row (listing them all); lenient
mode skips bad rows and reports how many and which lines. A bad row never silently disappears.

Repeated texts follow one policy for ``train``, ``retrain`` and ``evaluate`` (texts compared by
:func:`data.cleaning.dedup_key`, within a file and across the files of one load):

- an exact duplicate (same text, same label) is dropped and counted (``LoadResult.duplicates``);
  it is not a bad row, so no ``--lenient`` is needed;
- a label conflict (same text, another label) is dropped too, the first row's label is kept, and
  each one is reported by file and line with both labels (``LoadResult.conflicts``).

:func:`describe_input` turns ``LoadResult.input_report()`` into the lines the commands print.

>>> result = load_records("tickets.csv", text_column="诉求内容", label_column="处置单位")  # doctest: +SKIP
>>> len(result.records), [str(e) for e in result.errors][:1]                            # doctest: +SKIP
"""
from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from data.cleaning import classifier_text, dedup_key, normalize_text
from data.schema import CallRecord, RowError
from data.taxonomy import Taxonomy, TaxonomyError, normalise_channel

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".xlsx")


class DataError(ValueError):
    """Input that cannot be used; the message names the file, the line and the fix."""

    def __init__(self, message: str, errors: list[RowError] | None = None):
        super().__init__(message)
        self.errors = errors or []


@dataclass
class LoadResult:
    """Records that passed validation, and the rows that did not."""

    records: list[CallRecord]
    errors: list[RowError] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    duplicates: list[RowError] = field(default_factory=list)  # exact repeats, dropped (not errors)
    conflicts: list[RowError] = field(default_factory=list)  # same text, another label: dropped, first label kept

    def input_report(self, limit: int = 50) -> dict:
        """What loading dropped and why, for metrics files and :func:`describe_input` (lines, labels; no texts)."""
        return {
            "rows_used": len(self.records),
            "bad_rows_skipped": len(self.errors),
            "exact_duplicates_dropped": len(self.duplicates),
            "exact_duplicate_lines": [_where(e) for e in self.duplicates[:limit]],
            "label_conflicts_dropped": len(self.conflicts),
            "label_conflicts": [str(e) for e in self.conflicts[:limit]],
        }

    def error_summary(self, limit: int = 10) -> str:
        """One line: how many rows were skipped and which lines."""
        if not self.errors:
            return "no bad rows"
        shown = "; ".join(str(e) for e in self.errors[:limit])
        more = f" (and {len(self.errors) - limit} more)" if len(self.errors) > limit else ""
        return f"{len(self.errors)} bad rows skipped: {shown}{more}"


def _rows(n: int) -> str:
    return "row" if n == 1 else "rows"


def _where(e: RowError) -> str:
    return f"{e.file}:{e.line}" if e.line is not None else e.file


def describe_input(report: dict, name: str = "", limit: int = 10) -> list[str]:
    """Lines for the command's output: how many exact duplicates were dropped (where) and every label
    conflict (where, both labels, what was done); empty when there was neither."""
    prefix = f"{name}: " if name else ""
    out = []
    n = report.get("exact_duplicates_dropped", 0)
    if n:
        where = report.get("exact_duplicate_lines", [])[:limit]
        more = f", … {n - len(where)} more" if n > len(where) else ""
        out.append(f"{prefix}{n} exact duplicate {_rows(n)} dropped (same text and label as an earlier row): {', '.join(where)}{more}")
    n = report.get("label_conflicts_dropped", 0)
    if n:
        shown = report.get("label_conflicts", [])[:limit]
        more = f"\n  … {n - len(shown)} more (all in metrics.json)" if n > len(shown) else ""
        out.append(f"{prefix}{n} {_rows(n)} with the text of an earlier row but another label dropped (the earlier row's label kept):\n  "
                   + "\n  ".join(shown) + more)
    return out


# ---------------------------------------------------------------------------------------------
# Raw rows: (line, dict, decode_problem) from each format
# ---------------------------------------------------------------------------------------------
def _decode(raw: bytes, path: str, encoding: str | None) -> tuple[str, str, set[int]]:
    """Decode file bytes. Tries UTF-8 (with or without BOM), then GB18030, unless ``encoding`` is
    given. Returns (text, encoding used, physical line numbers that held undecodable bytes)."""
    candidates = [encoding] if encoding else ["utf-8-sig", "gb18030"]
    for enc in candidates:
        try:
            return raw.decode(enc), enc, set()
        except UnicodeDecodeError:
            continue
        except LookupError:
            raise DataError(f"{path}: unknown encoding {enc!r}") from None
    # Neither decodes the whole file: pick the one with fewer bad lines and mark those lines.
    best: tuple[int, str, list[str], set[int]] | None = None
    for enc in candidates:
        lines, bad = [], set()
        for i, line in enumerate(raw.split(b"\n"), 1):
            try:
                lines.append(line.decode(enc))
            except UnicodeDecodeError:
                bad.add(i)
                lines.append(line.decode(enc, errors="replace"))
        if best is None or len(bad) < best[0]:
            best = (len(bad), enc, lines, bad)
    assert best is not None
    _, enc, lines, bad = best
    if enc == "utf-8-sig" and lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    return "\n".join(lines), enc, bad


def _iter_csv(path: Path, encoding: str | None, delimiter: str | None) -> tuple[list[str], Iterator[tuple[int, dict, str | None]]]:
    text, enc, bad_lines = _decode(path.read_bytes(), str(path), encoding)
    if delimiter is None:
        delimiter = "\t" if path.suffix == ".tsv" else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: the file is empty (no header row)") from None
    header = [h.strip() for h in header]
    logger.debug("%s: read as %s", path, enc)

    def rows() -> Iterator[tuple[int, dict, str | None]]:
        prev_end = reader.line_num
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                start = prev_end + 1
                prev_end = reader.line_num
                yield start, {}, f"malformed CSV: {exc}"
                continue
            start, prev_end = prev_end + 1, reader.line_num
            if not values or all(not v.strip() for v in values):
                continue
            problem = None
            if any(ln in bad_lines for ln in range(start, reader.line_num + 1)):
                problem = f"undecodable bytes (file read as {enc}; is this line in another encoding?)"
            elif len(values) != len(header):
                problem = f"expected {len(header)} fields as in the header, found {len(values)} (unquoted comma or line break?)"
            yield start, dict(zip(header, values)), problem

    return header, rows()


def _iter_jsonl(path: Path, encoding: str | None) -> tuple[list[str], Iterator[tuple[int, dict, str | None]]]:
    text, enc, bad_lines = _decode(path.read_bytes(), str(path), encoding)
    parsed: list[tuple[int, dict, str | None]] = []
    columns: dict[str, None] = {}
    for i, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        if i in bad_lines:
            parsed.append((i, {}, f"undecodable bytes (file read as {enc})"))
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            parsed.append((i, {}, f"not valid JSON: {exc.msg} at column {exc.colno}"))
            continue
        if not isinstance(obj, dict):
            parsed.append((i, {}, f"expected a JSON object, found {type(obj).__name__}"))
            continue
        columns.update(dict.fromkeys(obj))
        parsed.append((i, obj, None))
    return list(columns), iter(parsed)


def _iter_xlsx(path: Path, sheet: str | None) -> tuple[list[str], Iterator[tuple[int, dict, str | None]]]:
    import openpyxl  # imported here: only Excel users pay for it

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several types for a broken file
        raise DataError(f"{path}: not a readable .xlsx workbook ({type(exc).__name__}: {exc})") from None
    if sheet is not None and sheet not in wb.sheetnames:
        raise DataError(f"{path}: no sheet {sheet!r}; sheets: {', '.join(wb.sheetnames)}")
    ws = wb[sheet] if sheet else wb.worksheets[0]
    it = ws.iter_rows(values_only=True)
    try:
        header = ["" if h is None else str(h).strip() for h in next(it)]
    except StopIteration:
        raise DataError(f"{path}: the sheet {ws.title!r} is empty (no header row)") from None

    def rows() -> Iterator[tuple[int, dict, str | None]]:
        for i, values in enumerate(it, 2):
            if values is None or all(v is None or str(v).strip() == "" for v in values):
                continue
            yield i, {h: ("" if v is None else v) for h, v in zip(header, values)}, None
        wb.close()

    return header, rows()


def _iter_dataset(ds: Any) -> tuple[list[str], Iterator[tuple[int, dict, str | None]]]:
    columns = list(ds.column_names)
    return columns, ((i, dict(row), None) for i, row in enumerate(ds, 1))


def iter_rows(source: Any, encoding: str | None = None, sheet: str | None = None, delimiter: str | None = None):
    """Return (name, columns, rows) for a path or a ``datasets.Dataset``; rows yield (line, dict, problem)."""
    if hasattr(source, "column_names") and hasattr(source, "__iter__") and not isinstance(source, (str, Path)):
        return "<dataset>", *_iter_dataset(source)
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a {', '.join(SUPPORTED_SUFFIXES)} file")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        cols, rows = _iter_csv(path, encoding, delimiter)
    elif suffix in (".jsonl", ".json"):
        cols, rows = _iter_jsonl(path, encoding)
    elif suffix == ".xlsx":
        cols, rows = _iter_xlsx(path, sheet)
    else:
        raise DataError(f"{path}: unsupported file type {suffix or '(none)'}; use {', '.join(SUPPORTED_SUFFIXES)}")
    return str(path), cols, rows


# ---------------------------------------------------------------------------------------------
# Validation into records
# ---------------------------------------------------------------------------------------------
def load_records(
    source: Any,
    text_column: str = "text",
    label_column: str | None = "department",
    channel_column: str | None = None,
    id_column: str | None = None,
    taxonomy: Taxonomy | None = None,
    strict: bool = True,
    cleaner: Callable[[str], str] | None = None,
    encoding: str | None = None,
    sheet: str | None = None,
    deduplicate: bool = True,
    max_chars: int | None = None,
) -> LoadResult:
    """Load and validate tickets.

    Parameters
    ----------
    source : path or datasets.Dataset
        ``.csv``/``.tsv`` (UTF-8 or GB18030, detected), ``.jsonl``, ``.xlsx`` or a ``datasets.Dataset``.
    text_column, label_column, channel_column, id_column : str
        Column names in the file (``--text-column 诉求内容 --label-column 处置单位``). ``label_column=None``
        loads unlabelled rows (prediction input).
    taxonomy : Taxonomy, optional
        When given, labels must be department codes of this taxonomy and the channel is derived from it.
    strict : bool
        ``True``: raise :class:`DataError` listing every bad row. ``False``: skip bad rows, return them.
    cleaner : callable, optional
        Applied after normalisation (e.g. :class:`data.cleaning.BoilerplateStripper`).
    deduplicate : bool
        Drop a row whose text repeats an earlier row: an exact duplicate is counted in ``duplicates``, one
        with another label is reported in ``conflicts`` (the first row's label is kept). Neither is a bad row.
    max_chars : int, optional
        Longer texts are an error.

    Returns
    -------
    LoadResult
        ``records`` (list of CallRecord, in file order) and ``errors`` (list of RowError).
    """
    name, columns, rows = iter_rows(source, encoding=encoding, sheet=sheet)
    wanted = [c for c in (text_column, label_column, channel_column, id_column) if c]
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise DataError(
            f"{name}: no column {', '.join(repr(c) for c in missing)}; the columns there are: "
            f"{', '.join(repr(c) for c in columns) or '(none)'}. Use "
            + ("--text-column/--label-column to map them." if label_column else "--text-column to map it.")
        )
    records: list[CallRecord] = []
    errors: list[RowError] = []
    duplicates: list[RowError] = []
    conflicts: list[RowError] = []
    seen: dict[str, tuple[int | None, str | None]] = {}
    for line, row, problem in rows:
        if problem:
            errors.append(RowError(name, line, problem, kind="malformed"))
            continue
        raw_text = row.get(text_column)
        text = normalize_text(str(raw_text)) if raw_text is not None else ""
        text = classifier_text(normalize_text(cleaner(text)) if cleaner is not None and text else text)  # as the router shows it to the classifier
        if not text:
            errors.append(RowError(name, line, f"empty or whitespace-only text in column {text_column!r}", kind="empty"))
            continue
        if max_chars and len(text) > max_chars:
            errors.append(RowError(name, line, f"text has {len(text)} characters, over the limit of {max_chars}", kind="too_long"))
            continue
        label = None
        if label_column:
            raw_label = row.get(label_column)
            label = str(raw_label).strip() if raw_label is not None else ""
            if not label:
                errors.append(RowError(name, line, f"missing label in column {label_column!r}", kind="missing_label"))
                continue
            if taxonomy is not None and label not in taxonomy:
                errors.append(RowError(name, line, f"unknown label {label!r}; known: {', '.join(taxonomy.codes)}", kind="unknown_label"))
                continue
        channel = None
        if channel_column and str(row.get(channel_column, "")).strip():
            try:
                channel = normalise_channel(row[channel_column])
            except TaxonomyError as exc:
                errors.append(RowError(name, line, str(exc), kind="bad_channel"))
                continue
        if taxonomy is not None and label is not None:
            derived = taxonomy.channel_of(label)
            if channel is not None and channel != derived:
                errors.append(
                    RowError(name, line, f"channel {channel} contradicts department {label!r} (channel {derived})", kind="bad_channel")
                )
                continue
            channel = derived
        if deduplicate:
            key = dedup_key(text)
            if key in seen:
                first_line, first_label = seen[key]
                if label_column and first_label != label:
                    conflicts.append(RowError(name, line, _conflict_msg(f"line {first_line}", label, first_label), kind="conflict"))
                else:
                    duplicates.append(RowError(name, line, f"duplicate of line {first_line}", kind="duplicate"))
                continue
            seen[key] = (line, label)
        extra = {k: v for k, v in row.items() if k not in wanted}
        rec_id = str(row[id_column]) if id_column and row.get(id_column) not in (None, "") else None
        records.append(CallRecord(text=text, department=label, channel=channel, id=rec_id, source=name, line=line, extra=extra))
    if strict and errors:
        shown = "\n  ".join(str(e) for e in errors[:20])
        more = f"\n  … and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise DataError(f"{name}: {len(errors)} bad rows (use --lenient to skip them):\n  {shown}{more}", errors)
    if errors:
        logger.warning("%s: %s", name, LoadResult(records, errors).error_summary())
    return LoadResult(records=records, errors=errors, columns=list(columns), duplicates=duplicates, conflicts=conflicts)


def _conflict_msg(first: str, label: str | None, first_label: str | None) -> str:
    return f"same text as {first} but another label ({label!r}; {first} has {first_label!r}): dropped, {first_label!r} kept"


def load_many(sources: Iterable[Any], **kwargs: Any) -> LoadResult:
    """Load several files with the same column mapping; duplicates are checked across files too."""
    records: list[CallRecord] = []
    errors: list[RowError] = []
    duplicates: list[RowError] = []
    conflicts: list[RowError] = []
    columns: list[str] = []
    seen: dict[str, CallRecord] = {}
    dedup = kwargs.get("deduplicate", True)
    for src in sources:
        res = load_records(src, **kwargs)
        columns = columns or res.columns
        errors.extend(res.errors)
        duplicates.extend(res.duplicates)
        conflicts.extend(res.conflicts)
        for rec in res.records:
            key = dedup_key(rec.text)
            if dedup and key in seen:
                first = seen[key]
                where = f"{first.source}:{first.line}"
                if first.department != rec.department:
                    conflicts.append(RowError(rec.source or "", rec.line, _conflict_msg(where, rec.department, first.department), kind="conflict"))
                else:
                    duplicates.append(RowError(rec.source or "", rec.line, f"duplicate of {where}", kind="duplicate"))
                continue
            seen[key] = rec
            records.append(rec)
    if kwargs.get("strict", True) and errors:
        raise DataError(f"{len(errors)} bad rows across files (use --lenient to skip them):\n  " + "\n  ".join(map(str, errors[:20])), errors)
    return LoadResult(records=records, errors=errors, columns=columns, duplicates=duplicates, conflicts=conflicts)
