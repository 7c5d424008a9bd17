"""Small Kafka helpers for the integration tests (read a whole topic, produce raw values)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition

from fraudstream import stream
from fraudstream.config import DetectSettings, Settings, TopicSettings
from fraudstream.model import Bundle
from fraudstream.sinks import Store
from fraudstream.stream import Detector, DetectorTopics


def produce_raw(
    client: dict[str, str], topic: str, items: Sequence[tuple[bytes, bytes | None]]
) -> None:
    producer = Producer({**client, "linger.ms": 5})
    for key, value in items:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.05)
    assert producer.flush(60) == 0


def read_topic(
    client: dict[str, str], topic: str, *, expect: int, timeout_s: float = 30.0
) -> list[Message]:
    """All messages of ``topic`` from the beginning (assign, no group join), until ``expect``."""
    consumer = Consumer({**client, "group.id": "test-reader", "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        out: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < expect and time.monotonic() < deadline:
            out.extend(m for m in consumer.consume(10_000, timeout=0.5) if m.error() is None)
        # a short extra read shows there is nothing beyond what was expected
        out.extend(m for m in consumer.consume(10_000, timeout=1.0) if m.error() is None)
        return out
    finally:
        consumer.close()


#: Snapshots of the in-process detectors of this test run (topics are unique per test).
_STATE_DIR = Path(tempfile.mkdtemp(prefix="fraudstream-test-state-"))


def build_detector(
    client: dict[str, str],
    topics: DetectorTopics,
    group: str,
    store: Store,
    bundle: Bundle,
    *,
    batch_max: int = 20_000,
    labels: str | None = None,
    **options: Any,
) -> Detector:
    """The real detector wired as ``fraudstream detect`` wires it (``stream.build_detector``),
    with an opened ``store``; it reads the label topic ``labels`` when one is given."""
    settings = Settings(
        topics=TopicSettings(
            transactions=topics.source,
            alerts=topics.alerts,
            dlq=topics.dlq,
            labels=labels or TopicSettings().labels,
        ),
        detect=DetectSettings(
            group_id=group,
            batch_max=batch_max,
            labels=labels is not None,
            snapshot_dir=_STATE_DIR,  # not ./data/state of the checkout
        ),
    )
    return stream.build_detector(settings, bundle, store, client=client, **options)
