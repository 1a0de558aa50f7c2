"""A real ``hotline serve`` for benchmarks: a process on a free loopback port, stopped afterwards.

    with hotline_server(workdir, {"HOTLINE_DATABASE_URL": "sqlite:///…", "HOTLINE_API_KEYS": "…"}) as (url, pid):
        httpx.get(url + "/ready")
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its children (uvicorn's workers), from /proc (Linux; NaN elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total, found = 0.0, False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            found = True
    return total if found else float("nan")


@contextmanager
def hotline_server(workdir: Path, env_extra: dict[str, str], workers: int = 1, start_timeout_s: float = 180.0) -> Iterator[tuple[str, int]]:
    """Start ``hotline serve --workers N`` in ``workdir`` with only ``env_extra`` as ``HOTLINE_*``
    settings; yield (its URL, its pid) once ``/ready`` answers 200; terminate it on exit. Its output goes to
    ``workdir/server.log`` (shown when it fails to start)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(PYTHONPATH=str(ROOT), **env_extra)
    log_path = workdir / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "serve.cli", "serve", "--port", str(port), "--workers", str(workers)],
                                cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + start_timeout_s
            while True:
                try:
                    if httpx.get(url + "/ready", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("server did not start; log:\n" + log_path.read_text()[-3000:])
                time.sleep(0.3)
            yield url, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
