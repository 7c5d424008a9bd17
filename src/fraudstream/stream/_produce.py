"""Writing transactions into Kafka: the simulator's live stream (and, later, file replay)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from confluent_kafka import Producer

from fraudstream.errors import KafkaError
from fraudstream.schema import PaySimRecord, encode_paysim

__all__ = ["run_simulation"]

log = logging.getLogger(__name__)


class _DeliveryErrors:
    def __init__(self) -> None:
        self.count = 0
        self.first: str | None = None

    def __call__(self, err: object, _msg: object) -> None:
        if err is not None:
            self.count += 1
            self.first = self.first or str(err)


def run_simulation(
    producer: Producer,
    topic: str,
    next_batch: Callable[[int], Sequence[PaySimRecord]],
    acquire: Callable[[int], None],
    *,
    chunk: int,
    count: int | None = None,
    duration_s: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Produce simulated transactions until ``count``, ``duration_s`` or ``should_stop``.

    ``acquire(n)`` paces the stream (a token bucket); returns how many records were delivered.
    """
    errors = _DeliveryErrors()
    deadline = None if duration_s is None else time.monotonic() + duration_s
    sent = 0
    while not should_stop():
        if deadline is not None and time.monotonic() >= deadline:
            break
        n = chunk if count is None else min(chunk, count - sent)
        if n <= 0:
            break
        acquire(n)
        records = next_batch(n)
        for rec in records:
            _produce_one(producer, topic, encode_paysim(rec), rec.nameOrig.encode(), errors)
        producer.poll(0)
        sent += len(records)
        if on_progress is not None:
            on_progress(sent)
    remaining = producer.flush(30)
    if remaining or errors.count:
        raise KafkaError(
            f"{remaining} messages undelivered and {errors.count} failed on topic {topic} "
            f"(first error: {errors.first}); is the broker reachable?"
        )
    log.info("produced %d transactions to %s", sent, topic)
    return sent


def _produce_one(
    producer: Producer, topic: str, value: bytes, key: bytes, on_delivery: _DeliveryErrors
) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.05)  # back-pressure: let the local queue drain
