"""What a background job's record knows of its process: is it still alive (pid and start time), how
far has its training got (the newest open tqdm bar), and the last lines of its log.

>>> process_alive(os.getpid(), process_start(os.getpid()))
True
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from data.masking import mask_pii

_EPOCH = re.compile(r"epoch (\d+)/(\d+)")
LOG_TAIL_LINES = 20


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, field 22 of ``/proc/PID/stat``), or
    None when there is no such process or it has exited (a zombie). Without ``/proc``: "?" if
    ``os.kill(pid, 0)`` finds it."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        return None if fields[0] in ("Z", "X") else fields[19]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return "?"
    return "?"


def process_alive(pid: int | None, start: str | None) -> bool:
    """True while the process ``pid`` that started at ``start`` (see :func:`process_start`) runs."""
    if not pid:
        return False
    now = process_start(int(pid))
    return now is not None and (start is None or now == "?" or now == start)


def tqdm_progress() -> dict | None:
    """The newest open tqdm bar of this process: its description (``bar``), ``step``/``total``,
    ``elapsed_s``, ``rate`` (steps/s) and ``eta_s``; for the fine-tune's "epoch k/K" bars also
    ``epoch``/``epochs`` and ``eta_training_s`` (at most: early stopping may end sooner). None
    when no bar is open (a bar drawn with ``disable=True`` is not open)."""
    from tqdm import tqdm as std

    with std.get_lock():
        # A bar joins ``_instances`` early in its __init__: one still being built in another thread
        # has no ``start_t`` yet (this crashed the job's progress thread when sampled at 20 ms).
        bars = [b for b in list(getattr(std, "_instances", ())) if not getattr(b, "disable", True) and getattr(b, "start_t", None) is not None]
    if not bars:
        return None
    f = max(bars, key=lambda b: b.start_t).format_dict
    n, total, elapsed = f["n"], f["total"], f["elapsed"] or 0.0
    rate = f["rate"] or (n / elapsed if n and elapsed else None)
    out = {"bar": f.get("prefix") or "", "step": n, "total": total, "unit": f.get("unit"), "elapsed_s": round(elapsed, 1),
           "rate": round(rate, 3) if rate else None, "eta_s": round((total - n) / rate, 1) if rate and total else None}
    m = _EPOCH.search(out["bar"])
    if m:
        epoch, epochs = int(m.group(1)), int(m.group(2))
        out.update(epoch=epoch, epochs=epochs)
        if rate and total:
            out["eta_training_s"] = round((total - n) / rate + (epochs - epoch) * total / rate, 1)
    return out


def read_log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a job's log as a terminal shows them (of a line rewritten with
    ``\\r`` by a progress bar, its last state), personal data masked."""
    if not path.exists():
        return []
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64_000))
        raw = f.read().decode("utf-8", errors="replace")
    shown = [next((seg.strip() for seg in reversed(line.split("\r")) if seg.strip()), "") for line in raw.split("\n")]
    return [mask_pii(x) for x in shown if x][-lines:]
