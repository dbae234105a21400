"""ASGI middleware: request ids, access log and metrics, the body guard, the last-resort 500.

Plain ASGI classes (not BaseHTTPMiddleware): cheaper per request, and they see
every response, including errors answered by inner layers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from data.text import redact
from serving.errors import error_body, log_exception
from serving.logs import accept_request_id, request_id_var
from serving.metrics import Metrics

log = logging.getLogger("aduan.serving.access")

REQUEST_ID_HEADER = "X-Request-ID"
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


async def send_error(
    send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps(error_body(code, message)).encode("utf-8")
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestContext:
    """Request id (header in, header out, every log line), access log, metrics, catch-all."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = accept_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        token = request_id_var.set(rid)
        started = time.perf_counter()
        state: dict[str, Any] = {"status": 500, "sent": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"], state["sent"] = message["status"], True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # nothing inside answered: a bug; log without any text
            log_exception(exc, f"{scope.get('method')} {_endpoint(scope)}")
            if not state["sent"]:
                await send_with_id_error(send_with_id)
        finally:
            seconds = time.perf_counter() - started
            endpoint = _endpoint(scope)
            status = state["status"]
            self.metrics.requests.labels(
                endpoint=endpoint, method=scope.get("method", ""), status=str(status)
            ).inc()
            self.metrics.latency.labels(endpoint=endpoint).observe(seconds)
            if endpoint not in ("/healthz", "/readyz", "/metrics"):
                shown = endpoint if endpoint != "unmatched" else safe_path(scope)[:200]
                log.info("%s %s %d %.1f ms", scope.get("method"), shown, status, seconds * 1000)
            request_id_var.reset(token)


async def send_with_id_error(send: Send) -> None:
    await send_error(
        send,
        500,
        "internal_error",
        "an unexpected error occurred; quote the X-Request-ID header when reporting it",
    )


def _endpoint(scope: Scope) -> str:
    """The route template ("/v1/complaints/{complaint_id}"), never a raw path with ids."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "unmatched"


def safe_path(scope: Scope) -> str:
    """The request path with personal data redacted (for messages that must show it)."""
    return redact(str(scope.get("path", "")))


class KeyGuard:
    """With API keys configured, a `/v1` request without a valid key gets its 401 here,
    before its body is read or parsed: an unauthenticated client learns nothing about
    what the endpoint accepts. The scope (403) is checked by the endpoint itself."""

    def __init__(self, app: ASGIApp, valid: Callable[[str | None], bool]) -> None:
        self.app = app
        self.valid = valid

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("method") != "OPTIONS"  # CORS preflights carry no key
            and str(scope.get("path", "")).startswith("/v1/")
            and not self.valid(Headers(scope=scope).get("authorization"))
        ):
            await send_error(
                send, 401, "unauthorized",
                "send a valid API key as 'Authorization: Bearer <key>'",
                {"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
            return
        await self.app(scope, receive, send)


class BodyGuard:
    """Request bodies: at most `max_bytes` (413), JSON only (415), valid UTF-8 (400).

    The body is read here (bounded) and replayed to the app, so an oversized
    body is refused before anything parses it, with or without Content-Length.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        too_large = (
            "payload_too_large",
            f"the request body is larger than {self.max_bytes} bytes (ADUAN_MAX_BODY_BYTES)",
        )
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            await send_error(send, 413, *too_large, {"Connection": "close"})
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await send_error(send, 413, *too_large, {"Connection": "close"})
                return
            if not message.get("more_body", False):
                break
        if body:
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json" and not ctype.endswith("+json"):
                await send_error(
                    send, 415, "unsupported_media_type",
                    "send the body as JSON with Content-Type: application/json",
                )  # fmt: skip
                return
            try:
                bytes(body).decode("utf-8")
            except UnicodeDecodeError as exc:
                await send_error(
                    send, 400, "invalid_utf8",
                    f"the body is not valid UTF-8 (byte {exc.start}); send UTF-8 JSON",
                )  # fmt: skip
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
