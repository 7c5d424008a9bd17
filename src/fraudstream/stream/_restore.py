"""Rebuild a partition's feature state by replaying its input up to the committed offset.

The input topic is the changelog: per-partition feature state is a pure function of the
partition's records in offset order, so replaying them through a fresh engine yields exactly the
state the previous owner had at its last commit — after a rebalance or a crash alike. The
replay goes through the detector's event-time guard (rebuilding its watermarks the same way),
so the records the live detector dead-lettered as too early or too late are left out again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from fraudstream.errors import KafkaError
from fraudstream.features import StateEngine
from fraudstream.schema import TxBatch
from fraudstream.stream._guard import EventTimeGuard
from fraudstream.stream._kafka import CATCH_UP_PREFETCH
from fraudstream.stream._kafka_log import KAFKA_LOG

__all__ = ["StateRestorer"]

log = logging.getLogger(__name__)

#: Decodes consumed records into a batch of the ones valid and accepted by the guard (``None`` if
#: none is), with their messages (``RecordFormat.decode_messages``).
Decode = Callable[[list[Message], EventTimeGuard], tuple[TxBatch | None, list[Message]]]


class StateRestorer:
    """Replays partitions of ``topic`` from their beginning up to given offsets into an engine."""

    def __init__(
        self,
        client: Mapping[str, Any],
        topic: str,
        decode: Decode,
        *,
        batch_max: int = 20_000,
        stall_timeout_s: float = 30.0,
    ) -> None:
        self.client = dict(client)
        self.topic = topic
        self.decode = decode
        self.batch_max = batch_max
        self.stall_timeout_s = stall_timeout_s

    def restore(
        self, engine: StateEngine, ends: Sequence[TopicPartition], guard: EventTimeGuard
    ) -> int:
        """Replay records with offset < ``tp.offset`` of each partition into ``engine`` through
        ``guard``; returns the records replayed (accepted by the guard).

        Partitions with no committed offset (negative) need nothing: the detector reads them
        from the start. Raises :class:`KafkaError` if the replay stops making progress.
        """
        todo = {tp.partition: tp.offset for tp in ends if tp.offset > 0}
        engine.drop_partitions(todo)
        guard.drop_partitions(tp.partition for tp in ends)
        if not todo:
            return 0
        started = time.monotonic()
        consumer = Consumer(
            {
                # a restore is a catch-up read: 1 M records replay in 3.9-4.0 s with a deep
                # prefetch, 7.6-7.8 s with librdkafka's default (embedded broker, 4 partitions);
                # a ``queued.*`` setting in ``client`` takes precedence
                "logger": KAFKA_LOG,
                **CATCH_UP_PREFETCH,
                **self.client,
                "group.id": f"fraudstream-restore-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                # a catch-up read: latency does not matter, and the embedded broker answers
                # a fetch that takes longer than this wait with nothing (see make_consumer)
                "fetch.wait.max.ms": 500,
            }
        )
        replayed = 0
        first: dict[int, int] = {}
        try:
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in todo])
            last_progress = time.monotonic()
            while todo:
                msgs = [m for m in consumer.consume(self.batch_max, timeout=0.5) if not m.error()]
                keep = [m for m in msgs if (m.offset() or 0) < todo.get(m.partition() or 0, -1)]
                for m in keep:
                    first.setdefault(m.partition() or 0, m.offset() or 0)
                if keep:
                    replayed += self._feed(engine, guard, keep)
                    last_progress = time.monotonic()
                for p in list(todo):
                    position = consumer.position([TopicPartition(self.topic, p)])[0].offset
                    if position >= todo[p]:
                        del todo[p]
                        consumer.incremental_unassign([TopicPartition(self.topic, p)])
                if todo and time.monotonic() - last_progress > self.stall_timeout_s:
                    raise KafkaError(
                        f"state restore of {self.topic} partitions {sorted(todo)} made no progress "
                        f"for {self.stall_timeout_s:.0f} s (records deleted by retention?)"
                    )
        finally:
            consumer.close()
        for p, offset in sorted(first.items()):
            if offset > 0:
                log.warning(
                    "state of %s[%d] rebuilt from offset %d: earlier records are gone (retention); "
                    "long-lived accounts' history features start there",
                    self.topic,
                    p,
                    offset,
                )
        log.info(
            "restored feature state of %s partition(s) %s from %d record(s) in %.1f s",
            self.topic,
            sorted(tp.partition for tp in ends if tp.offset > 0),
            replayed,
            time.monotonic() - started,
        )
        return replayed

    def _feed(self, engine: StateEngine, guard: EventTimeGuard, msgs: list[Message]) -> int:
        batch, kept = self.decode(msgs, guard)
        if batch is None:
            return 0
        engine.update_and_extract(
            batch, np.fromiter((m.partition() for m in kept), dtype=np.int32, count=len(kept))
        )
        return len(kept)
