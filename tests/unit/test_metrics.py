"""Prometheus metrics of ``detect`` and ``notify``: what each one counts, read from the registry
and over HTTP as Prometheus scrapes it."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from aiosmtpd.controller import Controller
from confluent_kafka import Producer
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from prometheus_client import CollectorRegistry

from fraudstream._prometheus import ArrayHistogram, serve_registry
from fraudstream.errors import ConfigError
from fraudstream.sinks import (
    AlertTopicSink,
    Dispatcher,
    EmailChannel,
    SQLiteStore,
    WebhookChannel,
)
from fraudstream.sinks._notify_metrics import NotifyMetrics
from fraudstream.stream import DetectorMetrics, DetectorStats, LabelStats, LagWatchdog, SinkWorker
from tests.unit.test_notify import Hook, Inbox, free_port, make_alert

finite = st.floats(-1e6, 1e6, allow_nan=False, width=64)


@settings(max_examples=60, deadline=None)
@given(
    bounds=st.lists(st.floats(0, 1e3, allow_nan=False), min_size=1, max_size=8, unique=True),
    chunks=st.lists(arrays(np.float64, st.integers(0, 40), elements=finite), max_size=5),
)
def test_array_histogram_counts_like_a_comparison_per_bound(
    bounds: list[float], chunks: list[np.ndarray]
) -> None:
    h = ArrayHistogram(bounds)
    for chunk in chunks:
        h.observe(chunk)
    values = np.concatenate([np.empty(0), *chunks])
    samples = {(s.name, s.labels.get("le")): s.value for s in h.family("h", "h").samples}
    for b in sorted(bounds):
        assert samples[("h_bucket", repr(float(b)))] == (values <= b).sum()
    assert samples[("h_bucket", "+Inf")] == samples[("h_count", None)] == len(values)
    assert samples[("h_sum", None)] == pytest.approx(values.sum(), abs=1e-6)


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_latency_runs_from_the_broker_timestamp_to_durable_and_batches_are_sized() -> None:
    m = DetectorMetrics()
    # 1.0 s, 0.5 s, no timestamp (left out), a producer clock ahead of ours (0, not negative)
    m.observe_job(np.array([1_000, 1_500, -1, 3_000], dtype=np.int64), durable_ms=2_000.0)
    m.observe_job(np.empty(0, dtype=np.int64), durable_ms=2_500.0)  # labels only: no batch
    r = m.registry
    assert _value(r, "fraudstream_end_to_end_latency_seconds_count") == 3
    assert _value(r, "fraudstream_end_to_end_latency_seconds_sum") == pytest.approx(1.5)
    assert _value(r, "fraudstream_end_to_end_latency_seconds_bucket", le="0.005") == 1
    assert _value(r, "fraudstream_end_to_end_latency_seconds_bucket", le="0.5") == 2
    assert _value(r, "fraudstream_end_to_end_latency_seconds_bucket", le="1.0") == 3
    assert _value(r, "fraudstream_batch_records_count") == 1
    assert _value(r, "fraudstream_batch_records_sum") == 4
    assert _value(r, "fraudstream_batch_records_bucket", le="1.0") == 0
    assert _value(r, "fraudstream_batch_records_bucket", le="10.0") == 1


def test_model_rules_and_labels_follow_the_stats() -> None:
    m = DetectorMetrics()
    stats = DetectorStats(labels=LabelStats(read=7, applied=5, duplicates=1, invalid=1))
    m.update(stats, model_version="lgbm-1", rule_set_version=3)
    r = m.registry
    assert _value(r, "fraudstream_model_info", version="lgbm-1") == 1
    assert _value(r, "fraudstream_rule_set_version") == 3
    assert _value(r, "fraudstream_labels_total", outcome="read") == 7
    assert _value(r, "fraudstream_labels_total", outcome="applied") == 5
    assert _value(r, "fraudstream_labels_total", outcome="contradicting") == 0
    stats.labels = LabelStats(read=9, applied=6, duplicates=1, invalid=1)
    m.update(stats, model_version="lgbm-2", rule_set_version=4, force=True)  # hot reload
    assert _value(r, "fraudstream_model_info", version="lgbm-1") is None
    assert _value(r, "fraudstream_model_info", version="lgbm-2") == 1
    assert _value(r, "fraudstream_labels_total", outcome="read") == 9
    assert _value(r, "fraudstream_rule_set_version") == 4


def _stats_doc(topic: str, lags: dict[int, int]) -> str:
    """A librdkafka statistics document (the parts the lag reading uses)."""
    parts = {str(p): {"consumer_lag": n, "desired": True} for p, n in lags.items()}
    return json.dumps({"topics": {topic: {"partitions": parts}}, "brokers": {}})


@pytest.fixture
def sinks(tmp_path: Path) -> Iterator[SinkWorker]:
    """A real output thread over a real SQLite store (its producer never needs a broker)."""
    store = SQLiteStore(tmp_path / "s.db")
    store.open()
    worker = SinkWorker(AlertTopicSink(Producer({"bootstrap.servers": "127.0.0.1:9"}), "a"), store)
    yield worker
    worker.stop()
    store.close()


def test_lag_per_partition_and_the_outputs_are_read_when_scraped(sinks: SinkWorker) -> None:
    m = DetectorMetrics()
    dog = LagWatchdog("tx")
    m.follow(sinks, dog)
    r = m.registry
    assert _value(r, "fraudstream_consumer_lag_records") == -1  # nothing known yet
    dog.on_stats(_stats_doc("tx", {0: 12, 2: 0}))
    assert _value(r, "fraudstream_consumer_partition_lag_records", partition="0") == 12
    assert _value(r, "fraudstream_consumer_partition_lag_records", partition="2") == 0
    assert _value(r, "fraudstream_consumer_lag_records") == 12  # live, not from the stats
    m.update(DetectorStats(lag=99))
    assert _value(r, "fraudstream_consumer_lag_records") == 12
    dog.on_stats(_stats_doc("tx", {2: 3}))  # partition 0 revoked: its series goes
    assert _value(r, "fraudstream_consumer_partition_lag_records", partition="0") is None
    for name in ("store_outage", "alerts_backpressure", "store_retries_total"):
        assert _value(r, f"fraudstream_{name}") == 0
    assert _value(r, "fraudstream_store_rejected_rows_total") == 0


@pytest.fixture
def webhook(tmp_path: Path) -> Iterator[tuple[Hook, SQLiteStore]]:
    """A real local webhook endpoint, and a store not yet opened."""
    hook = Hook()
    yield hook, SQLiteStore(tmp_path / "n.db")
    hook.close()


def test_notify_counts_alerts_deliveries_retries_and_holds(
    webhook: tuple[Hook, SQLiteStore],
) -> None:
    hook, failures = webhook
    failures.open()
    hook.statuses = [500, 503]
    m = NotifyMetrics(["webhook"])
    r = m.registry
    assert _value(r, "fraudstream_notifications_sent_total", channel="webhook") == 0
    held: list[float | None] = []
    d = Dispatcher([WebhookChannel(hook.url)], failures, backoff_initial_s=0.01, metrics=m)
    assert d.handle(
        make_alert("a1"), wait=lambda _s: held.append(_value(r, "fraudstream_notify_held"))
    )
    assert held == [1, 1]  # held during each back-off
    assert _value(r, "fraudstream_notify_held") == 0
    assert not d.handle(make_alert("a1"))  # a redelivery
    assert not d.handle(make_alert("a2", decision="review"))  # not notified (blocks only)
    assert _value(r, "fraudstream_notify_alerts_total", decision="block") == 2
    assert _value(r, "fraudstream_notify_alerts_total", decision="review") == 1
    assert _value(r, "fraudstream_notify_skipped_total") == 1
    assert _value(r, "fraudstream_notifications_sent_total", channel="webhook") == 1
    assert _value(r, "fraudstream_notification_retries_total", channel="webhook") == 2
    assert _value(r, "fraudstream_notifications_failed_total", channel="webhook") == 0
    hook.statuses = [404]  # permanent
    d.handle(make_alert("a3"))
    assert _value(r, "fraudstream_notifications_failed_total", channel="webhook") == 1
    assert _value(r, "fraudstream_notification_retries_total", channel="webhook") == 2
    failures.close()


def test_notify_counts_each_channel_on_its_own(webhook: tuple[Hook, SQLiteStore]) -> None:
    hook, store = webhook
    store.open()
    inbox, port = Inbox(), free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)  # started during the back-off
    email = EmailChannel("127.0.0.1", port, sender="fs@bank.test", recipients=["a@bank.test"])
    m = NotifyMetrics(["webhook", "email"])
    d = Dispatcher([WebhookChannel(hook.url), email], store, backoff_initial_s=0.01, metrics=m)
    try:
        assert d.handle(make_alert("a1"), wait=lambda _s: smtp.start())
    finally:
        smtp.stop()
        store.close()
    assert len(inbox.messages) == 1 and hook.delivered == ["a1"]
    for channel, retries in (("webhook", 0), ("email", 1)):
        assert _value(m.registry, "fraudstream_notifications_sent_total", channel=channel) == 1
        assert _value(m.registry, "fraudstream_notification_retries_total", channel=channel) == (
            retries
        )


def test_notify_store_failures_hold_and_count(webhook: tuple[Hook, SQLiteStore]) -> None:
    hook, store = webhook  # the store not open yet: every call fails
    m = NotifyMetrics(["webhook"])
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            store.open()

    d = Dispatcher([WebhookChannel(hook.url)], store, backoff_initial_s=0.01, metrics=m)
    assert d.handle(make_alert("a1"), wait=wait)
    store.close()
    assert _value(m.registry, "fraudstream_notify_store_retries_total") == 2
    assert _value(m.registry, "fraudstream_notify_held") == 0


def test_metrics_are_served_over_http_on_a_free_port_and_a_busy_one_is_refused() -> None:
    m = NotifyMetrics(["webhook", "email"])
    m.set_lag({1: 7, 0: 0})
    port = m.serve(0)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert 'fraudstream_notify_consumer_lag_records{partition="1"} 7.0' in text
    assert 'fraudstream_notifications_sent_total{channel="email"} 0.0' in text
    with socket.create_server(("127.0.0.1", 0)) as busy:
        taken = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot serve metrics on 127.0.0.1:{taken}"):
            serve_registry(CollectorRegistry(), taken)
