"""Security headers, local API docs, Host checks with auth off, no paths in /health, a registry pointer
that can't leave the registry, and a batch of many tiny items refused before parsing (issue 17, items
10 and 11). Real HTTP against a live server."""
from __future__ import annotations

import json

import httpx
import pytest

from model.registry import RegistryError, read_pointer


def test_every_answer_carries_security_headers_and_api_answers_are_not_cached(server):
    for path in ["/", "/review", "/orders", "/health", "/v1/model"]:
        h = server.client.get(path).headers
        assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in h["content-security-policy"] and "default-src 'self'" in h["content-security-policy"], path
    r = server.client.post("/v1/route", json={"text": "家里停水了"})
    assert r.headers["cache-control"] == "no-store"


def test_api_docs_load_nothing_from_elsewhere(server):
    page = server.client.get("/docs")
    assert page.status_code == 200 and "cdn" not in page.text.lower()
    assert "/docs-assets/swagger-ui-bundle.js" in page.text
    assert server.client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert "'unsafe-inline'" in page.headers["content-security-policy"]  # Swagger UI's own start-up script only here


def test_with_auth_off_a_foreign_host_header_is_refused(server):
    assert httpx.get(server.url + "/health", headers={"Host": "evil.example:8000"}).status_code == 421
    assert httpx.get(server.url + "/health", headers={"Host": f"localhost:{server.port}"}).status_code == 200
    assert httpx.get(server.url + "/health", headers={"Host": f"[::1]:{server.port}"}).status_code == 200


def test_health_shows_no_filesystem_path(start_server, tmp_path):
    broken = tmp_path / "secret-folder" / "broken-model"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    srv = start_server(model_dir=broken)
    h = srv.client.get("/health").json()
    assert h["status"] == "degraded" and "config.json" in h["reason"]
    assert str(tmp_path) not in h["reason"] and "secret-folder" not in h["reason"]


@pytest.mark.parametrize("name", ["../elsewhere", "..", "a/b", "/etc"])
def test_a_pointer_that_leaves_the_registry_is_refused(tmp_path, name, start_server):
    (tmp_path / "CURRENT").write_text(name, encoding="utf-8")
    with pytest.raises(RegistryError, match="not a folder of the registry"):
        read_pointer(tmp_path, "CURRENT")
    srv = start_server(registry_dir=tmp_path)
    h = srv.client.get("/health").json()
    assert h["status"] == "degraded" and "not a folder of the registry" in h["reason"]


def test_a_batch_of_many_tiny_items_is_refused_before_it_is_parsed(server):
    body = json.dumps({"items": [{"text": "a"}] * 200_000}).encode()
    r = server.client.post("/v1/route/batch", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "HOTLINE_MAX_BATCH" in r.json()["detail"]
    assert server.client.post("/v1/route/batch", json={"items": [{"text": "家里停水了"}] * 3}).status_code == 200
