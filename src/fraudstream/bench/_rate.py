"""Rate accuracy of ``fraudstream simulate --rate``, measured from the broker's side.

The real command runs in its own process for a fixed duration into a fresh topic; then every
message is read back and counted by its Kafka timestamp. The topic asks for broker-side
timestamps (``LogAppendTime``); the result says which kind the broker actually gave.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_LOG_APPEND_TIME, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from fraudstream.errors import KafkaError

__all__ = ["rate_accuracy"]


def _create_topic(client: Mapping[str, Any], topic: str, partitions: int) -> None:
    admin = AdminClient(dict(client))
    new = NewTopic(
        topic,
        num_partitions=partitions,
        replication_factor=1,
        config={"message.timestamp.type": "LogAppendTime"},
    )
    try:
        admin.create_topics([new], operation_timeout=15)[topic].result(15)
    except Exception as exc:  # a broker that refuses the config: plain topic, producer times
        plain = NewTopic(topic, num_partitions=partitions, replication_factor=1)
        try:
            admin.create_topics([plain], operation_timeout=15)[topic].result(15)
        except Exception as again:
            raise KafkaError(f"cannot create topic {topic}: {again} (first: {exc})") from again


def _timestamps(client: Mapping[str, Any], topic: str, idle_s: float = 3.0) -> tuple[Any, bool]:
    """Every message's timestamp (ms), and whether they were all broker (log-append) times."""
    consumer = Consumer({**client, "group.id": f"{topic}-reader", "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        out: list[int] = []
        log_append = True
        last_seen = time.monotonic()
        while time.monotonic() - last_seen < idle_s:
            batch = consumer.consume(10_000, timeout=0.5)
            for m in batch:
                if m.error() is None:
                    kind, ts = m.timestamp()
                    out.append(ts)
                    log_append &= kind == TIMESTAMP_LOG_APPEND_TIME
            if batch:
                last_seen = time.monotonic()
        return np.sort(np.asarray(out, dtype=np.int64)), log_append
    finally:
        consumer.close()


def rate_accuracy(
    client: Mapping[str, Any],
    rate: float,
    duration_s: float,
    *,
    topic: str,
    partitions: int = 4,
    accounts: int = 20_000,
) -> dict[str, Any]:
    """Run ``fraudstream simulate --rate rate --duration duration_s``; count what arrived.

    ``achieved_tx_per_s`` counts the messages stamped within ``duration_s`` of the first one;
    ``error_pct`` is its deviation from ``rate``. Per-second counts show the pacing's evenness.
    """
    _create_topic(client, topic, partitions)
    env = {**os.environ, "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": str(client["bootstrap.servers"])}
    command = [
        sys.executable,
        "-m",
        "fraudstream",
        "simulate",
        f"--rate={rate:g}",
        f"--duration={duration_s:g}",
        f"--accounts={accounts}",
        f"--topic={topic}",
    ]
    started = time.monotonic()
    proc = subprocess.run(  # noqa: S603  (our own CLI, fixed arguments)
        command, env=env, capture_output=True, text=True, timeout=duration_s + 120, check=False
    )
    wall_s = time.monotonic() - started
    if proc.returncode != 0:
        raise KafkaError(f"simulate exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    ts, log_append = _timestamps(client, topic)
    if len(ts) < 2:
        raise KafkaError(f"only {len(ts)} messages arrived on {topic}")
    window_ms = duration_s * 1000.0
    in_window = int(np.count_nonzero(ts < ts[0] + window_ms))
    achieved = in_window / duration_s
    seconds = (ts - ts[0]) // 1000
    full = np.bincount(seconds)[: int(duration_s)]  # whole seconds inside the run
    return {
        "target_tx_per_s": rate,
        "duration_s": duration_s,
        "messages": len(ts),
        "achieved_tx_per_s": achieved,
        "error_pct": (achieved / rate - 1.0) * 100.0,
        "span_tx_per_s": (len(ts) - 1) * 1000.0 / max(1, int(ts[-1] - ts[0])),
        "per_second_min": int(full.min()) if len(full) else 0,
        "per_second_max": int(full.max()) if len(full) else 0,
        "timestamps": "log-append (broker)" if log_append else "create (producer)",
        "process_wall_s": wall_s,
    }
