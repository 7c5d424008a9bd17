"""The dashboard's Kafka calls: the detector group's lag and publishing analysts' labels.

Every call makes its own short-lived client and closes it: a confluent-kafka client is never
shared across Streamlit's script threads.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from fraudstream.broker import port_open
from fraudstream.dashboard._queries import AlertRow
from fraudstream.errors import KafkaError
from fraudstream.schema import LabelMessage, encode_label, label_from_status
from fraudstream.stream import ensure_topics

__all__ = ["Lag", "consumer_lag", "label_message", "publish_labels"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lag:
    """The consumer group's lag on one topic; ``error`` says why it is unknown."""

    group: str
    topic: str
    partitions: dict[int, int]
    error: str | None = None
    #: the group's committed offset per partition (-1: none yet)
    committed: dict[int, int] = field(default_factory=dict)

    @property
    def total(self) -> int | None:
        return None if self.error else sum(self.partitions.values())


def consumer_lag(
    client: Mapping[str, Any], group: str, topic: str, *, timeout_s: float = 2.0
) -> Lag:
    """Committed offsets of ``group`` against the high watermarks of ``topic``'s partitions.

    The consumer only reads offsets: it neither subscribes nor joins the group. A partition
    without a committed offset counts from its low watermark. Never raises for an unreachable
    broker: ``Lag.error`` says what failed.
    """
    servers = str(client.get("bootstrap.servers", ""))
    if not _any_reachable(servers):
        return Lag(group, topic, {}, f"broker {servers} unreachable (connection refused)")
    conf = {
        **client,
        "log_level": 2,
        "group.id": group,
        "enable.auto.commit": False,
        "socket.timeout.ms": int(timeout_s * 1000),
        "client.id": f"fraudstream-dashboard-lag-{uuid.uuid4().hex[:6]}",
    }
    consumer = Consumer(conf)
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return Lag(group, topic, {}, f"topic {topic!r} does not exist yet")
        parts = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        committed = consumer.committed(parts, timeout=timeout_s)
        lag: dict[int, int] = {}
        offsets = {tp.partition: int(tp.offset) for tp in committed}
        for tp in committed:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, tp.partition), timeout=timeout_s
            )
            start = tp.offset if tp.offset >= 0 else low
            lag[tp.partition] = max(int(high) - int(start), 0)
        return Lag(group, topic, lag, committed=offsets)
    except KafkaException as exc:
        return Lag(group, topic, {}, f"broker {servers} unreachable: {exc.args[0]}")
    finally:
        consumer.close()


def _any_reachable(servers: str) -> bool:
    """Whether one of the ``host:port`` bootstrap servers accepts TCP connections (fast check)."""
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if host and port.isdigit() and port_open(host.strip("[]"), int(port), timeout_s=0.5):
            return True
    return False


def label_message(alert: AlertRow, now_ms: int | None = None) -> LabelMessage:
    """The ``fraud-labels`` message for an alert with a verdict."""
    return LabelMessage(
        tx_id=alert.tx_id,
        alert_id=alert.alert_id,
        account=alert.account,
        counterparty=alert.counterparty,
        tx_time_ms=alert.event_time_ms,
        label=label_from_status(alert.status),
        source="analyst",
        analyst=alert.analyst,
        labelled_at_ms=alert.reviewed_at_ms or now_ms or time.time_ns() // 1_000_000,
    )


def publish_labels(
    client: Mapping[str, Any],
    topic: str,
    alerts: Sequence[AlertRow],
    *,
    partitions: int = 4,
    timeout_s: float = 5.0,
) -> int:
    """Produce one label per alert (keyed by account) and wait until the broker has them all.

    Raises ``KafkaError`` naming the topic and the broker if any message is not delivered
    within ``timeout_s``; the caller keeps the verdicts to publish again.
    """
    servers = str(client.get("bootstrap.servers", ""))
    failures: list[str] = []
    if not _any_reachable(servers):
        raise KafkaError(
            f"labels not published to topic {topic}: the broker {servers} is unreachable "
            "(connection refused). The verdicts are stored: publish them again once it is back"
        )
    try:
        ensure_topics(client, [topic], partitions=partitions, timeout_s=timeout_s)
    except KafkaError as exc:
        raise KafkaError(
            f"labels not published to topic {topic}: {exc}. The verdicts are stored: "
            "publish them again once the broker is back"
        ) from exc

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    producer = Producer(
        {
            **client,
            "log_level": 2,
            "acks": "all",
            "enable.idempotence": True,
            "message.timeout.ms": int(timeout_s * 1000),
            "socket.timeout.ms": int(timeout_s * 1000),
        }
    )
    try:
        for alert in alerts:
            msg = label_message(alert)
            producer.produce(
                topic, key=alert.account.encode(), value=encode_label(msg), on_delivery=on_delivery
            )
        pending = producer.flush(timeout_s + 1.0)
    except (KafkaException, BufferError) as exc:
        raise KafkaError(f"cannot publish labels to {topic} at {servers}: {exc}") from exc
    if pending or failures:
        reason = failures[0] if failures else f"{pending} message(s) not delivered in time"
        raise KafkaError(
            f"labels not published to topic {topic} at {servers}: {reason}; "
            "is the broker running? The verdicts are stored: publish them again"
        )
    log.info("published %d label(s) to %s", len(alerts), topic)
    return len(alerts)
