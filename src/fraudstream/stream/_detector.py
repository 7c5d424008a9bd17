"""The detector loop: consume a batch, validate, featurise, score, decide, emit, then commit."""

from __future__ import annotations

import functools
import gc
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka import KafkaError as KafkaErrorCode

from fraudstream.config import PRIVATE_NETWORKS
from fraudstream.errors import KafkaError, ModelError, SinkBackpressure, StoreError
from fraudstream.features import StateEngine
from fraudstream.model import Bundle
from fraudstream.schema import (
    Invalid,
    LabelMessage,
    ScoredBatch,
    ShadowScores,
    TxBatch,
    WindowStats,
    card_to_batch,
    decode_card,
    decode_paysim,
    paysim_to_batch,
)
from fraudstream.sinks import AlertTopicSink, DriftWindow, Store
from fraudstream.stream._checkpoint import Checkpointer
from fraudstream.stream._drift import DriftMonitor
from fraudstream.stream._guard import EventTimeGuard, guard_for
from fraudstream.stream._kafka import DEFAULT_FETCH_WAIT_MS
from fraudstream.stream._labels import LabelReader
from fraudstream.stream._metrics import DetectorMetrics
from fraudstream.stream._models import ModelWatcher
from fraudstream.stream._pipeline import DeadLetterSink, Job, SinkWorker
from fraudstream.stream._replies import DecisionReplies, DirectReplies, reply_rows
from fraudstream.stream._restore import StateRestorer
from fraudstream.stream._rules import LiveRules
from fraudstream.stream._stats import DetectorStats
from fraudstream.stream._watchdog import LagWatchdog
from fraudstream.stream._window import SlidingWindow

__all__ = [
    "CARD",
    "PAYSIM",
    "Detector",
    "DetectorTopics",
    "RecordFormat",
    "format_of",
]

log = logging.getLogger(__name__)

OnWindow = Callable[[WindowStats, DetectorStats], None]
#: The drift monitor of a bundle (``None``: not monitored), called again after a hot reload.
DriftFor = Callable[[Bundle], DriftMonitor | None]
#: A new consumer whose broker may hold a fetch up to the given ms (same group and settings).
Reconnect = Callable[[int], Consumer]
#: The longest fetch wait a rejoin asks for (see ``Detector._rejoin``).
FETCH_WAIT_MAX_MS = 1_600
#: ``run(idle_exit_s=…)`` gives up waiting for a first partition assignment after this long.
UNASSIGNED_EXIT_S = 60.0


@dataclass(frozen=True)
class DetectorTopics:
    source: str
    alerts: str
    dlq: str


#: A dead-letter copy over the producer's message size keeps this many bytes of its value.
DLQ_TRUNCATE_BYTES: Final = 65_536


class _DlqWriter:
    """Invalid records to the dead-letter topic: original key and value, reason in headers."""

    def __init__(self, producer: Producer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self.failed: list[str] = []

    def _on_delivery(self, err: object, _msg: object) -> None:
        if err is not None:
            self.failed.append(str(err))

    def write(self, msg: Message, reason: str) -> None:
        source = f"{msg.topic()}/{msg.partition()}/{msg.offset()}"
        self.write_value(msg.value(), msg.key(), reason, source)

    def write_value(self, value: bytes | None, key: bytes | None, reason: str, source: str) -> None:
        """A record (``value``, ``key``) read at ``source`` to the dead-letter topic."""
        log.warning("invalid record at %s sent to %s: %s", source, self.topic, reason)
        headers: list[tuple[str, str | bytes | None]] = [
            ("fraudstream.error", reason.encode()),
            ("fraudstream.source", source.encode()),
        ]
        while True:
            try:
                self.producer.produce(
                    self.topic,
                    value=value,
                    key=key,
                    headers=headers,
                    on_delivery=self._on_delivery,
                )
                return
            except BufferError:
                self.producer.poll(0.05)
            except KafkaException as exc:
                # the copy with its headers is over the producer's message.max.bytes (a record
                # that just fitted): keep its head and say how long it was
                if exc.args[0].code() != KafkaErrorCode.MSG_SIZE_TOO_LARGE or value is None:
                    raise
                if len(value) <= DLQ_TRUNCATE_BYTES and len(key or b"") <= DLQ_TRUNCATE_BYTES:
                    raise
                log.warning(
                    "dead-letter copy of %s cut to its first %d bytes", source, DLQ_TRUNCATE_BYTES
                )
                headers.append(("fraudstream.truncated", str(len(value)).encode()))
                value, key = value[:DLQ_TRUNCATE_BYTES], (key or b"")[:DLQ_TRUNCATE_BYTES] or None

    def check(self) -> None:
        if self.failed:
            first, self.failed = self.failed[0], []
            raise KafkaError(f"dead-letter writes to {self.topic} failed: {first}")


@dataclass(frozen=True)
class Polled:
    """Where each message of a batch was read: one pass over the messages, then columns."""

    topic: str
    partition: npt.NDArray[np.int32]
    offset: npt.NDArray[np.int64]
    timestamp_ms: list[int]

    @classmethod
    def of(cls, msgs: list[Message]) -> Polled:
        """The columns of ``msgs`` (all read from one topic, as a detector's consumer does)."""
        n = len(msgs)
        return cls(
            topic=(msgs[0].topic() or "") if msgs else "",
            partition=np.fromiter((m.partition() for m in msgs), np.int32, n),
            offset=np.fromiter((m.offset() for m in msgs), np.int64, n),
            timestamp_ms=[m.timestamp()[1] for m in msgs],
        )

    def take(self, positions: list[int]) -> Polled:
        """The rows at ``positions`` (the valid records' messages)."""
        if len(positions) == len(self.offset):
            return self
        ts = [self.timestamp_ms[i] for i in positions]
        return Polled(self.topic, self.partition[positions], self.offset[positions], ts)

    def next_offsets(self) -> list[TopicPartition]:
        """The offsets to commit after these messages: one past each partition's last."""
        if not len(self.offset):
            return []
        return [
            TopicPartition(self.topic, int(p), int(self.offset[self.partition == p].max()) + 1)
            for p in np.unique(self.partition).tolist()
        ]


def _record_ids(polled: Polled) -> list[str]:
    """A stable id per Kafka record: the timestamp tells a new topic incarnation (the embedded
    broker keeps nothing across restarts) from a redelivery of the same record."""
    topic = polled.topic
    return [
        f"{topic}/{p}/{o}@{t}"
        for p, o, t in zip(
            polled.partition.tolist(), polled.offset.tolist(), polled.timestamp_ms, strict=True
        )
    ]


@dataclass(frozen=True)
class Decoded:
    """Consumed messages after decoding, validation and the event-time guard."""

    polled: Polled  # every message
    tx: TxBatch | None  # the accepted records (``None``: none)
    kept: list[int]  # the accepted records' positions among the messages
    rejected: list[tuple[int, str]]  # (position, reason) of every other message, in order

    @property
    def accepted(self) -> Polled:
        """Where each accepted record was read."""
        return self.polled.take(self.kept)


@dataclass(frozen=True)
class RecordFormat:
    """How a topic's records are decoded and mapped onto the canonical batch."""

    name: str
    #: (values, broker timestamps in ms) -> (records, their positions, invalid ones)
    decode: Callable[
        [Sequence[bytes | None], Sequence[int] | None], tuple[list[Any], list[int], list[Invalid]]
    ]
    to_batch: Callable[[list[Any], Polled], TxBatch]

    def read(self, msgs: list[Message], guard: EventTimeGuard) -> Decoded:
        """Decode and validate ``msgs`` (all without a consumer error), then pass the valid
        records' event times through ``guard`` (which advances its watermarks).

        The detector and the state restorer both read through here, so a partition replayed
        from its start gets the same decisions, and the same state, as when it was live.
        """
        polled = Polled.of(msgs)
        # no broker timestamps: the guard holds event times to the configured skew instead
        records, kept, invalid = self.decode([m.value() for m in msgs], None)
        rejected = [(bad.index, bad.reason) for bad in invalid]
        if not records:
            return Decoded(polled, None, [], rejected)
        accepted = polled.take(kept)
        tx = self.to_batch(records, accepted)
        ts = np.array(accepted.timestamp_ms, dtype=np.int64)
        late = guard.check(tx.event_time_ms, ts, accepted.partition)
        if not late:
            return Decoded(polled, tx, kept, rejected)
        rows = np.array([j for j in range(len(kept)) if j not in late], dtype=np.intp)
        rejected += [(kept[j], f"event-time guard: {why}") for j, why in late.items()]
        rejected.sort(key=lambda r: r[0])
        kept = [kept[j] for j in rows.tolist()]
        return Decoded(polled, tx.take(rows) if kept else None, kept, rejected)

    def decode_messages(
        self, msgs: list[Message], guard: EventTimeGuard
    ) -> tuple[TxBatch | None, list[Message]]:
        """The accepted records among ``msgs`` as a batch, with their messages (for replays)."""
        good = [m for m in msgs if m.error() is None]
        read = self.read(good, guard)
        return read.tx, [good[i] for i in read.kept]


def _paysim_batch(records: list[Any], polled: Polled) -> TxBatch:
    """The canonical batch of decoded PaySim ``records`` read from the messages ``polled``."""
    return paysim_to_batch(records, _record_ids(polled), polled.timestamp_ms)


def _card_batch(records: list[Any], polled: Polled) -> TxBatch:
    """The canonical batch of card records (event time from the record, as in the handbook)."""
    return card_to_batch(records, _record_ids(polled))


PAYSIM: Final = RecordFormat("paysim", decode_paysim, _paysim_batch)
CARD: Final = RecordFormat("card", decode_card, _card_batch)


def format_of(mode: str, extras: tuple[str, ...] = ()) -> RecordFormat:
    """The record format a bundle trained in ``mode`` scores (``card`` or a PaySim mode),
    reading the extra fields ``extras`` too (card)."""
    if mode != "card":
        return PAYSIM
    return CARD if not extras else _card_with(extras)


@functools.cache
def _card_with(extras: tuple[str, ...]) -> RecordFormat:
    """The card format reading the extra fields ``extras`` into the batch."""

    def decode(
        values: Sequence[bytes | None], broker_ts_ms: Sequence[int] | None
    ) -> tuple[list[Any], list[int], list[Invalid]]:
        return decode_card(values, broker_ts_ms, extras)

    def to_batch(records: list[Any], polled: Polled) -> TxBatch:
        return card_to_batch(records, _record_ids(polled), extras)

    return RecordFormat("card", decode, to_batch)


class Detector:
    """Score every transaction of ``topics.source``; commit offsets only after outputs are durable.

    Per batch, on the consuming thread: decode + validate (invalid → DLQ), features, one model
    call, decisions (the model's thresholds, then the fraud team's ``rules``, polled between
    batches), window statistics; then a :class:`SinkWorker` thread computes the alerts' reason
    codes, produces the alerts, flushes the producer and commits the store, while the next batch
    is scored. (The reason codes' kernel releases the interpreter lock, so on the output thread
    it runs beside the next batch's scoring, which set the pace when it ran here.)
    A batch's offsets are committed once its job is durable; a crash anywhere before replays
    it, and outputs are idempotent on tx_id.

    Back-pressure: while the store raises ``StoreError`` the worker retries the batch with
    exponential back-off (``store_retry_initial_s`` doubling up to ``store_retry_max_s``), and
    while the alerts producer's queue stays full it keeps trying; meanwhile the consuming thread
    pauses the assigned partitions and commits nothing; both resume when the output takes
    records again. A stop request during the outage abandons the batch uncommitted.
    """

    def __init__(
        self,
        *,
        consumer: Consumer,
        producer: Producer,
        topics: DetectorTopics,
        store: Store,
        bundle: Bundle,
        engine: StateEngine,
        window: SlidingWindow,
        batch_max: int = 20_000,
        poll_timeout_ms: int = 100,
        on_window: OnWindow | None = None,
        store_retry_initial_s: float = 0.5,
        store_retry_max_s: float = 30.0,
        restorer: StateRestorer | None = None,
        models: ModelWatcher | None = None,
        challenger: Bundle | None = None,
        watchdog: LagWatchdog | None = None,
        metrics: DetectorMetrics | None = None,
        reconnect: Reconnect | None = None,
        fetch_wait_ms: int = DEFAULT_FETCH_WAIT_MS,
        labels: Callable[[Callable[[bytes, bytes | None, str, str], None]], LabelReader]
        | None = None,
        guard: EventTimeGuard | None = None,
        rules: LiveRules | None = None,
        checkpointer: Checkpointer | None = None,
        decisions_topic: str | None = None,
        drift: DriftFor | None = None,
        reply_networks: Sequence[str] = PRIVATE_NETWORKS,
    ) -> None:
        self.consumer = consumer
        # a card bundle reads card records, and the extra fields it uses
        self.record_format = format_of(bundle.mode, bundle.extras.names_read)
        self.producer = producer
        self.topics = topics
        self.store = store
        self.bundle = bundle
        self.engine = engine
        self.window = window
        self.batch_max = batch_max
        self.poll_timeout_ms = poll_timeout_ms
        self.on_window = on_window
        self.store_retry_initial_s = store_retry_initial_s
        self.store_retry_max_s = store_retry_max_s
        self.stats = DetectorStats()
        self._should_stop: Callable[[], bool] = lambda: False
        self._stash: list[Message] = []  # records polled while paused: the next batch's head
        self.restorer = restorer
        #: snapshots of the partitions' state, taken when all is committed (``None``: none)
        self.checkpointer = checkpointer
        self.models = models
        self.challenger = challenger
        #: lag and stalls, when the consumer was made with ``stats_cb=watchdog.on_stats``
        self.watchdog = watchdog
        self.metrics = metrics  # Prometheus, updated once a second
        #: a stalled consumer is replaced by ``reconnect`` (see :meth:`_rejoin`)
        self.reconnect = reconnect
        self.fetch_wait_ms = fetch_wait_ms  # the consumer's, raised by each rejoin
        #: event times too far ahead or behind go to the DLQ; shared with ``restorer``
        self.guard = guard if guard is not None else guard_for(self.record_format.name)
        #: the fraud team's rules and lists, polled between batches (``None``: the model only)
        self.rules = rules
        #: records with the API's reply header are answered there (``None``: never)
        self.decisions_topic = decisions_topic
        #: where a record's API instance may be answered directly (``stream._replies``)
        self.reply_networks = tuple(reply_networks)
        #: drift of the scored rows against the bundle's reference (``stream._drift``)
        self._drift_for = drift
        self.drift = drift(bundle) if drift is not None else None
        if challenger is not None and (
            challenger.feature_names != engine.feature_names or challenger.extras != bundle.extras
        ):
            raise ModelError(
                f"challenger {challenger.version} uses other features (mode {challenger.mode}) "
                f"than the champion's engine (mode {engine.mode}); shadow scoring needs the same"
            )
        self._assigned: set[int] = set()
        #: assigned partitions, paused until their state is restored (outside the callback)
        self._to_restore: set[int] = set()
        self._restoring: set[int] = set()  # being restored now
        self._revoked_restoring: set[int] = set()  # revoked while being restored
        self._alerts = AlertTopicSink(producer, topics.alerts)
        self._dlq = _DlqWriter(producer, topics.dlq)
        #: the label channel (every partition of the labels topic) into ``engine.labels``
        self.labels = labels(self._dlq.write_value) if labels is not None else None
        self._labels_read: list[LabelMessage] = []  # applied, recorded with the next batch
        self._labels_polled_at = 0.0
        self._sinks: SinkWorker | None = None
        self._committing: dict[tuple[str, int], int] = {}  # last offsets committed asynchronously
        self._frozen_at = 0.0

    def run(
        self, should_stop: Callable[[], bool], *, idle_exit_s: float | None = None
    ) -> DetectorStats:
        """Loop until ``should_stop()`` (checked between batches) or ``idle_exit_s`` idle.

        Idle time counts only while partitions are assigned (a group join after a crash waits
        for the dead member's session to expire), or after :data:`UNASSIGNED_EXIT_S` without any.
        """
        self._should_stop = should_stop
        self.engine.warm_up()  # compiled kernels loaded before the first batch, not during it
        self.bundle.warm_up()
        if self.drift is not None:
            self.drift.warm_up()
        if self.challenger is not None:
            self.challenger.warm_up()
        if self.rules is not None:  # before any write of this detector holds SQLite's lock
            self.rules.start()  # its connection belongs to this (the consuming) thread
        self._record_model(self.bundle)
        if self.labels is not None:
            self._labels_read = self.labels.catch_up()  # every label so far, before any batch
        self._sinks = SinkWorker(
            self._alerts,
            self.store,
            recorded_model=self.bundle.version,
            retry_initial_s=self.store_retry_initial_s,
            retry_max_s=self.store_retry_max_s,
            clock=self.stats.sink_clock,
            dead_letters=DeadLetterSink(self.producer, self.topics.dlq),  # rows the store refused
            replies=DecisionReplies(
                self.producer, self.decisions_topic, DirectReplies(self.reply_networks)
            )
            if self.decisions_topic
            else None,
        )
        if self.metrics is not None:
            self.metrics.follow(self._sinks, self.watchdog)  # outage, retries, lag: when scraped
            self.metrics.follow_drift(lambda: self.drift)
        self._subscribe()
        started = last_data = time.monotonic()
        try:
            while not should_stop():
                if self._to_restore:
                    self._restore_assigned()
                    last_data = time.monotonic()  # a restore is not idleness
                msgs = self._next_batch()
                self._commit_durable()
                self._maybe_checkpoint()
                self._freeze_gc()
                self._watch()
                now = time.monotonic()
                if msgs or (not self._assigned and now - started < UNASSIGNED_EXIT_S):
                    if msgs:
                        self.process(msgs)
                    last_data = now
                elif idle_exit_s is not None and now - last_data > idle_exit_s:
                    break
                else:
                    self._idle_labels(now)
        finally:
            self.close()
        return self.stats

    def _idle_labels(self, now: float) -> None:
        """With no transactions, still apply (and record) labels once a second."""
        if self.labels is None or now - self._labels_polled_at < 1.0:
            return
        self._labels_polled_at = now
        self._labels_read += self.labels.poll()
        self.stats.labels = self.labels.stats
        if self._labels_read and self._sinks is not None:
            job = Job(
                scored=None,
                windows=[],
                offsets=[],
                bundle=self.bundle,
                produced_ms=np.empty(0, dtype=np.int64),
                labels=tuple(self._labels_read),
            )
            self._labels_read = []
            self._sinks.submit(job, keep_alive=self._commit_durable)

    def _subscribe(self) -> None:
        self.consumer.subscribe(
            [self.topics.source],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )

    def _watch(self) -> None:
        """Let the watchdog see progress; copy its reading into the stats and the metrics.

        A stall with a ``reconnect`` at hand is healed by :meth:`_rejoin`, unless no broker is
        reachable (a new consumer would not help: librdkafka reconnects by itself).
        """
        if self.watchdog is not None:
            report = self.watchdog.observe(self.stats.consumed)
            self.stats.lag = report.lag
            self.stats.stalled_s = report.stalled_s
            self.stats.stalls = self.watchdog.stalls
            if report.stalled and report.broker_up and self.reconnect is not None:
                self._rejoin(self.reconnect)
        if self.metrics is not None:
            rules = self.rules.version if self.rules is not None else None
            self.metrics.update(
                self.stats, model_version=self.bundle.version, rule_set_version=rules
            )

    def _rejoin(self, reconnect: Reconnect) -> None:
        """Replace a stalled consumer by one whose broker may hold a fetch 4× longer.

        The embedded broker answers a fetch that takes longer than ``fetch.wait.max.ms`` with
        nothing, and its reads slow down as partitions fill: a longer wait lets it answer again.
        What is durable is committed first; the new consumer joins the group, and the state of
        its partitions is restored up to the committed offsets, as after any rebalance.
        """
        self.fetch_wait_ms = min(self.fetch_wait_ms * 4, FETCH_WAIT_MAX_MS)
        log.warning(
            "rejoining the group with a new consumer that lets the broker hold a fetch up to "
            "%d ms (the stalled one's fetches came back empty)",
            self.fetch_wait_ms,
        )
        # the same hand-over as a revocation: durable batches committed, state and stash dropped
        # (restored by the new consumer's assignment)
        held = [TopicPartition(self.topics.source, p) for p in sorted(self._assigned)]
        self._on_revoke(self.consumer, held)
        self.consumer.close()
        self.consumer = reconnect(self.fetch_wait_ms)
        self._subscribe()
        if self.watchdog is not None:
            self.watchdog.reset()

    def _next_batch(self) -> list[Message]:
        """Adaptive batching: whatever is ready (up to ``batch_max``), else wait for the first."""
        with self.stats.clock("poll"):
            msgs = self._poll_batch()
        if msgs and self.labels is not None:
            self.labels.mark()  # the label topic's end as of this fetch, asked while decoding
        return msgs

    def _poll_batch(self) -> list[Message]:
        if self._stash:
            stashed, self._stash = self._stash, []
            room = self.batch_max - len(stashed)
            return stashed + (self.consumer.consume(room, timeout=0) if room > 0 else [])
        msgs: list[Message] = self.consumer.consume(self.batch_max, timeout=0)
        if msgs:
            return msgs
        first = self.consumer.poll(self.poll_timeout_ms / 1000)
        if first is None:
            return []
        return [first, *self.consumer.consume(self.batch_max - 1, timeout=0)]

    def process(self, msgs: list[Message]) -> None:
        """Score one batch and hand its outputs to the sink worker (committed once durable)."""
        self._maybe_reload()
        if self.rules is not None:
            with self.stats.clock("rules_poll"):
                self.rules.poll(self.bundle)  # a new version or list entry acts from this batch
        clock = self.stats.clock
        labels = self.labels
        with clock("decode"):
            good = [m for m in msgs if m.error() is None]
            if len(good) < len(msgs):
                for m in msgs:
                    self._is_error(m)  # raises on a fatal error, logs the others
            read = self.record_format.read(good, self.guard)  # invalid, too early or too late
            for at, reason in read.rejected:
                self._dlq.write(good[at], reason)
            polled = read.polled
        if labels is not None:
            with clock("labels"):  # every label appended before the fetch, before scoring
                self._labels_read += labels.poll()
        scored: ScoredBatch | None = None
        closed: list[WindowStats] = []
        drift: list[DriftWindow] = []
        replies = None
        if read.tx is not None:
            if self.decisions_topic:  # rows whose decision ``fraudstream serve`` awaits
                replies = reply_rows(good, read.kept)
            tx, kept = read.tx, read.accepted
            if labels is not None:
                self._labels_read += labels.see(tx)  # labels that waited for these transactions
            scored = self._score(tx, kept)
            with clock("windows"):
                self.stats.count(scored.decision, scored.tx.label)
                closed = self._windows(scored)
            if self.drift is not None:
                with clock("drift"):
                    drift = self.drift.add(scored.tx.event_time_ms, scored.features, scored.score)
        job = Job(
            scored=scored,
            windows=closed,
            offsets=polled.next_offsets(),
            bundle=self.bundle,
            produced_ms=np.array(polled.timestamp_ms, dtype=np.int64),
            labels=tuple(self._labels_read),
            replies=replies,
            drift=drift,
            explain=scored is not None,
        )
        self._labels_read = []
        if labels is not None:
            self.stats.labels = labels.stats
        assert self._sinks is not None, "process() runs inside run()"
        with clock("hand_over"):
            self._sinks.submit(job, keep_alive=self._commit_durable)
        self.stats.consumed += len(good)
        self.stats.valid += len(read.kept)
        self.stats.invalid += len(read.rejected)
        self.stats.batches += 1
        if self.checkpointer is not None:
            self.checkpointer.processed(good, polled.partition)

    def _commit_durable(self) -> None:
        """Commit the offsets of every durable batch; hold consumption through a store outage."""
        if self._sinks is None:
            return
        if self._sinks.outage is not None:
            self._hold_during_outage(self._sinks)
        for job in self._sinks.completed():
            self._dlq.check()
            self._durable(job)

    def _freeze_gc(self) -> None:
        """Move surviving objects out of the collector's sight once a second.

        The feature state is millions of long-lived, acyclic objects; without this a full
        collection walks all of them and stalls a batch by hundreds of milliseconds.
        """
        now = time.monotonic()
        if now - self._frozen_at >= 1.0:
            gc.freeze()
            self._frozen_at = now

    def _durable(self, job: Job) -> None:
        """Commit a durable batch's offsets, count it in the metrics, call :meth:`on_durable`."""
        self._commit(job.offsets)
        if self.metrics is not None:
            self.metrics.observe_job(job.produced_ms, job.durable_ms)
        self.on_durable(job)

    def on_durable(self, job: Job) -> None:
        """Called once per batch after its offsets are committed (benchmarks time it)."""

    def _maybe_reload(self) -> None:
        """Switch to a newly promoted bundle, or challenger, between batches (hot reload)."""
        if self.models is None:
            return
        changed, challenger = self.models.poll_challenger()
        if changed:
            was = self.challenger.version if self.challenger is not None else "none"
            now = challenger.version if challenger is not None else "none"
            log.info("shadow scoring: challenger %s replaces %s", now, was)
            self.challenger = challenger
        if (bundle := self.models.poll()) is None:
            return
        log.info("hot reload: model %s replaces %s", bundle.version, self.bundle.version)
        self.bundle = bundle
        if self._drift_for is not None:  # against the new bundle's reference from now on
            self.drift = self._drift_for(bundle)

    def _record_model(self, bundle: Bundle) -> None:
        self.store.record_model_version(bundle.version, json.dumps(bundle.metrics, default=str))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Take newly assigned partitions paused: their state is restored up to the committed
        offsets by :meth:`_restore_assigned`, outside this callback (a restore may outlast
        ``max.poll.interval.ms``, and librdkafka counts time spent in the callback against it)."""
        if not partitions:
            return
        log.info("assigned %s", sorted(tp.partition for tp in partitions))
        self._assigned |= {tp.partition for tp in partitions}
        if self.restorer is None:
            self.engine.drop_partitions(tp.partition for tp in partitions)
            self.guard.drop_partitions(tp.partition for tp in partitions)
            return
        consumer.incremental_assign(partitions)
        consumer.pause(partitions)
        self._to_restore |= {tp.partition for tp in partitions}

    def _restore_assigned(self) -> None:
        """Rebuild the state of the partitions assigned paused, then resume them.

        Between replayed batches the group consumer is polled (:meth:`_keep_member`), so the
        member stays in the group however long the replay takes; a partition revoked meanwhile
        is dropped from the restore, one assigned meanwhile is restored next.
        """
        assert self.restorer is not None
        while self._to_restore:
            parts = sorted(self._to_restore)
            self._to_restore.clear()
            self._restoring = set(parts)
            tps = [TopicPartition(self.topics.source, p) for p in parts]
            committed = self.consumer.committed(tps, timeout=30)
            restored = self.restorer.restore(
                self.engine, committed, self.guard, keep_alive=self._keep_member
            )
            done = self._restoring - self._revoked_restoring - self._to_restore
            self._restoring, self._revoked_restoring = set(), set()
            if self.checkpointer is not None:
                self.checkpointer.restored(
                    {p: m for p, m in restored.last.items() if p in done},
                    {p: o for p, o in restored.snapshots.items() if p in done},
                )
                # a replay from the start is long: save its result (at the committed offsets)
                replayed = (set(restored.last) - set(restored.snapshots)) & done
                self.checkpointer.save(self.engine, self.guard, replayed)
            self._resume(done)
            if self.watchdog is not None:
                self.watchdog.reset()  # a long restore is not a stall

    def _keep_member(self) -> set[int]:
        """Serve the group consumer during a restore (heartbeats are librdkafka's own; this
        resets its poll interval and runs rebalance callbacks); returns the partitions being
        restored that were revoked since the last call."""
        self._hold(self.consumer.poll(0))
        self.producer.poll(0)
        gone, self._revoked_restoring = self._revoked_restoring & self._restoring, set()
        self._restoring -= gone
        return gone

    def _hold(self, msg: Message | None) -> None:
        """Keep a record polled while holding back for the next batch, and pause its partition
        (fetched before the pause); :meth:`_resume` resumes it."""
        if msg is None:
            return
        self._stash.append(msg)
        topic, partition = msg.topic(), msg.partition()
        if topic is not None and partition is not None:
            self.consumer.pause([TopicPartition(topic, partition)])

    def _resume(self, partitions: set[int]) -> None:
        """Resume ``partitions`` (those still assigned and restored) and any partition paused by
        :meth:`_hold` whose state is whole."""
        held = {m.partition() for m in self._stash}
        ready = (partitions | {p for p in held if p is not None}) & self._assigned
        ready -= self._to_restore | self._restoring
        if ready:
            self.consumer.resume([TopicPartition(self.topics.source, p) for p in sorted(ready)])

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Forget revoked partitions: their state and stashed records (the rest is committed)."""
        if not partitions:
            return
        gone = {tp.partition for tp in partitions}
        log.info("revoked %s", sorted(gone))
        # a partition not restored yet holds no state to hand over: the restore drops it
        self._revoked_restoring |= gone & self._restoring
        self._to_restore -= gone
        whole = gone - self._restoring
        idle = self._sinks is not None and self._sinks.wait_idle(timeout_s=30)
        # hand the partitions over with nothing in flight, and their state as a snapshot
        if idle and self._commit_durable_quietly() and self.checkpointer is not None:
            self.checkpointer.save(self.engine, self.guard, whole)
        if self.checkpointer is not None:
            self.checkpointer.forget(gone)
        self._assigned -= gone
        self.engine.drop_partitions(gone)
        self.guard.drop_partitions(gone)
        self._stash = [m for m in self._stash if m.partition() not in gone]

    def _is_error(self, msg: Message) -> bool:
        err = msg.error()
        if err is None:
            return False
        if err.fatal():
            raise KafkaError(f"fatal consumer error on {self.topics.source}: {err}")
        log.warning("consumer error on %s: %s", self.topics.source, err)
        return True

    def _score(self, tx: TxBatch, polled: Polled) -> ScoredBatch:
        partition = polled.partition
        clock = self.stats.clock
        with clock("features"):
            features = self.engine.update_and_extract(tx, partition)
        with clock("score"):
            score = self.bundle.score(features)
            decision = self.bundle.decide(score)
        shadow = None
        if self.challenger is not None:
            c_score = self.challenger.score(features)
            shadow = ShadowScores(self.challenger.version, c_score, self.challenger.decide(c_score))
        scored = ScoredBatch(
            tx=tx,
            feature_names=self.bundle.feature_names,
            features=features,
            score=score,
            decision=decision,
            reasons=[],
            model_version=self.bundle.version,
            partition=partition,
            shadow=shadow,
            offset=polled.offset,
            processed_at_ms=int(time.time() * 1000),
        )
        if self.rules is not None:
            self._apply_rules(scored, self.rules)
        return scored  # its reasons are the sink worker's to compute (Job.explain)

    def _apply_rules(self, scored: ScoredBatch, rules: LiveRules) -> None:
        """The final decisions of ``scored`` after the rules in force, and the rules fired."""
        scored.rule_set_version = rules.version
        if not rules.acting:
            return
        with self.stats.clock("rules"):
            decided = rules.decide(scored)
        if decided is not None:
            scored.decision = decided.decision
            scored.rules_fired = decided.fired
            scored.rules_shadow = decided.shadow_fired

    def _windows(self, scored: ScoredBatch) -> list[WindowStats]:
        tx = scored.tx
        self.window.add(tx.event_time_ms, tx.amount, tx.label == 1, scored.decision > 0)
        closed = list(self.window.advance())
        if closed and self.on_window is not None:
            for w in closed:
                self.on_window(w, self.stats)
        return closed

    def _hold_during_outage(self, sinks: SinkWorker) -> None:
        """Pause the assigned partitions while an output cannot take more (the store is down,
        the alerts producer's queue stays full); resume when it can."""
        paused = list(self.consumer.assignment())
        if paused:
            self.consumer.pause(paused)
        what = "the store is back" if isinstance(sinks.outage, StoreError) else "alerts drain"
        log.error(
            "pausing %d partition(s) of %s until %s; nothing is committed",
            len(paused),
            self.topics.source,
            what,
        )
        while sinks.outage is not None:
            self._backoff(0.2)
            if self._should_stop():
                outage = sinks.outage
                error = StoreError if isinstance(outage, StoreError) else SinkBackpressure
                raise error(
                    f"stopped while an output was unavailable ({outage}); the batch was not "
                    "committed and will be replayed on restart"
                ) from outage
        # the assignment may have changed by a rebalance: partitions still to restore stay paused
        assigned = [
            tp
            for tp in self.consumer.assignment()
            if tp.partition not in self._to_restore | self._restoring
        ]
        if assigned:
            self.consumer.resume(assigned)
        log.info("resumed %d partition(s) of %s", len(assigned), self.topics.source)
        if self.watchdog is not None:
            self.watchdog.reset()  # the pause was deliberate, not a stall

    def _backoff(self, delay_s: float) -> None:
        """Wait ``delay_s`` while serving the consumer (group heartbeats, rebalances)."""
        deadline = time.monotonic() + delay_s
        while (left := deadline - time.monotonic()) > 0 and not self._should_stop():
            # a record fetched before the pause (or newly assigned): kept, its partition paused
            self._hold(self.consumer.poll(min(left, 0.5)))
            self.producer.poll(0)

    def _commit(self, offsets: list[TopicPartition]) -> None:
        """Commit a batch's offsets (called only once its outputs are durable)."""
        if not offsets:
            return
        for tp in offsets:
            self._committing[(tp.topic, tp.partition)] = tp.offset
        try:
            # asynchronous: the outputs are durable already, so a lost commit only means a
            # harmless replay; the consuming thread never waits for the broker here
            self.consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            # Outputs are durable and idempotent: a replay after a failed commit is harmless.
            log.warning("offset commit failed (the batch will be replayed): %s", exc)

    def close(self) -> None:
        """Make in-flight batches durable and commit them, then leave the consumer group."""
        try:
            if self._sinks is not None:
                if not self._should_stop() or self._sinks.outage is None:
                    idle = self._sinks.wait_idle(timeout_s=60)
                    if self._commit_durable_quietly() and idle and self.checkpointer is not None:
                        self.checkpointer.save(self.engine, self.guard)
                self._sinks.stop()
        finally:
            self.consumer.close()
            if self.labels is not None:
                self.labels.close()
            if self.rules is not None:
                self.rules.close()
            if self.checkpointer is not None:  # the last snapshots' shared uploads, if any
                self.checkpointer.close()

    def _maybe_checkpoint(self) -> None:
        """Snapshot the partitions' state when due, once every processed batch is committed
        (the consuming thread waits for the sink worker: one batch's writes)."""
        cp, sinks = self.checkpointer, self._sinks
        if cp is None or sinks is None or sinks.outage is not None or not cp.due():
            return
        if sinks.wait_idle(timeout_s=10) and self._commit_durable_quietly():
            cp.save(self.engine, self.guard)

    def _commit_durable_quietly(self) -> bool:
        """Commit what is durable and wait for the broker (before a hand-over, a snapshot or
        leaving); ``False`` if the commit failed."""
        assert self._sinks is not None
        for job in self._sinks.completed():
            self._durable(job)
        if self._committing:
            offsets = [TopicPartition(t, p, o) for (t, p), o in self._committing.items()]
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                log.warning("final offset commit failed (those batches will be replayed): %s", exc)
                return False
            finally:
                self._committing.clear()
        return True
