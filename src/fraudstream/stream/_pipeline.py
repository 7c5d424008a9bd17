"""The detector's output stage on its own thread: alerts topic and store.

The consuming thread scores and explains batch *k + 1* while this thread makes batch *k*
durable, so the slow, mostly GIL-free outputs (librdkafka flush, SQLite/PostgreSQL inserts and
commits) overlap with decoding and features. Jobs finish in submission order; the consuming
thread commits a batch's offsets only once its job is done.

Under load the jobs waiting when the thread picks up work are made durable together: one store
transaction, one producer flush. A commit's fixed cost (SQLite writes every page the batch
dirtied, a random index touches a page per row) is then paid once per group instead of once per
batch; when traffic is light a group is one job and nothing waits for company.

A store error is either an outage (retried with back-off while consumption pauses) or a
``StoreDataError``: the store refuses some row's data, so retrying would fail forever. Then the
group is stored again batch by batch, a refused batch in halves down to the single refused
rows, which go to the dead-letter topic with the reason while the rest is stored. Rows the store
skipped as conflicting duplicates (an id stored with other content) are dead-lettered too. The
dead letters are flushed with the alerts, before the consuming thread commits the offsets.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from confluent_kafka import Producer, TopicPartition

from fraudstream.errors import KafkaError, SinkBackpressure, StoreDataError, StoreError
from fraudstream.model import Bundle
from fraudstream.schema import LabelMessage, ScoredBatch, WindowStats
from fraudstream.sinks import AlertTopicSink, DriftWindow, RejectedRow, Store, rejected_row
from fraudstream.stream._replies import DecisionReplies, Replies
from fraudstream.stream._stats import StageClock

__all__ = ["DeadLetterSink", "Job", "SinkWorker"]

log = logging.getLogger(__name__)

#: One wait for the alerts' delivery; repeated (with a log line) while the broker is away.
_ALERTS_FLUSH_S = 30.0


@dataclass
class Job:
    """One consumed batch on its way to durability."""

    scored: ScoredBatch | None
    windows: list[WindowStats]
    offsets: list[TopicPartition]
    bundle: Bundle
    produced_ms: npt.NDArray[np.int64]  # Kafka timestamps of the batch's records (latency)
    durable_ms: float = field(default=0.0)
    #: labels applied to the feature state with this batch (recorded in the store's ``labels``)
    labels: tuple[LabelMessage, ...] = ()
    #: rows of ``scored`` whose decision the API awaits (``stream._replies``; ``None``: none)
    replies: Replies | None = None
    #: drift windows closed by this batch (``stream._drift``), stored with it
    drift: list[DriftWindow] = field(default_factory=list)
    #: ``scored.reasons`` are still to be computed, by the worker with ``bundle`` before any
    #: output reads them: the reason codes' TreeSHAP (which releases the interpreter lock) runs
    #: on the output thread, off the consuming thread
    explain: bool = False


class DeadLetterSink:
    """Rows the store did not keep, to the dead-letter topic: the canonical transaction as JSON,
    keyed by account, with headers ``fraudstream.error`` (the reason) and ``fraudstream.source``
    (``topic/partition/offset``)."""

    def __init__(self, producer: Producer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self._failed: list[str] = []

    def _on_delivery(self, err: object, _msg: object) -> None:
        if err is not None:
            self._failed.append(str(err))

    def write(self, source_topic: str, row: RejectedRow) -> None:
        source = f"{source_topic}/{row.partition}/{row.offset}"
        log.warning("record at %s not stored, sent to %s: %s", source, self.topic, row.reason)
        headers: list[tuple[str, str | bytes | None]] = [
            ("fraudstream.error", row.reason.encode("utf-8", "backslashreplace")),
            ("fraudstream.source", source.encode()),
        ]
        while True:
            try:
                self.producer.produce(
                    self.topic,
                    value=row.value,
                    key=row.key,
                    headers=headers,
                    on_delivery=self._on_delivery,
                )
                return
            except BufferError:
                self.producer.poll(0.05)

    def flush(self) -> None:
        """Wait for delivery; ``KafkaError`` if a dead letter could not be written."""
        self.producer.flush()
        if self._failed:
            first, self._failed = self._failed[0], []
            raise KafkaError(f"dead-letter writes to {self.topic} failed: {first}")


class SinkWorker:
    """Runs :class:`Job` outputs on a thread; at most ``max_waiting`` jobs queue behind it.

    The jobs waiting when the thread is free are made durable as one group (one store commit).

    A ``StoreError`` is retried with exponential back-off (``retry_initial_s`` doubling up to
    ``retry_max_s``) while :attr:`outage` tells the consuming thread to pause; a
    ``StoreDataError`` sends the refused rows to ``dead_letters`` (logged only without one) and
    stores the rest; any other error stops the worker and is re-raised on the consuming thread.
    :attr:`rejected` counts the rows not stored.
    """

    def __init__(
        self,
        alerts: AlertTopicSink,
        store: Store,
        *,
        max_waiting: int = 3,
        recorded_model: str | None = None,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        clock: StageClock | None = None,
        dead_letters: DeadLetterSink | None = None,
        replies: DecisionReplies | None = None,
    ) -> None:
        self.alerts = alerts
        self.replies = replies  # decisions the API awaits, queued once the store committed
        self.dead_letters = dead_letters
        self.rejected = 0
        self.store_retries = 0  # store writes retried after an outage (metrics)
        self.store = store
        self.max_waiting = max_waiting
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        #: why the outputs cannot take more now (a store outage, a full alerts queue): the
        #: consuming thread pauses while it is set
        self.outage: StoreError | SinkBackpressure | None = None
        self.clock = clock or StageClock()  # this thread's time per stage (store_commit: groups)
        self._todo: deque[Job] = deque()
        self._done: deque[Job] = deque()
        self._busy = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._failure: BaseException | None = None
        self._models = {recorded_model} if recorded_model else set()  # versions in the store
        self._thread = threading.Thread(target=self._loop, name="fraudstream-sinks", daemon=True)
        self._thread.start()

    def submit(self, job: Job, keep_alive: Callable[[], None]) -> None:
        """Queue ``job``; while ``max_waiting`` are queued, call ``keep_alive`` and wait."""
        with self._cond:
            while len(self._todo) >= self.max_waiting and self._failure is None:
                self._cond.wait(0.05)
                if self.outage is not None:
                    break
            self._raise_failure()
            self._todo.append(job)
            self._cond.notify_all()
        keep_alive()

    def completed(self) -> list[Job]:
        """Jobs made durable since the last call, in submission order."""
        with self._cond:
            self._raise_failure()
            done = list(self._done)
            self._done.clear()
            return done

    def in_flight(self) -> int:
        with self._cond:
            return self._pending()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every submitted job is durable (``False`` on timeout or outage)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._pending() and self.outage is None and self._failure is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            self._raise_failure()
            return not self._pending()

    def stop(self) -> None:
        """Finish the job in hand (or abandon it during an outage) and end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=60)
        if self.replies is not None and not self._thread.is_alive():
            self.replies.close()  # the direct connections, owned by the thread that ended

    def _pending(self) -> int:
        return len(self._todo) + self._busy

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._todo and not self._stopping:
                    self._cond.wait()
                if not self._todo:
                    return
                group = list(self._todo)
                self._todo.clear()
                self._busy = len(group)
            try:
                finished = self._run(group)
            except BaseException as exc:  # handed to the consuming thread
                with self._cond:
                    self._failure = exc
                    self._busy = 0
                    self._cond.notify_all()
                return
            with self._cond:
                self._busy = 0
                if finished:
                    durable_ms = time.time() * 1000
                    for job in group:
                        job.durable_ms = durable_ms
                    self._done.extend(group)
                self._cond.notify_all()
                if not finished:
                    self._todo.clear()  # stopped during an outage: nothing more is durable
                    return
                idle = not self._todo
            if idle:
                self._maintain()

    def _maintain(self) -> None:
        """Nothing to write: the store's housekeeping (SQLite's checkpoint), off any batch's path.
        A failure here is the next write's to report."""
        maintain = getattr(self.store, "maintain", None)
        if maintain is None:
            return
        try:
            maintain()
        except StoreError as exc:
            log.warning("store housekeeping failed: %s", exc)

    def _run(self, group: list[Job]) -> bool:
        """Make ``group`` durable: reasons computed where they wait (:attr:`Job.explain`),
        alerts produced, one store commit, then one producer flush."""
        clock = self.clock
        for job in group:
            if job.explain and job.scored is not None:
                with clock("explain"):  # the model's reasons for every final review/block
                    job.scored.reasons = job.bundle.explain_alerts(
                        job.scored.features, job.scored.decision
                    )
                job.explain = False
        for job in group:
            if job.scored is not None:
                with clock("alerts_produce"):
                    if not self._produce_alerts(job.scored):
                        return False
        rejects = self._store_durably(group)
        if rejects is None:
            return False
        if rejects:
            self._dead_letter(group, rejects)
        if self.replies is not None:
            for job in group:
                if job.replies is not None and job.scored is not None:
                    self.replies.write(job.scored, job.replies, rejects)
        with clock("alerts_flush"):
            self._flush_alerts()
        return True

    def _produce_alerts(self, scored: ScoredBatch) -> bool:
        """Queue the batch's alerts (sent by librdkafka while the store commits); while the
        producer's queue stays full, pause consumption (:attr:`outage`) and try again. ``False``
        if stopped meanwhile. A retry may queue an alert twice: the same id and content."""
        waited_s = 0.0
        while True:
            try:
                self.alerts.write(scored)
                break
            except SinkBackpressure as exc:
                self.outage = exc
                waited_s += self.alerts.produce_timeout_s
                log.error(
                    "alerts cannot be queued for %.0f s; consumption paused, nothing committed: %s",
                    waited_s,
                    exc,
                )
                with self._cond:
                    if self._stopping:
                        return False
        if waited_s:
            log.warning("the alerts queue drains again after %.0f s; consumption resumes", waited_s)
            self.outage = None
        return True

    def _flush_alerts(self) -> None:
        """Wait for the alerts' delivery as long as the broker is away (unless stopping).

        librdkafka reconnects by itself; a record it could not deliver within its
        ``message.timeout.ms`` (5 minutes) fails, which raises ``KafkaError`` and stops the
        detector with the batch uncommitted (replayed on restart). A stop request while waiting
        does the same at once.
        """
        waited_s = 0.0
        while True:
            try:
                self.alerts.flush(_ALERTS_FLUSH_S)
            except SinkBackpressure as exc:
                waited_s += _ALERTS_FLUSH_S
                with self._cond:
                    stopping = self._stopping
                if stopping:
                    raise
                log.warning(
                    "waiting for the broker for %.0f s: %s; nothing is committed meanwhile",
                    waited_s,
                    exc,
                )
                continue
            if waited_s:
                log.warning("the broker is back: alerts delivered after %.0f s", waited_s)
            return

    def _dead_letter(self, group: list[Job], rejects: list[RejectedRow]) -> None:
        self.rejected += len(rejects)
        topic = next((tp.topic for job in group for tp in job.offsets), "?")
        if self.dead_letters is None:
            for row in rejects:
                log.error(
                    "record at %s/%d/%d not stored: %s",
                    topic,
                    row.partition,
                    row.offset,
                    row.reason,
                )
            return
        for row in rejects:
            self.dead_letters.write(topic, row)
        self.dead_letters.flush()

    def _store_once(self, group: list[Job]) -> None:
        windows: list[WindowStats] = []
        with self.clock("store_write"):
            new = {job.bundle.version for job in group} - self._models
            for job in group:
                if job.bundle.version in new:  # a hot-reloaded bundle's first batch
                    new.discard(job.bundle.version)
                    metrics = json.dumps(job.bundle.metrics, default=str)
                    self.store.record_model_version(job.bundle.version, metrics)
                if job.scored is not None:
                    self.store.write(job.scored)
                windows += job.windows
            if windows:
                self.store.write_window_stats(windows)
            drift = [w for job in group for w in job.drift]
            if drift:
                self.store.write_drift(drift)
        labels = [lab for job in group for lab in job.labels]
        if labels:
            with self.clock("store_labels"):  # (SQLite commits here, with the rows before)
                self.store.record_labels(labels)  # idempotent on label_id
        with self.clock("store_commit"):
            self.store.flush()
        self._models |= {job.bundle.version for job in group}

    def _store_safely(self, group: list[Job]) -> list[RejectedRow]:
        """Store the group; the rows the store refused or skipped as conflicting (not stored)."""
        self.store.take_rejected()  # left by an attempt an outage interrupted: found again
        try:
            self._store_once(group)
            refused: list[RejectedRow] = []
        except StoreDataError as exc:
            log.warning(
                "the store refused some row of %d batch(es), isolating it: %s", len(group), exc
            )
            refused = self._isolate(group)
        return refused + self.store.take_rejected()

    def _isolate(self, group: list[Job]) -> list[RejectedRow]:
        """Store the group batch by batch; the rows the store refuses, found by halving."""
        refused: list[RejectedRow] = []
        for job in group:
            if job.scored is not None and len(job.scored):
                refused += self._store_rows(job.scored)
        windows = [w for job in group for w in job.windows]
        drift = [w for job in group for w in job.drift]
        if windows or drift:
            try:
                self.store.write_window_stats(windows)
                self.store.write_drift(drift)
                self.store.flush()
            except StoreDataError as exc:
                log.error(
                    "%d window(s) of statistics and %d of drift not stored: %s",
                    len(windows),
                    len(drift),
                    exc,
                )
        return refused

    def _store_rows(self, batch: ScoredBatch) -> list[RejectedRow]:
        try:
            self.store.write(batch)
            self.store.flush()
            return []
        except StoreDataError as exc:
            if len(batch) == 1:
                return [rejected_row(batch, 0, f"the store refused the row: {exc}")]
        index = np.arange(len(batch))
        half = len(batch) // 2
        return self._store_rows(batch.take(index[:half])) + self._store_rows(
            batch.take(index[half:])
        )

    def _store_durably(self, group: list[Job]) -> list[RejectedRow] | None:
        """Write and commit the group, retrying through an outage; the rows not stored, or
        ``None`` if stopped."""
        try:
            return self._store_safely(group)
        except StoreError as exc:
            self.outage = exc
        started = time.monotonic()
        delay = self.retry_initial_s
        attempts = 1
        log.error(
            "store unavailable, offsets not committed; consumption paused, retrying the batch "
            "every ≤%.0f s: %s",
            self.retry_max_s,
            self.outage,
        )
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping, timeout=delay)
                if self._stopping:
                    return None
            attempts += 1
            self.store_retries += 1
            try:
                rejects = self._store_safely(group)
                break
            except StoreError as exc:
                log.warning("store still unavailable (attempt %d): %s", attempts, exc)
                delay = min(self.retry_max_s, delay * 2)
        log.info("store back after %.1f s and %d attempt(s)", time.monotonic() - started, attempts)
        self.outage = None
        return rejects
