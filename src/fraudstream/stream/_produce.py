"""Writing transactions into Kafka, paced: the simulator's live stream and file replay."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from confluent_kafka import KafkaException, Producer

from fraudstream.errors import KafkaError
from fraudstream.schema import PaySimRecord, encode_paysim

__all__ = ["Message", "produce_messages", "run_simulation"]

log = logging.getLogger(__name__)


class _DeliveryErrors:
    """Delivery reports: failures counted (with the first error), successes timed."""

    def __init__(self) -> None:
        self.count = 0
        self.first: str | None = None
        self.delivered_at = time.monotonic()

    def __call__(self, err: object, _msg: object) -> None:
        if err is not None:
            self.count += 1
            self.first = self.first or str(err)
        else:
            self.delivered_at = time.monotonic()


#: Warn when records wait this long without any delivery (the broker is likely gone).
_UNDELIVERED_WARN_S = 15.0


class _BrokerWatch:
    """One warning when records stop being delivered, one when they flow again."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.warned = False

    def check(self, producer: Producer, errors: _DeliveryErrors) -> None:
        if errors.count:
            raise KafkaError(
                f"{errors.count:,} record(s) could not be delivered to {self.topic} "
                f"(first error: {errors.first}); {len(producer):,} still queued are dropped. "
                "Is the broker running? (a restarted embedded broker has lost every topic)"
            )
        silent_s = time.monotonic() - errors.delivered_at
        if len(producer) and silent_s > _UNDELIVERED_WARN_S and not self.warned:
            self.warned = True
            log.warning(
                "nothing delivered to %s for %.0f s (%s record(s) queued): the broker is "
                "unreachable; waiting for it (a record not delivered within 5 minutes fails)",
                self.topic,
                silent_s,
                f"{len(producer):,}",
            )
        elif self.warned and silent_s < _UNDELIVERED_WARN_S:
            self.warned = False
            log.warning("records reach %s again", self.topic)


#: A record to produce: (key, value, event time in ms).
Message = tuple[bytes, bytes, int]


def produce_messages(
    producer: Producer,
    topic: str,
    next_messages: Callable[[int], Sequence[Message]],
    *,
    chunk: int,
    count: int | None = None,
    duration_s: float | None = None,
    acquire: Callable[[int], None] = lambda _n: None,
    wait_until: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Produce ``next_messages(n)`` chunks until ``count``/``duration_s``/``should_stop``/empty.

    ``acquire(n)`` paces by rate (a token bucket); ``wait_until(event_ms)`` paces each record by
    its event time. Returns how many records were delivered; raises if any delivery failed.
    """
    errors = _DeliveryErrors()
    watch = _BrokerWatch(topic)
    deadline = None if duration_s is None else time.monotonic() + duration_s
    sent = 0
    while not should_stop() and (deadline is None or time.monotonic() < deadline):
        watch.check(producer, errors)
        n = chunk if count is None else min(chunk, count - sent)
        if n <= 0:
            break
        acquire(n)
        messages = next_messages(n)
        if not messages:
            break
        for key, value, event_ms in messages:
            if wait_until is not None:
                wait_until(event_ms)
            _produce_one(producer, topic, value, key, errors)
        producer.poll(0)
        sent += len(messages)
        if on_progress is not None:
            on_progress(sent)
    remaining = producer.flush(30)
    if remaining or errors.count:
        raise KafkaError(
            f"{remaining} messages undelivered and {errors.count} failed on topic {topic} "
            f"(first error: {errors.first}); is the broker reachable?"
        )
    return sent


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

    def next_messages(n: int) -> list[Message]:
        return [(rec.nameOrig.encode(), encode_paysim(rec), 0) for rec in next_batch(n)]

    sent = produce_messages(
        producer,
        topic,
        next_messages,
        chunk=chunk,
        count=count,
        duration_s=duration_s,
        acquire=acquire,
        should_stop=should_stop,
        on_progress=on_progress,
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
            if on_delivery.count:
                return  # the caller's check stops the stream with the delivery error
        except KafkaException as exc:
            raise KafkaError(f"cannot produce to {topic}: {exc}") from exc
