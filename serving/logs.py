"""Request ids and the server's log format.

Every log line written while a request is handled carries its request id
(`X-Request-ID`, accepted from the client when well-formed, else generated).
Log lines hold ids, counts and timings only; as a last guard the server's log
handler redacts personal data (`data.text.redact`) from every formatted line.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

from data.text import count_pii, redact

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def _holds_pii(value: str) -> bool:
    return any(count_pii(value).values())


def accept_request_id(value: str | None) -> str:
    """The client's request id if it is short, plain and holds no personal data; else a new one.

    A new id is drawn again in the rare case its hex digits read like a phone
    number or NIK: the log redactor would mask part of it, and the id in the
    logs would no longer match the one the client got back.
    """
    if value and _REQUEST_ID.fullmatch(value) and not _holds_pii(value):
        return value
    while True:
        new = uuid.uuid4().hex
        if not _holds_pii(new):
            return new


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record (the id of the request being handled, or "-")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


_factory_installed = False


def install_record_factory() -> None:
    """Stamp every log record, from any logger and to any handler, with the request id."""
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.request_id = request_id_var.get()
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


class RedactingFormatter(logging.Formatter):
    """A formatter that redacts NIK, phone numbers and e-mail addresses from the whole line."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def setup_logging(level: str = "INFO") -> None:
    """Send aduan's and uvicorn's logs to stderr with request ids, redacted."""
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter(LOG_FORMAT))
    handler.addFilter(RequestIdFilter())
    install_record_factory()
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
