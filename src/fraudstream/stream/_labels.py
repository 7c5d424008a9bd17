"""The detector's label channel: every partition of ``fraud-labels`` into the feature engines.

Labels are few (a fraction of a percent of transactions) and a merchant's or a mule's confirmed
frauds matter to every partition whose customers pay it, so each detector reads the *whole*
topic, like a Kafka Streams global table: no consumer group, no committed offsets, the topic read
from its beginning at start (:meth:`LabelReader.catch_up`) and followed between batches
(:meth:`LabelReader.poll`). Which labels a feature sees is decided by the labels' times
(``LabelBook``), not by when they were read, so two detectors (or a training replay) agree.

Rules (``schema._labels``): malformed → dead-letter topic with the reason; duplicates and
contradictions → ``LabelBook``; a label that does not name the transaction's account,
counterparty and time is completed from the store (:attr:`LabelReader.lookup`) or from the
transactions the detector reads; until then it waits, at most ``PENDING_LABEL_TTL_MS`` of event
time, then goes to the dead-letter topic ("transaction never seen").
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition
from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

from fraudstream.errors import KafkaError
from fraudstream.features import LabelBook
from fraudstream.schema import (
    PENDING_LABEL_TTL_MS,
    LabelMessage,
    TxBatch,
    decode_labels,
    encode_label,
)
from fraudstream.schema._label_files import complete_labels
from fraudstream.stream._kafka import make_admin
from fraudstream.stream._kafka_log import KAFKA_LOG

__all__ = ["LabelReader", "LabelStats", "Lookup"]

log = logging.getLogger(__name__)

#: tx ids → (account, counterparty, event time ms) of the stored ones
#: (``Store.lookup_transactions``).
Lookup = Callable[[Sequence[str]], Mapping[str, tuple[str, str, int]]]
#: Dead-letter writer: (value, key, reason, source).
DeadLetter = Callable[[bytes, bytes | None, str, str], None]
#: The label consumer's first fetch wait, and the longest a reconnect asks for (ms).
FETCH_WAIT_MS: Final = 10
FETCH_WAIT_MAX_MS: Final = 1_600
#: Pending labels are looked up in the store again at most this often.
RETRY_LOOKUP_S: Final = 5.0
#: The book forgets labels this long before the latest transaction time (the longest label
#: window is the card engine's 7-day delay + 90 days).
KEEP_MS: Final = 120 * 86_400_000


@dataclass(slots=True)
class LabelStats:
    """What the label channel did since start."""

    read: int = 0
    applied: int = 0
    duplicates: int = 0
    contradicting: int = 0
    invalid: int = 0
    pending: int = 0
    never_seen: int = 0
    #: batches scored before the label topic was read to its end (sync timed out)
    late: int = 0
    #: seconds spent reading the label topic to its end before batches, and the longest once
    sync_s: float = 0.0
    sync_max_s: float = 0.0


class LabelReader:
    """Reads ``topic`` (all partitions, from the beginning) into ``book``; see the module."""

    def __init__(
        self,
        client: Mapping[str, Any],
        topic: str,
        book: LabelBook,
        *,
        dead_letter: DeadLetter,
        lookup: Lookup | None = None,
        batch_max: int = 10_000,
        sync_timeout_s: float = 5.0,
    ) -> None:
        self.topic = topic
        self.sync_timeout_s = sync_timeout_s
        self.book = book
        self.dead_letter = dead_letter
        self.lookup = lookup
        self.batch_max = batch_max
        self.stats = LabelStats()
        self._pending: dict[str, list[LabelMessage]] = {}
        self._looked_up_at = 0.0
        self._latest_tx_ms = 0
        self._positions: dict[int, int] = {}  # next offset to read, per partition
        self._ready: list[LabelMessage] = []
        self._admin = make_admin(client)  # its own connection: never behind a held fetch
        self._asked: dict[TopicPartition, Future[Any]] | None = None  # end offsets on the way
        self._client = dict(client)
        #: the broker holds a fetch up to this long before a new label is seen; the embedded one
        #: holds every fetch this long, and answers one that takes longer with nothing (its
        #: reads slow down as a partition fills: docs/notes/stall.md), so a sync that times out
        #: makes a new consumer with 4x the wait (up to FETCH_WAIT_MAX_MS)
        self.fetch_wait_ms = FETCH_WAIT_MS
        self._consumer = self._new_consumer()
        meta = self._consumer.list_topics(topic, timeout=30)
        parts = meta.topics.get(topic)
        if parts is None or parts.error is not None or not parts.partitions:
            raise KafkaError(f"label topic {topic} not found: {parts.error if parts else 'absent'}")
        self._partitions = sorted(parts.partitions)
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in self._partitions]
        )

    def catch_up(self, timeout_s: float = 60.0) -> list[LabelMessage]:
        """Read up to the end offsets of now; returns the labels applied. Raises
        :class:`KafkaError` when that takes longer than ``timeout_s``."""
        applied = self._read_to(self._ends(), timeout_s)
        if applied is None:
            raise KafkaError(
                f"reading the label topic {self.topic} to its end took over {timeout_s:.0f} s"
            )
        log.info(
            "label channel %s: %d label(s) read at start, %d applied, %d pending",
            self.topic,
            self.stats.read,
            self.stats.applied,
            self.stats.pending,
        )
        return applied

    def mark(self) -> None:
        """Ask the end offsets now, without waiting: the next :meth:`poll` reads up to them.

        The detector calls it as soon as a batch of transactions is fetched, so the request
        travels while the batch is decoded; every label appended before the fetch is still below
        the answer.
        """
        if self._asked is None:
            self._asked = self._ask_ends()

    def poll(self) -> list[LabelMessage]:
        """Apply every label appended to the topic before the last :meth:`mark` (or before
        this call, without one); returns the labels applied (recorded in the store).

        The end offsets are asked of the broker on a connection of their own (a fetch held by
        the broker would delay the answer); reading up to them waits at most
        ``sync_timeout_s``, after which the batch goes on with what was read (counted in
        :attr:`LabelStats.late`, logged).
        """
        started = time.monotonic()
        applied = self._read_to(self._ends(), self.sync_timeout_s)
        if applied is None:
            self.stats.late += 1
            log.warning(
                "label channel %s: not read to its end within %.1f s; this batch is scored "
                "with the labels read so far",
                self.topic,
                self.sync_timeout_s,
            )
            applied = self._take_ready()
            if self.fetch_wait_ms < FETCH_WAIT_MAX_MS:
                self._reconnect()
        took = time.monotonic() - started
        self.stats.sync_s += took
        self.stats.sync_max_s = max(self.stats.sync_max_s, took)
        if self._pending and time.monotonic() - self._looked_up_at > RETRY_LOOKUP_S:
            applied += self._retry_pending()
        return applied

    def _new_consumer(self) -> Consumer:
        return Consumer(
            {
                "logger": KAFKA_LOG,
                **self._client,
                "group.id": f"fraudstream-labels-{uuid.uuid4().hex[:12]}",  # never committed
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "fetch.wait.max.ms": self.fetch_wait_ms,
            }
        )

    def _assign(self) -> None:
        """Assign every partition from the next offset to read (the beginning at first)."""
        self._consumer.assign(
            [
                TopicPartition(self.topic, p, self._positions.get(p, OFFSET_BEGINNING))
                for p in self._partitions
            ]
        )

    def _reconnect(self) -> None:
        """A new consumer whose broker may hold a fetch 4x longer, from where this one was."""
        self.fetch_wait_ms = min(4 * self.fetch_wait_ms, FETCH_WAIT_MAX_MS)
        log.warning(
            "label channel %s: a new consumer that lets the broker hold a fetch up to %d ms",
            self.topic,
            self.fetch_wait_ms,
        )
        self._consumer.close()
        self._consumer = self._new_consumer()
        self._assign()

    def _ask_ends(self) -> dict[TopicPartition, Future[Any]]:
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        specs = {TopicPartition(self.topic, p): latest for p in self._partitions}
        futures: dict[TopicPartition, Future[Any]] = self._admin.list_offsets(
            specs, request_timeout=10
        )
        return futures

    def _ends(self) -> dict[int, int]:
        """The end offset of every partition, as of the last :meth:`mark` (else now)."""
        futures, self._asked = self._asked or self._ask_ends(), None
        try:
            return {tp.partition: f.result().offset for tp, f in futures.items()}
        except KafkaException as exc:
            raise KafkaError(f"end offsets of the label topic {self.topic}: {exc}") from exc

    def _read_to(self, ends: Mapping[int, int], timeout_s: float) -> list[LabelMessage] | None:
        """Apply records until every partition's position reaches ``ends`` (``None``: timed
        out; what was read is applied all the same and returned by :meth:`_take_ready`)."""
        deadline = time.monotonic() + timeout_s
        applied: list[LabelMessage] = []
        todo = {p: end for p, end in ends.items() if end > self._positions.get(p, 0)}
        while todo:
            applied += self._apply(self._fetched())
            for p in list(todo):
                if self._positions.get(p, 0) >= todo[p]:
                    del todo[p]
            if todo and time.monotonic() > deadline:
                self._ready = applied
                return None
        return applied

    def _fetched(self) -> list[Message]:
        """The records the consumer holds, else the first to arrive within 5 ms with what came
        along. (``consume(n, timeout)`` waits the whole timeout unless ``n`` records come: 5 ms
        per poll for the few labels a batch sees, where ``poll`` returns at the first one.)"""
        msgs: list[Message] = self._consumer.consume(self.batch_max, timeout=0)
        if msgs:
            return msgs
        first = self._consumer.poll(0.005)
        if first is None:
            return []
        return [first, *self._consumer.consume(self.batch_max - 1, timeout=0)]

    def _take_ready(self) -> list[LabelMessage]:
        ready, self._ready = self._ready, []
        return ready

    def see(self, tx: TxBatch) -> list[LabelMessage]:
        """Complete pending labels from transactions about to be scored; returns those applied."""
        if len(tx):
            self._latest_tx_ms = max(self._latest_tx_ms, int(tx.event_time_ms.max()))
        if not self._pending:
            return []
        found = self._pending.keys() & set(tx.tx_id)
        if not found:
            return []
        where = {tx.tx_id[i]: i for i in range(len(tx)) if tx.tx_id[i] in found}
        facts = {
            k: (tx.account[i], tx.counterparty[i], int(tx.event_time_ms[i]))
            for k, i in where.items()
        }
        return self._complete(facts)

    def close(self) -> None:
        self._consumer.close()

    # --- internals --------------------------------------------------------------------------

    def _apply(self, msgs: list[Message]) -> list[LabelMessage]:
        good = [m for m in msgs if m.error() is None]
        for m in good:
            p = m.partition() or 0
            self._positions[p] = max(self._positions.get(p, 0), (m.offset() or 0) + 1)
        for m in msgs:
            err = m.error()
            if err is not None and err.fatal():
                raise KafkaError(f"fatal consumer error on {self.topic}: {err}")
        if not good:
            return []
        self.stats.read += len(good)
        labels, _positions, invalid = decode_labels(
            [m.value() for m in good], [m.timestamp()[1] for m in good]
        )
        for bad in invalid:
            m = good[bad.index]
            self.stats.invalid += 1
            self.dead_letter(
                m.value() or b"", m.key(), bad.reason, f"{m.topic()}/{m.partition()}/{m.offset()}"
            )
        return self._add(labels)

    def _add(self, labels: Sequence[LabelMessage]) -> list[LabelMessage]:
        result = self.book.add(labels)
        self.stats.applied += result.applied
        self.stats.duplicates += result.duplicates
        self.stats.contradicting += result.contradicting
        unresolved = set(id(u) for u in result.unresolved)
        applied = [lab for lab in labels if id(lab) not in unresolved]
        if result.unresolved:
            applied += self._resolve(result.unresolved)
        return applied

    def _resolve(self, labels: Sequence[LabelMessage]) -> list[LabelMessage]:
        """Complete ``labels`` from the store; the rest wait for their transaction."""
        facts = self._look_up([lab.tx_id for lab in labels])
        done, _ = complete_labels([lab for lab in labels if lab.tx_id in facts], facts)
        for lab in labels:
            if lab.tx_id not in facts:
                self._pending.setdefault(lab.tx_id, []).append(lab)
        self.stats.pending = sum(map(len, self._pending.values()))
        return self._add(done) if done else []

    def _look_up(self, tx_ids: list[str]) -> Mapping[str, tuple[str, str, int]]:
        self._looked_up_at = time.monotonic()
        if self.lookup is None or not tx_ids:
            return {}
        return self.lookup(tx_ids)

    def _complete(self, facts: Mapping[str, tuple[str, str, int]]) -> list[LabelMessage]:
        done, _ = complete_labels([lab for k in facts for lab in self._pending.pop(k, [])], facts)
        self.stats.pending = sum(map(len, self._pending.values()))
        return self._add(done)

    def _retry_pending(self) -> list[LabelMessage]:
        applied = self._complete(self._look_up(list(self._pending)))
        horizon = self._latest_tx_ms - PENDING_LABEL_TTL_MS
        stale = [
            k for k, labs in self._pending.items() if max(x.labelled_at_ms for x in labs) < horizon
        ]
        for k in stale:
            for lab in self._pending.pop(k):
                self.stats.never_seen += 1
                self.dead_letter(
                    encode_label(lab),
                    (lab.account or lab.tx_id).encode(),
                    f"label for a transaction never seen within 7 days of event time: {lab.tx_id}",
                    self.topic,
                )
        self.stats.pending = sum(map(len, self._pending.values()))
        if self._latest_tx_ms:
            self.book.evict(self._latest_tx_ms - KEEP_MS)
        return applied
