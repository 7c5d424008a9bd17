"""The hot path: ``POST /v1/decisions`` answered in front of the framework.

FastAPI and Starlette wrap every request in about ten middleware layers and request objects;
measured with py-spy at 1,000 requests/s they cost more than the decision itself. A decision
request is therefore answered by :class:`DecisionsFastPath`, a plain ASGI layer in front of the
app (same key check, body limit, validation, errors and metrics as the app's routes, through
the same functions); every other request goes to the app, whose ``/v1/decisions`` route
documents the operation in the OpenAPI document.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import msgspec
from fastapi import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from fraudstream.api._decide import Conflict
from fraudstream.api._keys import ApiKey
from fraudstream.api._keys import Scope as KeyScope
from fraudstream.api._records import InvalidRecord
from fraudstream.api._service import ApiService
from fraudstream.errors import FraudstreamError

__all__ = ["Answer", "DecisionsFastPath", "authorize", "decision", "unprocessable"]

log = logging.getLogger(__name__)

_encode = msgspec.json.Encoder().encode
_PATH: Final = "/v1/decisions"
_JSON: Final = (b"content-type", b"application/json")
_BEARER: Final = {"WWW-Authenticate": "Bearer"}

#: (status, JSON document, extra headers)
Answer = tuple[int, Any, dict[str, str]]


async def authorize(service: ApiService, authorization: str, scope: KeyScope) -> ApiKey:
    """The key of an ``Authorization: Bearer`` header value (``HTTPException`` 401 without a
    valid one) that holds ``scope`` (else 403)."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "an API key is required", _BEARER)
    known, key = service.keys.cached(token)
    if not known:
        try:
            key = await service.run(service.keys.check, token)
        except (TimeoutError, FraudstreamError) as exc:
            raise HTTPException(503, "the key store does not answer") from exc
    if key is None:
        raise HTTPException(401, "invalid or revoked API key", _BEARER)
    if scope not in key.scopes:
        raise HTTPException(403, f"this API key lacks the {scope!r} scope")
    return key


def unprocessable(field: str | None, reason: str) -> Answer:
    """``422`` naming the body's field at fault."""
    loc = ["body", field] if field else ["body"]
    return 422, {"detail": [{"loc": loc, "msg": reason, "type": "value_error"}]}, {}


async def decision(service: ApiService, authorization: str, body: bytes) -> Answer:
    """The answer to a decision request (``HTTPException`` for 401/403/409/503)."""
    await authorize(service, authorization, "decide")
    try:
        record = service.record_format.parse(body)
    except InvalidRecord as exc:
        return unprocessable(exc.field, exc.reason)
    assert service.decider is not None, "the service is started with the app"
    try:
        return 200, await service.decider.decide(record), {}
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from exc


class _TooLarge(Exception):
    pass


class DecisionsFastPath:
    """ASGI: ``POST /v1/decisions`` answered here, every other request by ``app``."""

    def __init__(self, app: ASGIApp, service: ApiService, *, max_body_bytes: int) -> None:
        self.app = app
        self.service = service
        self.limit = max_body_bytes
        latency = service.metrics.latency
        self._observe = {s: latency.labels(_PATH, "POST", str(s)).observe for s in (200, 422)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != _PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, document, headers = await self._answer(scope, receive)
        payload = _encode(document)
        raw_headers = [_JSON, (b"content-length", str(len(payload)).encode())]
        raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})
        observe = self._observe.get(status)
        if observe is None:
            observe = self.service.metrics.latency.labels(_PATH, "POST", str(status)).observe
        observe(time.perf_counter() - started)

    async def _answer(self, scope: Scope, receive: Receive) -> Answer:
        authorization = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            body = await self._body(scope, receive)
            return await decision(self.service, authorization, body)
        except _TooLarge:
            return 413, {"detail": f"the body is over {self.limit:,} bytes"}, {}
        except HTTPException as exc:
            return exc.status_code, {"detail": exc.detail}, dict(exc.headers or {})
        except Exception:  # one request's failure, never the server's
            log.exception("decision request failed")
            return 500, {"detail": "internal error"}, {}

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                raise HTTPException(400, "the request ended before its body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
