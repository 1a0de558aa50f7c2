"""GET /v1/model, /health, /ready, /metrics; degraded start; hot reload under load."""
from __future__ import annotations

import threading
import time

from model.registry import register
from tests.factories import TINY
from tests.serve.conftest import copy_model

DANGER = "楼道里有人拿刀砍人"


def test_model_info(server, tiny_model_dir):
    r = server.client.get("/v1/model")
    assert r.status_code == 200
    info = r.json()
    router = server.app.state.models.current.router
    assert info["version"] == router.model_version and info["status"] == "ok" and info["source"] == "model"
    assert info["model_dir"] == tiny_model_dir.name
    assert info["thresholds"] == {"review": router.review_threshold, "channel_110": router.channel_110}
    codes = [d["code"] for d in info["taxonomy"]["departments"]]
    assert codes == router.taxonomy.codes and info["taxonomy"]["channels"]["110"].startswith("110")
    assert info["metrics"] == router.model.metrics and info["limits"]["max_text_chars"] == server.settings.max_text_chars
    assert info["auth"] is False


def test_health_ready_metrics(server):
    h = server.client.get("/health").json()
    assert h == {"status": "ok", "reason": None, "model_version": server.app.state.models.current.version, "source": "model",
                 "backend": "linear", "model_kind": "linear", "latency_budget_ms": None}
    assert server.client.get("/ready").json() == {"ready": True, "reason": None}
    before = server.metric("hotline_http_requests_total", method="POST", path="/v1/route", status="200")
    routes_before = server.metric("hotline_routes_total", channel="110", source=server.client.post("/v1/route", json={"text": DANGER}).json()["source"])
    server.client.post("/v1/route", json={"text": DANGER})
    m = server.client.get("/metrics")
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    for name in ("hotline_http_request_seconds_bucket", "hotline_routes_total", "hotline_low_confidence_ratio",
                 "hotline_model_fallbacks_total", "hotline_model_degraded 0.0", "hotline_routes_needs_review_total"):
        assert name in m.text, name
    assert server.metric("hotline_http_requests_total", method="POST", path="/v1/route", status="200") == before + 2
    src = server.client.post("/v1/route", json={"text": DANGER, "preview": True}).json()["source"]
    assert server.metric("hotline_routes_total", channel="110", source=src) == routes_before + 2


def test_page_and_static_files_are_served(server):
    r = server.client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"] and "热线分派助手" in r.text
    for f in ("/static/app.js", "/static/style.css"):
        assert server.client.get(f).status_code == 200
    assert server.client.get("/docs").status_code == 200 and "/v1/route" in server.client.get("/openapi.json").text


def test_corrupt_model_starts_degraded_on_rules(start_server, tiny_model_dir, tmp_path):
    bad = copy_model(tiny_model_dir, tmp_path / "corrupt")
    (bad / "model.joblib").write_bytes(b"\x00not a model" * 50)
    srv = start_server(model_dir=bad)
    h = srv.client.get("/health").json()
    assert h["status"] == "degraded" and h["source"] == "rules" and h["model_version"] is None and h["backend"] is None
    assert h["model_kind"] is None
    assert "checksum" in h["reason"] and "rules" in h["reason"]
    assert srv.client.get("/ready").json()["ready"] is True  # it does answer calls
    d = srv.client.post("/v1/route", json={"text": DANGER}).json()
    assert d["source"] == "override" and d["channel"] == "110" and d["model_version"] is None
    d = srv.client.post("/v1/route", json={"text": TINY["utilities"][0]}).json()
    assert d["source"] == "rules"
    info = srv.client.get("/v1/model").json()
    assert info["status"] == "degraded" and info["source"] == "rules" and info["metrics"] == {}
    assert srv.metric("hotline_model_degraded") == 1.0


def test_no_model_at_all_is_degraded_with_the_reason(start_server):
    srv = start_server()  # empty registry, no HOTLINE_MODEL_DIR
    h = srv.client.get("/health").json()
    assert h["status"] == "degraded" and "no model" in h["reason"]
    assert srv.client.post("/v1/route", json={"text": "家里停水了"}).json()["source"] == "rules"


def test_hot_reload_under_concurrent_requests_drops_nothing(start_server, tiny_model_dir, tmp_path):
    registry = tmp_path / "registry"
    register(copy_model(tiny_model_dir, tmp_path / "v1", version="tiny-v1"), registry)
    srv = start_server(registry_dir=registry)
    assert srv.client.get("/health").json()["model_version"] == "tiny-v1"

    results: list[list[tuple[int, str | None]]] = [[] for _ in range(6)]
    stop = threading.Event()
    texts = [t for dep in TINY.values() for t in dep]

    def client(k: int) -> None:
        import httpx

        with httpx.Client(base_url=srv.url, timeout=30) as c:
            i = 0
            while not stop.is_set():
                try:
                    r = c.post("/v1/route", json={"text": texts[(k * 7 + i) % len(texts)]})
                    results[k].append((r.status_code, r.json().get("model_version")))
                except Exception as exc:  # a dropped connection counts as a failure
                    results[k].append((0, repr(exc)))
                i += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    register(copy_model(tiny_model_dir, tmp_path / "v2", version="tiny-v2"), registry)  # promote v2
    r = srv.client.post("/v1/admin/reload")
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()

    assert r.status_code == 200, r.text
    assert r.json()["previous_version"] == "tiny-v1" and r.json()["version"] == "tiny-v2"
    flat = [x for per in results for x in per]
    assert len(flat) > 30 and all(code == 200 for code, _ in flat), [x for x in flat if x[0] != 200][:3]
    assert {v for _, v in flat} == {"tiny-v1", "tiny-v2"}
    for per in results:  # once a client has seen v2, it never gets v1 again
        versions = [v for _, v in per]
        assert "tiny-v1" not in versions[versions.index("tiny-v2"):] if "tiny-v2" in versions else True
        assert versions[-1] == "tiny-v2"
    assert srv.metric("hotline_model_reloads_total", result="ok") == 1


def test_failed_reload_keeps_the_model_being_served(start_server, tiny_model_dir, tmp_path):
    path = copy_model(tiny_model_dir, tmp_path / "m", version="tiny-keep")
    srv = start_server(model_dir=path)
    (path / "model.joblib").write_bytes(b"broken")
    r = srv.client.post("/v1/admin/reload")
    assert r.status_code == 409 and "checksum" in r.json()["detail"] and "tiny-keep" in r.json()["detail"]
    h = srv.client.get("/health").json()
    assert h["status"] == "ok" and h["model_version"] == "tiny-keep"
    assert srv.client.post("/v1/route", json={"text": "家里停水了"}).json()["model_version"] == "tiny-keep"
    assert srv.metric("hotline_model_reloads_total", result="failed") == 1
