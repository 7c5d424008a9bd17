"""The API's Prometheus metrics, served on its own ``/metrics``: latency by route and status,
decisions by kind and source, fallbacks by reason, records awaiting their decision."""

from __future__ import annotations

import time
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ApiMetrics", "LatencyMiddleware"]

#: Latency buckets (s): fine where the 100 ms budget and the 50 ms target are.
_BUCKETS: Final = (
    0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 10.0,
)  # fmt: skip


class ApiMetrics:
    """The API's metrics, in their own registry (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "fraudstream_api_request_seconds",
            "API request latency by route template, method and status code.",
            ["route", "method", "status"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "fraudstream_api_decisions",
            "Decisions answered, by decision and source (detector, store: a retry, fallback).",
            ["decision", "source"],
            registry=r,
        )
        self.fallbacks = Counter(
            "fraudstream_api_fallbacks",
            "Fallback decisions by reason (budget: no decision in time; broker: not produced).",
            ["reason"],
            registry=r,
        )
        self.pending = Gauge(
            "fraudstream_api_pending_decisions",
            "Records produced whose decision has not arrived yet.",
            registry=r,
        )
        self.labels = Counter("fraudstream_api_labels", "Labels published.", registry=r)
        self.answers = Counter(
            "fraudstream_api_answers",
            "Detectors' decisions received by path (direct: on the reply listener; topic: on "
            "the decisions topic, the fallback).",
            ["path"],
            registry=r,
        )
        self.decision_wait = Histogram(
            "fraudstream_api_decision_wait_seconds",
            "From producing a record to reading the detector's decision (the stream's part).",
            buckets=_BUCKETS,
            registry=r,
        )


class LatencyMiddleware:
    """Times every HTTP request into :attr:`ApiMetrics.latency` (unmatched routes: ``other``)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "other"
            self.metrics.latency.labels(path, scope.get("method", ""), str(status[0])).observe(
                time.perf_counter() - started
            )
