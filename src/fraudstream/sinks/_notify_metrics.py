"""Prometheus metrics of ``fraudstream notify``, on ``/metrics`` (listed in docs/operations.md).

The :class:`Dispatcher` counts each alert and each delivery attempt as it happens (a handful
per second at most, off the detector's hot path); the consumer lag per partition is set from
librdkafka's statistics and read at scrape time.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import Metric

from fraudstream._prometheus import ScrapeTime, partition_gauge, serve_registry

__all__ = ["NotifyMetrics"]


class NotifyMetrics:
    """The notifier's operator metrics, in their own registry.

    ``channels`` and ``decisions`` name the label values shown at 0 before anything happens.
    """

    def __init__(
        self, channels: Collection[str] = (), decisions: Collection[str] = ("review", "block")
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._alerts = Counter(
            "fraudstream_notify_alerts",
            "Alerts read from the alerts topic, by decision (all of them, notified or not).",
            ["decision"],
            registry=r,
        )
        self._skipped = Counter(
            "fraudstream_notify_skipped",
            "Alerts not notified again: already handled (a redelivery, or before a restart).",
            registry=r,
        )
        self._sent = Counter(
            "fraudstream_notifications_sent", "Notifications delivered.", ["channel"], registry=r
        )
        self._failed = Counter(
            "fraudstream_notifications_failed",
            "Notifications failed for good, recorded in notification_failures.",
            ["channel"],
            registry=r,
        )
        self._retries = Counter(
            "fraudstream_notification_retries",
            "Failed delivery attempts tried again after a back-off.",
            ["channel"],
            registry=r,
        )
        self._store_retries = Counter(
            "fraudstream_notify_store_retries",
            "Store writes (delivery records) tried again after a store failure.",
            registry=r,
        )
        self._held = Gauge(
            "fraudstream_notify_held",
            "1 while a failing channel or store holds consumption (back-pressure), else 0.",
            registry=r,
        )
        for channel in channels:
            for counter in (self._sent, self._failed, self._retries):
                counter.labels(channel=channel)
        for decision in decisions:
            self._alerts.labels(decision=decision)
        self._lag: Mapping[int, int] = {}
        r.register(ScrapeTime(self._live))

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``addr:port`` from a daemon thread; the port bound."""
        return serve_registry(self.registry, port, addr)

    def alert(self, decision: str) -> None:
        self._alerts.labels(decision=decision).inc()

    def skipped(self) -> None:
        self._skipped.inc()

    def sent(self, channel: str) -> None:
        self._sent.labels(channel=channel).inc()

    def failed(self, channel: str) -> None:
        self._failed.labels(channel=channel).inc()

    def retried(self, channel: str) -> None:
        """A failed attempt on ``channel`` is about to be retried: consumption is held."""
        self._retries.labels(channel=channel).inc()
        self._held.set(1)

    def store_retried(self) -> None:
        """A store write is about to be retried: consumption is held."""
        self._store_retries.inc()
        self._held.set(1)

    def released(self) -> None:
        """The alert in hand is handled: nothing holds consumption any more."""
        self._held.set(0)

    def set_lag(self, lag: Mapping[int, int]) -> None:
        """Records behind the high watermark per partition of the alerts topic (replaced)."""
        self._lag = lag

    def _live(self) -> Iterable[Metric]:
        yield partition_gauge(
            "fraudstream_notify_consumer_lag_records",
            "Alerts behind the high watermark, per assigned partition of the alerts topic.",
            self._lag,
        )
