"""The detector's watchdog, librdkafka's log through Python logging, and the live line."""

from __future__ import annotations

import json
import logging

import pytest

from fraudstream.cli._detect import LiveLine, clock_utc
from fraudstream.schema import WindowStats
from fraudstream.stream import DetectorStats, KafkaLog, LagWatchdog
from fraudstream.stream._watchdog import lag_from_statistics


def _stats(topic: str, lags: dict[str, int]) -> str:
    """A librdkafka statistics document (the parts the watchdog reads)."""
    parts = {p: {"partition": int(p), "consumer_lag": n, "desired": True} for p, n in lags.items()}
    parts["-1"] = {"partition": -1, "consumer_lag": -1, "desired": False}
    return json.dumps({"name": "c#1", "topics": {topic: {"partitions": parts}}})


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lag_is_read_per_assigned_partition_and_unknown_lag_is_left_out() -> None:
    doc = _stats("tx", {"0": 5, "1": 0, "2": -1})
    assert lag_from_statistics(doc, "tx") == {0: 5, 1: 0}
    fresh = json.loads(doc)  # a group that has committed nothing yet: from the position
    fresh["topics"]["tx"]["partitions"]["2"].update(hi_offset=900, app_offset=-1001, lo_offset=0)
    fresh["topics"]["tx"]["partitions"]["1"].update(consumer_lag=-1, hi_offset=50, app_offset=20)
    assert lag_from_statistics(json.dumps(fresh), "tx") == {0: 5, 1: 30, 2: 900}
    assert lag_from_statistics(doc, "other") == {}
    assert lag_from_statistics("not json", "tx") == {}


def test_lag_with_nothing_consumed_is_a_stall_until_records_flow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _Clock()
    dog = LagWatchdog("tx", stall_after_s=20, repeat_s=60, clock=clock)
    assert dog.observe(consumed=0).lag is None  # no statistics yet
    dog.on_stats(_stats("tx", {"0": 700, "1": 300}))
    assert dog.observe(consumed=10) == dog.observe(consumed=10)  # progress, then none yet
    clock.now += 19
    assert not dog.observe(consumed=10).stalled
    with caplog.at_level(logging.WARNING, logger="fraudstream.stream._watchdog"):
        clock.now += 2
        report = dog.observe(consumed=10)
        assert report.stalled and report.lag == 1000 and report.stalled_s == pytest.approx(21)
        clock.now += 30
        assert dog.observe(consumed=10).stalled_s == pytest.approx(51)
        assert dog.stalls == 1
        assert len(caplog.records) == 1  # once, then every repeat_s
        assert "1,000 record(s) waiting on tx" in caplog.records[0].getMessage()
        clock.now += 31
        dog.observe(consumed=10)
        assert len(caplog.records) == 2
        report = dog.observe(consumed=11)
    assert not report.stalled
    assert "consuming again after a 82 s stall" in caplog.records[-1].getMessage()


def test_no_lag_is_no_stall_and_a_deliberate_pause_is_forgiven() -> None:
    clock = _Clock()
    dog = LagWatchdog("tx", stall_after_s=5, clock=clock)
    dog.on_stats(_stats("tx", {"0": 0}))
    dog.observe(consumed=3)
    clock.now += 100
    assert not dog.observe(consumed=3).stalled  # idle, nothing to read
    dog.on_stats(_stats("tx", {"0": 50}))
    clock.now += 4
    assert not dog.observe(consumed=3).stalled
    clock.now += 2
    assert dog.observe(consumed=3).stalled
    dog.reset()  # e.g. the store came back after an outage
    assert not dog.observe(consumed=3).stalled


def test_librdkafka_lines_are_folded_into_one_clear_line(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    kafka_log = KafkaLog("test.kafka", quiet_s=60, clock=clock)
    refused = (
        "[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 "
        "failed: Connection refused (after {}ms in state CONNECT)"
    )
    with caplog.at_level(logging.DEBUG, logger="test.kafka"):
        for i in range(289):
            kafka_log.log(40, "%s [%s] %s", "FAIL", "rdkafka#producer-1", refused.format(i))
        coordinator = "GroupCoordinator: 127.0.0.1:1: Connect to ipv4#127.0.0.1:1 failed: "
        kafka_log.log(
            40, "%s [%s] %s", "FAIL", "rdkafka#consumer-2", coordinator + "Connection refused"
        )
        kafka_log.log(7, "%s [%s] %s", "BGQUEUE", "rdkafka#producer-1", "Purging 1 events")
        clock.now += 61
        kafka_log.log(40, "%s [%s] %s", "FAIL", "rdkafka#producer-2", refused.format(0))
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    line = "Kafka broker 127.0.0.1:1 unreachable (connection refused); retrying"
    assert messages == [
        (logging.WARNING, line),
        (logging.DEBUG, "librdkafka BGQUEUE: Purging 1 events"),
        (logging.WARNING, f"{line} (and 289 more times in the last 61 s)"),
    ]


def test_the_live_line_labels_its_numbers_and_flags_a_stall() -> None:
    window = WindowStats(
        window_end_ms=1_733_000_000_000,
        window_ms=30_000,
        transactions=15_000,
        frauds=30,
        alerts=150,
        amount=1.4e9,
        fraud_amount=7e6,
    )
    stats = DetectorStats(valid=15_000, lag=12)
    text = LiveLine("EUR").text(window, stats)
    assert "20:53:20 UTC[/] last 30s:" in text
    assert "30 frauds (0.20% of tx, 0.50% of amount)" in text
    assert "amount 1.4bn EUR" in text and "tx/s now" in text and "mean" in text
    assert "lag 12" in text and "STALLED" not in text
    stats.stalled_s = 35
    assert "STALLED 35 s" in LiveLine().text(window, stats)


def test_a_time_no_calendar_can_show_does_not_crash_the_live_line() -> None:
    assert clock_utc(1_796_168_492_158_000) == "--:--:-- UTC"  # microseconds by mistake
    assert clock_utc(2**63 - 1) == "--:--:-- UTC"


def test_the_current_rate_follows_the_recent_seconds() -> None:
    stats = DetectorStats()
    stats.started_at -= 100  # 100 s ago
    stats.valid = 1_000
    assert stats.current_rate() == pytest.approx(10, rel=0.01)
    assert stats.rate() == pytest.approx(10, rel=0.01)


def test_metrics_follow_the_stats_and_are_served_over_http() -> None:
    import urllib.request

    from fraudstream.broker import free_port
    from fraudstream.stream import DetectorMetrics

    metrics = DetectorMetrics()
    stats = DetectorStats(consumed=12, valid=10, invalid=2, lag=40, stalled_s=25.0, stalls=1)
    stats.decisions.update(allow=8, review=2)
    metrics.update(stats)
    stats.valid, stats.lag, stats.stalled_s = 30, None, 0.0
    metrics.update(stats)  # within the second: ignored
    port = free_port()
    metrics.serve(port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert "fraudstream_transactions_scored_total 10.0" in text
    assert "fraudstream_dead_letters_total 2.0" in text
    assert 'fraudstream_decisions_total{decision="review"} 2.0' in text
    assert "fraudstream_consumer_lag_records 40.0" in text
    assert "fraudstream_consumer_stalled_seconds 25.0" in text
    assert "fraudstream_consumer_stalls_total 1.0" in text
    metrics.update(stats, force=True)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert "fraudstream_transactions_scored_total 30.0" in text
    assert "fraudstream_consumer_lag_records -1.0" in text


def test_a_stall_without_a_reachable_broker_is_reported_as_such(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from fraudstream.stream._watchdog import broker_up

    def doc(state: str) -> str:
        stats = json.loads(_stats("tx", {"0": 40}))
        stats["brokers"] = {
            "127.0.0.1:9092/bootstrap": {"nodeid": -1, "state": "UP"},
            "127.0.0.1:9092/111": {"nodeid": 111, "state": state},
        }
        return json.dumps(stats)

    assert broker_up(doc("UP")) and not broker_up(doc("CONNECT"))
    clock = _Clock()
    dog = LagWatchdog("tx", stall_after_s=5, clock=clock)
    dog.on_stats(doc("TRY_CONNECT"))
    dog.observe(consumed=1)
    clock.now += 6
    with caplog.at_level(logging.WARNING, logger="fraudstream.stream._watchdog"):
        report = dog.observe(consumed=1)
    assert report.stalled and not report.broker_up  # the detector waits instead of rejoining
    assert "no broker reachable" in caplog.records[-1].getMessage()
    dog.on_stats(doc("UP"))
    assert dog.observe(consumed=1).broker_up
