"""`hotline serve` keeps an idle connection open ``HOTLINE_KEEP_ALIVE_S`` (65 s by default), longer
than clients keep theirs (httpx 5 s, nginx upstreams 60 s). At uvicorn's own 5 s, a client reusing
a connection just as the server closed it got a reset: one ``ReadError`` in 6,400 transfer requests
of ``bench.load_transfers`` (stop 18). Real process, raw socket, so no client library hides a reconnect."""
from __future__ import annotations

import socket
import time
from urllib.parse import urlparse

from tests.serve.test_serve_command import _env, _start

REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _answer(sock: socket.socket) -> bytes:
    """The head and body of one answer (``/health`` answers with Content-Length), or b"" if the server closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _idle_then_reuse(url: str, idle_s: float) -> bytes:
    """One request, ``idle_s`` of silence, a second request on the same connection: its answer (b"" if closed)."""
    u = urlparse(url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as sock:
        sock.sendall(REQUEST)
        assert _answer(sock).startswith(b"HTTP/1.1 200")
        time.sleep(idle_s)
        try:
            sock.sendall(REQUEST)
            return _answer(sock)
        except (ConnectionResetError, BrokenPipeError):
            return b""


def test_an_idle_connection_outlives_clients_keep_alive_and_the_setting_is_honoured(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    proc, url = _start(tmp_path / "a", _env(tmp_path / "a"))
    short, short_url = _start(tmp_path / "b", _env(tmp_path / "b", HOTLINE_KEEP_ALIVE_S="1"))
    try:
        assert _idle_then_reuse(url, 6.5).startswith(b"HTTP/1.1 200")  # past httpx's 5 s and uvicorn's old default
        assert _idle_then_reuse(short_url, 2.5) == b""  # the setting reaches uvicorn: closed after 1 s
    finally:
        for p in (proc, short):
            p.terminate()
            p.wait(timeout=30)
