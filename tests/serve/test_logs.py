"""Structured, masked logs."""
from __future__ import annotations

import json
import logging
import sys

from serve.logs import JsonFormatter, MaskingFilter


def _record(msg, args=(), exc=False, **fields):
    exc_info = None
    if exc:
        try:
            raise ValueError("caller 13812345678, plate 苏A12345")
        except ValueError:
            exc_info = sys.exc_info()
    rec = logging.LogRecord("serve.x", logging.ERROR, __file__, 1, msg, args, exc_info)
    if fields:
        rec.fields = fields
    return rec


def test_json_lines_with_fields_and_masked_traceback():
    out = json.loads(JsonFormatter().format(_record("routed %s", ("ID 110101199003071234",), exc=True, call_id="c1", note="call 13912345678")))
    assert out["level"] == "ERROR" and out["logger"] == "serve.x" and out["call_id"] == "c1"
    assert "110101199003071234" not in out["msg"] and "[身份证号]" in out["msg"]
    assert "13912345678" not in out["note"] and "ValueError" in out["exc"]
    assert "13812345678" not in out["exc"] and "苏A12345" not in out["exc"]


def test_masking_filter_for_uvicorns_own_records():
    rec = _record("Exception in ASGI application for %s", ("13812345678",), exc=True)
    assert MaskingFilter().filter(rec)
    text = logging.Formatter().format(rec)
    assert "Exception in ASGI application" in text and "ValueError" in text
    assert "13812345678" not in text and "苏A12345" not in text


def test_masking_filter_keeps_uvicorns_access_lines_formattable():
    """uvicorn's access formatter unpacks the record's args; the filter must mask them, not drop them."""
    from uvicorn.logging import AccessFormatter

    rec = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                            ("127.0.0.1:5000", "GET", "/v1/reviews?q=13812345678", "1.1", 200), None)
    assert MaskingFilter().filter(rec)
    line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False).format(rec)
    assert "GET /v1/reviews?q=" in line and "200" in line and "13812345678" not in line
