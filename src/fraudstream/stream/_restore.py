"""Rebuild a partition's feature state up to the committed offset: snapshot, then the tail.

The input topic is the changelog: per-partition feature state is a pure function of the
partition's records in offset order, so replaying them through a fresh engine yields exactly the
state the previous owner had at its last commit — after a rebalance or a crash alike. The
replay goes through the detector's event-time guard (rebuilding its watermarks the same way),
so the records the live detector dead-lettered as too early or too late are left out again.

With a :class:`~fraudstream.stream._snapshot.SnapshotStore`, the replay starts from the newest
valid snapshot at or below the committed offset (local, or shared and downloaded first; state,
sweep bookkeeping and guard watermark loaded as saved) and reads only the tail; the record just
below the snapshot's offset is read back first and must be the one the snapshot names, else (a
re-created topic) the partition is replayed from its start. No usable snapshot: a warning when
one was rejected, and a full replay.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from fraudstream.errors import KafkaError
from fraudstream.features import StateEngine
from fraudstream.schema import TxBatch
from fraudstream.stream._guard import EventTimeGuard
from fraudstream.stream._kafka import CATCH_UP_PREFETCH
from fraudstream.stream._kafka_log import KAFKA_LOG
from fraudstream.stream._snapshot import RecordMark, Snapshot, SnapshotStore, mark_of

__all__ = ["Restored", "StateRestorer"]

log = logging.getLogger(__name__)

#: Decodes consumed records into a batch of the ones valid and accepted by the guard (``None`` if
#: none is), with their messages (``RecordFormat.decode_messages``).
Decode = Callable[[list[Message], EventTimeGuard], tuple[TxBatch | None, list[Message]]]


@dataclass
class Restored:
    """What a restore did: records replayed, and per partition the last record its state holds
    (the one below the committed offset) and the offset of the snapshot it started from."""

    replayed: int = 0
    last: dict[int, RecordMark] = field(default_factory=dict)
    snapshots: dict[int, int] = field(default_factory=dict)


class StateRestorer:
    """Restores partitions of ``topic`` up to given offsets into an engine: from the newest
    usable snapshot in ``snapshots`` (if any) plus the tail, else from their beginning."""

    def __init__(
        self,
        client: Mapping[str, Any],
        topic: str,
        decode: Decode,
        *,
        batch_max: int = 20_000,
        stall_timeout_s: float = 30.0,
        snapshots: SnapshotStore | None = None,
    ) -> None:
        self.client = dict(client)
        self.topic = topic
        self.decode = decode
        self.batch_max = batch_max
        self.stall_timeout_s = stall_timeout_s
        self.snapshots = snapshots

    def restore(
        self,
        engine: StateEngine,
        ends: Sequence[TopicPartition],
        guard: EventTimeGuard,
        *,
        keep_alive: Callable[[], Collection[int]] | None = None,
    ) -> Restored:
        """Restore each partition of ``ends`` into ``engine`` and ``guard`` up to ``tp.offset``
        (the committed offset): its newest usable snapshot, then the records from there through
        ``guard``. Partitions with no committed offset (negative) start empty: the detector
        reads them from the start. ``keep_alive`` is called after every replayed batch (and
        while a shared snapshot downloads) and returns partitions to give up (revoked
        meanwhile): they are left empty and out of the result. Raises :class:`KafkaError` if
        the replay stops making progress.
        """
        todo = {tp.partition: tp.offset for tp in ends if tp.offset > 0}
        engine.drop_partitions(tp.partition for tp in ends)
        guard.drop_partitions(tp.partition for tp in ends)
        done = Restored()
        if not todo:
            return done
        started = time.monotonic()
        revoked: set[int] = set()  # while loading snapshots (a download may take a while)
        alive = None if keep_alive is None else lambda: revoked.update(keep_alive())
        expect = {
            p: snap for p, end in todo.items() if (snap := self._load(engine, guard, p, end, alive))
        }
        done.snapshots = {p: snap.offset for p, snap in expect.items()}
        consumer = self._consumer()
        first: dict[int, int] = {}
        try:
            consumer.assign(
                [
                    TopicPartition(self.topic, p, expect[p].offset - 1 if p in expect else
                                   OFFSET_BEGINNING)
                    for p in todo
                ]
            )  # fmt: skip
            for p in revoked & set(todo):
                self._give_up(consumer, p, todo, expect, engine, guard, done)
            self._replay(consumer, todo, expect, engine, guard, done, first, keep_alive)
        finally:
            consumer.close()
        for p, snap in expect.items():
            done.last.setdefault(p, snap.last)
        for p, offset in sorted(first.items()):
            if offset > 0 and p not in done.snapshots:
                log.warning(
                    "state of %s[%d] rebuilt from offset %d: earlier records are gone (retention); "
                    "long-lived accounts' history features start there",
                    self.topic,
                    p,
                    offset,
                )
        log.info(
            "restored feature state of %s partition(s) %s from snapshots at %s and %d record(s) "
            "in %.2f s",
            self.topic,
            sorted(tp.partition for tp in ends if tp.offset > 0),
            done.snapshots or "none",
            done.replayed,
            time.monotonic() - started,
        )
        return done

    def _replay(
        self,
        consumer: Consumer,
        todo: dict[int, int],
        expect: dict[int, Snapshot],
        engine: StateEngine,
        guard: EventTimeGuard,
        done: Restored,
        first: dict[int, int],
        keep_alive: Callable[[], Collection[int]] | None,
    ) -> None:
        """Replay ``consumer``'s records into ``engine`` until every partition of ``todo`` is at
        its end offset (or given up by ``keep_alive``); ``first``: each one's first offset."""
        ends = set(todo)
        last_progress = time.monotonic()
        while todo:
            msgs = [m for m in consumer.consume(self.batch_max, timeout=0.5) if not m.error()]
            keep = self._tail(consumer, msgs, todo, expect, engine, guard, done)
            for m in keep:
                first.setdefault(m.partition() or 0, m.offset() or 0)
            if keep:
                done.replayed += self._feed(engine, guard, keep)
            if msgs:
                last_progress = time.monotonic()
            for p in list(todo):
                position = consumer.position([TopicPartition(self.topic, p)])[0].offset
                if position >= todo[p]:
                    del todo[p]
                    consumer.incremental_unassign([TopicPartition(self.topic, p)])
            if keep_alive is not None:
                for p in set(keep_alive()) & ends:
                    self._give_up(consumer, p, todo, expect, engine, guard, done)
                    first.pop(p, None)
            if todo and time.monotonic() - last_progress > self.stall_timeout_s:
                raise KafkaError(
                    f"state restore of {self.topic} partitions {sorted(todo)} made no progress "
                    f"for {self.stall_timeout_s:.0f} s (records deleted by retention?)"
                )

    def _give_up(
        self,
        consumer: Consumer,
        partition: int,
        todo: dict[int, int],
        expect: dict[int, Snapshot],
        engine: StateEngine,
        guard: EventTimeGuard,
        done: Restored,
    ) -> None:
        """Stop restoring ``partition`` (revoked) and leave it out of ``engine`` and ``done``."""
        if todo.pop(partition, None) is not None:
            consumer.incremental_unassign([TopicPartition(self.topic, partition)])
        expect.pop(partition, None)
        done.snapshots.pop(partition, None)
        done.last.pop(partition, None)
        engine.drop_partitions([partition])
        guard.drop_partitions([partition])

    def _consumer(self) -> Consumer:
        return Consumer(
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

    def _load(
        self,
        engine: StateEngine,
        guard: EventTimeGuard,
        partition: int,
        end: int,
        keep_alive: Callable[[], object] | None,
    ) -> Snapshot | None:
        """Load the newest usable snapshot of ``partition`` at or below ``end`` into ``engine``
        and ``guard`` (``keep_alive`` called while a shared one downloads); ``None`` (a full
        replay) if there is none."""
        if self.snapshots is None:
            return None
        snap = self.snapshots.newest(
            self.topic, partition, engine.state_fingerprint(), end, keep_alive=keep_alive
        )
        if snap is None:
            log.info("no usable snapshot of %s[%d]: replaying it all", self.topic, partition)
            return None
        try:
            engine.load_partition(partition, snap.state)
        except ValueError as exc:
            log.warning(
                "snapshot of %s[%d] at %d does not fit the engine (%s): replaying it all",
                self.topic,
                partition,
                snap.offset,
                exc,
            )
            engine.drop_partitions([partition])
            return None
        if snap.guard_watermark_ms is not None:
            guard.restore_watermarks({partition: snap.guard_watermark_ms})
        return snap

    def _tail(
        self,
        consumer: Consumer,
        msgs: list[Message],
        todo: dict[int, int],
        expect: dict[int, Snapshot],
        engine: StateEngine,
        guard: EventTimeGuard,
        done: Restored,
    ) -> list[Message]:
        """The messages of ``msgs`` to replay (below the committed offsets); checks the record
        below each snapshot's offset and restarts its partition from the beginning if it is not
        the one the snapshot names."""
        keep: list[Message] = []
        restarted: set[int] = set()
        for m in msgs:
            p, o = m.partition() or 0, m.offset() or 0
            if o >= todo.get(p, -1) or p in restarted:
                continue
            done.last[p] = mark_of(m)
            snap = expect.get(p)
            if snap is not None and o < snap.offset:
                if done.last[p] == snap.last:
                    continue  # the snapshot's own last record: checked, not replayed
                log.warning(
                    "snapshot of %s[%d] at %d names record %s below it, the topic holds %s "
                    "(re-created?): replaying the partition from its start",
                    self.topic,
                    p,
                    snap.offset,
                    snap.last,
                    done.last[p],
                )
                restarted.add(p)
                del expect[p], done.snapshots[p], done.last[p]
                engine.drop_partitions([p])
                guard.drop_partitions([p])
                consumer.incremental_unassign([TopicPartition(self.topic, p)])
                consumer.incremental_assign([TopicPartition(self.topic, p, OFFSET_BEGINNING)])
                continue
            expect.pop(p, None)  # past the check (or its record is gone): the tail
            keep.append(m)
        return keep

    def _feed(self, engine: StateEngine, guard: EventTimeGuard, msgs: list[Message]) -> int:
        batch, kept = self.decode(msgs, guard)
        if batch is None:
            return 0
        engine.update_and_extract(
            batch, np.fromiter((m.partition() for m in kept), dtype=np.int32, count=len(kept))
        )
        return len(kept)
