"""The FastAPI application: routes, access by API key and scope, errors, OpenAPI at ``/docs``."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Final, Literal

import msgspec
from fastapi import FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fraudstream.api._channel import BrokerUnavailable
from fraudstream.api._fast import Answer, DecisionsFastPath, authorize, decision, unprocessable
from fraudstream.api._labels import label_key, label_schema, parse_label
from fraudstream.api._metrics import LatencyMiddleware
from fraudstream.api._models import (
    AlertsPage,
    DecisionOut,
    Health,
    LabelAccepted,
    Readiness,
    TransactionOut,
)
from fraudstream.api._reads import alerts_page, stored_transaction
from fraudstream.api._records import InvalidRecord, struct_schema
from fraudstream.api._service import ApiService
from fraudstream.errors import FraudstreamError
from fraudstream.schema import encode_label

__all__ = ["create_app"]

_encode = msgspec.json.Encoder().encode
#: How long ``POST /v1/labels`` waits for the broker to take the label.
_LABEL_DELIVERY_S = 5.0
_MAX_ID = 64


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encode(content), status, headers, media_type="application/json")


_SECURED: Final[dict[str, Any]] = {"security": [{"apiKey": []}]}


def _body_spec(schema: dict[str, Any]) -> dict[str, Any]:
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": True, "content": content}, **_SECURED}


def create_app(service: ApiService, *, max_body_bytes: int = 16_384) -> DecisionsFastPath:
    """The decision API over ``service`` (started and closed with the app): the FastAPI app
    behind the decisions' fast path (``api._fast``); the app is its ``app`` attribute."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        service.start(asyncio.get_running_loop())  # decisions read from the topic's end on
        # the imported modules' objects (numpy, pydantic, the model's libraries) out of the
        # collector's sight: a full collection walking them stalled every request ~170 ms
        gc.freeze()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="fraudstream decision API",
        version="1",
        description="Synchronous fraud decisions from the same state and model as the stream.",
        lifespan=lifespan,
        # no OpenTelemetry here: /metrics is Prometheus, and the hot path pays for no spans
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.add_middleware(LatencyMiddleware, metrics=service.metrics)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> Response:
        return JSONResponse({"detail": jsonable(exc.errors())}, status_code=422)

    record_schema, record_components = struct_schema(service.record_format.struct)
    label_body, label_components = label_schema()
    _decisions(app, service, record_schema, max_body_bytes)
    _labels(app, service, label_body, max_body_bytes)
    _reads(app, service)
    _probes(app, service)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
            components = doc.setdefault("components", {})
            components.setdefault("schemas", {}).update({**record_components, **label_components})
            components["securitySchemes"] = {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API key from `fraudstream apikey create`",
                }
            }
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return DecisionsFastPath(app, service, max_body_bytes=max_body_bytes)


def _respond(answer: Answer) -> Response:
    status, document, headers = answer
    return _json(document, status, headers)


def _decisions(app: FastAPI, service: ApiService, body: dict[str, Any], limit: int) -> None:
    @app.post(
        "/v1/decisions",
        response_model=DecisionOut,
        responses={
            409: {"description": "txId already used for another transaction"},
            413: {"description": "body too large"},
        },
        openapi_extra=_body_spec(body),
        summary="Decide on one transaction (allow / review / block) within the time budget",
    )
    async def decide(request: Request) -> Response:
        """Answered by the fast path in front of the app; this route documents it."""
        authorization = request.headers.get("authorization", "")
        return _respond(await decision(service, authorization, await _body(request, limit)))


async def _body(request: Request, limit: int) -> bytes:
    """The request's body, ``413`` once it is over ``limit`` bytes (declared or received)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the body is over {limit:,} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body is over {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _labels(app: FastAPI, service: ApiService, body: dict[str, Any], limit: int) -> None:
    @app.post(
        "/v1/labels",
        status_code=202,
        response_model=LabelAccepted,
        responses={503: {"description": "the broker did not take the label"}},
        openapi_extra=_body_spec(body),
        summary="Publish a verdict (chargeback, dispute, ...) on the labels topic",
    )
    async def label(request: Request) -> Response:
        await authorize(service, request.headers.get("authorization", ""), "label")
        raw = await _body(request, limit)
        try:
            message = await service.run(parse_label, raw, service.facts)
        except InvalidRecord as exc:
            return _respond(unprocessable(exc.field, exc.reason))
        except (TimeoutError, FraudstreamError) as exc:
            raise HTTPException(503, f"the store does not answer: {exc}") from exc
        try:
            done = service.channel.deliver(
                service.labels_topic, label_key(message), encode_label(message)
            )
            await asyncio.wait_for(done, _LABEL_DELIVERY_S)
        except (TimeoutError, BrokerUnavailable) as exc:
            raise HTTPException(503, "the broker did not take the label; send it again") from exc
        service.metrics.labels.inc()
        accepted = {
            "label_id": message.label_id,
            "tx_id": message.tx_id,
            "labelled_at_ms": message.labelled_at_ms,
        }
        return _json(accepted, 202)


def _reads(app: FastAPI, service: ApiService) -> None:
    @app.get("/v1/transactions/{tx_id}", response_model=TransactionOut, openapi_extra=_SECURED)
    async def transaction(
        request: Request, tx_id: Annotated[str, Path(min_length=1, max_length=_MAX_ID)]
    ) -> Response:
        await authorize(service, request.headers.get("authorization", ""), "read")
        # an id that is not printable text was never stored (the decoders refuse it)
        found = None
        if tx_id.isprintable():
            found = await _read(service, stored_transaction, service.db, tx_id)
        if found is None:
            raise HTTPException(404, f"no stored transaction {tx_id!r}")
        return _json(found)

    @app.get("/v1/alerts", response_model=AlertsPage, openapi_extra=_SECURED)
    async def alerts(
        request: Request,
        status: Literal["open", "confirmed_fraud", "false_positive"] | None = None,
        decision: Literal["review", "block"] | None = None,
        search: Annotated[
            str | None,
            Query(max_length=_MAX_ID, description="an account, counterparty or transaction id"),
        ] = None,
        order: Literal["score", "newest", "oldest"] = "newest",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> Response:
        await authorize(service, request.headers.get("authorization", ""), "read")
        if search is not None and not search.isprintable():  # matches nothing stored
            return _json({"total": 0, "limit": limit, "offset": offset, "alerts": []})
        total, page = await _read(
            service,
            alerts_page,
            service.db,
            status=status,
            decision=decision,
            search=search,
            order=order,
            limit=limit,
            offset=offset,
        )
        rows = [dataclasses.asdict(a) for a in page]
        return _json({"total": total, "limit": limit, "offset": offset, "alerts": rows})


def _probes(app: FastAPI, service: ApiService) -> None:
    @app.get("/healthz", response_model=Health)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
    async def readyz() -> Response:
        state = await service.readiness()
        return _json(state, 200 if state["ready"] else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _read(service: ApiService, func: Any, *args: Any, **kwargs: Any) -> Any:
    """A store read on the store's threads; 503 if the store fails or does not answer."""
    try:
        return await service.run(lambda: func(*args, **kwargs), timeout_s=10.0)
    except (TimeoutError, FraudstreamError) as exc:
        raise HTTPException(503, f"the store does not answer: {exc}") from exc


def jsonable(errors: Any) -> Any:
    """Validation errors without the offending input echoed back (it may be a secret)."""
    return [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]
