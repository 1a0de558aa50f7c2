"""`hotline serve` as an operator runs it: a real process, real HTTP, and what it writes to its log."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.serve.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
KEY = "ad-serve-cmd-93c1e0"


def _env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(PYTHONPATH=str(ROOT), HOTLINE_DATABASE_URL=f"sqlite:///{tmp_path / 'h.db'}", HOTLINE_REGISTRY_DIR=str(tmp_path / "models"), **extra)
    return env


def test_refuses_a_public_interface_without_keys(tmp_path):
    r = subprocess.run([sys.executable, "-m", "serve.cli", "serve", "--host", "0.0.0.0"], cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "HOTLINE_API_KEYS" in r.stderr and "Traceback" not in r.stderr


def test_serves_and_logs_structured_masked_lines_without_keys(tmp_path, tiny_model_dir):
    port = free_port()
    env = _env(tmp_path, HOTLINE_MODEL_DIR=str(tiny_model_dir), HOTLINE_API_KEYS=f"{KEY}:admin")
    log = open(tmp_path / "server.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "serve.cli", "serve", "--port", str(port)], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.2)
        auth = {"Authorization": f"Bearer {KEY}"}
        text = "王先生电话13812345678，身份证110101199003071234，车牌京A12345被人砸了"
        r = httpx.post(url + "/v1/route", json={"text": text, "call_id": "cmd-1"}, headers=auth)
        assert r.status_code == 200 and r.json()["channel"] in ("110", "12345")
        assert httpx.post(url + "/v1/route", json={"text": text}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    out = (tmp_path / "server.log").read_text()
    assert '"event": "route"' in out and '"call_id": "cmd-1"' in out  # structured decision log at INFO
    for secret in (KEY, "13812345678", "110101199003071234", "京A12345", "砸了"):
        assert secret not in out, secret
