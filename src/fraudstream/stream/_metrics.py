"""Prometheus metrics of a detector: volumes, decisions, lag and stalls, on ``/metrics``.

The detector updates them from its :class:`DetectorStats` at most once a second, on its own
thread; ``prometheus_client`` serves them from a background thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from fraudstream.stream._stats import DetectorStats

__all__ = ["DetectorMetrics"]


class DetectorMetrics:
    """The detector's operator metrics, in their own registry."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._consumed = Counter(
            "fraudstream_records_consumed", "Records read from the transactions topic.", registry=r
        )
        self._scored = Counter(
            "fraudstream_transactions_scored", "Valid transactions scored.", registry=r
        )
        self._dead = Counter(
            "fraudstream_dead_letters", "Invalid records sent to the dead-letter topic.", registry=r
        )
        self._decisions = Counter(
            "fraudstream_decisions", "Decisions by kind.", ["decision"], registry=r
        )
        self._lag = Gauge(
            "fraudstream_consumer_lag_records",
            "Records behind the high watermark on the assigned partitions (-1: unknown).",
            registry=r,
        )
        self._stalled = Gauge(
            "fraudstream_consumer_stalled_seconds",
            "Seconds with lag and nothing consumed (0: not stalled).",
            registry=r,
        )
        self._stalls = Counter(
            "fraudstream_consumer_stalls", "Stall episodes since the start.", registry=r
        )
        self._clock = clock
        self._seen: dict[str, int] = {}
        self._next_at = 0.0

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on ``addr:port`` from a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)

    def update(self, stats: DetectorStats, *, force: bool = False) -> None:
        """Bring the metrics up to ``stats`` (at most once a second unless ``force``)."""
        now = self._clock()
        if not force and now < self._next_at:
            return
        self._next_at = now + 1.0
        self._add(self._consumed, "consumed", stats.consumed)
        self._add(self._scored, "valid", stats.valid)
        self._add(self._dead, "invalid", stats.invalid)
        self._add(self._stalls, "stalls", stats.stalls)
        for name, n in stats.decisions.items():
            self._add(self._decisions.labels(decision=name), f"decision:{name}", n)
        self._lag.set(-1 if stats.lag is None else stats.lag)
        self._stalled.set(stats.stalled_s)

    def _add(self, counter: Counter, key: str, total: int) -> None:
        delta = total - self._seen.get(key, 0)
        if delta > 0:
            counter.inc(delta)
            self._seen[key] = total
