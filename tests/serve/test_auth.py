"""API keys with roles: the full matrix over real HTTP, and the configuration rules."""
from __future__ import annotations

import logging

import pytest

from serve.app import create_app
from serve.auth import ApiKeyError, KeyRing
from serve.config import Settings

KEYS = {"call_taker": "ct-0f3a9d1e77", "supervisor": "sv-8c2b4e6f01", "admin": "ad-5d7e9a3c24"}


@pytest.fixture(scope="module")
def secured(start_server, tiny_model_dir):
    srv = start_server(model_dir=tiny_model_dir, api_keys=",".join(f"{k}:{role}" for role, k in KEYS.items()))
    r = srv.client.post("/v1/route", json={"text": "家里停水了", "call_id": "auth-1"}, headers={"Authorization": f"Bearer {KEYS['call_taker']}"})
    assert r.status_code == 200
    return srv


ENDPOINTS = {
    "route": ("POST", "/v1/route", {"text": "家里停水了"}),
    "batch": ("POST", "/v1/route/batch", {"items": [{"text": "家里停水了"}]}),
    "feedback": ("POST", "/v1/feedback", {"call_id": "auth-1", "final_channel": "12345", "final_department": "utilities"}),
    "model": ("GET", "/v1/model", None),
    "reload": ("POST", "/v1/admin/reload", None),
}
OK = {"route": {200}, "batch": {200}, "feedback": {200, 201}, "model": {200}, "reload": {200}}  # feedback: 200 when repeated (idempotent)
# who may do what: call_taker routes and gives feedback; supervisor too; only admin reloads
ALLOWED = {
    "call_taker": {"route", "batch", "feedback", "model"},
    "supervisor": {"route", "batch", "feedback", "model"},
    "admin": {"route", "batch", "feedback", "model", "reload"},
}
CREDENTIALS = {
    "none": None,
    "wrong key": "Bearer not-a-key",
    "empty bearer": "Bearer",
    "basic scheme": f"Basic {KEYS['admin']}",
    "key without scheme": KEYS["admin"],
    **{role: f"Bearer {k}" for role, k in KEYS.items()},
}


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("who", list(CREDENTIALS))
def test_auth_matrix(secured, endpoint, who, caplog):
    method, path, body = ENDPOINTS[endpoint]
    header = CREDENTIALS[who]
    with caplog.at_level(logging.DEBUG):
        r = secured.client.request(method, path, json=body, headers={"Authorization": header} if header else {})
    if who not in ALLOWED:
        assert r.status_code == 401 and r.headers.get("www-authenticate") == "Bearer"
    elif endpoint in ALLOWED[who]:
        assert r.status_code in OK[endpoint], r.text
    else:
        assert r.status_code == 403 and who in r.json()["detail"]
    if r.status_code >= 400:
        assert isinstance(r.json()["detail"], str) and "Traceback" not in r.text
    for key in KEYS.values():  # keys never appear in logs or answers
        assert key not in caplog.text and key not in r.text


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics", "/", "/static/app.js"])
def test_probes_and_page_need_no_key(secured, path):
    assert secured.client.get(path).status_code == 200


def test_model_info_says_auth_is_on(secured):
    info = secured.client.get("/v1/model", headers={"Authorization": f"Bearer {KEYS['supervisor']}"}).json()
    assert info["auth"] is True


@pytest.mark.parametrize(
    "spec,words",
    [("k1", "key:role"), ("k1:boss", "unknown role"), (":admin", "key:role"), ("k1:admin,k1:call_taker", "twice"),
     ("k1:partner", "partner@110"), ("k1:partner@", "partner@110"), ("k1:partner@abc", "partner@110"), ("k1:partner110", "partner@110")],
)
def test_malformed_keys_are_refused_without_echoing_them(spec, words):
    with pytest.raises(ApiKeyError) as e:
        KeyRing.parse(spec)
    assert words in str(e.value) and "k1" not in str(e.value)


@pytest.mark.parametrize("spec", [",", " , ", ",,,", "x:", "x: ,"])
def test_keys_that_would_switch_auth_off_by_accident_are_refused_in_settings(spec):
    from pydantic import ValidationError

    from serve.config import settings_error

    with pytest.raises(ValidationError) as e:
        Settings(database_url="sqlite://", api_keys=spec)
    line = settings_error(e.value)
    assert line.startswith("HOTLINE_API_KEYS: ") and "\n" not in line and ("no key:role entry" in line or "no role" in line)


def test_partner_key_is_bound_to_its_line_and_outside_the_role_ladder():
    ring = KeyRing.parse("k1:partner@110,k2:admin")
    partner, admin = ring.lookup("k1"), ring.lookup("k2")
    assert (partner.role, partner.line, partner.is_partner) == ("partner", "110", True)
    assert not any(partner.allows(r) for r in ("call_taker", "supervisor", "admin")) and partner.allows("partner")
    assert not admin.allows("partner") and admin.line is None
    assert ring.partner_lines == {"110"}


def test_a_partner_line_outside_the_transfer_lines_is_refused_in_settings():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="119"):
        Settings(database_url="sqlite://", api_keys="k1:partner@119")
    assert Settings(database_url="sqlite://", api_keys="k1:partner@119", transfer_lines="110,12345,119").lines == ("110", "12345", "119")


def test_no_keys_means_loopback_only():
    with pytest.raises(SystemExit, match="refusing to listen on 0.0.0.0"):
        create_app(Settings(database_url="sqlite://", host="0.0.0.0", api_keys=""))
    create_app(Settings(database_url="sqlite://", host="0.0.0.0", api_keys="k:admin"))  # keys: fine
    create_app(Settings(database_url="sqlite://", host="127.0.0.1", api_keys=""))  # loopback: fine
