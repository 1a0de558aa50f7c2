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

logger = logging.getLogger(__name__)

_BODY_METHODS = {"POST", "PUT", "PATCH"}


async def _reply(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}, ensure_ascii=False).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class BodyGuard:
    """Pure ASGI middleware; reads the body once, checks it, and replays it to the app."""

    def __init__(self, app, max_bytes: int, prefix: str = "/v1/"):
        self.app = app
        self.max_bytes = max_bytes
        self.prefix = prefix

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
        from serve.auth import is_loopback

        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        server = scope.get("server")
        if server is None or not server[0] or server[0].startswith("/") or is_loopback(server[0]):  # unix sockets are local
            return await self.app(scope, receive, send)
        if not self._warned:
            self._warned = True
            logger.error("auth is off but a request arrived on %s: answered 403; set HOTLINE_API_KEYS to serve beyond loopback", server[0])
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        return await _reply(send, 403, "auth is off (no HOTLINE_API_KEYS): this server answers on loopback only")
