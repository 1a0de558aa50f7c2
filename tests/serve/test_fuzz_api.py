"""Hypothesis throws random Unicode, sizes and JSON shapes at the API: never a 500, never a hang, and
every routed call that was acknowledged with a call_id is stored (issue 17's fuzz test)."""
from __future__ import annotations

import itertools
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serve.db import RoutedCall

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ids = itertools.count()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
texts = st.one_of(st.text(max_size=300), st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=60),
                  st.sampled_from(["1" * 2100, "，" * 500, "\u200b", "有人拿刀砍人", "家里停水了\u0000", "着\u2060火了"]))


def _ok(r: httpx.Response) -> None:
    assert r.status_code < 500 or r.status_code == 503, (r.status_code, r.text[:300])
    if r.status_code < 300:
        assert r.headers.get("content-type", "").startswith("application/json")


def _stored(server, call_id: str) -> bool:
    deadline = time.monotonic() + 10
    while server.app.state.writer.pending and time.monotonic() < deadline:
        time.sleep(0.02)
    with server.app.state.db.session() as s:
        return s.get(RoutedCall, call_id) is not None


@FUZZ
@given(text=texts, received_on=st.sampled_from([None, "110", "12345", 110, "999", True]), preview=st.booleans())
def test_route_never_fails_and_never_loses_an_acknowledged_call(server, text, received_on, preview):
    call_id = f"fz-{next(ids)}"
    body = {"text": text, "call_id": call_id, "preview": preview}
    if received_on is not None:
        body["received_on"] = received_on
    r = server.client.post("/v1/route", json=body, timeout=30)
    _ok(r)
    if r.status_code == 200 and not preview:
        assert _stored(server, call_id), call_id


@FUZZ
@given(body=json_values)
def test_any_json_shape_is_answered_without_a_500(server, body):
    for path in ["/v1/route", "/v1/route/batch", "/v1/feedback", "/v1/reviews/1"]:
        _ok(server.client.post(path, json=body, timeout=30))


@FUZZ
@given(items=st.lists(texts, min_size=1, max_size=12))
def test_batches_keep_every_acknowledged_item(server, items):
    call_ids = [f"fzb-{next(ids)}" for _ in items]
    r = server.client.post("/v1/route/batch", json={"items": [{"text": t, "call_id": c} for t, c in zip(items, call_ids)]}, timeout=30)
    _ok(r)
    if r.status_code == 200:
        assert all(_stored(server, c) for c in call_ids)


@FUZZ
@given(query=st.dictionaries(st.sampled_from(["status", "channel", "department", "trigger", "min_confidence", "offset", "limit", "created_from"]),
                             st.text(max_size=30) | st.integers(min_value=-(2**70), max_value=2**70).map(str), max_size=4),
       review_id=st.integers(min_value=-(2**70), max_value=2**70) | st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=12))
def test_review_endpoints_never_fail(server, query, review_id):
    _ok(server.client.get("/v1/reviews", params=query, timeout=30))
    _ok(server.client.get(f"/v1/reviews/{review_id}", timeout=30))
    _ok(server.client.post(f"/v1/reviews/{review_id}", json={"decision": "confirm", "comment": str(review_id)}, timeout=30))
