"""Guard request bodies before FastAPI parses them (size, content type, UTF-8), and turn
unexpected errors into a JSON 500 without a stack trace.

A request with a body (POST/PUT/PATCH) under ``/v1/`` must

- be at most ``max_bytes`` long (else 413),
- say ``Content-Type: application/json`` (else 415),
- be valid UTF-8 (else 400: a GB18030 body would otherwise become an unclear parse error).

Answers are JSON ``{"detail": "..."}`` like every other error of the API.
"""
from __future__ import annotations

import json
import logging
import uuid

from serve.auth import is_loopback

logger = logging.getLogger(__name__)

_BODY_METHODS = {"POST", "PUT", "PATCH"}


async def _reply(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}, ensure_ascii=False).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class BodyGuard:
    """Pure ASGI middleware; reads the body once, checks it, and replays it to the app."""

    def __init__(self, app, max_bytes: int, prefix: str = "/v1/", max_items: int | None = None, batch_path: str = "/v1/route/batch"):
        self.app = app
        self.max_bytes = max_bytes
        self.prefix = prefix
        self.max_items = max_items
        self.batch_path = batch_path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS or not scope["path"].startswith(self.prefix):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await _reply(send, 413, f"request body is {int(length)} bytes; the limit is {self.max_bytes}")
        chunks, size = [], 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await _reply(send, 413, f"request body is larger than the limit of {self.max_bytes} bytes")
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        # A batch of many tiny items is refused before it is parsed: every item has a "text" key, and
        # counting the bytes is a thousand times cheaper than validating 246,152 items.
        if self.max_items is not None and scope["path"] == self.batch_path and (n := body.count(b'"text"')) > self.max_items:
            return await _reply(send, 413, f"batch has {n} items; the limit is {self.max_items} (HOTLINE_MAX_BATCH)")
        if body.strip():
            ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if ctype != b"application/json":
                shown = ctype.decode("latin-1") or "none"
                return await _reply(send, 415, f"send JSON with 'Content-Type: application/json' (got {shown})")
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as exc:
                return await _reply(send, 400, f"request body is not valid UTF-8 (byte {exc.start}); send JSON encoded as UTF-8")

        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for a disconnect like the server would

        await self.app(scope, replay, send)


class CatchAll:
    """Pure ASGI middleware: an unexpected exception becomes ``500 {"detail": "internal error (ref …)"}``
    and one masked log line with the traceback and the same ref. Unlike Starlette's own handler it
    does not re-raise, so uvicorn keeps the connection open and logs nothing unmasked."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def send_wrapper(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            ref = uuid.uuid4().hex[:8]
            logger.error("unhandled error", exc_info=exc, extra={"fields": {"event": "error", "ref": ref, "path": scope.get("path")}})
            if started:
                raise
            await _reply(send, 500, f"internal error (ref {ref}); the request was not completed")


class LoopbackOnly:
    """With auth off (no API keys), answer only requests that arrived on a loopback socket.

    ``HOTLINE_HOST`` is what ``hotline serve`` binds, but ``uvicorn serve.app:create_app --factory
    --host 0.0.0.0`` binds whatever its own flag says: the server address of each connection
    (``scope["server"]``) is what was really bound and used, so that is what is checked. A request on
    another interface gets 403 and the reason; the first one is logged as an error.
    """

    def __init__(self, app):
        self.app = app
        self._warned = False

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        server = scope.get("server")
        if server is None or not server[0] or server[0].startswith("/") or is_loopback(server[0]):  # unix sockets are local
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if host and not is_loopback(_host_name(host)):  # DNS rebinding: a page elsewhere naming us by its own name
                return await _reply(send, 421, "auth is off: this server answers only requests addressed to localhost or 127.0.0.1")
            return await self.app(scope, receive, send)
        if not self._warned:
            self._warned = True
            logger.error("auth is off but a request arrived on %s: answered 403; set HOTLINE_API_KEYS to serve beyond loopback", server[0])
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        return await _reply(send, 403, "auth is off (no HOTLINE_API_KEYS): this server answers on loopback only")


def _host_name(host: str) -> str:
    """The name part of a Host header (``[::1]:8000`` -> ``::1``, ``127.0.0.1:8000`` -> ``127.0.0.1``)."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


_PAGE_CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
# Swagger UI's page starts itself with an inline script; its assets are served from here, never a CDN.
_DOCS_CSP = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"


class SecurityHeaders:
    """Headers on every answer: no MIME sniffing, no framing (clickjacking), no referrer, a content
    security policy that allows only this server's own scripts and styles, and ``Cache-Control:
    no-store`` on API answers (they carry call summaries and decisions)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        extra = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer"),
                 (b"content-security-policy", (_DOCS_CSP if path.startswith("/docs") else _PAGE_CSP).encode())]
        if not path.startswith(("/static", "/docs-assets")):
            extra.append((b"cache-control", b"no-store"))

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [(k, v) for k, v in extra if k not in names]
            await send(message)

        return await self.app(scope, receive, send_with_headers)
