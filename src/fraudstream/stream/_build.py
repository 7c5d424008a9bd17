"""One place that builds a detector from settings, a bundle and a store.

``fraudstream detect`` (and the demo through it), ``fraudstream bench`` and the integration
tests all call :func:`build_detector`, so what they run is wired the same way: the consumer
(with the lag watchdog's statistics and the configured fetch wait, replaced by a longer-waiting
one when it stalls), the producer, the topics, the event-time guard, the state restorer with the
bundle's record format and the state snapshots, and the label channel.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer

from fraudstream.config import DetectSettings, Settings
from fraudstream.errors import ConfigError
from fraudstream.features import StateEngine, engine_for
from fraudstream.model import Bundle
from fraudstream.sinks import Store
from fraudstream.stream._checkpoint import Checkpointer
from fraudstream.stream._detector import Detector, DetectorTopics, OnWindow, format_of
from fraudstream.stream._drift import drift_monitor_for
from fraudstream.stream._guard import EventTimeGuard, guard_for
from fraudstream.stream._kafka import (
    ensure_topics,
    make_consumer,
    make_producer,
    topic_partitions,
)
from fraudstream.stream._labels import DeadLetter, LabelReader, Lookup
from fraudstream.stream._metrics import DetectorMetrics
from fraudstream.stream._models import ModelWatcher
from fraudstream.stream._restore import StateRestorer
from fraudstream.stream._rules import LiveRules, rule_store_for
from fraudstream.stream._shared import open_shared
from fraudstream.stream._snapshot import SnapshotStore
from fraudstream.stream._watchdog import LagWatchdog
from fraudstream.stream._window import SlidingWindow

__all__ = ["build_detector"]

log = logging.getLogger(__name__)


def build_detector(
    settings: Settings,
    bundle: Bundle,
    store: Store,
    *,
    client: Mapping[str, Any],
    lookup: Lookup | None = None,
    models: ModelWatcher | None = None,
    challenger: Bundle | None = None,
    on_window: OnWindow | None = None,
    metrics: DetectorMetrics | None = None,
    kind: type[Detector] = Detector,
    rules: bool = True,
    **options: Any,
) -> Detector:
    """A detector of ``kind`` (:class:`Detector` or a subclass) scoring with ``bundle`` into an
    opened ``store``, on the cluster of the librdkafka settings ``client``.

    From ``settings``: the topics (``settings.topics``: transactions, alerts, dead letters and,
    when ``settings.detect.labels``, labels; created with ``settings.kafka.partitions`` if
    missing) and everything in ``settings.detect`` (group, batch size, fetch wait, prefetch,
    session timeout, stall threshold, windows, event-time guard) and ``settings.drift`` (the
    drift monitor of each bundle in service). Labels are completed with
    ``lookup`` (e.g. a second store connection's ``lookup_transactions``; ``None``: only from
    the stream).
    ``models`` hot-reloads promoted bundles (``None``: ``bundle`` for good). ``rules``: apply
    the fraud team's rules and lists kept in the same database as ``store`` (polled between
    batches, see docs/rules.md; ``False``: the model's thresholds only). ``options`` are
    further :class:`Detector` keyword arguments (``store_retry_initial_s``, ...).
    """
    d = settings.detect
    names = settings.topics
    topics = DetectorTopics(names.transactions, names.alerts, names.dlq)
    ensure_topics(
        client,
        [topics.source, topics.alerts, topics.dlq, *([names.labels] if d.labels else [])],
        partitions=settings.kafka.partitions,
    )
    source_partitions = topic_partitions(client, topics.source)
    _check_state_partitions(bundle, topics.source, source_partitions)
    prefetch = {"queued.max.messages.kbytes": d.prefetch_mib * 1024}  # detector and restore
    # the card engine counts a confirmed fraud in its own partition: it needs the topic's count
    engine = engine_for(bundle.mode, partitions=max(source_partitions, 1), extras=bundle.extras)
    record_format = format_of(bundle.mode, bundle.extras.names_read)
    watchdog = LagWatchdog(topics.source, stall_after_s=d.stall_after_s)
    snapshots = _snapshot_store(settings) if d.snapshots else None

    def consumer(fetch_wait_ms: int) -> Consumer:
        conf = {
            **prefetch,
            "fetch.wait.max.ms": fetch_wait_ms,
            "statistics.interval.ms": 1000,  # lag for the watchdog
            "stats_cb": watchdog.on_stats,
        }
        return make_consumer(client, d.group_id, session_timeout_ms=d.session_timeout_ms, **conf)

    def label_reader(dead_letter: DeadLetter) -> LabelReader:
        return LabelReader(
            client, names.labels, engine.labels, dead_letter=dead_letter, lookup=lookup
        )

    return kind(
        consumer=consumer(d.fetch_wait_ms),
        # every output's delivery callback only counts failures: a callback per delivered
        # alert, decision or dead letter would be Python work (and the GIL) for nothing
        producer=make_producer(client, **{"delivery.report.only.error": True}),
        topics=topics,
        store=store,
        bundle=bundle,
        engine=engine,
        window=SlidingWindow(d.window_ms, d.window_step_ms),
        batch_max=d.batch_max,
        poll_timeout_ms=d.batch_timeout_ms,
        on_window=on_window,
        restorer=StateRestorer(
            {**client, **prefetch},
            topics.source,
            record_format.decode_messages,
            snapshots=snapshots,
        ),
        checkpointer=Checkpointer(
            snapshots,
            topics.source,
            every_records=d.snapshot_every_records,
            interval_s=d.snapshot_interval_s,
        )
        if snapshots is not None
        else None,
        models=models,
        challenger=challenger,
        watchdog=watchdog,
        metrics=metrics,
        reconnect=consumer,  # a stalled consumer is replaced, with a longer fetch wait
        fetch_wait_ms=d.fetch_wait_ms,
        labels=label_reader if d.labels else None,
        guard=_guard(d, engine, record_format.name),
        rules=_live_rules(store, bundle) if rules else None,
        decisions_topic=settings.api.decisions_topic,  # answers to `fraudstream serve`
        reply_networks=d.reply_networks,
        drift=lambda b: drift_monitor_for(b, settings.drift),
        **options,
    )


def _guard(d: DetectSettings, engine: StateEngine, record_format: str) -> EventTimeGuard:
    """The event-time guard of ``d`` for ``record_format``; a record it lets through must not
    be older than the entity state ``engine`` keeps (its TTL), or it would read swept state."""
    guard = guard_for(
        record_format, max_future_skew_ms=d.max_future_skew_ms, max_lateness_ms=d.max_lateness_ms
    )
    ttl_ms: int | None = getattr(engine, "ttl_ms", None)
    if ttl_ms is not None and guard.max_lateness_ms >= ttl_ms:
        raise ConfigError(
            f"FRAUDSTREAM_DETECT__MAX_LATENESS_MS={guard.max_lateness_ms} must be below the "
            f"{ttl_ms} ms TTL of entity state: a record that late would read evicted state"
        )
    if hasattr(engine, "sweep_lag_ms"):
        engine.sweep_lag_ms = guard.max_lateness_ms  # a late row reads unswept state
    if record_format == "card" and guard.max_lateness_ms > 0:
        log.warning(
            "card records up to %d ms behind their partition's watermark are scored: their "
            "features, and those of later rows, depend on batch boundaries (a restore may "
            "differ from the live run); the card default is 0",
            guard.max_lateness_ms,
        )
    return guard


def _live_rules(store: Store, bundle: Bundle) -> LiveRules | None:
    """The rules in force for ``bundle``, read from ``store``'s database (opened by the detector,
    on its thread); ``None`` if that store cannot hold rules."""
    rule_store = rule_store_for(store)
    if rule_store is None:
        log.info("rules: %r keeps no rules; decisions are the model's thresholds only", store)
        return None
    return LiveRules(rule_store, bundle)


def _check_state_partitions(bundle: Bundle, topic: str, partitions: int) -> None:
    """Warn when training kept feature state over another partition count than the topic's."""
    trained = bundle.metrics.get("data", {}).get("state_partitions")
    if trained is not None and partitions and trained != partitions:
        log.warning(
            "bundle %s was trained with feature state over %d partition(s) but %s has %d: "
            "counterparty features will differ from training; retrain with "
            "FRAUDSTREAM_KAFKA__PARTITIONS=%d",
            bundle.version,
            trained,
            topic,
            partitions,
            partitions,
        )


def _snapshot_store(settings: Settings) -> SnapshotStore:
    """Local snapshots, also shared in object storage when ``snapshot_url`` is set."""
    d = settings.detect
    shared = (
        open_shared(
            d.snapshot_url, endpoint_url=d.snapshot_s3_endpoint_url, region=d.snapshot_s3_region
        )
        if d.snapshot_url
        else None
    )
    return SnapshotStore(d.snapshot_dir or settings.data_dir / "state", shared)
