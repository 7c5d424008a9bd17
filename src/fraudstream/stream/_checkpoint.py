"""When a detector snapshots its partitions' state, and what each snapshot covers.

The detector tells the :class:`Checkpointer` which records each partition's state has taken in
(restored up to the committed offset, then every processed batch); the checkpointer says when
snapshots are due (``every_records`` records of one partition, or ``interval_s`` with any new
record), and the detector calls :meth:`Checkpointer.save` only once everything processed is
committed, so a snapshot's offset is always a committed one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

import numpy as np
from confluent_kafka import Message

from fraudstream.features import StateEngine
from fraudstream.stream._guard import EventTimeGuard
from fraudstream.stream._snapshot import RecordMark, Snapshot, SnapshotStore, mark_of

__all__ = ["Checkpointer"]

log = logging.getLogger(__name__)


class Checkpointer:
    """Snapshots ``topic``'s partitions of ``engine`` and ``guard`` into ``store``."""

    def __init__(
        self,
        store: SnapshotStore,
        topic: str,
        *,
        every_records: int = 250_000,
        interval_s: float = 60.0,
    ) -> None:
        self.store = store
        self.topic = topic
        self.every_records = every_records
        self.interval_s = interval_s
        self._last: dict[int, RecordMark] = {}  # the last record each partition's state holds
        self._fresh: dict[int, int] = {}  # records taken in since the last snapshot
        self._saved: dict[int, int] = {}  # the offset of each partition's newest snapshot
        self._saved_at = time.monotonic()

    def restored(self, marks: Mapping[int, RecordMark], saved: Mapping[int, int]) -> None:
        """Partitions (re)assigned: their state holds the records up to ``marks`` (the record
        below each committed offset; a partition not in ``marks`` starts empty), and ``saved``
        are the offsets of the snapshots they were restored from."""
        for p, mark in marks.items():
            self._last[p] = mark
            self._fresh[p] = 0
        self._saved.update(saved)

    def forget(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._last.pop(p, None)
            self._fresh.pop(p, None)
            self._saved.pop(p, None)

    def processed(self, msgs: list[Message], partition: np.ndarray) -> None:
        """A batch's messages (``partition``: theirs, in order) went into the state."""
        if not msgs:
            return
        parts, counts = np.unique(partition, return_counts=True)
        todo = set(parts.tolist())
        for m in reversed(msgs):  # each partition's last message (offsets increase)
            p = m.partition() or 0
            if p in todo:
                todo.discard(p)
                self._last[p] = mark_of(m)
                if not todo:
                    break
        for p, n in zip(parts.tolist(), counts.tolist(), strict=True):
            self._fresh[p] = self._fresh.get(p, 0) + n

    def due(self) -> bool:
        """Whether some partition should be snapshotted now."""
        if any(n >= self.every_records for n in self._fresh.values()):
            return True
        waited = time.monotonic() - self._saved_at >= self.interval_s
        return waited and any(self._fresh.values())

    def save(
        self, engine: StateEngine, guard: EventTimeGuard, partitions: Iterable[int] | None = None
    ) -> int:
        """Snapshot ``partitions`` (default: all held) whose outputs are all committed (the
        caller's duty), unless already saved at their offset; returns how many were written. A
        failed write is logged and skipped: the partition keeps its older snapshot."""
        todo = list(self._last) if partitions is None else partitions
        marks = guard.watermarks()
        fingerprint = engine.state_fingerprint()
        written = 0
        for p in sorted(todo):
            last = self._last.get(p)
            if last is None or self._saved.get(p) == last.offset + 1:
                continue  # no record taken in, or saved already
            snap = Snapshot(
                self.topic,
                p,
                last.offset + 1,
                fingerprint,
                last,
                engine.save_partition(p),
                marks.get(p),
            )
            try:
                self.store.save(snap)
            except OSError as exc:
                log.warning("snapshot of %s[%d] not written: %s", self.topic, p, exc)
                continue
            self._fresh[p] = 0
            self._saved[p] = snap.offset
            written += 1
        self._saved_at = time.monotonic()
        return written

    def close(self) -> None:
        """Finish the store's shared uploads still waiting (after the last :meth:`save`)."""
        self.store.close()
