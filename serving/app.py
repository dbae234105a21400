"""The FastAPI app: `create_app(settings)`; `aduan serve` runs it with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Path, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST

from data.schema import LOCATION_FIELDS
from data.text import normalize_text
from serving.batcher import Overloaded, QueueTimeout, Stopped
from serving.engine import Item, Served, iso_time
from serving.errors import ERROR_CODES, ApiError, install_error_handlers
from serving.feedback import COLUMNS as FEEDBACK_COLUMNS
from serving.logs import install_record_factory
from serving.metrics import Metrics
from serving.middleware import BodyGuard, KeyGuard, RequestContext
from serving.schemas import (
    EXAMPLE_TEXT,
    EXAMPLE_TEXT_2,
    ID_PATTERN,
    BatchRequest,
    BatchResponse,
    DeleteResponse,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    Health,
    Location,
    Ready,
    RegisterRequest,
    RegisterResponse,
    ReloadRequest,
    ReloadResponse,
    RouteRequest,
    RouteResponse,
)
from serving.security import KeyChecker, parse_keys
from serving.service import ReloadError, Service
from serving.settings import Settings

log = logging.getLogger("aduan.serving")

DESCRIPTION = """
Classifies Indonesian public complaints (category and responsible agency, with
calibrated probabilities), finds earlier duplicates, and flags those a human must
review. All model work goes through `model.predict.predict`, the same path as
`aduan predict`.

**Authentication.** When `ADUAN_API_KEYS` is set, send `Authorization: Bearer <key>`.
`/healthz`, `/readyz` and `/metrics` stay open.

**Errors** are always `{"error": {"code", "message", "field"?}}`. Codes:

""" + "\n".join(f"- `{code}`: {meaning}" for code, meaning in ERROR_CODES.items())

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Not JSON, or not UTF-8."},
    401: {"model": ErrorResponse, "description": "No or an unknown API key."},
    403: {"model": ErrorResponse, "description": "The key lacks the scope."},
    413: {"model": ErrorResponse, "description": "Body over ADUAN_MAX_BODY_BYTES."},
    415: {"model": ErrorResponse, "description": "Body not sent as application/json."},
    422: {"model": ErrorResponse, "description": "A field is invalid (see error.field)."},
    503: {
        "model": ErrorResponse,
        "description": "Not ready, overloaded or timed out; retry after Retry-After seconds.",
    },
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such complaint in the index."}
}

_bearer = HTTPBearer(auto_error=False, description="An API key (see ADUAN_API_KEYS).")


def _version() -> str:
    try:
        return importlib.metadata.version("aduan")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def _item(req: RouteRequest, default_k: int) -> Item:
    loc = req.location.model_dump() if req.location else {}
    return Item(
        text=req.text,
        id=req.id,
        created_at=iso_time(req.created_at),
        location=loc,
        top_k=req.top_k or default_k,
        register=req.register_,
    )


def create_app(settings: Settings | None = None, *, wait_for_load: bool = False) -> FastAPI:
    """The API. The model loads in the background unless `wait_for_load` (tests)."""
    settings = settings or Settings()
    keys = KeyChecker(parse_keys(settings.api_keys))
    metrics = Metrics()
    service = Service(settings, metrics)
    install_record_factory()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await service.start(wait=wait_for_load)
        loop = asyncio.get_running_loop()
        hup = _install_sighup(loop, service)
        try:
            yield
        finally:
            if hup:
                loop.remove_signal_handler(signal.SIGHUP)
            await service.stop()

    app = FastAPI(
        title="aduan",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "routing", "description": "Classify complaints and find duplicates."},
            {"name": "complaints", "description": "The duplicate index."},
            {"name": "feedback", "description": "Operators' final decisions, for retraining."},
            {"name": "model", "description": "The served model; reloading it."},
            {"name": "operations", "description": "Health, readiness, metrics."},
        ],
    )
    app.state.service = service
    app.state.metrics = metrics
    app.state.settings = settings
    install_error_handlers(app)
    # Added inside-out: RequestContext is the outermost layer, so every response,
    # including the guard's 413/415 and CORS preflights, carries X-Request-ID.
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes)
    if keys.enabled:
        app.add_middleware(KeyGuard, valid=lambda header: keys.scopes(header) is not None)
    origins = settings.cors_list()
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestContext, metrics=metrics)

    def need(scope: str) -> Callable[..., Coroutine[Any, Any, None]]:
        if not keys.enabled:  # no keys: no auth, and none is declared in the OpenAPI schema

            async def open_access() -> None:
                return None

            return open_access

        async def check(
            request: Request,
            _creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        ) -> None:
            scopes = keys.scopes(request.headers.get("authorization"))
            if scopes is None:
                raise ApiError(
                    401,
                    "unauthorized",
                    "send a valid API key as 'Authorization: Bearer <key>'",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if scope not in scopes:
                raise ApiError(403, "forbidden", f"this API key lacks the '{scope}' scope")

        return check

    def ready() -> Served:
        served = service.ready()
        if served is None:
            metrics.rejected.labels(reason="not_ready").inc()
            raise ApiError(
                503,
                "not_ready",
                f"the service is not ready ({service.status}): {service.reason}",
                headers={"Retry-After": "5"},
            )
        return served

    def check_text(text: str | None, field: str) -> None:
        if text is not None and len(text) > settings.max_text_chars:
            raise ApiError(
                422,
                "text_too_long",
                f"text has {len(text)} characters; at most {settings.max_text_chars} are "
                "accepted (ADUAN_MAX_TEXT_CHARS)",
                field=field,
            )

    async def submit(items: list[Item]) -> list[dict[str, Any]]:
        assert service.batcher is not None
        try:
            result: list[dict[str, Any]] = await service.batcher.submit(items, len(items))
        except Overloaded as exc:
            metrics.rejected.labels(reason="overloaded").inc()
            raise ApiError(
                503,
                "overloaded",
                "too many requests are waiting for the model; retry later",
                headers={"Retry-After": str(exc.retry_after)},
            ) from None
        except QueueTimeout as exc:
            metrics.rejected.labels(reason="timeout").inc()
            raise ApiError(
                503,
                "timeout",
                f"the request waited over {settings.request_timeout_s:g} s for the model",
                headers={"Retry-After": str(exc.retry_after)},
            ) from None
        except Stopped:
            raise ApiError(
                503, "not_ready", "the server is shutting down", headers={"Retry-After": "5"}
            ) from None
        return result

    _document_limits(app, settings)
    h = _Helpers(service, settings, metrics, need, ready, check_text, submit)
    _routing_routes(app, h)
    _complaint_routes(app, h)
    _model_routes(app, h)
    _ops_routes(app, h)
    return app


def _document_limits(app: FastAPI, settings: Settings) -> None:
    """Put this server's limits (ADUAN_MAX_TEXT_CHARS, ADUAN_MAX_BATCH) into its OpenAPI schema."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        components = schema.get("components", {}).get("schemas", {})
        for model in ("RouteRequest", "RegisterRequest", "FeedbackRequest"):
            text = components.get(model, {}).get("properties", {}).get("text", {})
            for variant in [text, *text.get("anyOf", [])]:
                if variant.get("type") == "string":
                    variant["maxLength"] = settings.max_text_chars
        items = components.get("BatchRequest", {}).get("properties", {}).get("items", {})
        if items:
            items["maxItems"] = settings.max_batch
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


@dataclass(frozen=True)
class _Helpers:
    service: Service
    settings: Settings
    metrics: Metrics
    need: Callable[[str], Callable[..., Coroutine[Any, Any, None]]]
    ready: Callable[[], Served]
    check_text: Callable[[str | None, str], None]
    submit: Callable[[list[Item]], Coroutine[Any, Any, list[dict[str, Any]]]]


_ROUTE_EXAMPLES = {
    "lampu": {
        "summary": "Lampu PJU mati, didaftarkan ke indeks duplikat",
        "value": {
            "id": "SBY-2024-000123",
            "text": EXAMPLE_TEXT,
            "created_at": "2024-03-05T08:15:00+07:00",
            "location": {
                "city": "Kota Surabaya",
                "kecamatan": "Gayungan",
                "kelurahan": "Ketintang",
            },
            "register": True,
        },
    },
    "jalan": {
        "summary": "Jalan berlubang, hanya diklasifikasi",
        "value": {"text": EXAMPLE_TEXT_2, "top_k": 5},
    },
    "bahasa_campur": {
        "summary": "Bahasa Jawa campur, tanpa lokasi",
        "value": {
            "text": "Sampah nang pinggir kali Jl. Kalibokor numpuk wis rong minggu ora diangkut, "
            "mambu banget. Mohon DKRTH segera ditindaklanjuti."
        },
    },
}


def _routing_routes(app: FastAPI, h: _Helpers) -> None:
    default_k = h.settings.top_k

    @app.post(
        "/v1/route",
        response_model=RouteResponse,
        tags=["routing"],
        summary="Classify one complaint, find its duplicates, optionally register it",
        responses=_ERRORS,
        dependencies=[Depends(h.need("route"))],
    )
    async def route(
        req: Annotated[RouteRequest, Body(openapi_examples=_ROUTE_EXAMPLES)],
    ) -> dict[str, Any]:
        """Category (`categories`, the bundle's topic head) and responsible agency
        (`agencies`) with calibrated probabilities, every head under `heads`,
        earlier duplicates from the index (redacted snippets), and whether a
        human must review it (`needs_review`, `review_reasons`).

        When the bundle routes its agency head, `agencies` are concrete offices
        of the complaint's region (each with `id`, `type`, `level`,
        `region_code`, `region`, `why`); the region comes from `location`
        (`region_code`, then the names), else from place names in the text,
        else from the deployment scope, and `heads.agency.region` says which.

        Review reasons (closed list): `topic_uncertain` / `agency_uncertain`
        (the head abstained: top probability under its calibrated threshold),
        `topic_untrained` / `agency_untrained` (the bundle never trained it),
        `topic_missing` / `agency_missing` (the bundle has no such head),
        `duplicate_found` (an earlier complaint is judged the same problem).
        """
        started = time.perf_counter()
        h.check_text(req.text, "text")
        h.ready()
        out = (await h.submit([_item(req, default_k)]))[0]
        out["timing_ms"]["total"] = round((time.perf_counter() - started) * 1000, 3)
        return out

    @app.post(
        "/v1/route/batch",
        response_model=BatchResponse,
        tags=["routing"],
        summary="Classify up to ADUAN_MAX_BATCH complaints in one call",
        responses=_ERRORS,
        dependencies=[Depends(h.need("route"))],
    )
    async def route_batch(req: BatchRequest) -> dict[str, Any]:
        """The same answer as `/v1/route` for each item, in the same order. All items
        are scored by the same model version; registrations happen in item order,
        so a later item sees an earlier registered one as a duplicate."""
        started = time.perf_counter()
        if len(req.items) > h.settings.max_batch:
            raise ApiError(
                422,
                "batch_too_large",
                f"{len(req.items)} items; at most {h.settings.max_batch} per batch "
                "(ADUAN_MAX_BATCH)",
                field="items",
            )
        for i, item in enumerate(req.items):
            h.check_text(item.text, f"items.{i}.text")
        h.ready()
        outs = await h.submit([_item(r, default_k) for r in req.items])
        total = round((time.perf_counter() - started) * 1000, 3)
        for out in outs:
            out["timing_ms"]["total"] = total
        return {"model_version": outs[0]["model_version"], "items": outs}


_RESERVED_LABELS = frozenset(FEEDBACK_COLUMNS) | {"received_at", "model_version"}


def _complaint_routes(app: FastAPI, h: _Helpers) -> None:
    service = h.service

    @app.post(
        "/v1/complaints",
        response_model=RegisterResponse,
        status_code=201,
        tags=["complaints"],
        summary="Add a complaint to the duplicate index (idempotent by id)",
        responses={200: {"model": RegisterResponse, "description": "Already there."}, **_ERRORS},
        dependencies=[Depends(h.need("route"))],
    )
    async def register(req: RegisterRequest, response: Response) -> dict[str, Any]:
        """201 when the id is new, 200 when it was already indexed (`new: false`: the
        stored record is kept as it is; delete it first to replace it)."""
        h.check_text(req.text, "text")
        served = h.ready()
        loc = req.location.model_dump() if req.location else {}
        item = Item(
            text=req.text,
            id=req.id,
            created_at=iso_time(req.created_at),
            location=loc,
            register=True,
            route=False,
        )
        out = (await h.submit([item]))[0]
        if not out["new"]:
            response.status_code = 200
        return {"id": req.id, "new": out["new"], "index_size": len(served.index)}

    @app.delete(
        "/v1/complaints/{complaint_id}",
        response_model=DeleteResponse,
        tags=["complaints"],
        summary="Remove a complaint from the duplicate index",
        responses={**_NOT_FOUND, **_ERRORS},
        dependencies=[Depends(h.need("route"))],
    )
    async def delete(
        complaint_id: Annotated[str, Path(pattern=ID_PATTERN, examples=["SBY-2024-000123"])],
    ) -> dict[str, Any]:
        h.ready()
        assert service.batcher is not None
        removed = await service.batcher.call(lambda: service.engine.remove(complaint_id))
        served = h.ready()
        if not removed:
            raise ApiError(404, "not_found", f"complaint {complaint_id!r} is not in the index")
        return {"id": complaint_id, "deleted": True, "index_size": len(served.index)}

    @app.post(
        "/v1/feedback",
        response_model=FeedbackResponse,
        status_code=201,
        tags=["feedback"],
        summary="Store the operator's final topic/agency (and duplicate_of) for a complaint",
        responses=_ERRORS,
        dependencies=[Depends(h.need("feedback"))],
    )
    async def feedback(req: FeedbackRequest) -> dict[str, Any]:
        """Appended to `ADUAN_FEEDBACK_DIR/feedback.jsonl` and fsynced before the answer,
        as a labelled case in the data schema (`aduan feedback export --out FILE`
        keeps the latest per id; `aduan train --data FILE` reads it). The text and
        location come from the request, or else from the duplicate index (503 while it
        loads, when the request lacks any of them)."""
        h.check_text(req.text, "text")
        for name in req.labels or {}:
            if name in _RESERVED_LABELS:
                raise ApiError(
                    422,
                    "validation_error",
                    f"'{name}' is a reserved column; give topic/agency/duplicate_of as fields",
                    field=f"labels.{name}",
                )
        stored = None
        if req.text is None or req.created_at is None or req.location is None:
            # 503 until the index is loaded: it may hold the text, time and location
            # missing here, and a record stored without them would lose them for training
            h.ready()
            stored = await service.lookup(req.id)
        if req.text is None and stored is None:
            raise ApiError(
                422,
                "no_text",
                f"complaint {req.id!r} is not in the duplicate index and the request has no "
                "text; send the complaint's text in 'text'",
                field="text",
            )
        if req.text is not None:
            text = normalize_text(req.text)
        else:
            assert stored is not None
            text = stored.text
        if req.location is not None:
            loc = req.location.model_dump()
        else:
            loc = {f: getattr(stored, f, None) for f in Location.model_fields}
        served = service.ready()
        record: dict[str, Any] = {
            "id": req.id,
            "text": text,
            "created_at": req.created_at.isoformat()
            if req.created_at
            else (stored.created_at if stored else None),
            "agency": req.agency,
            "topic": req.topic,
            **{f: loc.get(f) for f in LOCATION_FIELDS},
            "duplicate_of": req.duplicate_of,
            **(req.labels or {}),
            "received_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "model_version": served.version if served else None,
        }
        await asyncio.to_thread(service.feedback.append, record)
        h.metrics.feedback.inc()
        log.info("feedback stored for complaint %s", req.id)
        return {"id": req.id, "stored": True, "text_source": "request" if req.text else "index"}


def _model_routes(app: FastAPI, h: _Helpers) -> None:
    service = h.service

    @app.get(
        "/v1/model",
        tags=["model"],
        summary="The served model: version, heads, labels, training data, metrics, dedup",
        responses={401: _ERRORS[401], 403: _ERRORS[403], 503: _ERRORS[503]},
        dependencies=[Depends(h.need("route"))],
    )
    async def model_info() -> dict[str, Any]:
        return service.model_info(h.ready())

    @app.post(
        "/v1/admin/reload",
        response_model=ReloadResponse,
        tags=["model"],
        summary="Load a bundle and swap it in without dropping requests",
        responses={
            409: {"model": ErrorResponse, "description": "Another reload is running."},
            500: {"model": ErrorResponse, "description": "Re-embedding the index failed."},
            **_ERRORS,
        },
        dependencies=[Depends(h.need("admin"))],
    )
    async def reload(
        req: Annotated[ReloadRequest | None, Body()] = None,
    ) -> dict[str, Any]:
        """Loads the bundle at `model` (default: the served folder, re-read) off the
        event loop, checks it, and swaps it in atomically: requests in flight finish
        on the old model, new ones use the new. A bad path or damaged bundle keeps
        the old model and answers 422 `reload_failed`. SIGHUP does the same with
        the served folder. When the new bundle embeds duplicates differently, the
        index is re-embedded before the swap (`reindexed` says how many)."""
        try:
            return await service.reload(req.model if req else None)
        except ReloadError as exc:
            headers = {"Retry-After": "5"} if exc.status == 503 else None
            raise ApiError(exc.status, exc.code, exc.message, headers=headers) from None


def _ops_routes(app: FastAPI, h: _Helpers) -> None:
    service = h.service

    @app.get("/healthz", response_model=Health, tags=["operations"], summary="The process is up")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=Ready,
        tags=["operations"],
        summary="Ready to serve: 200 once the model and the index are loaded, else 503",
        responses={503: {"model": Ready, "description": "Loading, re-embedding or failed."}},
    )
    async def readyz() -> Any:
        served = service.ready()
        if served is None:
            body = Ready(status=service.status, reason=service.reason)  # type: ignore[arg-type]
            return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "5"})
        return {
            "status": "ready",
            "model_version": served.version,
            "index_size": len(served.index),
        }

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
    )
    async def prometheus() -> Response:
        return Response(h.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _install_sighup(loop: asyncio.AbstractEventLoop, service: Service) -> bool:
    """SIGHUP reloads the served folder (only where the loop runs in the main thread)."""

    def on_hup() -> None:
        async def run() -> None:
            try:
                await service.reload(None, source="SIGHUP")
            except ReloadError as exc:
                log.warning("SIGHUP reload refused: %s", exc.message)

        loop.create_task(run())

    try:
        loop.add_signal_handler(signal.SIGHUP, on_hup)
    except (NotImplementedError, RuntimeError, ValueError, AttributeError):
        return False
    return True
