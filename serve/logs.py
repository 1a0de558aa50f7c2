"""Structured, masked logs: one JSON object per line on stderr.

Every message (and traceback) passes through :func:`data.masking.mask_pii`, so a phone number, ID
number or plate that slips into a message is masked anyway. Structured fields go in
``extra={"fields": {...}}``. Request handlers log decisions and text *lengths* at INFO, masked text
only at DEBUG. Keys are never logged (:mod:`serve.auth` logs fingerprints at most).

>>> rec = logging.LogRecord("serve", logging.INFO, __file__, 1, "caller %s", ("13812345678",), None)
>>> json.loads(JsonFormatter().format(rec))["msg"]
'caller [手机号]'
"""
from __future__ import annotations

import json
import logging
import sys
import time

from data.masking import mask_pii

APP_LOGGERS = ("serve", "model", "data", "training")
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
_MARK = "_hotline_json_handler"


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...fields, "exc"?}`` with every string masked, except the
    values of :attr:`CODE_FIELDS`: codes our own code sets (no caller can put text there)."""

    # Fields that are codes, never personal data: not masked (a call_id is refused at the edge when it
    # looks like a phone or ID number, so masking it here only garbled timestamp-like ids).
    CODE_FIELDS = frozenset({"event", "channel", "department", "source", "received_on", "trigger", "status", "result", "call_id"})
    _second = (-1, "")  # (whole second, its ISO text): one strftime a second, not one a line

    def _timestamp(self, created: float) -> str:
        whole = int(created)
        if self._second[0] != whole:
            self._second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
        return f"{self._second[1]}.{int((created - whole) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": self._timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": mask_pii(record.getMessage()),
        }
        for k, v in (getattr(record, "fields", None) or {}).items():
            out[k] = mask_pii(v) if isinstance(v, str) and k not in self.CODE_FIELDS else v
        if record.exc_info:
            out["exc"] = mask_pii(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False, default=str)


class MaskingFilter(logging.Filter):
    """Mask the message and traceback of records from loggers we do not format (uvicorn's own
    "Exception in ASGI application" carries the exception message, which may quote a caller)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Mask the arguments but keep their shape: uvicorn's access formatter unpacks the tuple
        # (client, method, path, version, status); replacing it with None breaks every access line.
        if isinstance(record.args, tuple):
            record.args = tuple(mask_pii(a) if isinstance(a, str) else a for a in record.args)
        elif record.args:
            record.msg, record.args = record.getMessage(), None
        if isinstance(record.msg, str):
            record.msg = mask_pii(record.msg)
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_pii(logging.Formatter().formatException(record.exc_info))
        return True


def configure_logging(level: str | int = "INFO") -> None:
    """Send the app's loggers (serve, model, data, training) to stderr as JSON lines, and mask what
    uvicorn logs; idempotent.

    Records still propagate to the root logger (test log capture sees them); the root logger itself
    is left alone.
    """
    level = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    # What our JSON lines never show, so not worth computing for every record (the logging HOWTO's
    # "Optimization" section): the caller's file and line, thread, process and multiprocessing names.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for name in APP_LOGGERS:
        lg = logging.getLogger(name)
        lg.setLevel(level)
        if not any(getattr(h, _MARK, False) for h in lg.handlers):
            h = logging.StreamHandler(sys.stderr)
            h.setFormatter(JsonFormatter())
            setattr(h, _MARK, True)
            lg.addHandler(h)
    for name in SERVER_LOGGERS:
        lg = logging.getLogger(name)
        if not any(isinstance(f, MaskingFilter) for f in lg.filters):
            lg.addFilter(MaskingFilter())
