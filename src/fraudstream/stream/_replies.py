"""Answers to the decision API: a record that carries :data:`REPLY_HEADER` gets its decision
published on the decisions topic, keyed by transaction id, once its batch is durable.

``fraudstream serve`` produces each request's transaction to the transactions topic with this
header and waits for the answer (docs/api.md). Records without it cost one header lookup each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
from confluent_kafka import Message, Producer

from fraudstream.schema import ScoredBatch
from fraudstream.sinks import RejectedRow, decision_payloads

__all__ = ["REPLY_HEADER", "DecisionReplies", "reply_rows"]

log = logging.getLogger(__name__)

#: The header naming a record whose decision is awaited (its value names the API instance).
REPLY_HEADER: Final = "fraudstream.reply"
#: A reply the producer's queue cannot take within this long is dropped (the API falls back).
_QUEUE_WAIT_S: Final = 1.0


def reply_rows(msgs: Sequence[Message], kept: Sequence[int]) -> npt.NDArray[np.intp] | None:
    """The rows of the accepted records (``msgs[kept[j]]`` is row ``j``) whose message carries
    :data:`REPLY_HEADER`; ``None`` when none does."""
    rows = [
        j
        for j, i in enumerate(kept)
        if (headers := msgs[i].headers()) and any(h[0] == REPLY_HEADER for h in headers)
    ]
    return np.array(rows, dtype=np.intp) if rows else None


class DecisionReplies:
    """Queues decisions on ``topic`` with the detector's producer (flushed with the alerts).

    A reply is a courtesy to a waiting request: one that cannot be queued or delivered is
    logged, never an error of the detector (the API answers its fallback decision).
    """

    def __init__(self, producer: Producer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self.sent = 0
        self.failed = 0

    def _on_delivery(self, err: object, _msg: object) -> None:
        if err is not None:
            self.failed += 1
            if self.failed == 1 or self.failed % 1000 == 0:
                log.warning("%d decision(s) not delivered to %s: %s", self.failed, self.topic, err)

    def write(
        self, batch: ScoredBatch, rows: npt.NDArray[np.intp], rejected: Sequence[RejectedRow]
    ) -> None:
        """Queue the decisions of ``rows`` of ``batch``, except the rows the store did not keep."""
        if rejected:
            gone = {(r.partition, r.offset) for r in rejected}
            where = zip(batch.partition[rows].tolist(), batch.offset[rows].tolist(), strict=True)
            rows = rows[[pos not in gone for pos in where]]
        for key, value in decision_payloads(batch, rows):
            self._produce(key, value)
        self.sent += len(rows)

    def _produce(self, key: bytes, value: bytes) -> None:
        deadline = time.monotonic() + _QUEUE_WAIT_S
        while True:
            try:
                self.producer.produce(
                    self.topic, value=value, key=key, on_delivery=self._on_delivery
                )
                return
            except BufferError:
                if time.monotonic() > deadline:
                    self._on_delivery("the producer's queue is full", None)
                    return
                self.producer.poll(0.05)
