"""Errors as the API returns them: `{"error": {"code", "message", "field"?}}`.

Every failure, whether a bad request, a missing key, an overloaded queue or a
bug, answers with that JSON shape and a status code; never a stack trace.
Messages never quote the request's text (complaints carry personal data):
pydantic's own messages describe the constraint, not the input.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from data.text import snippet

log = logging.getLogger("aduan.serving")

#: Every error code the API uses, with its meaning (documented in the OpenAPI description).
ERROR_CODES: dict[str, str] = {
    "invalid_json": "the body is not valid JSON",
    "invalid_utf8": "the body is not valid UTF-8",
    "unsupported_media_type": "the body must be sent as application/json",
    "payload_too_large": "the body is larger than ADUAN_MAX_BODY_BYTES",
    "validation_error": "a field has the wrong type or value",
    "unknown_field": "a field the endpoint does not know (typos are rejected)",
    "missing_field": "a required field is absent",
    "empty_text": "the text is empty or only whitespace",
    "text_too_long": "the text is longer than ADUAN_MAX_TEXT_CHARS",
    "control_characters": "the text holds control characters (only \\n, \\r, \\t are allowed)",
    "invalid_unicode": "a string holds a lone surrogate escape (\\ud800-\\udfff)",
    "invalid_date": "a date is not ISO 8601",
    "invalid_id": "an id is empty, too long, or holds characters outside [A-Za-z0-9._:-]",
    "invalid_label_name": "a head name in labels is not 1-64 characters of [A-Za-z0-9_] "
    "starting with a letter or _",
    "empty_label": "a label is empty or only whitespace",
    "id_required": "register: true needs an id",
    "batch_empty": "a batch needs at least one item",
    "batch_too_large": "a batch has more items than ADUAN_MAX_BATCH",
    "no_text": "feedback for a complaint whose text is neither in the request nor in the index",
    "no_labels": "feedback without any label",
    "unauthorized": "no or an unknown API key",
    "forbidden": "the API key lacks the scope this endpoint needs",
    "not_found": "no such complaint or path",
    "method_not_allowed": "the path does not accept this method",
    "overloaded": "too many requests are waiting; retry after Retry-After seconds",
    "timeout": "the request waited too long for the model; retry after Retry-After seconds",
    "not_ready": "the model or the index is still loading; retry after Retry-After seconds",
    "reload_in_progress": "another reload is running",
    "reload_failed": "the new model could not be loaded; the old one keeps serving",
    "internal_error": "an unexpected error; the request id identifies it in the logs",
}


class ApiError(Exception):
    """An error answered as `{"error": {...}}` with `status`; the message is for the client."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if field:
        err["field"] = field
    return {"error": err}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, field), status_code=status, headers=headers)


# Pydantic error types -> our codes. Custom validators raise their own type names.
_PYDANTIC_CODES = {
    "extra_forbidden": "unknown_field",
    "missing": "missing_field",
    "json_invalid": "invalid_json",
    "datetime_parsing": "invalid_date",
    "datetime_from_date_parsing": "invalid_date",
    "datetime_type": "invalid_date",
    "date_parsing": "invalid_date",
    "date_from_datetime_parsing": "invalid_date",
    "timezone_aware": "invalid_date",
    "datetime_range": "invalid_date",
    "datetime_past": "invalid_date",
    "datetime_future": "invalid_date",
    "empty_text": "empty_text",
    "text_too_long": "text_too_long",
    "control_characters": "control_characters",
    "invalid_unicode": "invalid_unicode",
    "string_unicode": "invalid_unicode",
    "empty_label": "empty_label",
    "string_pattern_mismatch": "invalid_id",
    "invalid_id": "invalid_id",
    "id_required": "id_required",
    "no_labels": "no_labels",
}


def _field(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or None


#: At most this many errors are listed under `details` (a body with 100,000 unknown
#: keys must not get a response many times its size); `details_omitted` counts the rest.
MAX_DETAILS = 20


def validation_error(errors: list[Any]) -> tuple[int, dict[str, Any]]:
    """Status and body for pydantic's errors: the first one named, the first
    `MAX_DETAILS` listed under details."""
    details = []
    for e in errors[:MAX_DETAILS]:
        kind = str(e.get("type", ""))
        loc = tuple(e.get("loc", ()))
        code = _PYDANTIC_CODES.get(kind, "validation_error")
        field = _field(loc)
        if kind == "string_unicode":
            message = "field holds a lone surrogate escape, which is not valid Unicode"
        elif kind == "string_pattern_mismatch" and loc and loc[-1] == "[key]":
            code = "invalid_label_name"
            message = (
                "a head name must be 1-64 characters of A-Z a-z 0-9 _, not starting with a digit"
            )
        elif kind == "missing" and loc == ("body",):
            message = "the request body is required (a JSON object)"
        elif kind == "json_invalid":
            field = None
            reason = e.get("ctx", {}).get("error", "decode error")
            message = f"the body is not valid JSON ({reason})"
        elif kind in ("too_short", "too_long") and field == "items":
            code = "batch_empty" if kind == "too_short" else "batch_too_large"
            message = str(e.get("msg", "invalid value"))
        elif kind == "extra_forbidden":
            message = f"unknown field {field!r}" if field else "unknown field"
        elif kind == "missing":
            message = f"field {field!r} is required" if field else "a field is required"
        else:
            message = str(e.get("msg", "invalid value"))
            if message.startswith("Value error, "):
                message = message[len("Value error, ") :]
        details.append({"code": code, "message": message, "field": field})
    first = details[0] if details else {"code": "validation_error", "message": "invalid request"}
    status = 400 if first["code"] == "invalid_json" else 422
    body = error_body(str(first["code"]), str(first["message"]), first.get("field"))
    if len(details) > 1:
        body["error"]["details"] = [{k: v for k, v in d.items() if v} for d in details]
    if len(errors) > MAX_DETAILS:
        body["error"]["details_omitted"] = len(errors) - MAX_DETAILS
    return status, body


_HTTP_CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def log_exception(exc: BaseException, where: str) -> None:
    """Log an unexpected exception: the code path, the type and a redacted message only."""
    tb = traceback.TracebackException.from_exception(exc, capture_locals=False)
    frames = "".join(tb.stack.format()).rstrip()
    log.error(
        "unexpected %s in %s: %s\n%s",
        type(exc).__name__,
        where,
        snippet(str(exc), 200),
        frames,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to the error shape; the catch-all logs without text."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        status, body = validation_error(list(exc.errors()))
        return JSONResponse(body, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "internal_error" if exc.status_code >= 500 else "")
        code = code or "validation_error"
        message = str(exc.detail) if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 400 and "parsing the body" in message:
            code, message = "invalid_json", "the body could not be parsed as JSON"
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, code, message, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log_exception(exc, f"{request.method} {request.scope.get('route_path', 'request')}")
        return error_response(
            500,
            "internal_error",
            "an unexpected error occurred; quote the X-Request-ID header when reporting it",
        )
