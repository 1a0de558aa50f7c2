"""Real HTTP for the API tests: uvicorn serves the app on a free loopback port in a background
thread, and tests talk to it with httpx over the socket."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from serve.app import create_app
from serve.config import Settings
from serve.db import make_engine

PG = os.environ.get("HOTLINE_TEST_POSTGRES_URL")  # .ci/run sets it; PostgreSQL tests skip without it
PG_SKIP = "HOTLINE_TEST_POSTGRES_URL is not set (e.g. postgresql://postgres@127.0.0.1:5432/test); .ci/run sets it"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_hotline_serve(tmp_path: Path, env: dict, *args: str, poll: float = 0.2):
    """Run `hotline serve` as a real process on a free loopback port; return (process, base URL) once
    /ready answers 200. Its output goes to tmp_path/server.log, shown if it fails to start."""
    import subprocess
    import sys

    port = free_port()
    log = open(tmp_path / "server.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "serve.cli", "serve", "--port", str(port), *args], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError((tmp_path / "server.log").read_text())
        time.sleep(poll)


class LiveServer:
    """uvicorn running ``create_app(settings)`` in a thread; ``.url``, ``.client``, ``.app``."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.app = create_app(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        self.client = httpx.Client(base_url=self.url, timeout=30)
        return self

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=15)

    # -- helpers -----------------------------------------------------------------------------
    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample in /metrics (0.0 when absent)."""
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        key = f"{name}{{{want}}}" if want else name
        for line in self.client.get("/metrics").text.splitlines():
            if line.startswith(key + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def counts(self) -> dict[str, int]:
        """Rows per table, read straight from the server's database."""
        from serve.db import Feedback, ReviewItem, RoutedCall

        with self.app.state.db.session() as s:
            return {t.__tablename__: s.query(t).count() for t in (RoutedCall, Feedback, ReviewItem)}


@pytest.fixture(scope="session")
def start_server(tmp_path_factory):
    """Factory: ``start_server(**settings)`` → a running :class:`LiveServer` (stopped at session end).
    Defaults: a fresh SQLite file, an empty registry, auth off."""
    servers: list[LiveServer] = []

    def start(**overrides) -> LiveServer:
        d = tmp_path_factory.mktemp("srv")
        base = dict(database_url=f"sqlite:///{d / 'hotline.db'}", registry_dir=d / "models", api_keys="")
        srv = LiveServer(Settings(**{**base, **overrides})).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


@pytest.fixture(scope="module")
def server(start_server, tiny_model_dir) -> LiveServer:
    """The tiny model, auth off, SQLite."""
    return start_server(model_dir=tiny_model_dir)


def copy_model(src: Path, dest: Path, version: str | None = None) -> Path:
    """Copy a model folder, optionally giving it another version name (config.json)."""
    shutil.copytree(src, dest)
    if version:
        cfg = json.loads((dest / "config.json").read_text(encoding="utf-8"))
        cfg["version"] = version
        (dest / "config.json").write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")
    return dest


@contextmanager
def postgres_schema():
    """A fresh schema on the PostgreSQL server of ``HOTLINE_TEST_POSTGRES_URL``, dropped afterwards.
    Yields (schema, URL whose search_path is that schema). Stop servers using it before leaving."""
    from sqlalchemy import text

    schema = f"hotline_test_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG else "?"
    try:
        yield schema, f"{PG}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def pg_schema():
    """(schema, url) of a per-test PostgreSQL schema; skips without ``HOTLINE_TEST_POSTGRES_URL``."""
    if not PG:
        pytest.skip(PG_SKIP)
    with postgres_schema() as found:
        yield found


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A database URL for tests that run once on SQLite and once on PostgreSQL (skipped, saying why,
    without HOTLINE_TEST_POSTGRES_URL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hotline.db'}"
        return
    if not PG:
        pytest.skip(PG_SKIP)
    with postgres_schema() as (_, url):
        yield url


def run_export_reviews(tmp_path: Path, url: str) -> tuple[str, list[dict]]:
    """``hotline export-reviews`` run as a process on ``url`` (no HOTLINE_* variables of the test run):
    its stdout and the rows it wrote to ``tmp_path/export.jsonl``."""
    out = tmp_path / "export.jsonl"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    r = subprocess.run([sys.executable, "-m", "serve.cli", "export-reviews", "--out", str(out), "--database-url", url],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout, [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
