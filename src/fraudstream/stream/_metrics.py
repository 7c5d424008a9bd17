"""Prometheus metrics of a detector, on ``/metrics`` (listed in docs/operations.md).

Three kinds of updates, none of them per record:

* counters (records, decisions, dead letters, labels, stalls) follow :class:`DetectorStats` at
  most once a second, on the consuming thread (:meth:`DetectorMetrics.update`);
* the batch-size and end-to-end latency histograms take a whole durable batch at once
  (:meth:`DetectorMetrics.observe_job`: a few numpy calls over its records' timestamps);
* the state of the outputs and the consumer (store outage, retries, lag per partition) is read
  at scrape time from the objects that hold it (:meth:`DetectorMetrics.follow`), so it stays
  true while the consuming thread is held by an outage.

End-to-end latency of a record: from its broker timestamp (the producer's create time, or the
broker's append time if the topic says so) to the moment the detector's outputs of its batch
are durable: the store committed, the alerts and dead letters flushed to the broker. The offset
commit follows at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from fraudstream._prometheus import ArrayHistogram, ScrapeTime, partition_gauge, serve_registry
from fraudstream.errors import StoreError
from fraudstream.stream._stats import DetectorStats

if TYPE_CHECKING:
    from fraudstream.stream._drift import DriftMonitor
    from fraudstream.stream._pipeline import SinkWorker
    from fraudstream.stream._watchdog import LagWatchdog

__all__ = ["BATCH_BUCKETS", "LATENCY_BUCKETS_S", "DetectorMetrics"]

#: Records per consumed batch.
BATCH_BUCKETS: Final = (1, 10, 50, 100, 500, 1_000, 2_500, 5_000, 10_000, 20_000, 50_000)
#: End-to-end latency, seconds (a detector catching up on a backlog sees minutes).
LATENCY_BUCKETS_S: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0
)  # fmt: skip


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
            "fraudstream_dead_letters",
            "Invalid records (decoding, validation, event-time guard) sent to the dead-letter "
            "topic.",
            registry=r,
        )
        self._decisions = Counter(
            "fraudstream_decisions", "Final decisions by kind.", ["decision"], registry=r
        )
        self._labels = Counter(
            "fraudstream_labels",
            "Label records read from the labels topic, by outcome.",
            ["outcome"],
            registry=r,
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
        self._model = Info("fraudstream_model", "The model bundle in service.", registry=r)
        self._rules = Gauge(
            "fraudstream_rule_set_version",
            "Version of the fraud team's rule set in force (0: none).",
            registry=r,
        )
        self._batches = ArrayHistogram(BATCH_BUCKETS)
        self._latency = ArrayHistogram(LATENCY_BUCKETS_S)
        self._sinks: SinkWorker | None = None
        self._drift: Callable[[], DriftMonitor | None] = lambda: None
        self._watchdog: LagWatchdog | None = None
        r.register(ScrapeTime(self._live))
        self._clock = clock
        self._seen: dict[str, int] = {}
        self._next_at = 0.0
        self._model_version = ""

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``addr:port`` from a daemon thread; the port bound."""
        return serve_registry(self.registry, port, addr)

    def follow(self, sinks: SinkWorker, watchdog: LagWatchdog | None = None) -> None:
        """Read the outputs' state from ``sinks`` and the lag from ``watchdog`` at each scrape."""
        self._sinks, self._watchdog = sinks, watchdog
        if watchdog is not None:
            self._lag.set_function(lambda: -1 if watchdog.lag is None else watchdog.lag)

    def follow_drift(self, monitor: Callable[[], DriftMonitor | None]) -> None:
        """Read the drift gauges from ``monitor()`` (the monitor in service) at each scrape."""
        self._drift = monitor

    def observe_job(self, produced_ms: npt.NDArray[np.int64], durable_ms: float) -> None:
        """A batch whose outputs became durable at ``durable_ms`` (epoch ms): its size, and the
        latency of each record from its broker timestamp ``produced_ms`` (none: unknown)."""
        if not len(produced_ms):
            return  # labels only
        self._batches.observe(np.array([len(produced_ms)], dtype=np.float64))
        known = produced_ms[produced_ms >= 0]
        self._latency.observe(np.maximum(durable_ms - known, 0.0) / 1000.0)

    def update(
        self,
        stats: DetectorStats,
        *,
        model_version: str | None = None,
        rule_set_version: int | None = None,
        force: bool = False,
    ) -> None:
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
        if stats.labels is not None:
            lab = stats.labels
            for outcome in ("read", "applied", "duplicates", "contradicting", "invalid"):
                n = getattr(lab, outcome)
                self._add(self._labels.labels(outcome=outcome), f"labels:{outcome}", n)
        self._lag.set(-1 if stats.lag is None else stats.lag)  # unless followed live
        self._stalled.set(stats.stalled_s)
        if model_version is not None and model_version != self._model_version:
            self._model.info({"version": model_version})
            self._model_version = model_version
        if rule_set_version is not None:
            self._rules.set(rule_set_version)

    def _add(self, counter: Counter, key: str, total: int) -> None:
        delta = total - self._seen.get(key, 0)
        if delta > 0:
            counter.inc(delta)
            self._seen[key] = total

    def _live(self) -> Iterable[Metric]:
        """The families read at scrape time."""
        yield self._batches.family("fraudstream_batch_records", "Records per consumed batch.")
        yield self._latency.family(
            "fraudstream_end_to_end_latency_seconds",
            "From a record's broker timestamp to its batch's outputs being durable (store "
            "committed, alerts and dead letters flushed).",
        )
        if self._watchdog is not None:
            yield partition_gauge(
                "fraudstream_consumer_partition_lag_records",
                "Records behind the high watermark, per assigned partition.",
                self._watchdog.partitions,
            )
        yield from _drift_families(self._drift())
        sinks = self._sinks
        if sinks is None:
            return
        outage = sinks.outage
        yield GaugeMetricFamily(
            "fraudstream_store_outage",
            "1 while the store is unavailable (consumption paused, nothing committed), else 0.",
            value=int(isinstance(outage, StoreError)),
        )
        yield GaugeMetricFamily(
            "fraudstream_alerts_backpressure",
            "1 while the alerts producer's queue stays full (consumption paused), else 0.",
            value=int(outage is not None and not isinstance(outage, StoreError)),
        )
        yield CounterMetricFamily(
            "fraudstream_store_retries",
            "Store writes retried after an outage (each retry of a batch group).",
            value=sinks.store_retries,
        )
        yield CounterMetricFamily(
            "fraudstream_store_rejected_rows",
            "Rows the store refused or skipped as conflicting, sent to the dead-letter topic.",
            value=sinks.rejected,
        )


def _drift_families(monitor: DriftMonitor | None) -> Iterable[Metric]:
    """The drift gauges of ``monitor`` (none without one, or before its first window)."""
    if monitor is None:
        return
    yield GaugeMetricFamily(
        "fraudstream_drift_alarm",
        "1 while the drift alarm holds (PSI over the threshold for the configured windows).",
        value=int(monitor.alarm),
    )
    yield CounterMetricFamily(
        "fraudstream_drift_windows",
        "Drift windows evaluated (closed with enough rows).",
        value=monitor.evaluated,
    )
    last = monitor.last
    if last is None:
        return
    psi = GaugeMetricFamily(
        "fraudstream_drift_psi",
        "PSI of the latest evaluated window against the bundle's training reference.",
        labels=["feature"],
    )
    for name, value in zip(last.names, last.psi, strict=True):
        psi.add_metric([name], value)
    yield psi
