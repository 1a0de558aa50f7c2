"""`hotline serve` as an operator runs it: a real process, real HTTP, and what it writes to its log."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from model.registry import register
from tests.serve.conftest import copy_model, start_hotline_serve

ROOT = Path(__file__).resolve().parents[2]
KEY = "ad-serve-cmd-93c1e0"


def _env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(PYTHONPATH=str(ROOT), HOTLINE_DATABASE_URL=f"sqlite:///{tmp_path / 'h.db'}", HOTLINE_REGISTRY_DIR=str(tmp_path / "models"), **extra)
    return env


def test_refuses_a_public_interface_without_keys(tmp_path):
    r = subprocess.run([sys.executable, "-m", "serve.cli", "serve", "--host", "0.0.0.0"], cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "HOTLINE_API_KEYS" in r.stderr and "Traceback" not in r.stderr


def _start(tmp_path, env, *args) -> tuple[subprocess.Popen, str]:
    return start_hotline_serve(tmp_path, env, *args)


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir):
    """`hotline serve --workers 2` with keys, serving the registry's CURRENT model (tiny-w1)."""
    tmp_path = tmp_path_factory.mktemp("serve-cmd")
    register(copy_model(tiny_model_dir, tmp_path / "v1", version="tiny-w1"), tmp_path / "models")
    proc, url = _start(tmp_path, _env(tmp_path, HOTLINE_API_KEYS=f"{KEY}:admin"), "--workers", "2")
    yield proc, url, tmp_path
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=30)


def _versions(url: str, n: int) -> set:
    """Model versions reported by ``n`` fresh connections (so every worker process answers some)."""
    return {httpx.get(url + "/health", headers={"Connection": "close"}).json()["model_version"] for _ in range(n)}


def test_a_reload_reaches_every_worker_process(served, tiny_model_dir):
    proc, url, tmp_path = served
    assert _versions(url, 10) == {"tiny-w1"}
    register(copy_model(tiny_model_dir, tmp_path / "v2", version="tiny-w2"), tmp_path / "models")
    r = httpx.post(url + "/v1/admin/reload", headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    assert r.status_code == 200 and r.json()["version"] == "tiny-w2"
    deadline = time.monotonic() + 30
    while _versions(url, 20) != {"tiny-w2"}:
        assert time.monotonic() < deadline, "a worker process kept the old model"
        time.sleep(0.5)


def test_logs_are_structured_and_masked_and_never_show_keys(served):
    proc, url, tmp_path = served
    auth = {"Authorization": f"Bearer {KEY}"}
    text = "王先生电话13812345678，身份证110101199003071234，车牌京A12345被人砸了"
    r = httpx.post(url + "/v1/route", json={"text": text, "call_id": "cmd-1"}, headers=auth)
    assert r.status_code == 200 and r.json()["channel"] in ("110", "12345")
    assert httpx.post(url + "/v1/route", json={"text": text}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    proc.terminate()
    proc.wait(timeout=30)
    out = (tmp_path / "server.log").read_text()
    assert '"event": "route"' in out and '"call_id": "cmd-1"' in out  # structured decision log at INFO
    assert "Logging error" not in out and "Traceback" not in out
    for secret in (KEY, "13812345678", "110101199003071234", "京A12345", "砸了"):
        assert secret not in out, secret


@pytest.mark.parametrize("keys", [",", " , ", "x:"])
def test_keys_that_hold_no_key_are_refused_in_one_line(tmp_path, keys):
    r = subprocess.run([sys.executable, "-m", "serve.cli", "serve", "--host", "0.0.0.0"], cwd=tmp_path,
                       env=_env(tmp_path, HOTLINE_API_KEYS=keys), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "HOTLINE_API_KEYS" in r.stderr and "Traceback" not in r.stderr


def _public_address() -> str | None:
    """This machine's address on a non-loopback interface, or None."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the outgoing interface
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


def test_uvicorn_bound_to_every_interface_without_keys_answers_loopback_only(tmp_path):
    """`uvicorn --host 0.0.0.0` bypasses HOTLINE_HOST: the app checks the socket each request came in on."""
    from tests.serve.conftest import free_port

    public = _public_address()
    if public is None:
        pytest.skip("this machine has no non-loopback IPv4 address to test from")
    port = free_port()
    log = open(tmp_path / "uvicorn.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "serve.app:create_app", "--factory", "--host", "0.0.0.0", "--port", str(port)],
                            cwd=tmp_path, env=_env(tmp_path), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "uvicorn.log").read_text()
            time.sleep(0.2)
        outside = httpx.get(f"http://{public}:{port}/v1/reviews", timeout=5)
        assert outside.status_code == 403 and "loopback" in outside.json()["detail"]
        assert httpx.post(f"http://{public}:{port}/v1/admin/reload", timeout=5).status_code == 403
        assert httpx.get(f"http://127.0.0.1:{port}/v1/reviews", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "answered 403" in (tmp_path / "uvicorn.log").read_text()


def test_uvicorn_with_malformed_keys_stops_in_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "uvicorn", "serve.app:create_app", "--factory", "--port", "1"], cwd=tmp_path,
                       env=_env(tmp_path, HOTLINE_API_KEYS="x:"), capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "Traceback" not in r.stderr and "HOTLINE_API_KEYS" in r.stderr
