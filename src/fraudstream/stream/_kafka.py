"""Kafka clients (confluent-kafka) with fraudstream's defaults, and topic creation."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from fraudstream.errors import KafkaError
from fraudstream.stream._kafka_log import KAFKA_LOG

__all__ = [
    "DEFAULT_FETCH_WAIT_MS",
    "ensure_topics",
    "make_admin",
    "make_consumer",
    "make_producer",
    "topic_partitions",
]

log = logging.getLogger(__name__)


def make_producer(client: Mapping[str, Any], **overrides: Any) -> Producer:
    """A batching, idempotent producer (acks=all) for high throughput."""
    conf: dict[str, Any] = {
        "logger": KAFKA_LOG,
        **client,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 500_000,
        "compression.type": "lz4",
    }
    conf.update(overrides)
    return Producer(conf)


#: How long the broker may hold a fetch (``fetch.wait.max.ms``): see :func:`make_consumer`.
DEFAULT_FETCH_WAIT_MS: Final = 25

#: A deep prefetch queue for consumers that read as fast as they can (librdkafka's defaults are
#: 100,000 records per partition and 64 MiB): see :func:`make_consumer`.
CATCH_UP_PREFETCH: Final = {"queued.min.messages": 1_000_000, "queued.max.messages.kbytes": 262_144}


def make_consumer(
    client: Mapping[str, Any], group_id: str, *, session_timeout_ms: int = 6000, **overrides: Any
) -> Consumer:
    """A consumer with manual commits: offsets are committed only after outputs are durable.

    ``fetch.wait.max.ms`` (:data:`DEFAULT_FETCH_WAIT_MS`, 25) bounds how long the broker may
    hold a fetch. The embedded Tansu holds *every* fetch for the whole wait (so the wait is
    added to latency), and answers a fetch with nothing when reading the partitions takes
    longer than the wait; its reads slow down as a partition holds more record batches. With
    the 5 ms used before, a paced stream (many small batches) stalled the consumer for good
    after 1-3 minutes (docs/notes/stall.md); 25 ms reads ~4x more batches per partition, and a
    detector whose consumer still stalls rejoins with a longer wait (``Detector._rejoin``).
    A real Kafka cluster answers as soon as records arrive: the wait costs nothing there.

    The prefetch queue is deep (``queued.min.messages`` 1,000,000 per partition, at most 256 MiB
    in all): with librdkafka's defaults (100,000 / 64 MiB) the fetcher pauses so often that a
    consumer catching up gets ~220,000 msg/s from the embedded broker, ~1,000,000 with these
    (measured on a pre-filled 4-partition topic). The cost is that memory when the detector lags.
    """
    conf: dict[str, Any] = {
        "logger": KAFKA_LOG,
        **client,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": session_timeout_ms,
        "heartbeat.interval.ms": max(500, session_timeout_ms // 6),
        "partition.assignment.strategy": "cooperative-sticky",
        "fetch.wait.max.ms": DEFAULT_FETCH_WAIT_MS,
        **CATCH_UP_PREFETCH,
    }
    conf.update(overrides)
    return Consumer(conf)


def make_admin(client: Mapping[str, Any]) -> AdminClient:
    """An admin client whose librdkafka log lines go through Python logging."""
    conf: dict[str, Any] = {"logger": KAFKA_LOG, **client}
    return AdminClient(conf)


def ensure_topics(
    client: Mapping[str, Any], names: Iterable[str], *, partitions: int, timeout_s: float = 15.0
) -> None:
    """Create the topics that do not exist yet (existing ones are left as they are)."""
    admin = make_admin(client)
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        servers = client.get("bootstrap.servers")
        raise KafkaError(f"cannot reach Kafka at {servers}: {exc}; is the broker running?") from exc
    missing = [n for n in dict.fromkeys(names) if n not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing],
        operation_timeout=timeout_s,
    )
    for name, fut in futures.items():
        try:
            fut.result(timeout_s)
            log.info("created topic %s (%d partitions)", name, partitions)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise KafkaError(f"cannot create topic {name}: {exc}") from exc


def topic_partitions(client: Mapping[str, Any], topic: str, *, timeout_s: float = 15.0) -> int:
    """How many partitions ``topic`` has (0 if it does not exist)."""
    admin = make_admin(client)
    try:
        meta = admin.list_topics(topic, timeout=timeout_s).topics.get(topic)
    except KafkaException as exc:
        raise KafkaError(f"cannot read the metadata of topic {topic}: {exc}") from exc
    return len(meta.partitions) if meta is not None and meta.error is None else 0
